//! The gRPC server: [`Server::builder`] configures TLS, limits and services,
//! then `serve` runs it on a UDP socket until shut down.
//!
//! ```no_run
//! # async fn run(service: impl grpc_h3::server::Service + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
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

mod builder;
mod config;
mod connection;
mod request;
mod respond;
pub(crate) mod service;
mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use builder::ServerBuilder;
pub(crate) use config::ServerConfig;
pub use service::{
    client_streaming, server_streaming, streaming, unary, CallFuture, NamedService, ServerCall,
    ServerReply, Service,
};
pub use stats::ServerStats;
use stats::{Gauge, Held, Meters};

use crate::Error;

/// Entry point: `Server::builder()`; see [`ServerBuilder`] for every
/// setting.
///
/// ```no_run
/// # async fn run(service: impl grpc_h3::server::Service + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
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
    pub(crate) services: HashMap<&'static str, Arc<dyn Service>>,
    pub(crate) meters: Meters,
    /// Notified when a gauge reaches zero.
    pub(crate) drained: Notify,
    /// Cancelled when graceful shutdown starts (GOAWAY everywhere).
    pub(crate) drain: CancellationToken,
    /// Cancelled when the grace period is over (reset what is left).
    pub(crate) abort: CancellationToken,
}

impl Shared {
    pub(crate) fn new(
        config: ServerConfig,
        services: HashMap<&'static str, Arc<dyn Service>>,
    ) -> Shared {
        Shared {
            config,
            services,
            meters: Meters::new(),
            drained: Notify::new(),
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }
}

/// A server bound to its UDP socket, ready to serve: binding first tells the
/// address (port 0 picks a free one) and gives a [`ServerHandle`] before
/// serving starts.
///
/// ```no_run
/// # async fn run(service: impl grpc_h3::server::Service + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
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
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    dev_certificate_pem: Option<String>,
}

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
    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.endpoint
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))
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
            local_addr: self
                .local_addr()
                .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into()),
        }
    }

    /// Serves until the endpoint fails; never returns on its own.
    pub async fn serve(self) -> Result<(), Error> {
        self.serve_with_shutdown(std::future::pending()).await
    }

    /// Serves until `signal` completes, then shuts down gracefully: every
    /// connection gets a GOAWAY, new connections are refused, calls in
    /// flight get the grace period to finish (then they are reset), and the
    /// endpoint closes.
    pub async fn serve_with_shutdown(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let BoundServer {
            endpoint, shared, ..
        } = self;
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                incoming = endpoint.accept() => match incoming {
                    Some(incoming) => admit(incoming, &shared, &mut connections),
                    None => return Err(Error::config("the QUIC endpoint was closed")),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut signal => break,
            }
        }

        tracing::info!(live_calls = shared.meters.live_calls.get(), "draining");
        shared.drain.cancel();
        // Phase 1: handlers finish and responses are written, within the
        // grace period. Phase 2: clients acknowledge the last bytes; a
        // client that vanished never will, so this waits only briefly.
        let grace = tokio::time::Instant::now() + shared.config.grace_period;
        if drain_until(&endpoint, &shared, &mut connections, grace, running_calls).await {
            let linger = grace.min(tokio::time::Instant::now() + ACK_LINGER);
            drain_until(&endpoint, &shared, &mut connections, linger, live_calls).await;
        } else {
            tracing::warn!(
                running_calls = shared.meters.running_calls.get(),
                "grace period over; resetting the calls still running"
            );
        }
        shared.abort.cancel();
        while connections.join_next().await.is_some() {}
        endpoint.close(quinn::VarInt::from_u32(0x100), b"server shut down");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
        Ok(())
    }
}

/// Decides what happens to a connection attempt: refused (over the
/// connection limit), asked to validate its address (a Retry, when many
/// handshakes are in progress), or accepted.
fn admit(
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
        connection::serve(incoming, shared).await;
        drop((slot, task));
    });
}

/// How long a drain waits for clients to acknowledge responses that are
/// already sent: many round trips on any sane network.
const ACK_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

fn running_calls(shared: &Shared) -> &Gauge {
    &shared.meters.running_calls
}

fn live_calls(shared: &Shared) -> &Gauge {
    &shared.meters.live_calls
}

/// Waits until `gauge` is zero or `deadline` passes, refusing new
/// connections meanwhile; returns whether the gauge reached zero.
async fn drain_until(
    endpoint: &quinn::Endpoint,
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
            Some(incoming) = endpoint.accept() => {
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
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}
