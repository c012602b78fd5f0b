//! The request side of a streaming call as an HTTP body that can be
//! replayed: the messages sent so far are kept (up to [`REPLAY_LIMIT`])
//! until the server answers, so that a call the server did not process can
//! be sent again, transparently, on another connection.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use grpc_h3_core::{Codec, FrameEncoder, Status};
use http_body::Frame;

/// Request bytes kept for a transparent retry; a streaming call that sends
/// more before the server answers is no longer retried.
pub(crate) const REPLAY_LIMIT: usize = 64 * 1024;

/// A failure on our own sending side (e.g. a request message over the
/// limit) that explains why the call ended, better than the reset it causes.
pub(crate) type LocalFailure = Arc<Mutex<Option<Status>>>;

/// `failure` if our side failed, else `status`.
pub(crate) fn local_failure_or(failure: &LocalFailure, status: Status) -> Status {
    failure
        .lock()
        .expect("failure lock")
        .take()
        .unwrap_or(status)
}

type Messages<M> = Pin<Box<dyn Stream<Item = M> + Send>>;

/// Where the messages come from, and the frames sent while a retry is
/// still possible.
struct Source<C: Codec> {
    messages: Messages<C::Encode>,
    codec: C,
    frames: FrameEncoder,
    sent: Vec<Bytes>,
    sent_bytes: usize,
    done: bool,
}

/// The request messages of one streaming call, shared by its attempts.
pub(crate) struct Outbox<C: Codec> {
    source: Mutex<Source<C>>,
    /// Response headers arrived: nothing will be sent again.
    committed: AtomicBool,
    /// More was sent than [`REPLAY_LIMIT`]: no retry.
    overflowed: AtomicBool,
    pub(crate) failure: LocalFailure,
}

impl<C: Codec> Outbox<C>
where
    C: Send + 'static,
    C::Encode: Send + 'static,
{
    pub(crate) fn new<S>(messages: S, codec: C, frames: FrameEncoder) -> Arc<Outbox<C>>
    where
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        Arc::new(Outbox {
            source: Mutex::new(Source {
                messages: Box::pin(messages),
                codec,
                frames,
                sent: Vec::new(),
                sent_bytes: 0,
                done: false,
            }),
            committed: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            failure: LocalFailure::default(),
        })
    }

    /// The server answered: what was sent will never be sent again.
    pub(crate) fn commit(&self) {
        self.committed.store(true, Ordering::Release);
        let mut source = self.source.lock().expect("outbox lock");
        source.sent = Vec::new();
    }

    /// Whether everything sent so far can still be sent again.
    pub(crate) fn replayable(&self) -> bool {
        !self.overflowed.load(Ordering::Acquire)
            && self.failure.lock().expect("failure lock").is_none()
    }

    /// A body for one attempt: first what earlier attempts sent, then the
    /// rest of the messages.
    pub(crate) fn body(self: &Arc<Self>) -> OutboxBody<C> {
        OutboxBody {
            outbox: self.clone(),
            replayed: 0,
            ended: false,
        }
    }

    fn keep_for_replay(&self, source: &mut Source<C>, frame: &Bytes) {
        if self.committed.load(Ordering::Acquire) || self.overflowed.load(Ordering::Acquire) {
            return;
        }
        source.sent_bytes += frame.len();
        if source.sent_bytes > REPLAY_LIMIT {
            self.overflowed.store(true, Ordering::Release);
            source.sent = Vec::new();
        } else {
            source.sent.push(frame.clone());
        }
    }
}

/// One attempt's request body.
pub(crate) struct OutboxBody<C: Codec> {
    outbox: Arc<Outbox<C>>,
    /// Frames of `sent` this attempt has already returned.
    replayed: usize,
    ended: bool,
}

impl<C: Codec> Unpin for OutboxBody<C> {}

impl<C> http_body::Body for OutboxBody<C>
where
    C: Codec + Send + 'static,
    C::Encode: Send + 'static,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let outbox = &*this.outbox;
        let mut source = outbox.source.lock().expect("outbox lock");
        let source = &mut *source;
        if let Some(frame) = source.sent.get(this.replayed) {
            this.replayed += 1;
            return Poll::Ready(Some(Ok(Frame::data(frame.clone()))));
        }
        if source.done {
            this.ended = true;
            return Poll::Ready(None);
        }
        match source.messages.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                source.done = true;
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(message)) => match source.frames.encode(&mut source.codec, message) {
                Ok(frame) => {
                    outbox.keep_for_replay(source, &frame);
                    this.replayed = source.sent.len();
                    Poll::Ready(Some(Ok(Frame::data(frame))))
                }
                Err(status) => {
                    // The transport resets the stream; the call reports
                    // this status instead of the reset.
                    *outbox.failure.lock().expect("failure lock") = Some(status.clone());
                    this.ended = true;
                    Poll::Ready(Some(Err(status)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
