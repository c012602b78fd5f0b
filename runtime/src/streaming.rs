//! [`Streaming`]: a stream of received messages, decoded as they arrive.

use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use grpc_h3_core::{protocol, Codec, FrameDecoder, Metadata, Status};
use http::HeaderMap;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The receiving side of a call as a transport provides it: body bytes, then
/// optional trailers. Dropping it before the end cancels the stream.
pub(crate) trait RecvBody: Send + 'static {
    /// The next chunk of body bytes; `None` at the end of the body.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>>;

    /// The trailers, after the body ended.
    fn poll_trailers(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<HeaderMap>, Status>>;
}

type DecodeFn<T> = Box<dyn FnMut(Bytes) -> Result<T, Status> + Send>;

/// The status of a call cancelled through its cancellation token.
pub(crate) fn cancelled_by_client() -> Status {
    Status::cancelled("the call was cancelled by the client")
}

/// The server runs the deadline the client sent, starting later and rounded
/// up, so it never fires first: a cancellation that arrives once the
/// client's own deadline has passed is the deadline, and gRFC G2 says the
/// client reports DEADLINE_EXCEEDED then (the reset can simply win the race
/// against the client's timer).
pub(crate) fn blame_deadline(status: Status, deadline: Option<Instant>) -> Status {
    match deadline {
        Some(deadline)
            if status.code() == grpc_h3_core::Code::Cancelled && Instant::now() >= deadline =>
        {
            Status::deadline_exceeded(format!("deadline exceeded ({})", status.message()))
        }
        _ => status,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Messages,
    Trailers,
    Done,
}

/// A stream of messages received on a call: the responses of a
/// server-streaming or bidirectional call on a client, the requests of a
/// client-streaming or bidirectional call on a server.
///
/// It yields `Err(status)` once if the call fails and then ends. On a
/// client, the stream ends cleanly only when the server's trailers say OK;
/// [`Streaming::trailers`] then holds the trailing metadata. Dropping a
/// client's `Streaming` before the end cancels the call (RESET_STREAM and
/// STOP_SENDING with H3_REQUEST_CANCELLED).
///
/// ```
/// # async fn read(mut replies: grpc_h3::Streaming<String>) -> Result<(), grpc_h3::Status> {
/// while let Some(reply) = replies.message().await? {
///     println!("{reply}");
/// }
/// // The stream ended with OK; trailing metadata came with it.
/// let trailers = replies.trailers();
/// # let _ = trailers; Ok(()) }
/// ```
///
/// It is also a [`Stream`](futures_core::Stream) of `Result<T, Status>`.
pub struct Streaming<T> {
    body: Option<Box<dyn RecvBody>>,
    decoder: FrameDecoder,
    decode: DecodeFn<T>,
    state: State,
    expects_trailers: bool,
    trailers: Option<Metadata>,
    deadline: Option<Pin<Box<Sleep>>>,
    deadline_at: Option<Instant>,
    cancellation: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    // Whatever must live exactly as long as the call (the connection handle,
    // the task sending requests).
    keep_alive: Option<Box<dyn Any + Send>>,
    local_failure: Option<Arc<Mutex<Option<Status>>>>,
}

impl<T> Streaming<T> {
    pub(crate) fn new<C>(
        body: Box<dyn RecvBody>,
        decoder: FrameDecoder,
        mut codec: C,
    ) -> Streaming<T>
    where
        C: Codec<Decode = T>,
    {
        Streaming {
            body: Some(body),
            decoder,
            decode: Box::new(move |bytes| codec.decode(bytes)),
            state: State::Messages,
            expects_trailers: false,
            trailers: None,
            deadline: None,
            deadline_at: None,
            cancellation: None,
            keep_alive: None,
            local_failure: None,
        }
    }

    /// A client-side stream: it reads the trailers at the end, fails at
    /// `deadline` or when `cancellation` fires, and holds `keep_alive`
    /// until the call ends.
    pub(crate) fn for_client(
        mut self,
        deadline: Option<Instant>,
        cancellation: Option<CancellationToken>,
        keep_alive: Box<dyn Any + Send>,
    ) -> Streaming<T> {
        self.cancellation = cancellation.map(|token| Box::pin(token.cancelled_owned()));
        self.expects_trailers = true;
        self.deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        self.deadline_at = deadline;
        self.keep_alive = Some(keep_alive);
        self
    }

    /// Marks the stream as already over (a Trailers-Only OK response).
    pub(crate) fn into_finished(mut self, trailers: Metadata) -> Streaming<T> {
        self.state = State::Done;
        self.body = None;
        self.trailers = Some(trailers);
        self
    }

    /// Reports `failure`, if set, instead of the error the stream sees
    /// (our own sending side failed and reset the stream).
    pub(crate) fn with_local_failure(
        mut self,
        failure: Arc<Mutex<Option<Status>>>,
    ) -> Streaming<T> {
        self.local_failure = Some(failure);
        self
    }

    /// The next message, `Ok(None)` at the end of the stream.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        poll_fn(|cx| self.poll_message(cx)).await.transpose()
    }

    /// Whether the last message returned arrived with the compressed flag
    /// set (the peer compressed it).
    pub fn last_message_compressed(&self) -> bool {
        self.decoder.last_message_compressed()
    }

    /// The trailing metadata, once a client's stream has ended with OK.
    pub fn trailers(&self) -> Option<&Metadata> {
        self.trailers.as_ref()
    }

    /// Ends the call with `status`: the body is dropped, which cancels the
    /// stream if it was still open.
    fn fail(&mut self, status: Status) -> Poll<Option<Result<T, Status>>> {
        self.state = State::Done;
        self.body = None;
        self.keep_alive = None;
        self.deadline = None;
        self.cancellation = None;
        let local = self
            .local_failure
            .as_ref()
            .and_then(|f| f.lock().expect("failure lock").take());
        let status = local.unwrap_or_else(|| blame_deadline(status, self.deadline_at));
        Poll::Ready(Some(Err(status)))
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Status>>> {
        if let Some(cancelled) = &mut self.cancellation {
            if cancelled.as_mut().poll(cx).is_ready() && self.state != State::Done {
                self.cancellation = None;
                return self.fail(cancelled_by_client());
            }
        }
        if let Some(deadline) = &mut self.deadline {
            if deadline.as_mut().poll(cx).is_ready() && self.state != State::Done {
                return self.fail(Status::deadline_exceeded(
                    "deadline exceeded while waiting for the response",
                ));
            }
        }
        loop {
            match self.state {
                State::Done => return Poll::Ready(None),
                State::Messages => {
                    match self.decoder.next_message() {
                        Ok(Some(bytes)) => match (self.decode)(bytes) {
                            Ok(message) => return Poll::Ready(Some(Ok(message))),
                            Err(status) => return self.fail(status),
                        },
                        Ok(None) => {}
                        Err(status) => return self.fail(status),
                    }
                    let body = self
                        .body
                        .as_mut()
                        .expect("body present while reading messages");
                    match body.poll_data(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(Some(chunk))) => self.decoder.push(chunk),
                        Poll::Ready(Ok(None)) => {
                            if let Err(status) = self.decoder.finish() {
                                return self.fail(status);
                            }
                            if self.expects_trailers {
                                self.state = State::Trailers;
                            } else {
                                self.state = State::Done;
                                self.body = None;
                                return Poll::Ready(None);
                            }
                        }
                        Poll::Ready(Err(status)) => return self.fail(status),
                    }
                }
                State::Trailers => {
                    let body = self
                        .body
                        .as_mut()
                        .expect("body present while reading trailers");
                    let trailers = match body.poll_trailers(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(trailers)) => trailers,
                        Poll::Ready(Err(status)) => return self.fail(status),
                    };
                    let status = protocol::parse_trailers(trailers.as_ref());
                    if status.code() != grpc_h3_core::Code::Ok {
                        return self.fail(status);
                    }
                    self.trailers = Some(status.metadata().clone());
                    self.state = State::Done;
                    self.body = None;
                    self.keep_alive = None;
                    self.deadline = None;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("state", &self.state)
            .field("buffered", &self.decoder.buffered())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grpc_h3_core::Code;
    use std::time::Duration;

    #[test]
    fn a_cancellation_after_the_deadline_is_the_deadline() {
        let past = Some(Instant::now() - Duration::from_millis(1));
        let future = Some(Instant::now() + Duration::from_secs(60));
        let blame = |code, deadline| blame_deadline(Status::new(code, "reset"), deadline).code();
        assert_eq!(blame(Code::Cancelled, past), Code::DeadlineExceeded);
        assert_eq!(blame(Code::Cancelled, future), Code::Cancelled);
        assert_eq!(blame(Code::Cancelled, None), Code::Cancelled);
        assert_eq!(blame(Code::Unavailable, past), Code::Unavailable);
    }
}
