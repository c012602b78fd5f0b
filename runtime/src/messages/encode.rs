//! Outgoing messages as an HTTP body: framed as they are produced, small
//! ones that are ready together coalesced into one DATA frame, and (on a
//! server) the trailers with the call's status at the end.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use grpc_h3_core::{protocol, Codec, FrameEncoder, Metadata, Status};
use http::HeaderMap;
use http_body::Frame;

/// A DATA frame takes no more messages once it holds this much.
const BATCH_BYTES: usize = 64 * 1024;

type Messages<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

/// A server's stream of response messages as a body: framed messages,
/// then trailers with the call's status.
pub(crate) struct EncodeBody<C: Codec> {
    messages: Option<Messages<C::Encode>>,
    codec: C,
    frames: FrameEncoder,
    /// Trailing metadata sent with an OK status (server).
    trailers: Option<Metadata>,
    /// A first message taken out early (lazy response headers).
    first: Option<C::Encode>,
    /// The stream ended (with an error status, or not) after the frames
    /// last returned.
    pending_end: Option<Option<Status>>,
    /// Counts panics of the message stream.
    panics: Option<Arc<AtomicU64>>,
    done: bool,
}

// Nothing in it is pinned in place: the message stream is boxed.
impl<C: Codec> Unpin for EncodeBody<C> {}

impl<C: Codec> EncodeBody<C> {
    pub(crate) fn new<S>(messages: S, codec: C, frames: FrameEncoder) -> EncodeBody<C>
    where
        S: Stream<Item = Result<C::Encode, Status>> + Send + 'static,
    {
        EncodeBody {
            messages: Some(Box::pin(messages)),
            codec,
            frames,
            trailers: None,
            first: None,
            pending_end: None,
            panics: None,
            done: false,
        }
    }

    /// Counts panics of the message stream in `counter`.
    pub(crate) fn counting_panics(mut self, counter: Option<Arc<AtomicU64>>) -> EncodeBody<C> {
        self.panics = counter;
        self
    }

    /// Sends this trailing metadata with an OK status at the end.
    pub(crate) fn with_trailers(mut self, trailers: Metadata) -> EncodeBody<C> {
        self.trailers = Some(trailers);
        self
    }

    /// Waits for the first message, so that response headers go out with
    /// it: `Ok(())` when there is one, `Err(status)` when the stream ended
    /// first (with OK, or with its error), to be sent Trailers-Only.
    pub(crate) async fn first_message(&mut self) -> Result<(), Status> {
        let Some(messages) = self.messages.as_mut() else {
            return Err(Status::ok(""));
        };
        let panics = self.panics.as_deref();
        match std::future::poll_fn(|cx| poll_caught(messages, panics, cx)).await {
            Some(Ok(message)) => {
                self.first = Some(message);
                Ok(())
            }
            Some(Err(status)) => {
                self.messages = None;
                Err(status)
            }
            None => {
                self.messages = None;
                let status = Status::ok("");
                Err(match self.trailers.take() {
                    Some(trailers) => status.with_metadata(trailers),
                    None => status,
                })
            }
        }
    }

    fn end(&mut self, status: Option<Status>) -> Option<Result<Frame<Bytes>, Status>> {
        self.done = true;
        self.messages = None;
        let status = status.unwrap_or_else(|| {
            let ok = Status::ok("");
            match self.trailers.take() {
                Some(trailers) => ok.with_metadata(trailers),
                None => ok,
            }
        });
        let mut headers = HeaderMap::with_capacity(2 + status.metadata().len());
        status.write_trailers(&mut headers);
        Some(Ok(Frame::trailers(headers)))
    }
}

/// Polls a handler's stream, turning a panic into an INTERNAL status.
fn poll_caught<M>(
    messages: &mut Messages<M>,
    panics: Option<&AtomicU64>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<M, Status>>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| messages.as_mut().poll_next(cx))) {
        Ok(polled) => polled,
        Err(_) => {
            if let Some(panics) = panics {
                panics.fetch_add(1, Ordering::Relaxed);
            }
            tracing::error!("a response stream panicked; the call fails with INTERNAL");
            Poll::Ready(Some(Err(Status::internal("the handler panicked"))))
        }
    }
}

impl<C: Codec> http_body::Body for EncodeBody<C> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(end) = this.pending_end.take() {
            return Poll::Ready(this.end(end));
        }
        // The messages ready now, framed one after another into one DATA
        // frame (nothing waits for messages that are not ready).
        loop {
            let next = match this.first.take() {
                Some(message) => Poll::Ready(Some(Ok(message))),
                None => match this.messages.as_mut() {
                    Some(messages) => poll_caught(messages, this.panics.as_deref(), cx),
                    None => Poll::Ready(None),
                },
            };
            match next {
                Poll::Ready(Some(Ok(message))) => {
                    if let Err(status) = this.frames.append(&mut this.codec, message) {
                        this.pending_end = Some(Some(status));
                        break;
                    }
                    if this.frames.buffered() >= BATCH_BYTES {
                        break;
                    }
                }
                Poll::Ready(Some(Err(status))) => {
                    this.pending_end = Some(Some(status));
                    break;
                }
                Poll::Ready(None) => {
                    this.pending_end = Some(None);
                    break;
                }
                Poll::Pending => break,
            }
        }
        if this.frames.buffered() > 0 {
            return Poll::Ready(Some(Ok(Frame::data(this.frames.take()))));
        }
        match this.pending_end.take() {
            Some(end) => Poll::Ready(this.end(end)),
            None => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// One message and the end: a unary response (or request) body without a
/// stream behind it.
pub(crate) struct Once {
    frame: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Once {
    /// A response: `frame`, then trailers with OK and `trailers`.
    pub(crate) fn response(frame: Bytes, trailers: Metadata) -> Once {
        Once {
            frame: Some(frame),
            trailers: Some(protocol::trailers(&Status::ok("").with_metadata(trailers))),
        }
    }

    /// A request: `frame`, then the end.
    pub(crate) fn request(frame: Bytes) -> Once {
        Once {
            frame: Some(frame),
            trailers: None,
        }
    }
}

impl http_body::Body for Once {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(frame) = this.frame.take() {
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.frame.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len = self.frame.as_ref().map_or(0, Bytes::len) as u64;
        if self.trailers.is_some() {
            let mut hint = http_body::SizeHint::new();
            hint.set_lower(len);
            hint
        } else {
            http_body::SizeHint::with_exact(len)
        }
    }
}
