//! [`Streaming`]: a stream of received messages, decoded from an HTTP body
//! as it arrives, following the core's [`Incoming`] state machine.

use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use grpc_h3_core::call::{blame_deadline, Incoming};
use grpc_h3_core::{Codec, Metadata, Status};
use http::HeaderMap;
use http_body::Body as _;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::Body;

type DecodeFn<T> = Box<dyn FnMut(Bytes) -> Result<T, Status> + Send>;

/// The status of a call cancelled through its cancellation token.
pub(crate) fn cancelled_by_client() -> Status {
    Status::cancelled("the call was cancelled by the client")
}

/// A stream of messages received on a call: the responses of a
/// server-streaming or bidirectional call on a client, the requests of a
/// client-streaming or bidirectional call on a server.
///
/// It yields `Err(status)` once if the call fails and then ends. On a
/// client, the stream ends cleanly only when the server's trailers say OK;
/// [`Streaming::trailers`] then holds the trailing metadata. Dropping a
/// client's `Streaming` before the end cancels the call (RESET_STREAM and
/// STOP_SENDING with H3_REQUEST_CANCELLED, or RST_STREAM CANCEL).
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
/// It is also a [`Stream`] of `Result<T, Status>`.
pub struct Streaming<T> {
    body: Option<Body>,
    incoming: Incoming,
    decode: DecodeFn<T>,
    received_trailers: Option<HeaderMap>,
    failed: bool,
    deadline: Option<Pin<Box<Sleep>>>,
    deadline_at: Option<Instant>,
    cancellation: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    // Whatever must live exactly as long as the call (the task sending
    // requests, the attempt's connection).
    keep_alive: Option<Box<dyn Any + Send>>,
    local_failure: Option<Arc<Mutex<Option<Status>>>>,
}

impl<T> Streaming<T> {
    pub(crate) fn new<C>(body: Body, incoming: Incoming, mut codec: C) -> Streaming<T>
    where
        C: Codec<Decode = T>,
    {
        Streaming {
            body: Some(body),
            incoming,
            decode: Box::new(move |bytes| codec.decode(bytes)),
            received_trailers: None,
            failed: false,
            deadline: None,
            deadline_at: None,
            cancellation: None,
            keep_alive: None,
            local_failure: None,
        }
    }

    /// A client-side stream: it fails at `deadline` or when `cancellation`
    /// fires, and holds `keep_alive` until the call ends.
    pub(crate) fn for_client(
        mut self,
        deadline: Option<Instant>,
        cancellation: Option<CancellationToken>,
        keep_alive: Box<dyn Any + Send>,
    ) -> Streaming<T> {
        self.cancellation = cancellation.map(|token| Box::pin(token.cancelled_owned()));
        self.deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        self.deadline_at = deadline;
        self.keep_alive = Some(keep_alive);
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
        self.incoming.last_message_compressed()
    }

    /// The trailing metadata, once a client's stream has ended with OK.
    pub fn trailers(&self) -> Option<&Metadata> {
        self.incoming.trailers()
    }

    /// Ends the call with `status`: the body is dropped, which cancels the
    /// stream if it was still open.
    fn fail(&mut self, status: Status) -> Poll<Option<Result<T, Status>>> {
        self.failed = true;
        self.body = None;
        self.keep_alive = None;
        self.deadline = None;
        self.cancellation = None;
        let local = self
            .local_failure
            .as_ref()
            .and_then(|f| f.lock().expect("failure lock").take());
        let passed = self.deadline_at.is_some_and(|d| Instant::now() >= d);
        let status = local.unwrap_or_else(|| blame_deadline(status, passed));
        Poll::Ready(Some(Err(status)))
    }

    fn finish(&mut self) -> Poll<Option<Result<T, Status>>> {
        match self.incoming.end(self.received_trailers.as_ref()) {
            Ok(()) => {
                self.body = None;
                self.keep_alive = None;
                self.deadline = None;
                self.cancellation = None;
                Poll::Ready(None)
            }
            Err(status) => self.fail(status),
        }
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        if let Some(cancelled) = &mut self.cancellation {
            if cancelled.as_mut().poll(cx).is_ready() && !self.incoming.is_done() {
                self.cancellation = None;
                return self.fail(cancelled_by_client());
            }
        }
        if let Some(deadline) = &mut self.deadline {
            if deadline.as_mut().poll(cx).is_ready() && !self.incoming.is_done() {
                return self.fail(Status::deadline_exceeded(
                    "deadline exceeded while waiting for the response",
                ));
            }
        }
        loop {
            match self.incoming.message() {
                Ok(Some(bytes)) => {
                    return match (self.decode)(bytes) {
                        Ok(message) => Poll::Ready(Some(Ok(message))),
                        Err(status) => self.fail(status),
                    }
                }
                Ok(None) => {}
                Err(status) => return self.fail(status),
            }
            if self.incoming.is_done() {
                return Poll::Ready(None);
            }
            let Some(body) = self.body.as_mut() else {
                return self.finish();
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return self.finish(),
                Poll::Ready(Some(Err(status))) => return self.fail(status),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.incoming.data(data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.received_trailers = Some(trailers);
                        }
                    }
                },
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
            .field("done", &self.incoming.is_done())
            .field("buffered", &self.incoming.buffered())
            .finish()
    }
}
