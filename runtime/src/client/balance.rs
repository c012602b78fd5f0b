//! Round-robin load balancing: one endpoint per address the target
//! resolves to (or per address of a static list), each with its own
//! connection, backoff and transport choice; calls rotate over the
//! endpoints that are up, and endpoints that fail are skipped until they
//! reconnect. The addresses are resolved again periodically and whenever
//! no endpoint is up.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpc_h3_core::Status;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::auto::{Auto, Picked};
use super::connect::{self, Target};
use super::endpoints::Pools;

/// How a channel spreads calls over the addresses of its target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadBalancing {
    /// One connection at a time: the addresses are tried in order (IPv6
    /// and IPv4 interleaved, Happy Eyeballs) and the first that connects
    /// carries every call until it is lost. gRPC's default.
    #[default]
    PickFirst,
    /// A connection to every address; calls rotate over those that are
    /// up. An address whose connection fails is skipped until it
    /// reconnects (each has its own backoff).
    RoundRobin,
}

/// The shortest time between two resolutions triggered by failures.
const MIN_RESOLVE_GAP: Duration = Duration::from_secs(1);

/// The shortest time between two background connection attempts started
/// for one endpoint by calls that found it down.
const KICK_GAP: Duration = Duration::from_millis(200);

/// One address and its transports.
struct Endpoint {
    address: SocketAddr,
    pools: Pools,
    /// A background attempt runs.
    kicking: Arc<AtomicBool>,
    /// When the last one started, in ms since the balancer's epoch.
    kicked_at: AtomicU64,
}

/// Where resolution stands.
#[derive(Default)]
struct Resolution {
    /// When the last one finished.
    finished: Option<Instant>,
    running: bool,
    /// Why the last one failed, if it did.
    error: Option<Status>,
}

/// Makes the transports of one endpoint.
pub(crate) type MakeEndpoint = Box<dyn Fn(SocketAddr) -> Pools + Send + Sync>;

/// Endpoints and the rotation over them.
pub(crate) struct RoundRobin {
    target: Target,
    make: MakeEndpoint,
    endpoints: Mutex<Arc<Vec<Arc<Endpoint>>>>,
    next: AtomicUsize,
    resolve_interval: Duration,
    resolution: Mutex<Resolution>,
    resolved: Notify,
    epoch: Instant,
}

impl RoundRobin {
    pub(crate) fn new(
        target: Target,
        resolve_interval: Duration,
        make: MakeEndpoint,
    ) -> RoundRobin {
        RoundRobin {
            target,
            make,
            endpoints: Mutex::default(),
            next: AtomicUsize::new(0),
            resolve_interval,
            resolution: Mutex::default(),
            resolved: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// `host:port` of the target.
    pub(crate) fn authority(&self) -> String {
        self.target.authority()
    }

    /// The addresses balanced over now.
    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.snapshot().iter().map(|e| e.address).collect()
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints.lock().expect("balancer lock").clone()
    }

    /// The connection for the next call: the next endpoint in rotation
    /// that is up; if none is, the first to connect.
    pub(crate) async fn pick(
        self: &Arc<Self>,
        wait_for_ready: bool,
    ) -> Result<(Picked, Option<Arc<Auto>>), Status> {
        let endpoints = self.endpoints_now().await?;
        let count = endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..count {
            let endpoint = &endpoints[(start + i) % count];
            match endpoint.pools.ready() {
                Some(picked) => return Ok(endpoint.pools.with_learner(picked)),
                None => self.kick(endpoint),
            }
        }
        // Nothing is up: the addresses may have changed.
        self.resolve_soon(MIN_RESOLVE_GAP);
        let mut attempts = tokio::task::JoinSet::new();
        for endpoint in endpoints.iter() {
            let endpoint = endpoint.clone();
            attempts.spawn(async move {
                let picked = endpoint.pools.pick(wait_for_ready).await;
                (endpoint, picked)
            });
        }
        let mut failures = Vec::with_capacity(count);
        while let Some(joined) = attempts.join_next().await {
            match joined {
                Ok((endpoint, Ok(picked))) => return Ok(endpoint.pools.with_learner(picked)),
                Ok((endpoint, Err(status))) => {
                    failures.push(format!("{}: {}", endpoint.address, status.message()));
                }
                Err(e) => failures.push(format!("connection task failed: {e}")),
            }
        }
        Err(Status::unavailable(format!(
            "no endpoint of {} is reachable ({count} tried, round robin): {}",
            self.authority(),
            failures.join("; ")
        )))
    }

    /// The endpoints, resolving first if there are none yet; starts a
    /// background resolution when the last one is older than the
    /// interval.
    async fn endpoints_now(self: &Arc<Self>) -> Result<Arc<Vec<Arc<Endpoint>>>, Status> {
        loop {
            let resolved = self.resolved.notified();
            tokio::pin!(resolved);
            resolved.as_mut().enable();
            let endpoints = self.snapshot();
            if !endpoints.is_empty() {
                self.resolve_soon(self.resolve_interval);
                return Ok(endpoints);
            }
            {
                let resolution = self.resolution.lock().expect("balancer lock");
                if let (Some(error), Some(finished)) = (&resolution.error, resolution.finished) {
                    if !resolution.running && finished.elapsed() < MIN_RESOLVE_GAP {
                        return Err(error.clone());
                    }
                }
            }
            self.resolve_soon(Duration::ZERO);
            resolved.await;
        }
    }

    /// Starts a resolution on a task of its own unless one runs or the
    /// last finished less than `gap` ago.
    fn resolve_soon(self: &Arc<Self>, gap: Duration) {
        let mut resolution = self.resolution.lock().expect("balancer lock");
        if resolution.running || resolution.finished.is_some_and(|f| f.elapsed() < gap) {
            return;
        }
        resolution.running = true;
        drop(resolution);
        let this = self.clone();
        tokio::spawn(async move {
            let result = resolve(&this.target).await;
            this.apply(result);
        });
    }

    /// Takes a resolution's outcome: endpoints still present keep their
    /// connections, new addresses get new endpoints, gone ones are dropped
    /// (their calls finish on the connections they hold). A failure keeps
    /// the endpoints there are.
    fn apply(&self, result: Result<Vec<SocketAddr>, Status>) {
        let mut resolution = self.resolution.lock().expect("balancer lock");
        resolution.running = false;
        resolution.finished = Some(Instant::now());
        match result {
            Ok(addresses) => {
                resolution.error = None;
                let mut endpoints = self.endpoints.lock().expect("balancer lock");
                let old = endpoints.clone();
                let list = addresses
                    .into_iter()
                    .map(|address| {
                        old.iter()
                            .find(|e| e.address == address)
                            .cloned()
                            .unwrap_or_else(|| {
                                tracing::debug!(%address, target = %self.authority(), "new endpoint");
                                Arc::new(Endpoint {
                                    address,
                                    pools: (self.make)(address),
                                    kicking: Arc::default(),
                                    kicked_at: AtomicU64::new(0),
                                })
                            })
                    })
                    .collect();
                *endpoints = Arc::new(list);
            }
            Err(status) => {
                tracing::debug!(target = %self.authority(), error = %status.message(), "resolution failed; keeping the endpoints");
                resolution.error = Some(status);
            }
        }
        drop(resolution);
        self.resolved.notify_waiters();
    }

    /// Starts connecting `endpoint` in the background, unless an attempt
    /// runs or started less than [`KICK_GAP`] ago.
    fn kick(&self, endpoint: &Arc<Endpoint>) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = endpoint.kicked_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) < KICK_GAP.as_millis() as u64 && last != 0 {
            return;
        }
        if endpoint.kicking.swap(true, Ordering::AcqRel) {
            return;
        }
        endpoint.kicked_at.store(now.max(1), Ordering::Relaxed);
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            if let Err(status) = endpoint.pools.pick(false).await {
                tracing::debug!(address = %endpoint.address, error = %status.message(), "endpoint still down");
            }
            endpoint.kicking.store(false, Ordering::Release);
        });
    }

    /// The transport of an endpoint that is up, if one is.
    pub(crate) fn current_transport(&self) -> Option<crate::Transport> {
        self.snapshot()
            .iter()
            .find_map(|e| e.pools.current_transport())
    }

    /// Where the endpoints stand, for a call whose deadline passed.
    pub(crate) fn describe(&self) -> String {
        let endpoints = self.snapshot();
        if endpoints.is_empty() {
            return match &self.resolution.lock().expect("balancer lock").error {
                Some(error) => {
                    format!("resolving {} failed: {}", self.authority(), error.message())
                }
                None => format!("resolving {}", self.authority()),
            };
        }
        endpoints
            .iter()
            .map(|e| format!("{}: {}", e.address, e.pools.describe()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Resolves `target` for a balancer.
pub(crate) async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, Status> {
    let timeout = target.connect_timeout;
    tokio::time::timeout(timeout, connect::resolve_all(target))
        .await
        .unwrap_or_else(|_| {
            Err(Status::unavailable(format!(
                "resolving {} took longer than the connect timeout ({timeout:?})",
                target.authority()
            )))
        })
}

/// An endpoint as `(host, port)`: `host:port`, `[v6]:port`, or a bare
/// host or IP literal (with `default_port`).
pub(crate) fn parse_place(place: &str, default_port: u16) -> Result<(String, u16), crate::Error> {
    let invalid = |why: &str| {
        crate::Error::config(format!(
            "endpoint {place:?}: {why}; expected host:port, [IPv6]:port or a host"
        ))
    };
    if let Ok(ip) = place.parse::<std::net::IpAddr>() {
        return Ok((ip.to_string(), default_port));
    }
    if let Ok(addr) = place.parse::<std::net::SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    match place.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port
                .parse()
                .map_err(|_| invalid("the port is not a number"))?;
            if host.is_empty() {
                return Err(invalid("no host"));
            }
            Ok((host.to_owned(), port))
        }
        Some(_) => Err(invalid("an IPv6 address needs brackets with a port")),
        None if place.is_empty() => Err(invalid("empty")),
        None => Ok((place.to_owned(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_place;

    #[test]
    fn endpoints_parse_as_host_and_port() {
        let ok = |s: &str| parse_place(s, 443).unwrap();
        assert_eq!(ok("10.0.0.1:50051"), ("10.0.0.1".into(), 50051));
        assert_eq!(ok("10.0.0.1"), ("10.0.0.1".into(), 443));
        assert_eq!(ok("[::1]:8443"), ("::1".into(), 8443));
        assert_eq!(ok("::1"), ("::1".into(), 443));
        assert_eq!(
            ok("backend-2.internal:9000"),
            ("backend-2.internal".into(), 9000)
        );
        assert_eq!(ok("backend-2.internal"), ("backend-2.internal".into(), 443));
        for bad in ["", ":80", "host:port", "::1:80x"] {
            assert!(parse_place(bad, 443).is_err(), "{bad:?} accepted");
        }
    }
}
