//! One request stream on the server: validate, route, run the handler under
//! its deadline, send the reply.
//!
//! Deadlines and cancellation follow gRFC G2: when the deadline passes (the
//! client's `grpc-timeout`, capped by the server's
//! [`timeout`](super::ServerBuilder::timeout)), or the client stops reading
//! (STOP_SENDING), or the server's grace period ends, the handler future is
//! dropped and the stream is reset with H3_REQUEST_CANCELLED, plus
//! STOP_SENDING if the request side is still open. We reset rather than send
//! DEADLINE_EXCEEDED trailers because the client runs the same deadline and
//! reports DEADLINE_EXCEEDED itself; a reset frees both sides at once and
//! cannot race with a half-sent message.
//!
//! The stream reached this point only if the QUIC adapter let it: streams at
//! or past our GOAWAY, and streams whose HEADERS did not arrive within the
//! header-read timeout, were refused there.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use grpc_h3_core::protocol::{self, Rejection};
use grpc_h3_core::Status;
use http::StatusCode;
use tokio::time::Instant;

use super::connection::ConnectionContext;
use super::respond::{CatchPanic, Responder};
use super::service::{ServerCall, ServerReply};
use super::stats::Held;
use crate::transport::h3_body::ServerRecvBody;
use crate::transport::quic::{self, StreamEnd};

type Resolver = h3::server::RequestResolver<quic::Connection, Bytes>;

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

/// What a request gets: a plain HTTP error, or a gRPC call (possibly one
/// that fails at once, answered Trailers-Only).
enum Answer {
    Http(StatusCode),
    Call(super::CallFuture),
}

fn fail_at_once(status: Status) -> Answer {
    Answer::Call(Box::pin(std::future::ready(ServerReply::error(status))))
}

/// The earlier of the client's timeout and the server's cap, from now.
fn effective_deadline(
    client: Option<std::time::Duration>,
    cap: Option<std::time::Duration>,
) -> Option<Instant> {
    let timeout = match (client, cap) {
        (Some(client), Some(cap)) => Some(client.min(cap)),
        (timeout, None) | (None, timeout) => timeout,
    };
    timeout.map(|t| Instant::now() + t)
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
    let deadline = effective_deadline(head.timeout, shared.config.timeout);
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
            if matches!(e, h3::error::StreamError::RemoteTerminate { .. }) {
                // Cancelled by the client before its headers were even read.
                ctx.early_reset();
            }
            tracing::debug!(error = %e, "request stream ended before valid headers");
            return;
        }
    };
    let shared = ctx.shared.clone();
    let mut end_signal: EndSignal = ctx.stop_signals.take(stream.id().into_inner());
    let (send, recv) = stream.split();
    let head_sent = AtomicBool::new(false);
    let mut responder = Responder {
        stream: send,
        shared: shared.clone(),
        head_sent: &head_sent,
    };
    let cancelled = Arc::new(AtomicBool::new(false));
    let recv = ServerRecvBody::new(recv, cancelled.clone());

    let _live = Held::enter(&shared, |s| &s.meters.live_calls);
    let running = Held::enter(&shared, |s| &s.meters.running_calls);
    let (parts, ()) = request.into_parts();
    let (answer, deadline) = route(&ctx, &parts, recv);
    let run = async move {
        let sent = match answer {
            Answer::Http(status) => responder.http_error(status).await,
            Answer::Call(call) => {
                let call = CatchPanic {
                    call,
                    shared: shared.clone(),
                };
                responder.reply(call.await).await
            }
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not send the reply; the stream is reset");
        }
    };
    tokio::pin!(run);
    let shared = &ctx.shared;
    let completed = tokio::select! {
        () = &mut run => true,
        () = until(deadline) => false,
        () = client_stopped(&mut end_signal) => {
            if !head_sent.load(Ordering::Acquire) {
                ctx.early_reset();
            }
            false
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_server_cap_shortens_deadlines_it_does_not_extend_them() {
        let secs = Duration::from_secs;
        // Whole seconds left, rounded up: the test takes far less than one.
        let remaining = |client, cap| {
            effective_deadline(client, cap).map(|d| {
                let left = d.duration_since(Instant::now());
                left.as_secs() + u64::from(left.subsec_nanos() > 0)
            })
        };
        assert_eq!(remaining(None, None), None);
        assert_eq!(remaining(Some(secs(60)), None), Some(60));
        assert_eq!(remaining(None, Some(secs(30))), Some(30));
        assert_eq!(remaining(Some(secs(60)), Some(secs(30))), Some(30));
        assert_eq!(remaining(Some(secs(10)), Some(secs(30))), Some(10));
    }
}
