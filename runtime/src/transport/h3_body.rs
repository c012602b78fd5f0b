//! h3 request-stream halves adapted to the runtime.
//!
//! Cancellation needs no code here: the QUIC adapter resets (and stops) any
//! request-stream half dropped before its end with H3_REQUEST_CANCELLED, so
//! dropping a call is cancelling it. Only the server's receive side picks
//! its STOP_SENDING code itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use grpc_h3_core::Status;
use h3::error::Code;
use http::HeaderMap;

use super::h3_status::{self, CANCELLED};
use super::quic;
use crate::streaming::RecvBody;

pub(crate) type ServerRecvStream = h3::server::RequestStream<quic::RecvStream, Bytes>;
pub(crate) type ServerSendStream = h3::server::RequestStream<quic::SendStream<Bytes>, Bytes>;
pub(crate) type ClientRecvStream = h3::client::RequestStream<quic::RecvStream, Bytes>;
pub(crate) type ClientSendStream = h3::client::RequestStream<quic::SendStream<Bytes>, Bytes>;

fn to_bytes(mut buf: impl Buf) -> Bytes {
    buf.copy_to_bytes(buf.remaining())
}

/// A server's view of the request body.
pub(crate) struct ServerRecvBody {
    stream: ServerRecvStream,
    ended: bool,
    cancelled: Arc<AtomicBool>,
}

impl ServerRecvBody {
    /// `cancelled` is set when the whole call is being cancelled; the
    /// STOP_SENDING code then says so.
    pub(crate) fn new(stream: ServerRecvStream, cancelled: Arc<AtomicBool>) -> ServerRecvBody {
        ServerRecvBody {
            stream,
            ended: false,
            cancelled,
        }
    }
}

impl RecvBody for ServerRecvBody {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let result = ready!(self.stream.poll_recv_data(cx));
        Poll::Ready(match result {
            Ok(Some(buf)) => Ok(Some(to_bytes(buf))),
            Ok(None) => {
                self.ended = true;
                Ok(None)
            }
            Err(e) => {
                self.ended = true;
                Err(h3_status::status_for_stream(e))
            }
        })
    }

    fn poll_trailers(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<HeaderMap>, Status>> {
        self.stream
            .poll_recv_trailers(cx)
            .map_err(h3_status::status_for_stream)
    }
}

impl Drop for ServerRecvBody {
    fn drop(&mut self) {
        if !self.ended {
            // A handler that stops reading early is not an error (H3_NO_ERROR);
            // a cancelled call says so.
            let code = if self.cancelled.load(Ordering::Acquire) {
                CANCELLED
            } else {
                Code::H3_NO_ERROR
            };
            self.stream.stop_sending(code);
        }
    }
}

/// A client's view of the response body.
pub(crate) struct ClientRecvBody {
    stream: ClientRecvStream,
}

impl ClientRecvBody {
    pub(crate) fn new(stream: ClientRecvStream) -> ClientRecvBody {
        ClientRecvBody { stream }
    }

    pub(crate) fn stream_mut(&mut self) -> &mut ClientRecvStream {
        &mut self.stream
    }
}

impl RecvBody for ClientRecvBody {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let result = ready!(self.stream.poll_recv_data(cx));
        Poll::Ready(match result {
            Ok(data) => Ok(data.map(to_bytes)),
            Err(e) => Err(h3_status::status_for_stream(e)),
        })
    }

    fn poll_trailers(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<HeaderMap>, Status>> {
        self.stream
            .poll_recv_trailers(cx)
            .map_err(h3_status::status_for_stream)
    }
}

/// The request side of a client call; dropping it before
/// [`ClientSendBody::finish`] resets it (see the module docs).
pub(crate) struct ClientSendBody {
    stream: ClientSendStream,
}

/// How sending a request message ended early.
pub(crate) enum SendError {
    /// The server stopped reading (it has answered, or is failing the call):
    /// stop sending and read the response for the outcome.
    Stopped,
    /// The stream or connection failed.
    Failed(Status),
}

impl ClientSendBody {
    pub(crate) fn new(stream: ClientSendStream) -> ClientSendBody {
        ClientSendBody { stream }
    }

    pub(crate) async fn send(&mut self, frame: Bytes) -> Result<(), SendError> {
        self.stream.send_data(frame).await.map_err(|e| match e {
            // Any STOP_SENDING: the response decides the call's outcome.
            h3::error::StreamError::RemoteTerminate { .. } => SendError::Stopped,
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
