//! h3 request-stream halves adapted to the runtime: receive bodies that
//! cancel on drop, and a client send half that resets on drop.
//!
//! quinn finishes (FIN) a send stream that is dropped, so a cancelled call
//! would look complete to the peer; every half here therefore resets or
//! stops its stream explicitly unless it ended normally.

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
    ended: bool,
}

impl ClientRecvBody {
    pub(crate) fn new(stream: ClientRecvStream) -> ClientRecvBody {
        ClientRecvBody {
            stream,
            ended: false,
        }
    }

    pub(crate) fn stream_mut(&mut self) -> &mut ClientRecvStream {
        &mut self.stream
    }

    /// The server has sent everything (a Trailers-Only response).
    pub(crate) fn mark_ended(&mut self) {
        self.ended = true;
    }
}

impl RecvBody for ClientRecvBody {
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

impl Drop for ClientRecvBody {
    fn drop(&mut self) {
        if !self.ended {
            self.stream.stop_sending(CANCELLED);
        }
    }
}

/// The request side of a client call; resets with H3_REQUEST_CANCELLED
/// when dropped before [`ClientSendBody::finish`].
pub(crate) struct ClientSendBody {
    stream: ClientSendStream,
    finished: bool,
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
        ClientSendBody {
            stream,
            finished: false,
        }
    }

    pub(crate) async fn send(&mut self, frame: Bytes) -> Result<(), SendError> {
        self.stream.send_data(frame).await.map_err(|e| match e {
            h3::error::StreamError::RemoteTerminate { .. } => {
                // Any STOP_SENDING: the response decides the call's outcome.
                self.finished = true;
                SendError::Stopped
            }
            other => SendError::Failed(h3_status::status_for_stream(other)),
        })
    }

    pub(crate) async fn finish(&mut self) -> Result<(), SendError> {
        let result = self.stream.finish().await;
        self.finished = true;
        result.map_err(|e| {
            if h3_status::is_graceful_stop(&e) {
                SendError::Stopped
            } else {
                SendError::Failed(h3_status::status_for_stream(e))
            }
        })
    }
}

impl Drop for ClientSendBody {
    fn drop(&mut self) {
        if !self.finished {
            self.stream.stop_stream(CANCELLED);
        }
    }
}
