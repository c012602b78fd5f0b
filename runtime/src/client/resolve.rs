//! Name resolution: [`Resolver`], the hook that turns a host name into
//! addresses (the system's resolver by default), and the resolution of a
//! channel's target into the addresses to try.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

/// What [`Resolver::resolve`] returns.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Turns a host name and port into socket addresses. A channel asks it
/// for every connection attempt and, with
/// [`LoadBalancing::RoundRobin`](crate::client::LoadBalancing::RoundRobin),
/// periodically. The default, [`SystemResolver`], asks the operating
/// system (`getaddrinfo`: `/etc/hosts`, then DNS A and AAAA records); set
/// another with [`ChannelBuilder::resolver`](crate::client::ChannelBuilder::resolver)
/// for service discovery (Consul, Kubernetes endpoints, a static table).
///
/// ```
/// use std::net::SocketAddr;
/// use grpc_h3::client::{ResolveFuture, Resolver};
///
/// /// Every name is the same two replicas.
/// struct Replicas(Vec<SocketAddr>);
///
/// impl Resolver for Replicas {
///     fn resolve(&self, _host: &str, _port: u16) -> ResolveFuture {
///         let addresses = self.0.clone();
///         Box::pin(async move { Ok(addresses) })
///     }
/// }
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host` (a name; IP literals are not passed to a
    /// resolver) at `port`, in the order to prefer them. An error or an empty list fails the
    /// connection attempt with UNAVAILABLE, naming the host.
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture;
}

/// The operating system's resolver (`getaddrinfo` on a blocking thread,
/// as `tokio::net::lookup_host` does); IP literals resolve to themselves
/// without a lookup.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Box::pin(std::future::ready(Ok(vec![SocketAddr::new(ip, port)])));
        }
        let host = host.to_owned();
        Box::pin(async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(Iterator::collect)
        })
    }
}

/// A channel's resolver, cheap to clone into its connectors.
#[derive(Clone)]
pub(crate) struct SharedResolver(pub(crate) Arc<dyn Resolver>);

impl Default for SharedResolver {
    fn default() -> Self {
        SharedResolver(Arc::new(SystemResolver))
    }
}

impl std::fmt::Debug for SharedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}
