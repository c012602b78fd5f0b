//! Opening one HTTP/3 connection: resolve every address of the target, race
//! QUIC handshakes across them as Happy Eyeballs (RFC 8305) does, and say
//! exactly what happened when none answers.

use std::fmt::Write as _;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use grpc_h3_core::Status;
use tokio::time::Instant;

use crate::transport::quic::{self, ConnState, TransportCounters};

pub(crate) type Sender = h3::client::SendRequest<quic::Opener, Bytes>;

/// RFC 8305's Connection Attempt Delay: the next address is tried this long
/// after the previous attempt started, if none has succeeded yet.
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

thread_local! {
    static ENDPOINTS: std::cell::RefCell<[Option<quinn::Endpoint>; 2]> =
        const { std::cell::RefCell::new([None, None]) };
}

/// A client UDP endpoint for `bind`'s address family, shared by the
/// connections opened from this thread: quinn multiplexes any number of
/// connections over one endpoint, so a new connection pays for no socket,
/// buffers or driver task of its own. Its socket buffers are as large as
/// the kernel allows, up to 8 MiB (see `transport::UDP_BUFFER_BYTES`). The cache is per thread because an
/// endpoint's driver lives on the runtime that created it, and a worker
/// thread belongs to one runtime; `fresh` replaces an endpoint whose runtime
/// has shut down.
fn shared_endpoint(bind: SocketAddr, fresh: bool) -> std::io::Result<quinn::Endpoint> {
    ENDPOINTS.with(|endpoints| {
        let mut endpoints = endpoints.borrow_mut();
        let slot = &mut endpoints[usize::from(bind.is_ipv6())];
        match slot {
            Some(endpoint) if !fresh => Ok(endpoint.clone()),
            _ => {
                let socket =
                    crate::transport::udp_socket(bind, crate::transport::UDP_BUFFER_BYTES)?;
                let endpoint = crate::transport::endpoint(socket, None)?;
                *slot = Some(endpoint.clone());
                Ok(endpoint)
            }
        }
    })
}

/// Everything needed to open connections to one target.
pub(crate) struct Connector {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) server_name: String,
    pub(crate) quic_config: quinn::ClientConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_header_list_size: u64,
}

impl Connector {
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One live connection. Calls hold a clone of `sender`, which keeps the
/// connection open until they finish even after the channel replaced it.
pub(crate) struct Connection {
    pub(crate) sender: Sender,
    pub(crate) state: Arc<ConnState>,
    quic: quinn::Connection,
    retired: AtomicBool,
    driver_done: Arc<AtomicBool>,
    // The socket must outlive the connection.
    _endpoint: quinn::Endpoint,
}

impl Connection {
    /// Whether new calls may use it: open, not retired, no GOAWAY.
    pub(crate) fn usable(&self) -> bool {
        !self.retired.load(Ordering::Acquire)
            && !self.driver_done.load(Ordering::Acquire)
            && self.quic.close_reason().is_none()
            && !self.state.going_away()
    }

    /// Stops handing this connection to new calls (after a connection-level
    /// failure); calls in flight keep it alive until they end.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// The peer's address.
    pub(crate) fn remote_address(&self) -> SocketAddr {
        self.quic.remote_address()
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
#[derive(Debug, Default)]
pub(crate) struct Progress {
    tried: Mutex<Vec<(SocketAddr, Outcome)>>,
}

impl Progress {
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
                    let _ = write!(out, "{addr} (no QUIC answer yet)");
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

async fn resolve(connector: &Connector) -> Result<Vec<SocketAddr>, Status> {
    let target = (connector.host.as_str(), connector.port);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
        .await
        .map_err(|e| {
            Status::unavailable(format!(
                "cannot resolve {}: {e}; check the host name in the channel URI",
                connector.authority()
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Status::unavailable(format!(
            "{} resolved to no address",
            connector.authority()
        )));
    }
    let mut unique = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    Ok(interleave(unique))
}

/// Opens a QUIC connection to `addr` and sets HTTP/3 up on it.
async fn connect_to(
    connector: Arc<Connector>,
    addr: SocketAddr,
    counters: Arc<TransportCounters>,
) -> Result<Connection, String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let open = |fresh| {
        let endpoint = shared_endpoint(bind, fresh)
            .map_err(|e| format!("cannot open a UDP socket on {bind}: {e}"))?;
        let connecting =
            endpoint.connect_with(connector.quic_config.clone(), addr, &connector.server_name);
        Ok::<_, String>((endpoint, connecting))
    };
    let (endpoint, connecting) = match open(false)? {
        // The cached endpoint's runtime is gone: make a new one.
        (_, Err(quinn::ConnectError::EndpointStopping)) => open(true)?,
        opened => opened,
    };
    let connecting = connecting.map_err(|e| format!("cannot connect: {e}"))?;
    let quic_conn = connecting.await.map_err(|e| {
        let text = e.to_string();
        match crate::tls::verify::explanation(&text) {
            Some(explained) => format!("TLS: {explained}"),
            None => format!("QUIC handshake failed: {text}"),
        }
    })?;
    let state = Arc::new(ConnState::new(connector.max_header_list_size, counters));
    let (mut driver, sender) = h3::client::builder()
        .max_field_section_size(connector.max_header_list_size)
        .build(quic::Connection::client(quic_conn.clone(), state.clone()))
        .await
        .map_err(|e| format!("HTTP/3 setup failed: {e}"))?;
    let driver_done = Arc::new(AtomicBool::new(false));
    let done = driver_done.clone();
    tokio::spawn(async move {
        let err = poll_fn(|cx| driver.poll_close(cx)).await;
        tracing::debug!(error = %err, "HTTP/3 connection ended");
        done.store(true, Ordering::Release);
    });
    Ok(Connection {
        sender,
        state,
        quic: quic_conn,
        retired: AtomicBool::new(false),
        driver_done,
        _endpoint: endpoint,
    })
}

/// Connects to the first address that answers, starting a new attempt every
/// [`ATTEMPT_DELAY`] (or at once when one fails) until one succeeds or the
/// connect timeout passes.
pub(crate) async fn connect(
    connector: Arc<Connector>,
    progress: Arc<Progress>,
    counters: Arc<TransportCounters>,
) -> Result<Connection, Status> {
    let deadline = Instant::now() + connector.connect_timeout;
    let addrs = tokio::time::timeout_at(deadline, resolve(&connector))
        .await
        .map_err(|_| {
            Status::unavailable(format!(
                "resolving {} took longer than the connect timeout ({:?})",
                connector.authority(),
                connector.connect_timeout
            ))
        })??;
    race(connector, addrs, deadline, progress, counters).await
}

/// Races connection attempts to `addrs`, in order, until `deadline`.
async fn race(
    connector: Arc<Connector>,
    addrs: Vec<SocketAddr>,
    deadline: Instant,
    progress: Arc<Progress>,
    counters: Arc<TransportCounters>,
) -> Result<Connection, Status> {
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut next_start = Instant::now();
    loop {
        if next < addrs.len() && (Instant::now() >= next_start || attempts.is_empty()) {
            let addr = addrs[next];
            next += 1;
            next_start = Instant::now() + ATTEMPT_DELAY;
            progress.set(addr, Outcome::Trying);
            let (connector, counters) = (connector.clone(), counters.clone());
            attempts.spawn(async move { (addr, connect_to(connector, addr, counters).await) });
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
    Err(failure(&connector, &addrs, &progress))
}

/// The status of a connection attempt that got nowhere, naming every
/// address tried and what to check.
fn failure(connector: &Connector, addrs: &[SocketAddr], progress: &Progress) -> Status {
    let tried = progress.tried.lock().expect("progress lock");
    let silent: Vec<String> = tried
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Trying))
        .map(|(a, _)| a.to_string())
        .collect();
    // The address is worth naming unless the URI already did.
    let literal = connector.authority().parse::<SocketAddr>().ok();
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
            "no QUIC answer from {} within {:?}: is the server running, and is UDP allowed on this path?",
            silent.join(" or "),
            connector.connect_timeout
        );
    }
    if !failed.is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        let _ = write!(
            message,
            "connecting to {} failed: {}",
            connector.authority(),
            failed.join("; ")
        );
    }
    if untried > 0 {
        let _ = write!(message, " ({untried} more addresses not tried in time)");
    }
    Status::unavailable(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{CallFuture, NamedService, Server, ServerCall, Service};

    struct NoMethods;

    impl NamedService for NoMethods {
        const NAME: &'static str = "test.NoMethods";
    }

    impl Service for NoMethods {
        fn call(&self, _: &str, _: ServerCall) -> Option<CallFuture> {
            None
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_address_does_not_hold_up_a_live_one() {
        let server = Server::builder()
            .dev_certificate()
            .add_service(NoMethods)
            .bind("127.0.0.1:0".parse().unwrap())
            .unwrap();
        let live = server.local_addr().unwrap();
        let tls = crate::tls::ClientTlsConfig::new()
            .ca_certificate(server.dev_certificate_pem().unwrap())
            .build()
            .unwrap();
        tokio::spawn(server.serve());
        // IPv6 first, as a resolver would order it, answering nothing.
        let silent_socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let silent = silent_socket.local_addr().unwrap();

        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let connector = Arc::new(Connector {
            host: "localhost".to_owned(),
            port: live.port(),
            server_name: "localhost".to_owned(),
            quic_config: quinn::ClientConfig::new(Arc::new(crypto)),
            connect_timeout: Duration::from_secs(10),
            max_header_list_size: 16 * 1024,
        });
        let progress = Arc::new(Progress::default());
        let started = Instant::now();
        let conn = race(
            connector,
            vec![silent, live],
            started + Duration::from_secs(10),
            progress.clone(),
            Arc::default(),
        )
        .await
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(conn.remote_address(), live);
        assert!(
            elapsed >= ATTEMPT_DELAY && elapsed < Duration::from_secs(5),
            "the live address was tried {ATTEMPT_DELAY:?} after the silent one: {elapsed:?}"
        );
        let tried = progress.describe();
        assert!(
            tried.contains(&format!("{silent} (no QUIC answer yet)")),
            "{tried}"
        );
    }

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
}
