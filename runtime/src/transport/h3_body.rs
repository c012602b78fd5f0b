//! h3 request-stream halves as `http_body` bodies, and the send halves the
//! transports write bodies into.
//!
//! Cancellation needs no code here: the QUIC adapter resets (and stops) any
//! request-stream half dropped before its end with H3_REQUEST_CANCELLED, so
//! dropping a call is cancelling it. Only the server's receive side picks
//! its STOP_SENDING code itself.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use grpc_h3_core::Status;
use h3::error::{Code, StreamError};
use http::HeaderMap;
use http_body::Frame;

use super::h3_status::{self, CANCELLED};
use super::quic::{self, Backlog, ConnState};
use crate::errors::TransportError;

pub(crate) type ServerRecvStream = h3::server::RequestStream<quic::RecvStream, Bytes>;
pub(crate) type ServerSendStream = h3::server::RequestStream<quic::SendStream<Bytes>, Bytes>;
pub(crate) type ClientRecvStream = h3::client::RequestStream<quic::RecvStream, Bytes>;
pub(crate) type ClientSendStream = h3::client::RequestStream<quic::SendStream<Bytes>, Bytes>;

fn to_bytes(mut buf: impl Buf) -> Bytes {
    buf.copy_to_bytes(buf.remaining())
}

/// The receiving half of an h3 request stream, on either side.
pub(crate) trait H3Recv: Send + 'static {
    /// The next body chunk.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>>;
    /// The trailers, once the data is over.
    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<HeaderMap>, StreamError>>;
}

impl H3Recv for ServerRecvStream {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        self.poll_recv_data(cx).map_ok(|d| d.map(to_bytes))
    }

    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<HeaderMap>, StreamError>> {
        self.poll_recv_trailers(cx)
    }
}

impl H3Recv for ClientRecvStream {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        self.poll_recv_data(cx).map_ok(|d| d.map(to_bytes))
    }

    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<HeaderMap>, StreamError>> {
        self.poll_recv_trailers(cx)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Data,
    Trailers,
    Done,
}

/// A server's view of a request body. Dropped unread, it stops the client
/// with H3_NO_ERROR (the server answered without needing the rest), or
/// with H3_REQUEST_CANCELLED when the call itself is being cancelled.
pub(crate) struct RequestBody {
    stream: ServerRecvStream,
    phase: Phase,
    cancelled: Arc<AtomicBool>,
    backlog: Option<Arc<Backlog>>,
}

impl RequestBody {
    /// The body of the request on `stream`, a stream of the connection
    /// with `conn`.
    pub(crate) fn new(
        stream: ServerRecvStream,
        conn: &ConnState,
        cancelled: Arc<AtomicBool>,
    ) -> RequestBody {
        let backlog = conn.backlogs.claim(stream.id().into_inner());
        RequestBody {
            stream,
            phase: Phase::Data,
            cancelled,
            backlog,
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        poll_body(
            &mut this.stream,
            &mut this.phase,
            this.backlog.as_deref(),
            cx,
        )
        .map_err(h3_status::status_for_stream)
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Done
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if self.phase != Phase::Done {
            let code = if self.cancelled.load(Ordering::Acquire) {
                CANCELLED
            } else {
                Code::H3_NO_ERROR
            };
            self.stream.stop_sending(code);
        }
    }
}

/// Data frames, then trailers, then the end. What h3 hands on is counted
/// off the stream's `backlog`.
fn poll_body<S: H3Recv>(
    stream: &mut S,
    phase: &mut Phase,
    backlog: Option<&Backlog>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
    loop {
        match *phase {
            Phase::Data => match ready!(stream.poll_data(cx)) {
                Ok(Some(data)) => {
                    if let Some(backlog) = backlog {
                        backlog.delivered(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(None) => *phase = Phase::Trailers,
                Err(e) => {
                    *phase = Phase::Done;
                    return Poll::Ready(Some(Err(e)));
                }
            },
            Phase::Trailers => {
                let trailers = ready!(stream.poll_trailers(cx));
                *phase = Phase::Done;
                return Poll::Ready(match trailers {
                    Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                });
            }
            Phase::Done => return Poll::Ready(None),
        }
    }
}

/// A client's view of a response body; dropping it before the end cancels
/// the call.
pub(crate) struct H3ResponseBody {
    stream: ClientRecvStream,
    phase: Phase,
    conn: Arc<ConnState>,
    id: u64,
    backlog: Option<Arc<Backlog>>,
    /// Whatever must live as long as the response (the task sending the
    /// request, the connection's request sender).
    _keep: Box<dyn std::any::Any + Send>,
}

impl H3ResponseBody {
    pub(crate) fn new(
        stream: ClientRecvStream,
        conn: Arc<ConnState>,
        id: u64,
        keep: Box<dyn std::any::Any + Send>,
    ) -> H3ResponseBody {
        let backlog = conn.backlogs.claim(id);
        H3ResponseBody {
            stream,
            phase: Phase::Data,
            conn,
            id,
            backlog,
            _keep: keep,
        }
    }
}

impl std::fmt::Debug for H3ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("stream", &self.id)
            .finish_non_exhaustive()
    }
}

/// A transport error for stream `id` of the connection with `conn`:
/// unprocessed if the server refused it or it lies past a GOAWAY.
pub(crate) fn transport_error(error: StreamError, conn: &ConnState, id: u64) -> TransportError {
    let unprocessed = match &error {
        StreamError::RemoteTerminate { code, .. } => *code == Code::H3_REQUEST_REJECTED,
        StreamError::ConnectionError { .. } | StreamError::RemoteClosing { .. } => {
            conn.unprocessed(id)
        }
        _ => false,
    };
    TransportError::new(h3_status::status_for_stream(error), unprocessed)
}

impl http_body::Body for H3ResponseBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        let this = self.get_mut();
        let (conn, id) = (&this.conn, this.id);
        poll_body(
            &mut this.stream,
            &mut this.phase,
            this.backlog.as_deref(),
            cx,
        )
        .map_err(|e| transport_error(e, conn, id))
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::Done
    }
}

/// The request side of a client call; dropping it before
/// [`RequestSender::finish`] resets it (see the module docs).
pub(crate) struct RequestSender {
    stream: ClientSendStream,
}

/// How sending a request body ended early.
pub(crate) enum SendError {
    /// The server stopped reading (it has answered, or is failing the call):
    /// stop sending and read the response for the outcome.
    Stopped,
    /// The stream or connection failed.
    Failed(Status),
}

impl RequestSender {
    pub(crate) fn new(stream: ClientSendStream) -> RequestSender {
        RequestSender { stream }
    }

    pub(crate) async fn send(&mut self, data: Bytes) -> Result<(), SendError> {
        quic::send_offering(data, |data| self.stream.send_data(data))
            .await
            .map_err(|e| match e {
                // Any STOP_SENDING: the response decides the call's outcome.
                StreamError::RemoteTerminate { .. } => SendError::Stopped,
                other => SendError::Failed(h3_status::status_for_stream(other)),
            })
    }

    pub(crate) async fn finish(&mut self) -> Result<(), SendError> {
        self.stream.finish().await.map_err(|e| {
            if h3_status::is_graceful_stop(&e) {
                SendError::Stopped
            } else {
                SendError::Failed(h3_status::status_for_stream(e))
            }
        })
    }
}
