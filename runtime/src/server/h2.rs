//! The server's HTTP/2 side, on hyper: TLS (ALPN `h2`) or plaintext h2c on
//! TCP, the same service and front as HTTP/3, RST_STREAM(CANCEL) when a
//! call's deadline passes or the drain's grace period ends, GOAWAY on
//! drain, and an `alt-svc` header pointing clients at HTTP/3.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderValue;
use http_body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use super::activity::{Activity, OpenCall};
use super::front::{self, Call};
use super::signal::Fired;
use super::stats::Held;
use super::Shared;
use crate::errors::CancelStream;
use crate::extensions::{PeerInfo, Transport};
use crate::Body;

/// A response body that ends the call (RST_STREAM CANCEL) at its deadline
/// or when the drain gives up, records how the call ended, and keeps the
/// call counted until it is over.
pub(crate) struct Guarded {
    inner: Body,
    deadline: Option<Pin<Box<Sleep>>>,
    abort: Fired,
    call: Option<Call>,
    _open: Option<OpenCall>,
}

impl Guarded {
    fn plain(inner: Body, abort: Fired) -> Guarded {
        Guarded {
            inner,
            deadline: None,
            abort,
            call: None,
            _open: None,
        }
    }

    fn finish(&mut self, status: Option<&str>) {
        if let Some(mut call) = self.call.take() {
            call.record(status);
            call.finished_running();
        }
    }
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = CancelStream;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, CancelStream>>> {
        let this = &mut *self;
        if Pin::new(&mut this.abort).poll(cx).is_ready() {
            this.finish(None);
            return Poll::Ready(Some(Err(CancelStream::new("the server is shutting down"))));
        }
        if let Some(deadline) = &mut this.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                this.finish(None);
                return Poll::Ready(Some(Err(CancelStream::new("deadline exceeded"))));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let status = trailers
                        .get(grpc_h3_core::names::GRPC_STATUS)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    this.finish(status.as_deref());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(status))) => {
                tracing::debug!(%status, "the response body failed; resetting the stream");
                this.finish(None);
                Poll::Ready(Some(Err(CancelStream::new("the response body failed"))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// The hyper service of one HTTP/2 connection.
#[derive(Clone)]
struct Connection {
    shared: Arc<Shared>,
    peer: PeerInfo,
    transport: Transport,
    activity: Arc<Activity>,
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Connection {
    fn with_alt_svc(&self, mut response: http::Response<Guarded>) -> http::Response<Guarded> {
        if let Some(alt_svc) = &self.shared.alt_svc {
            response
                .headers_mut()
                .insert(http::header::ALT_SVC, alt_svc.clone());
        }
        response
    }

    async fn call(
        self,
        request: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<Guarded>, CancelStream> {
        let shared = &self.shared;
        let mut request = request.map(Body::new);
        let abort = || shared.abort.fired();
        let call = match front::admit(&mut request, shared, self.peer.clone(), self.transport) {
            Ok(call) => call,
            Err(answer) => return Ok(self.with_alt_svc(answer.map(|b| Guarded::plain(b, abort())))),
        };
        let open = self.activity.open_call();
        let deadline = call.deadline;
        let span = call.span.clone();
        let response = tokio::select! {
            response = front::respond(shared, request).instrument(span) => response,
            () = until(deadline) => return Err(CancelStream::new("deadline exceeded")),
            () = shared.abort.fired() => return Err(CancelStream::new("the server is shutting down")),
        };
        let response = response.map(|inner| Guarded {
            inner,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            abort: abort(),
            call: Some(call),
            _open: Some(open),
        });
        Ok(self.with_alt_svc(response))
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Connection {
    type Response = http::Response<Guarded>;
    type Error = CancelStream;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Guarded>, CancelStream>> + Send>>;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        Box::pin(self.clone().call(request))
    }
}

/// The `alt-svc` value that advertises HTTP/3 on `port`.
pub(crate) fn alt_svc_for(port: u16) -> HeaderValue {
    HeaderValue::from_str(&format!("h3=\":{port}\"; ma=86400")).expect("a valid header value")
}

fn http2_builder(shared: &Shared) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let config = &shared.config;
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.max_header_list_size).unwrap_or(u32::MAX))
        .initial_stream_window_size(2 << 20)
        .initial_connection_window_size(16 << 20)
        .keep_alive_interval(shared.keep_alive)
        .keep_alive_timeout(config.idle_timeout)
        // The rapid-reset defence: streams the client resets before the
        // server accepted them, and streams the server resets for errors.
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(1024))
        .auto_date_header(false);
    builder
}

/// Serves one accepted connection (TCP, or any byte stream given to
/// `serve_with_incoming`): TLS (unless plaintext), then HTTP/2 until the
/// client leaves, the connection idles too long, or the drain ends it.
pub(crate) async fn serve(tcp: Box<dyn Io>, addr: std::net::SocketAddr, shared: Arc<Shared>) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let handshake = Held::enter(&shared, |s| &s.meters.handshakes);
    let (io, peer, transport): (Box<dyn Io>, PeerInfo, Transport) = match &shared.h2_tls {
        None => (
            tcp,
            PeerInfo {
                addr,
                certificates: None,
            },
            Transport::H2c,
        ),
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                let certificates =
                    tls.get_ref().1.peer_certificates().map(|certs| {
                        Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())
                    });
                (
                    Box::new(tls),
                    PeerInfo { addr, certificates },
                    Transport::Http2,
                )
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                shared
                    .meters
                    .counters
                    .handshake_timeouts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        },
    };
    drop(handshake);
    shared
        .meters
        .counters
        .connections_accepted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let activity = Arc::new(Activity::default());
    let service = Connection {
        shared: shared.clone(),
        peer,
        transport,
        activity: activity.clone(),
    };
    let connection = http2_builder(&shared).serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut closing = false;
    // Set once the drain gives up: the calls still running are reset
    // (their bodies fail with CANCEL), and the connection gets this long to
    // send those resets and the responses already written, then it is
    // dropped.
    let mut flush_until: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    if is_rapid_reset_goaway(&e) {
                        shared.meters.counters.early_reset_closes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(peer = %addr, "a client reset streams faster than they were accepted; connection closed (GOAWAY ENHANCE_YOUR_CALM)");
                    } else {
                        tracing::debug!(peer = %addr, error = %e, "HTTP/2 connection ended");
                    }
                }
                return;
            }
            () = shared.drain.fired(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(shared.config.max_connection_idle), if !closing => {
                closing = true;
                shared.meters.counters.idle_closes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                connection.as_mut().graceful_shutdown();
            }
            () = shared.abort.fired(), if flush_until.is_none() => {
                if !closing {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                flush_until = Some(Instant::now() + ABORT_FLUSH);
            }
            () = until(flush_until), if flush_until.is_some() => return,
        }
    }
}

/// Whether hyper ended a connection because the client reset too many
/// streams before they were accepted (h2's rapid-reset defence).
fn is_rapid_reset_goaway(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away()
                && !h2.is_remote()
                && h2.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM);
        }
        source = e.source();
    }
    false
}

/// How long a connection may take to send what is queued once the drain
/// has given up on it.
const ABORT_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// A byte stream HTTP/2 runs on: TCP, TLS over it, or anything given to
/// `serve_with_incoming`.
pub(crate) trait Io:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static
{
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}
