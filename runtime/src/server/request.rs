//! One request stream on the server: validate, route, run the handler under
//! its deadline, send the reply.
//!
//! Deadlines and cancellation follow gRFC G2: when the `grpc-timeout`
//! passes, or the client stops reading (STOP_SENDING), or the server's grace
//! period ends, the handler future is dropped and the stream is reset with
//! H3_REQUEST_CANCELLED, plus STOP_SENDING if the request side is still
//! open. We reset rather than send DEADLINE_EXCEEDED trailers because the
//! client runs the same deadline and reports DEADLINE_EXCEEDED itself; a
//! reset frees both sides at once and cannot race with a half-sent message.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use grpc_h3_core::protocol::{self, Rejection};
use grpc_h3_core::Status;
use h3::error::Code;
use http::StatusCode;
use std::task::Poll;
use tokio::time::Instant;

use super::service::{MessageStream, ReplyMessages, ServerCall, ServerReply};
use super::ConnectionContext;
use crate::transport::h3_body::{ServerRecvBody, ServerSendStream};
use crate::transport::quic::{self, StreamEnd};

type Resolver = h3::server::RequestResolver<quic::Connection, Bytes>;

/// Counts a call in one of the server's counters while it exists.
struct Counted {
    shared: Arc<super::Shared>,
    counter: fn(&super::Shared) -> &AtomicUsize,
}

impl Counted {
    fn enter(shared: &Arc<super::Shared>, counter: fn(&super::Shared) -> &AtomicUsize) -> Counted {
        counter(shared).fetch_add(1, Ordering::AcqRel);
        Counted {
            shared: shared.clone(),
            counter,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if (self.counter)(&self.shared).fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.calls_drained.notify_waiters();
        }
    }
}

/// The response side. Dropped before it finished, the QUIC adapter resets
/// the stream with H3_REQUEST_CANCELLED.
struct Responder {
    stream: ServerSendStream,
    shared: Arc<super::Shared>,
}

/// Frames below this size are coalesced with the ones ready after them.
const COALESCE_BELOW: usize = 16 * 1024;
/// The most a coalesced write holds.
const BATCH_BYTES: usize = 64 * 1024;

/// The next frames to send, and the end of the stream if it came with them.
/// Small frames that are already produced are coalesced into one write, so
/// a burst of small messages costs one DATA frame and one QUIC write instead
/// of one each; nothing waits for more messages than are ready.
async fn next_batch(messages: &mut MessageStream) -> (Option<Bytes>, Option<Result<(), Status>>) {
    let first = match std::future::poll_fn(|cx| messages.as_mut().poll_next(cx)).await {
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
        let ready = std::future::poll_fn(|cx| Poll::Ready(messages.as_mut().poll_next(cx))).await;
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

impl Responder {
    async fn send_head(
        &mut self,
        status: StatusCode,
        headers: http::HeaderMap,
    ) -> Result<(), h3::error::StreamError> {
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        self.stream.send_response(response).await
    }

    async fn finish(&mut self) -> Result<(), h3::error::StreamError> {
        self.stream.finish().await
    }

    async fn http_error(&mut self, status: StatusCode) -> Result<(), h3::error::StreamError> {
        self.send_head(status, http::HeaderMap::new()).await?;
        self.finish().await
    }

    async fn trailers_only(&mut self, status: &Status) -> Result<(), h3::error::StreamError> {
        let headers = protocol::trailers_only(status, self.shared.config.accept_compression);
        self.send_head(StatusCode::OK, headers).await?;
        self.finish().await
    }

    async fn reply(&mut self, reply: ServerReply) -> Result<(), h3::error::StreamError> {
        let body = match reply.0 {
            Ok(body) => body,
            Err(status) => return self.trailers_only(&status).await,
        };
        let headers = protocol::response_headers(
            &body.metadata,
            body.encoding,
            self.shared.config.accept_compression,
        );
        self.send_head(StatusCode::OK, headers).await?;
        let status = match body.messages {
            ReplyMessages::One(frame) => {
                self.stream.send_data(frame).await?;
                Status::ok("").with_metadata(body.trailers)
            }
            ReplyMessages::Stream(mut messages) => loop {
                let (data, end) = next_batch(&mut messages).await;
                if let Some(data) = data {
                    self.stream.send_data(data).await?;
                }
                match end {
                    None => {}
                    Some(Ok(())) => break Status::ok("").with_metadata(body.trailers),
                    Some(Err(status)) => break status,
                }
            },
        };
        self.stream
            .send_trailers(protocol::trailers(&status))
            .await?;
        self.finish().await
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

type EndSignal = Option<Pin<Box<dyn Future<Output = StreamEnd> + Send + Sync>>>;

/// Resolves if the client stops reading the response (or the connection is
/// lost); pends otherwise. An acknowledged end is recorded by clearing the
/// signal.
async fn client_stopped(signal: &mut EndSignal) {
    if let Some(end) = signal {
        if end.await == StreamEnd::Stopped {
            return;
        }
        *signal = None;
    }
    std::future::pending().await
}

/// Turns a panicking handler into an INTERNAL reply instead of a reset
/// stream and a dead task.
struct CatchPanic(super::CallFuture);

impl Future for CatchPanic {
    type Output = ServerReply;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ServerReply> {
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.0.as_mut().poll(cx)));
        polled.unwrap_or_else(|_| {
            tracing::error!("a handler panicked; the call fails with INTERNAL");
            std::task::Poll::Ready(ServerReply::error(Status::internal("the handler panicked")))
        })
    }
}

/// What a request gets: a plain HTTP error, or a gRPC call (possibly one
/// that fails at once, answered Trailers-Only).
enum Answer {
    Http(StatusCode),
    Call(super::CallFuture),
}

fn fail_at_once(status: Status) -> Answer {
    Answer::Call(Box::pin(std::future::ready(ServerReply::error(status))))
}

/// Validates the head and finds the handler; returns the answer and the
/// call's deadline.
fn route(
    ctx: &ConnectionContext,
    parts: &http::request::Parts,
    recv: ServerRecvBody,
) -> (Answer, Option<Instant>) {
    let shared = &ctx.shared;
    let head = match protocol::parse_request(
        &parts.method,
        parts.uri.path(),
        &parts.headers,
        shared.config.accept_compression,
    ) {
        Ok(head) => head,
        Err(Rejection::Http(status, reason)) => {
            tracing::debug!(%status, %reason, "refused a non-gRPC request");
            return (Answer::Http(status), None);
        }
        Err(Rejection::Grpc(status)) => return (fail_at_once(status), None),
    };
    let deadline = head.timeout.map(|t| Instant::now() + t);
    let Some(service) = shared.services.get(head.path.service()) else {
        let status = Status::unimplemented(format!("unknown service {}", head.path.service()));
        return (fail_at_once(status), deadline);
    };
    let call = ServerCall {
        metadata: head.metadata,
        deadline: deadline.map(Instant::into_std),
        peer: ctx.peer.clone(),
        body: Box::new(recv),
        request_encoding: head.encoding,
        response_encoding: shared.config.send_compression.choose(head.accept_encodings),
        max_decoding_message_size: shared.config.max_decoding_message_size,
        max_encoding_message_size: shared.config.max_encoding_message_size,
    };
    match service.call(head.path.method(), call) {
        Some(future) => (Answer::Call(future), deadline),
        None => {
            let status = Status::unimplemented(format!(
                "unknown method {} in service {}",
                head.path.method(),
                head.path.service()
            ));
            (fail_at_once(status), deadline)
        }
    }
}

/// Handles one request stream from headers to the final frame.
pub(super) async fn handle(resolver: Resolver, ctx: Arc<ConnectionContext>) {
    let (request, stream) = match resolver.resolve_request().await {
        Ok(resolved) => resolved,
        Err(e) => {
            tracing::debug!(error = %e, "request stream ended before valid headers");
            return;
        }
    };
    let id = stream.id().into_inner();
    let mut end_signal: EndSignal = ctx.stop_signals.take(id);
    if id >= ctx.goaway_boundary.load(Ordering::Acquire) {
        // At or past the id our GOAWAY announced: not processed, so the
        // client may safely retry it elsewhere.
        let mut stream = stream;
        stream.stop_stream(Code::H3_REQUEST_REJECTED);
        stream.stop_sending(Code::H3_REQUEST_REJECTED);
        return;
    }
    let shared = ctx.shared.clone();
    let (send, recv) = stream.split();
    let mut responder = Responder {
        stream: send,
        shared: shared.clone(),
    };
    let cancelled = Arc::new(AtomicBool::new(false));
    let recv = ServerRecvBody::new(recv, cancelled.clone());

    let _live = Counted::enter(&shared, |s| &s.live_calls);
    let running = Counted::enter(&shared, |s| &s.running_calls);
    let (parts, ()) = request.into_parts();
    let (answer, deadline) = route(&ctx, &parts, recv);
    let run = async move {
        let sent = match answer {
            Answer::Http(status) => responder.http_error(status).await,
            Answer::Call(future) => responder.reply(CatchPanic(future).await).await,
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not send the reply; the stream is reset");
        }
    };
    tokio::pin!(run);
    let completed = tokio::select! {
        () = &mut run => true,
        () = until(deadline) => false,
        () = client_stopped(&mut end_signal) => false,
        () = shared.abort.cancelled() => false,
    };
    if !completed {
        // Dropping `run` drops the handler and resets both directions.
        cancelled.store(true, Ordering::Release);
        return;
    }
    // The call stays live until the client has acknowledged the whole
    // response, so a drain that closes the connection next loses nothing.
    drop(running);
    if let Some(end) = end_signal {
        tokio::select! {
            _ = end => {}
            () = shared.abort.cancelled() => {}
        }
    }
}
