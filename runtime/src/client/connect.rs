//! Opening one connection, whatever the transport: resolve every address of
//! the target, race attempts across them as Happy Eyeballs (RFC 8305) does,
//! and say exactly what happened when none answers.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpc_h3_core::Status;
use tokio::time::Instant;

use super::resolve::SharedResolver;

/// RFC 8305's Connection Attempt Delay: the next address is tried this long
/// after the previous attempt started, if none has succeeded yet.
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Where a channel connects.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The channel's host: named in messages, and resolved unless
    /// `endpoints` says where to go.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Where to connect instead of `host:port` (names or IP literals,
    /// resolved in this order); empty: `host:port` itself.
    pub(crate) endpoints: Arc<[(String, u16)]>,
    pub(crate) resolver: SharedResolver,
    pub(crate) connect_timeout: Duration,
}

impl Target {
    /// The key of this target in the process's memory of transports and
    /// alternatives: its authority, and the endpoints if it has its own
    /// (each endpoint of a balanced channel is remembered on its own, since
    /// each server advertises and breaks on its own).
    pub(crate) fn memory_key(&self) -> String {
        if self.endpoints.is_empty() {
            return self.authority();
        }
        let places: Vec<String> = self
            .endpoints
            .iter()
            .map(|(host, port)| host_port(host, *port))
            .collect();
        format!("{} via {}", self.authority(), places.join(","))
    }

    /// The places to resolve: the endpoints, or the target itself.
    pub(crate) fn places(&self) -> Vec<(String, u16)> {
        if self.endpoints.is_empty() {
            vec![(self.host.clone(), self.port)]
        } else {
            self.endpoints.to_vec()
        }
    }

    /// The same target, connecting only to `endpoints`.
    pub(crate) fn with_endpoints(&self, endpoints: Arc<[(String, u16)]>) -> Target {
        Target {
            endpoints,
            ..self.clone()
        }
    }

    /// The target moved to `host:port` (an Alt-Svc alternative): on the
    /// same host, its endpoints keep their addresses at the new port;
    /// another host is resolved afresh.
    pub(crate) fn moved_to(&self, host: String, port: u16) -> Target {
        let endpoints = if host == self.host {
            self.endpoints
                .iter()
                .map(|(h, _)| (h.clone(), port))
                .collect()
        } else {
            Arc::from(Vec::new())
        };
        Target {
            host,
            port,
            endpoints,
            ..self.clone()
        }
    }

    /// `host:port`, bracketing IPv6 literals.
    pub(crate) fn authority(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// `host:port`, bracketing IPv6 literals.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// How trying one address went.
#[derive(Clone, Debug)]
enum Outcome {
    Trying,
    Failed(String),
}

/// What a connection attempt has tried so far, readable while it runs (a
/// call whose deadline fires first says where it was).
#[derive(Debug)]
pub(crate) struct Progress {
    /// What "no answer" means on this transport ("no QUIC answer").
    silence: &'static str,
    tried: Mutex<Vec<(SocketAddr, Outcome)>>,
}

impl Progress {
    pub(crate) fn new(silence: &'static str) -> Progress {
        Progress {
            silence,
            tried: Mutex::default(),
        }
    }

    fn set(&self, addr: SocketAddr, outcome: Outcome) {
        let mut tried = self.tried.lock().expect("progress lock");
        match tried.iter_mut().find(|(a, _)| *a == addr) {
            Some(entry) => entry.1 = outcome,
            None => tried.push((addr, outcome)),
        }
    }

    /// The addresses tried so far, with what happened to each.
    pub(crate) fn describe(&self) -> String {
        let tried = self.tried.lock().expect("progress lock");
        if tried.is_empty() {
            return "no address tried yet".to_owned();
        }
        let mut out = String::from("tried ");
        for (i, (addr, outcome)) in tried.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match outcome {
                Outcome::Trying => {
                    let _ = write!(out, "{addr} ({} yet)", self.silence);
                }
                Outcome::Failed(why) => {
                    let _ = write!(out, "{addr} ({why})");
                }
            }
        }
        out
    }
}

/// Orders addresses as RFC 8305 §4 does: alternating families, starting
/// with the family of the first address the resolver returned (IPv6 on
/// most systems).
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first().copied() else {
        return addrs;
    };
    let (mut preferred, mut other): (Vec<_>, Vec<_>) = addrs
        .into_iter()
        .partition(|a| a.is_ipv6() == first.is_ipv6());
    preferred.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(preferred.len() + other.len());
    while !preferred.is_empty() || !other.is_empty() {
        out.extend(preferred.pop());
        out.extend(other.pop());
    }
    out
}

/// Every address `target` resolves to, in the order to try them.
pub(crate) async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, Status> {
    Ok(interleave(resolve_all(target).await?))
}

/// Every address of every place of `target`, in the resolver's order,
/// without repeats. Places that fail to resolve are skipped while one
/// resolves; if none does, the error names each.
pub(crate) async fn resolve_all(target: &Target) -> Result<Vec<SocketAddr>, Status> {
    let mut unique = Vec::new();
    let mut failures = Vec::new();
    for (host, port) in target.places() {
        let place = host_port(&host, port);
        let resolved = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
            Err(_) => target.resolver.0.resolve(&host, port).await,
        };
        match resolved {
            Ok(addrs) if addrs.is_empty() => {
                failures.push(format!("{place} resolved to no address"))
            }
            Ok(addrs) => {
                for addr in addrs {
                    if !unique.contains(&addr) {
                        unique.push(addr);
                    }
                }
            }
            Err(e) => failures.push(format!("cannot resolve {place}: {e}")),
        }
    }
    if unique.is_empty() {
        return Err(Status::unavailable(format!(
            "{}; check the host name in the channel URI",
            failures.join("; ")
        )));
    }
    if !failures.is_empty() {
        tracing::debug!(failures = %failures.join("; "), "some endpoints did not resolve");
    }
    Ok(unique)
}

/// One attempt to connect to one address.
pub(crate) type Attempt<C> = Pin<Box<dyn Future<Output = Result<C, String>> + Send>>;

/// Connects to `target`: resolves it, then races attempts (made by
/// `attempt`) across its addresses, a new one every [`ATTEMPT_DELAY`] (or at
/// once when one fails) until one succeeds or the connect timeout passes.
pub(crate) async fn connect<C: Send + 'static>(
    target: &Target,
    progress: &Progress,
    attempt: impl Fn(SocketAddr) -> Attempt<C>,
) -> Result<C, Status> {
    let deadline = Instant::now() + target.connect_timeout;
    let addrs = tokio::time::timeout_at(deadline, resolve(target))
        .await
        .map_err(|_| {
            Status::unavailable(format!(
                "resolving {} took longer than the connect timeout ({:?})",
                target.authority(),
                target.connect_timeout
            ))
        })??;
    race(target, addrs, deadline, progress, attempt).await
}

/// Races attempts to `addrs`, in order, until `deadline`.
pub(crate) async fn race<C: Send + 'static>(
    target: &Target,
    addrs: Vec<SocketAddr>,
    deadline: Instant,
    progress: &Progress,
    attempt: impl Fn(SocketAddr) -> Attempt<C>,
) -> Result<C, Status> {
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut next_start = Instant::now();
    loop {
        if next < addrs.len() && (Instant::now() >= next_start || attempts.is_empty()) {
            let addr = addrs[next];
            next += 1;
            next_start = Instant::now() + ATTEMPT_DELAY;
            progress.set(addr, Outcome::Trying);
            let connecting = attempt(addr);
            attempts.spawn(async move { (addr, connecting.await) });
        }
        tokio::select! {
            Some(joined) = attempts.join_next() => match joined {
                Ok((_, Ok(conn))) => {
                    attempts.abort_all();
                    return Ok(conn);
                }
                Ok((addr, Err(why))) => {
                    tracing::debug!(%addr, error = %why, "connection attempt failed");
                    progress.set(addr, Outcome::Failed(why));
                    next_start = Instant::now();
                }
                Err(e) => progress.set(addrs[0], Outcome::Failed(format!("attempt task failed: {e}"))),
            },
            () = tokio::time::sleep_until(next_start), if next < addrs.len() => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
        if attempts.is_empty() && next >= addrs.len() {
            break;
        }
    }
    attempts.abort_all();
    Err(failure(target, &addrs, progress))
}

/// The status of a connection attempt that got nowhere, naming every
/// address tried and what to check.
fn failure(target: &Target, addrs: &[SocketAddr], progress: &Progress) -> Status {
    let tried = progress.tried.lock().expect("progress lock");
    let silent: Vec<String> = tried
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Trying))
        .map(|(a, _)| a.to_string())
        .collect();
    // The address is worth naming unless the URI already did.
    let literal = target.authority().parse::<SocketAddr>().ok();
    let failed: Vec<String> = tried
        .iter()
        .filter_map(|(a, o)| match o {
            Outcome::Failed(why) if Some(*a) == literal => Some(why.clone()),
            Outcome::Failed(why) => Some(format!("{a}: {why}")),
            Outcome::Trying => None,
        })
        .collect();
    let untried = addrs.len().saturating_sub(tried.len());
    let mut message = String::new();
    if !silent.is_empty() {
        let _ = write!(
            message,
            "{} from {} within {:?}: is the server running, and is {} allowed on this path?",
            progress.silence,
            silent.join(" or "),
            target.connect_timeout,
            if progress.silence.contains("QUIC") {
                "UDP"
            } else {
                "TCP"
            },
        );
    }
    if !failed.is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        let _ = write!(
            message,
            "connecting to {} failed: {}",
            target.authority(),
            failed.join("; ")
        );
    }
    if untried > 0 {
        let _ = write!(message, " ({untried} more addresses not tried in time)");
    }
    Status::unavailable(message)
}

/// A connection the pool can hand out.
pub(crate) trait Conn: Send + Sync + 'static {
    /// Whether new calls may use it.
    fn usable(&self) -> bool;
    /// The peer's address.
    fn remote_address(&self) -> SocketAddr;
}

/// Opens connections of one kind to one target.
pub(crate) trait Connector: Send + Sync + 'static {
    /// The connection it opens.
    type Conn: Conn;

    /// Opens one, recording its attempts in `progress`.
    fn connect(
        self: Arc<Self>,
        progress: Arc<Progress>,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Conn, Status>> + Send>>;

    /// What "no answer" means on this transport, for messages.
    fn silence(&self) -> &'static str;

    /// `host:port` of the target.
    fn authority(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_alternate_families_starting_with_the_first() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let order = interleave(vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("[::3]:1"),
            a("127.0.0.1:1"),
            a("127.0.0.2:1"),
        ]);
        assert_eq!(
            order,
            [
                a("[::1]:1"),
                a("127.0.0.1:1"),
                a("[::2]:1"),
                a("127.0.0.2:1"),
                a("[::3]:1")
            ]
        );
        let v4_first = interleave(vec![a("127.0.0.1:1"), a("[::1]:1")]);
        assert_eq!(v4_first, [a("127.0.0.1:1"), a("[::1]:1")]);
    }

    #[tokio::test]
    async fn a_silent_address_does_not_hold_up_a_live_one() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let (silent, live) = (a("[::1]:1"), a("127.0.0.1:2"));
        let target = Target {
            host: "localhost".into(),
            port: 1,
            endpoints: Arc::from(Vec::new()),
            resolver: SharedResolver::default(),
            connect_timeout: Duration::from_secs(10),
        };
        let progress = Progress::new("no answer");
        let started = Instant::now();
        let connected = race(
            &target,
            vec![silent, live],
            started + Duration::from_secs(10),
            &progress,
            |addr| -> Attempt<SocketAddr> {
                Box::pin(async move {
                    if addr.is_ipv6() {
                        std::future::pending().await
                    } else {
                        Ok(addr)
                    }
                })
            },
        )
        .await
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(connected, live);
        assert!(
            elapsed >= ATTEMPT_DELAY && elapsed < Duration::from_secs(5),
            "the live address was tried {ATTEMPT_DELAY:?} after the silent one: {elapsed:?}"
        );
        let tried = progress.describe();
        assert!(
            tried.contains(&format!("{silent} (no answer yet)")),
            "{tried}"
        );
    }
}
