//! The gRPC server: [`Server::builder`] configures TLS, limits and services,
//! then `serve` runs it on a UDP socket until shut down.
//!
//! ```no_run
//! # async fn run(service: impl grpc_h3::server::GrpcRoute + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
//! use grpc_h3::server::Server;
//! Server::builder()
//!     .dev_certificate()
//!     .add_service(service)
//!     .serve("127.0.0.1:50051".parse().unwrap())
//!     .await
//! # }
//! ```
//!
//! Every resource a client can make the server hold has a limit and a
//! timeout, each with a default on its [`ServerBuilder`] method:
//! connections ([`ServerBuilder::max_connections`],
//! [`ServerBuilder::handshake_timeout`], [`ServerBuilder::max_connection_idle`]),
//! streams ([`ServerBuilder::max_concurrent_streams`],
//! [`ServerBuilder::header_read_timeout`], [`ServerBuilder::early_reset_limit`]),
//! headers and messages ([`ServerBuilder::max_header_list_size`],
//! [`ServerBuilder::max_decoding_message_size`]) and calls
//! ([`ServerBuilder::timeout`]). [`ServerHandle::stats`] shows them at work.
//!
//! A handler that panics fails its call with INTERNAL, whether it panics in
//! the handler itself or while producing a streamed response; the server
//! keeps serving. This relies on unwinding: with `panic = "abort"` a panic
//! ends the process, as it would anywhere else.

mod activity;
mod builder;
mod config;
mod early_data;
mod front;
pub(crate) mod grpc;
mod h2;
mod h3;
mod router;
mod signal;
mod stats;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tower_service::Service;

pub use builder::{Listen, ServerBuilder};
pub(crate) use config::ServerConfig;
pub use grpc::{
    client_streaming, server_streaming, streaming, unary, unimplemented, CallSettings,
    ServiceSettings,
};
pub(crate) use router::RouteService;
use signal::Signal;
pub use stats::ServerStats;
use stats::{Gauge, Held, Meters};

use crate::{Body, Error};

pub(crate) use router::{route, Routes};

/// A service's fully qualified name, e.g. `helloworld.Greeter`: how the
/// server routes calls to it.
pub trait NamedService {
    /// The name, as it appears in `:path` (`/NAME/Method`).
    const NAME: &'static str;

    /// The methods (as named in `:path`) that may run from TLS early data
    /// (0-RTT), before the handshake completes: those the proto marks
    /// `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT`, which the
    /// generator lists here. Any other method that arrives in early data
    /// is refused so that the client sends it again after the handshake
    /// (see [`ServerBuilder::early_data`]). Default: none.
    const REPLAY_SAFE_METHODS: &'static [&'static str] = &[];
}

impl<S: NamedService, F> NamedService for crate::InterceptedService<S, F> {
    const NAME: &'static str = S::NAME;
    const REPLAY_SAFE_METHODS: &'static [&'static str] = S::REPLAY_SAFE_METHODS;
}

impl<S: NamedService, F> NamedService for crate::AsyncInterceptedService<S, F> {
    const NAME: &'static str = S::NAME;
    const REPLAY_SAFE_METHODS: &'static [&'static str] = S::REPLAY_SAFE_METHODS;
}

/// What [`ServerBuilder::add_service`] takes: a tower service over gRPC
/// `http` requests that answers every call with a response (failures
/// included), as generated servers do. Implemented for every such service.
pub trait GrpcRoute:
    Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> GrpcRoute for T where
    T: Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Entry point: `Server::builder()`; see [`ServerBuilder`] for every
/// setting.
///
/// ```no_run
/// # async fn run(service: impl grpc_h3::server::GrpcRoute + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
/// grpc_h3::server::Server::builder()
///     .tls_identity_files("cert.pem", "key.pem")
///     .add_service(service)
///     .serve_with_shutdown("0.0.0.0:50051".parse().unwrap(), async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the defaults documented on each of its methods.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// State shared by every connection and call of one server.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    /// The routes, behind the layers.
    pub(crate) service: router::Front,
    /// What every call's services see of the server's settings.
    pub(crate) settings: CallSettings,
    /// The keep-alive interval in effect, on both transports.
    pub(crate) keep_alive: Option<Duration>,
    /// Advertises HTTP/3 on HTTP/2 responses.
    pub(crate) alt_svc: Option<http::HeaderValue>,
    /// TLS for HTTP/2; `None` serves h2c.
    pub(crate) h2_tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) meters: Meters,
    /// Notified when a gauge reaches zero.
    pub(crate) drained: Notify,
    /// Fires when graceful shutdown starts (GOAWAY everywhere).
    pub(crate) drain: Signal,
    /// Fires when the grace period is over (reset what is left).
    pub(crate) abort: Signal,
}

impl Shared {
    pub(crate) fn new(
        config: ServerConfig,
        service: router::Front,
        keep_alive: Option<Duration>,
    ) -> Shared {
        let meters = Meters::new();
        let settings = CallSettings {
            max_decoding_message_size: config.max_decoding_message_size,
            max_encoding_message_size: config.max_encoding_message_size,
            accept_compression: config.accept_compression,
            send_compression: config.send_compression,
            lazy_response_headers: config.lazy_response_headers,
            panics: Some(meters.counters.handler_panics.clone()),
        };
        Shared {
            config,
            service,
            settings,
            keep_alive,
            alt_svc: None,
            h2_tls: None,
            meters,
            drained: Notify::new(),
            drain: Signal::default(),
            abort: Signal::default(),
        }
    }
}

/// A server bound to its sockets (UDP for HTTP/3, TCP for HTTP/2), ready to
/// serve: binding first tells the address (port 0 picks a free one) and
/// gives a [`ServerHandle`] before serving starts.
///
/// ```no_run
/// # async fn run(service: impl grpc_h3::server::GrpcRoute + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
/// let server = grpc_h3::server::Server::builder()
///     .dev_certificate()
///     .add_service(service)
///     .bind("127.0.0.1:0".parse().unwrap())?;
/// println!("listening on {}", server.local_addr()?);
/// let handle = server.handle();
/// let stop = grpc_h3::CancellationToken::new();
/// let serving = tokio::spawn(server.serve_with_shutdown(stop.clone().cancelled_owned()));
/// // ... later: drain gracefully.
/// stop.cancel();
/// serving.await.unwrap()?;
/// assert_eq!(handle.stats().live_calls, 0);
/// # Ok(()) }
/// ```
pub struct BoundServer {
    endpoint: Option<quinn::Endpoint>,
    tcp: Option<tokio::net::TcpListener>,
    incoming: Option<Incoming>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    dev_certificate_pem: Option<String>,
}

/// Byte streams to serve HTTP/2 on, and who is on the other end (if an
/// address is known).
pub(crate) type Incoming = std::pin::Pin<
    Box<
        dyn futures_core::Stream<Item = std::io::Result<(Box<dyn h2::Io>, Option<SocketAddr>)>>
            + Send,
    >,
>;

/// Observes a running server (for tests and metrics).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl ServerHandle {
    /// Calls currently in progress: from their headers until their response
    /// is acknowledged, they are reset, or they are refused.
    pub fn live_calls(&self) -> usize {
        self.shared.meters.live_calls.get()
    }

    /// Everything the server holds and has refused, right now.
    ///
    /// ```no_run
    /// # fn f(handle: grpc_h3::server::ServerHandle) {
    /// let stats = handle.stats();
    /// println!("{} connections, {} calls, {} refused", stats.connections, stats.live_calls, stats.connections_refused);
    /// # }
    /// ```
    pub fn stats(&self) -> ServerStats {
        self.shared.meters.snapshot()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl BoundServer {
    /// The bound address (useful after binding port 0): UDP for HTTP/3 and
    /// TCP for HTTP/2 share its port.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.local_addr)
    }

    /// The PEM of the certificate made by
    /// [`ServerBuilder::dev_certificate`], for clients to trust.
    pub fn dev_certificate_pem(&self) -> Option<&str> {
        self.dev_certificate_pem.as_deref()
    }

    /// A handle to observe the server while it runs.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
            local_addr: self.local_addr,
        }
    }

    /// Serves until the endpoint fails; never returns on its own.
    pub async fn serve(self) -> Result<(), Error> {
        self.serve_with_shutdown(std::future::pending()).await
    }

    /// Serves until `signal` completes, then shuts down gracefully: every
    /// connection gets a GOAWAY, new connections are refused, calls in
    /// flight get the grace period to finish (then they are reset), and the
    /// sockets close.
    pub async fn serve_with_shutdown(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let BoundServer {
            endpoint,
            tcp,
            mut incoming,
            shared,
            ..
        } = self;
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(signal);
        // Set once the signal came: the drain hooks ran, and serving goes
        // on until the notice period ends.
        let mut notice_ends: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                incoming = quic_accept(endpoint.as_ref()) => match incoming {
                    Some(incoming) => admit_quic(incoming, &shared, &mut connections),
                    None => return Err(Error::config("the QUIC endpoint was closed")),
                },
                accepted = tcp_accept(tcp.as_ref()) => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        admit_tcp(Box::new(stream), addr, &shared, &mut connections)
                    }
                    Err(e) => tracing::debug!(error = %e, "accepting a TCP connection failed"),
                },
                accepted = next_incoming(incoming.as_mut()) => match accepted {
                    Some(Ok((stream, addr))) => {
                        let addr = addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                        admit_tcp(stream, addr, &shared, &mut connections)
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "accepting a connection failed"),
                    None => incoming = None,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut signal, if notice_ends.is_none() => {
                    for hook in &shared.config.drain_hooks.0 {
                        hook();
                    }
                    if shared.config.drain_notice.is_zero() {
                        break;
                    }
                    tracing::info!(notice = ?shared.config.drain_notice, "draining soon");
                    notice_ends = Some(tokio::time::Instant::now() + shared.config.drain_notice);
                }
                () = async {
                    match notice_ends {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => break,
            }
        }

        tracing::info!(live_calls = shared.meters.live_calls.get(), "draining");
        shared.drain.fire();
        // Nothing new is accepted from here on.
        drop((tcp, incoming));
        // Phase 1: handlers finish and responses are written, within the
        // grace period. Phase 2: clients acknowledge the last bytes; a
        // client that vanished never will, so this waits only briefly.
        let grace = tokio::time::Instant::now() + shared.config.grace_period;
        let quic = endpoint.as_ref();
        if drain_until(quic, &shared, &mut connections, grace, running_calls).await {
            let linger = grace.min(tokio::time::Instant::now() + ACK_LINGER);
            drain_until(quic, &shared, &mut connections, linger, live_calls).await;
        } else {
            tracing::warn!(
                running_calls = shared.meters.running_calls.get(),
                "grace period over; resetting the calls still running"
            );
        }
        shared.abort.fire();
        while connections.join_next().await.is_some() {}
        if let Some(endpoint) = endpoint {
            endpoint.close(quinn::VarInt::from_u32(0x100), b"server shut down");
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        }
        Ok(())
    }
}

async fn quic_accept(endpoint: Option<&quinn::Endpoint>) -> Option<quinn::Incoming> {
    match endpoint {
        Some(endpoint) => endpoint.accept().await,
        None => std::future::pending().await,
    }
}

async fn tcp_accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Decides what happens to a QUIC connection attempt: refused (over the
/// connection limit), asked to validate its address (a Retry, when many
/// handshakes are in progress), or accepted.
fn admit_quic(
    incoming: quinn::Incoming,
    shared: &Arc<Shared>,
    connections: &mut tokio::task::JoinSet<()>,
) {
    let meters = &shared.meters;
    if meters.connections.get() >= shared.config.max_connections {
        meters
            .counters
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %incoming.remote_address(), "connection limit reached; refused");
        incoming.refuse();
        return;
    }
    if meters.handshakes.get() >= shared.config.retry_above_handshakes
        && !incoming.remote_address_validated()
        && incoming.may_retry()
    {
        meters.counters.retries_sent.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = incoming.retry() {
            e.into_incoming().ignore();
        }
        return;
    }
    let slot = Held::enter(shared, |s| &s.meters.connections);
    let task = Held::enter(shared, |s| &s.meters.tasks);
    let shared = shared.clone();
    connections.spawn(async move {
        h3::serve(incoming, shared).await;
        drop((slot, task));
    });
}

async fn next_incoming(
    incoming: Option<&mut Incoming>,
) -> Option<std::io::Result<(Box<dyn h2::Io>, Option<SocketAddr>)>> {
    match incoming {
        Some(incoming) => std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx)).await,
        None => std::future::pending().await,
    }
}

/// Accepts a connection for HTTP/2 unless over the connection limit.
fn admit_tcp(
    stream: Box<dyn h2::Io>,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    connections: &mut tokio::task::JoinSet<()>,
) {
    if shared.meters.connections.get() >= shared.config.max_connections {
        shared
            .meters
            .counters
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %addr, "connection limit reached; refused");
        return;
    }
    let slot = Held::enter(shared, |s| &s.meters.connections);
    let task = Held::enter(shared, |s| &s.meters.tasks);
    let shared = shared.clone();
    connections.spawn(async move {
        h2::serve(stream, addr, shared).await;
        drop((slot, task));
    });
}

/// How long a drain waits for clients to acknowledge responses that are
/// already sent: many round trips on any sane network.
const ACK_LINGER: Duration = Duration::from_secs(1);

fn running_calls(shared: &Shared) -> &Gauge {
    &shared.meters.running_calls
}

fn live_calls(shared: &Shared) -> &Gauge {
    &shared.meters.live_calls
}

/// Waits until `gauge` is zero or `deadline` passes, refusing new QUIC
/// connections meanwhile; returns whether the gauge reached zero.
async fn drain_until(
    endpoint: Option<&quinn::Endpoint>,
    shared: &Shared,
    connections: &mut tokio::task::JoinSet<()>,
    deadline: tokio::time::Instant,
    gauge: fn(&Shared) -> &Gauge,
) -> bool {
    loop {
        let drained = shared.drained.notified();
        if gauge(shared).get() == 0 {
            return true;
        }
        tokio::select! {
            () = drained => {}
            () = tokio::time::sleep_until(deadline) => return false,
            Some(incoming) = quic_accept(endpoint) => {
                shared.meters.counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                incoming.refuse();
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer")
            .field("local_addr", &self.local_addr)
            .field("http3", &self.endpoint.is_some())
            .field("http2", &self.tcp.is_some())
            .finish_non_exhaustive()
    }
}
