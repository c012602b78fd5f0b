//! One attempt of a call: a request stream on one connection, its request
//! messages (kept for a replay until the call commits), and the response
//! head. A call whose attempt the server never processed (H3_REQUEST_REJECTED,
//! or a stream at or past the server's GOAWAY) is retried once, transparently,
//! on another connection.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_core::Stream;
use grpc_h3_core::{Codec, FrameEncoder, Status};
use h3::error::{Code, StreamError};
use http::{HeaderMap, StatusCode};

use super::connect::{Connection, Sender};
use crate::transport::h3_body::{ClientRecvBody, ClientSendBody, SendError};
use crate::transport::h3_status;

/// Request bytes kept for a transparent retry; a streaming call that sends
/// more before the server answers is no longer retried.
const REPLAY_LIMIT: usize = 64 * 1024;

/// A failure on our own sending side (e.g. a request message over the
/// limit) that explains why the call ended, better than the reset it causes.
pub(crate) type LocalFailure = Arc<Mutex<Option<Status>>>;

pub(crate) fn local_failure_or(failure: &LocalFailure, status: Status) -> Status {
    failure
        .lock()
        .expect("failure lock")
        .take()
        .unwrap_or(status)
}

/// A request stream whose headers are sent: its response side (the
/// request side is returned next to it by [`open_on`]).
pub(crate) struct Attempt {
    pub(crate) recv: ClientRecvBody,
    pub(crate) sender: Sender,
    pub(crate) conn: Arc<Connection>,
    id: u64,
}

/// Opens a request stream on `conn`. `Err(None)` means the connection was
/// already going away or lost: the request never left, try another one.
pub(crate) async fn open_on(
    conn: Arc<Connection>,
    request: http::Request<()>,
) -> Result<(ClientSendBody, Attempt), Option<Status>> {
    let mut sender = conn.sender.clone();
    match sender.send_request(request).await {
        Ok(stream) => {
            let id = stream.id().into_inner();
            let (send, recv) = stream.split();
            let attempt = Attempt {
                recv: ClientRecvBody::new(recv),
                sender,
                conn,
                id,
            };
            Ok((ClientSendBody::new(send), attempt))
        }
        Err(e @ (StreamError::RemoteClosing { .. } | StreamError::ConnectionError { .. })) => {
            tracing::debug!(error = %e, "connection unusable; the request was not sent");
            conn.retire();
            Err(None)
        }
        // A problem with this request alone (e.g. headers over the peer's
        // limit): the connection stays.
        Err(e) => Err(Some(h3_status::status_for_stream(e))),
    }
}

/// Why the response head did not arrive.
pub(crate) struct HeadFailure {
    pub(crate) status: Status,
    /// The server did not process the request: it may be sent again.
    pub(crate) unprocessed: bool,
}

impl Attempt {
    /// Reads the response's first HEADERS frame.
    pub(crate) async fn head(&mut self) -> Result<(StatusCode, HeaderMap), HeadFailure> {
        match self.recv.stream_mut().recv_response().await {
            Ok(response) => {
                let (parts, ()) = response.into_parts();
                Ok((parts.status, parts.headers))
            }
            Err(e) => {
                let connection_level = matches!(
                    e,
                    StreamError::ConnectionError { .. } | StreamError::RemoteClosing { .. }
                );
                let unprocessed = match &e {
                    StreamError::RemoteTerminate { code, .. } => *code == Code::H3_REQUEST_REJECTED,
                    _ => connection_level && self.conn.state.unprocessed(self.id),
                };
                if connection_level || unprocessed {
                    self.conn.retire();
                }
                Err(HeadFailure {
                    status: h3_status::status_for_stream(e),
                    unprocessed,
                })
            }
        }
    }
}

/// Sends one request message and the end of the request. Failures are
/// only logged: the response side reports the call's outcome.
pub(crate) async fn send_one(send: &mut ClientSendBody, frame: Bytes) {
    let result = match send.send(frame).await {
        Ok(()) => send.finish().await,
        Err(e) => Err(e),
    };
    if let Err(SendError::Failed(status)) = result {
        tracing::debug!(%status, "sending the request failed");
    }
}

/// Aborts the request-sending task when dropped (its send half then
/// resets the stream).
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a streaming call's request messages come from, and the ones sent
/// so far while the call may still be retried.
struct Source<C: Codec, S> {
    messages: Pin<Box<S>>,
    codec: C,
    frames: FrameEncoder,
    sent: Vec<Bytes>,
    sent_bytes: usize,
    done: bool,
}

/// The request side of a streaming call, shared by its attempts.
pub(crate) struct Outbox<C: Codec, S> {
    source: tokio::sync::Mutex<Source<C, S>>,
    /// Response headers arrived: no retry, no replay buffer.
    committed: AtomicBool,
    /// More was sent than [`REPLAY_LIMIT`]: no retry.
    overflowed: AtomicBool,
    pub(crate) failure: LocalFailure,
}

impl<C, S> Outbox<C, S>
where
    C: Codec,
    S: Stream<Item = C::Encode> + Send + 'static,
{
    pub(crate) fn new(messages: S, codec: C, frames: FrameEncoder) -> Arc<Outbox<C, S>> {
        Arc::new(Outbox {
            source: tokio::sync::Mutex::new(Source {
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
    }

    /// Whether everything sent so far can still be sent again.
    pub(crate) fn replayable(&self) -> bool {
        !self.overflowed.load(Ordering::Acquire)
    }

    /// Starts sending on `send`: first what an earlier attempt sent, then
    /// the rest of the messages.
    pub(crate) fn spawn_sender(self: &Arc<Self>, mut send: ClientSendBody) -> AbortOnDrop {
        let outbox = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut source = outbox.source.lock().await;
            let source = &mut *source;
            for frame in source.sent.clone() {
                if send.send(frame).await.is_err() {
                    return;
                }
            }
            if !source.done {
                while let Some(message) = poll_fn(|cx| source.messages.as_mut().poll_next(cx)).await
                {
                    let frame = match source.frames.encode(&mut source.codec, message) {
                        Ok(frame) => frame,
                        Err(status) => {
                            // Dropping `send` resets the stream; the reader
                            // reports this status instead of CANCELLED.
                            *outbox.failure.lock().expect("failure lock") = Some(status);
                            return;
                        }
                    };
                    outbox.keep_for_replay(source, &frame);
                    if send.send(frame).await.is_err() {
                        // Stopped or failed: the response tells the outcome.
                        return;
                    }
                }
                source.done = true;
            }
            let _ = send.finish().await;
        }))
    }

    fn keep_for_replay(&self, source: &mut Source<C, S>, frame: &Bytes) {
        if self.committed.load(Ordering::Acquire) || !self.replayable() {
            source.sent = Vec::new();
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
