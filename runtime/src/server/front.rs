//! What every transport does with a request before and around its service:
//! validate the head (plain HTTP errors for what is not gRPC, Trailers-Only
//! for gRPC requests that cannot be served), attach the call's extensions
//! (method, peer, transport, deadline, settings), count the call for the
//! drain, catch panics, and trace it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use grpc_h3_core::protocol::{self, Rejection};
use grpc_h3_core::{Metadata, Status};
use tokio::time::Instant;

use super::grpc::{http_error, trailers_only};
use super::stats::Held;
use super::Shared;
use crate::extensions::{Deadline, GrpcMethod, PeerInfo, Transport};
use crate::Body;

/// The earlier of the client's timeout and the server's cap, from now.
pub(crate) fn effective_deadline(
    client: Option<Duration>,
    cap: Option<Duration>,
) -> Option<Instant> {
    let timeout = match (client, cap) {
        (Some(client), Some(cap)) => Some(client.min(cap)),
        (timeout, None) | (None, timeout) => timeout,
    };
    timeout.map(|t| Instant::now() + t)
}

/// A call the server took on: what keeps it counted, and its trace.
pub(crate) struct Call {
    pub(crate) deadline: Option<Instant>,
    pub(crate) span: tracing::Span,
    started: Instant,
    _live: Held,
    running: Option<Held>,
}

impl Call {
    /// The handler and response are done; the call stays live (for the
    /// drain) until the client has acknowledged everything.
    pub(crate) fn finished_running(&mut self) {
        self.running = None;
    }

    /// Records how the call ended in its span.
    pub(crate) fn record(&self, status: Option<&str>) {
        self.span
            .record("grpc.status", status.unwrap_or("reset"))
            .record("duration_ms", self.started.elapsed().as_secs_f64() * 1e3);
        tracing::debug!(parent: &self.span, "call ended");
    }
}

/// Admits a request: on success its extensions are in place and the call
/// is counted; otherwise the answer to send instead.
pub(crate) fn admit(
    request: &mut http::Request<Body>,
    shared: &Arc<Shared>,
    peer: PeerInfo,
    transport: Transport,
) -> Result<Call, Box<http::Response<Body>>> {
    let settings = &shared.settings;
    let check = protocol::check_request(
        request.method(),
        request.uri().path(),
        request.headers(),
        settings.accept_compression,
    );
    let check = match check {
        Ok(check) => check,
        Err(Rejection::Http(status, reason)) => {
            tracing::debug!(%status, %reason, peer = %peer.addr, "refused a non-gRPC request");
            return Err(Box::new(http_error(status)));
        }
        Err(Rejection::Grpc(status)) => {
            return Err(Box::new(trailers_only(
                &status,
                &Metadata::new(),
                settings.accept_compression,
            )))
        }
    };
    let deadline = effective_deadline(check.timeout, shared.config.timeout);
    let method = GrpcMethod::from_parsed(check.path);
    let span = tracing::debug_span!(
        "grpc.call",
        method = method.path(),
        peer = %peer.addr,
        transport = transport.as_str(),
        grpc.status = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let extensions = request.extensions_mut();
    extensions.insert(method);
    extensions.insert(peer);
    extensions.insert(transport);
    extensions.insert(settings.clone());
    if let Some(deadline) = deadline {
        extensions.insert(Deadline(deadline.into_std()));
    }
    Ok(Call {
        deadline,
        span,
        started: Instant::now(),
        _live: Held::enter(shared, |s| &s.meters.live_calls),
        running: Some(Held::enter(shared, |s| &s.meters.running_calls)),
    })
}

/// Calls the server's routes, turning a panicking handler into INTERNAL.
pub(crate) fn respond(
    shared: &Shared,
    request: http::Request<Body>,
) -> impl Future<Output = http::Response<Body>> + Send + 'static {
    CatchPanic {
        call: shared.service.call(request),
        accept: shared.settings.accept_compression,
        panics: shared.meters.counters.handler_panics.clone(),
    }
}

pin_project_lite::pin_project! {
    /// Turns a panicking handler into an INTERNAL reply instead of a reset
    /// stream and a dead task.
    struct CatchPanic {
        #[pin]
        call: super::router::FrontFuture,
        accept: grpc_h3_core::EnabledEncodings,
        panics: Arc<std::sync::atomic::AtomicU64>,
    }
}

impl Future for CatchPanic {
    type Output = http::Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<http::Response<Body>> {
        let this = self.project();
        let call = this.call;
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.poll(cx)));
        match polled {
            Ok(Poll::Ready(Ok(response))) => Poll::Ready(response),
            Ok(Poll::Ready(Err(never))) => match never {},
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => {
                this.panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!("a handler panicked; the call fails with INTERNAL");
                Poll::Ready(trailers_only(
                    &Status::internal("the handler panicked"),
                    &Metadata::new(),
                    *this.accept,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
