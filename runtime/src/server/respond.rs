//! Sending a reply on an HTTP/3 request stream: headers (at once, or with
//! the first message), coalesced DATA frames, trailers; and panics in
//! handlers or response streams turned into INTERNAL.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use grpc_h3_core::{protocol, CompressionEncoding, Metadata, Status};
use http::StatusCode;

use super::service::{MessageStream, ReplyBody, ReplyMessages, ServerReply};
use super::Shared;
use crate::transport::h3_body::ServerSendStream;

/// Frames below this size are coalesced with the ones ready after them.
const COALESCE_BELOW: usize = 16 * 1024;
/// The most a coalesced write holds.
const BATCH_BYTES: usize = 64 * 1024;

/// The response side. Dropped before it finished, the QUIC adapter resets
/// the stream with H3_REQUEST_CANCELLED.
pub(super) struct Responder<'a> {
    pub(super) stream: ServerSendStream,
    pub(super) shared: Arc<Shared>,
    /// Set once the response headers are sent: a client cancelling after
    /// that is not an early reset.
    pub(super) head_sent: &'a AtomicBool,
}

/// How a batch of response frames ended.
type End = Option<Result<(), Status>>;

fn panicked(shared: &Shared) -> Status {
    shared
        .meters
        .counters
        .handler_panics
        .fetch_add(1, Ordering::Relaxed);
    tracing::error!("a handler panicked; the call fails with INTERNAL");
    Status::internal("the handler panicked")
}

/// Polls the next frame of a response stream, turning a panic into an
/// INTERNAL status.
fn poll_frame(
    messages: &mut MessageStream,
    shared: &Shared,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, Status>>> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| messages.as_mut().poll_next(cx))) {
        Ok(polled) => polled,
        Err(_) => Poll::Ready(Some(Err(panicked(shared)))),
    }
}

/// The next frames to send, and the end of the stream if it came with them.
/// Small frames that are already produced are coalesced into one write, so
/// a burst of small messages costs one DATA frame and one QUIC write instead
/// of one each; nothing waits for more messages than are ready.
async fn next_batch(messages: &mut MessageStream, shared: &Shared) -> (Option<Bytes>, End) {
    let first = match std::future::poll_fn(|cx| poll_frame(messages, shared, cx)).await {
        None => return (None, Some(Ok(()))),
        Some(Err(status)) => return (None, Some(Err(status))),
        Some(Ok(frame)) => frame,
    };
    if first.len() >= COALESCE_BELOW {
        return (Some(first), None);
    }
    let mut batch: Option<BytesMut> = None;
    let mut end = None;
    while batch.as_ref().map_or(first.len(), BytesMut::len) < BATCH_BYTES {
        let ready = std::future::poll_fn(|cx| Poll::Ready(poll_frame(messages, shared, cx))).await;
        match ready {
            Poll::Pending => break,
            Poll::Ready(Some(Ok(frame))) => batch
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&frame),
            Poll::Ready(Some(Err(status))) => {
                end = Some(Err(status));
                break;
            }
            Poll::Ready(None) => {
                end = Some(Ok(()));
                break;
            }
        }
    }
    (Some(batch.map_or(first, BytesMut::freeze)), end)
}

impl Responder<'_> {
    async fn send_head(
        &mut self,
        status: StatusCode,
        headers: http::HeaderMap,
    ) -> Result<(), h3::error::StreamError> {
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        self.stream.send_response(response).await?;
        self.head_sent.store(true, Ordering::Release);
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), h3::error::StreamError> {
        self.stream.finish().await
    }

    /// A plain HTTP error (not a gRPC request at all).
    pub(super) async fn http_error(
        &mut self,
        status: StatusCode,
    ) -> Result<(), h3::error::StreamError> {
        self.send_head(status, http::HeaderMap::new()).await?;
        self.finish().await
    }

    /// A Trailers-Only response; `initial` metadata (from a handler that
    /// answered without messages) travels in the same HEADERS frame.
    async fn trailers_only(
        &mut self,
        status: &Status,
        initial: &Metadata,
    ) -> Result<(), h3::error::StreamError> {
        let mut headers = protocol::trailers_only(status, self.shared.config.accept_compression);
        initial.write_into(&mut headers);
        self.send_head(StatusCode::OK, headers).await?;
        self.finish().await
    }

    async fn response_head(
        &mut self,
        metadata: &Metadata,
        encoding: Option<CompressionEncoding>,
    ) -> Result<(), h3::error::StreamError> {
        let headers =
            protocol::response_headers(metadata, encoding, self.shared.config.accept_compression);
        self.send_head(StatusCode::OK, headers).await
    }

    /// Sends a call's reply: headers, messages, trailers.
    pub(super) async fn reply(&mut self, reply: ServerReply) -> Result<(), h3::error::StreamError> {
        let ReplyBody {
            metadata,
            messages,
            trailers,
            encoding,
        } = match reply.0 {
            Ok(body) => body,
            Err(status) => return self.trailers_only(&status, &Metadata::new()).await,
        };
        let status = match messages {
            ReplyMessages::One(frame) => {
                self.response_head(&metadata, encoding).await?;
                self.stream.send_data(frame).await?;
                Status::ok("").with_metadata(trailers)
            }
            ReplyMessages::Stream(mut messages) => {
                let mut head_pending = self.shared.config.lazy_response_headers;
                if !head_pending {
                    self.response_head(&metadata, encoding).await?;
                }
                loop {
                    let (data, end) = next_batch(&mut messages, &self.shared).await;
                    if head_pending {
                        let Some(_) = data else {
                            // Over before any message: one HEADERS frame.
                            let status = match end {
                                Some(Err(status)) => status,
                                _ => Status::ok("").with_metadata(trailers),
                            };
                            return self.trailers_only(&status, &metadata).await;
                        };
                        self.response_head(&metadata, encoding).await?;
                        head_pending = false;
                    }
                    if let Some(data) = data {
                        self.stream.send_data(data).await?;
                    }
                    match end {
                        None => {}
                        Some(Ok(())) => break Status::ok("").with_metadata(trailers),
                        Some(Err(status)) => break status,
                    }
                }
            }
        };
        self.stream
            .send_trailers(protocol::trailers(&status))
            .await?;
        self.finish().await
    }
}

/// Turns a panicking handler into an INTERNAL reply instead of a reset
/// stream and a dead task.
pub(super) struct CatchPanic {
    pub(super) call: super::CallFuture,
    pub(super) shared: Arc<Shared>,
}

impl Future for CatchPanic {
    type Output = ServerReply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ServerReply> {
        let this = &mut *self;
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| this.call.as_mut().poll(cx)));
        polled.unwrap_or_else(|_| Poll::Ready(ServerReply::error(panicked(&this.shared))))
    }
}
