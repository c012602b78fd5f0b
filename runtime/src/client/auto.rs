//! The automatic transport choice: HTTP/3 where it works, HTTP/2 where it
//! does not, decided per origin and remembered by the process.
//!
//! - With nothing known, QUIC starts at once; if it has not connected
//!   after the race delay (or failed outright before), TCP + TLS + HTTP/2
//!   joins, and the first to connect carries the call. Calls arriving
//!   meanwhile share the same two attempts (each pool is single-flight).
//! - When HTTP/2 wins, HTTP/3 at that address is marked broken (see
//!   [`memory`](super::memory); keyed by the QUIC `host:port`, as browsers
//!   key by alternative service, so an Alt-Svc alternative learnt later is
//!   tried on its own merits): calls go straight to HTTP/2, and after the
//!   period one background attempt tries QUIC again.
//! - QUIC that connects, in the race or later, clears the mark: new calls
//!   move to HTTP/3, calls in flight finish where they are.
//! - `alt-svc` headers on HTTP/2 responses say where HTTP/3 is; without
//!   one, the origin's own host and port are tried (what grpc-h3's server
//!   does). HTTP/2's ALTSVC frame is not seen: hyper's h2 does not expose
//!   it.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grpc_h3_core::Status;

use super::backoff::BackoffConfig;
use super::h2::{H2Connection, H2Connector};
use super::h3::{H3Connection, H3Connector};
use super::memory::{self, Memory, Quic};
use super::pool::Pool;
use crate::Transport;

/// How long QUIC has alone before TCP joins the race, by default.
pub(crate) const DEFAULT_RACE_DELAY: Duration = Duration::from_millis(300);

/// How long HTTP/3 stays marked broken the first time, by default.
pub(crate) const DEFAULT_BROKEN_PERIOD: Duration = Duration::from_secs(5 * 60);

/// The connection a call goes out on.
pub(crate) enum Picked {
    Http3(Arc<H3Connection>),
    Http2(Arc<H2Connection>),
}

/// How to get a connection when none is up.
enum Next {
    /// Over HTTP/2 (HTTP/3 is marked broken, or probed aside).
    Http2,
    /// Race QUIC against TCP.
    Race(Arc<Pool<H3Connector>>),
}

/// Where HTTP/3 goes, as last looked up in the process's Alt-Svc memory.
struct CurrentH3 {
    /// The memory's Alt-Svc generation at the lookup (`u64::MAX`: never
    /// looked up).
    generation: u64,
    /// An alternative's `host:port` and expiry; `None` for the origin.
    alternative: Option<((String, u16), Instant)>,
    pool: Arc<Pool<H3Connector>>,
}

/// Both transports to one origin, and the choice between them.
pub(crate) struct Auto {
    /// `https://host:port`, the key of the process's memory.
    origin: String,
    /// HTTP/3 at the origin's own host and port.
    h3_origin: Arc<Pool<H3Connector>>,
    /// Where HTTP/3 goes now: the origin's pool or an alternative's.
    h3_current: Mutex<CurrentH3>,
    h2: Arc<Pool<H2Connector>>,
    race_delay: Duration,
    broken_period: Duration,
    backoff: BackoffConfig,
    memory: &'static Memory,
    /// A background QUIC attempt started by this channel is running.
    probing: Arc<AtomicBool>,
    /// The transport the last call went out on (see [`transport_code`]),
    /// to notice changes.
    last: AtomicU8,
    /// The last `alt-svc` value learnt, and when to learn it again.
    last_alt_svc: Mutex<Option<(http::HeaderValue, Instant)>>,
}

/// A transport as a number for [`Auto::last`]; 0 is none.
fn transport_code(transport: Transport) -> u8 {
    match transport {
        Transport::Http3 => 1,
        Transport::Http2 => 2,
        Transport::H2c => 3,
    }
}

impl Auto {
    pub(crate) fn new(
        h3: H3Connector,
        h2: H2Connector,
        backoff: BackoffConfig,
        race_delay: Duration,
        broken_period: Duration,
    ) -> Auto {
        let h3_origin = Arc::new(Pool::new(h3, backoff));
        Auto {
            origin: format!("https://{}", h2.target.memory_key()),
            h3_current: Mutex::new(CurrentH3 {
                generation: u64::MAX,
                alternative: None,
                pool: h3_origin.clone(),
            }),
            h3_origin,
            h2: Arc::new(Pool::new(h2, backoff)),
            race_delay,
            broken_period,
            backoff,
            memory: memory::shared(),
            probing: Arc::default(),
            last: AtomicU8::new(0),
            last_alt_svc: Mutex::default(),
        }
    }

    /// `host:port` of the origin.
    pub(crate) fn authority(&self) -> String {
        self.h2.authority()
    }

    /// Where HTTP/3 is tried now: an Alt-Svc alternative if one is known
    /// and fresh, else the origin itself. The process's memory is consulted
    /// only when it has changed or the alternative expired.
    pub(crate) fn h3_pool(&self) -> Arc<Pool<H3Connector>> {
        let generation = self.memory.alt_svc_generation();
        let mut current = self.h3_current.lock().expect("auto lock");
        let expired = current
            .alternative
            .as_ref()
            .is_some_and(|(_, expires)| Instant::now() >= *expires);
        if current.generation == generation && !expired {
            return current.pool.clone();
        }
        current.generation = generation;
        let origin = &self.h3_origin.connector().target;
        let alternative = self.memory.h3_alternative(&self.origin).and_then(|a| {
            let place = (a.host.unwrap_or_else(|| origin.host.clone()), a.port);
            // An alternative naming the origin's own address is the origin.
            (place.0 != origin.host || place.1 != origin.port).then_some((place, a.expires))
        });
        match alternative {
            None => {
                current.alternative = None;
                current.pool = self.h3_origin.clone();
            }
            Some((place, expires)) => {
                let same = current
                    .alternative
                    .as_ref()
                    .is_some_and(|(p, _)| *p == place);
                if !same {
                    tracing::debug!(origin = %self.origin, alternative = %format!("{}:{}", place.0, place.1), "HTTP/3 alternative from alt-svc");
                    let connector = self
                        .h3_origin
                        .connector()
                        .retarget(place.0.clone(), place.1);
                    current.pool = Arc::new(Pool::new(connector, self.backoff));
                }
                current.alternative = Some((place, expires));
            }
        }
        current.pool.clone()
    }

    /// What new calls would go out on now, if a connection is up.
    pub(crate) fn current(&self) -> Option<Transport> {
        if self.h3_pool().ready().is_some() {
            Some(Transport::Http3)
        } else if self.h2.ready().is_some() {
            Some(Transport::Http2)
        } else {
            None
        }
    }

    /// Records the `alt-svc` header of an HTTP/2 response. The usual case,
    /// one value repeated on every response, is learnt again only when it
    /// changes or half its `ma` has passed, not on every call.
    pub(crate) fn learn_alt_svc(&self, headers: &http::HeaderMap) {
        let mut values = headers.get_all(http::header::ALT_SVC).iter();
        let Some(first) = values.next() else {
            return;
        };
        if values.next().is_some() {
            for value in headers.get_all(http::header::ALT_SVC) {
                learn_alt_svc(self.memory, &self.origin, value);
            }
            return;
        }
        let mut last = self.last_alt_svc.lock().expect("auto lock");
        let now = Instant::now();
        if matches!(&*last, Some((value, again)) if value == first && now < *again) {
            return;
        }
        // `clear`, or nothing usable: looked at again after a second.
        let lifetime =
            learn_alt_svc(self.memory, &self.origin, first).unwrap_or(Duration::from_secs(2));
        *last = Some((first.clone(), now + lifetime / 2));
    }

    /// Says where both transports stand, for a call whose deadline passed.
    pub(crate) fn describe(&self) -> String {
        format!(
            "HTTP/3: {}; HTTP/2: {}",
            self.h3_pool().describe(),
            self.h2.describe()
        )
    }

    /// Records the transport of a call; true when it differs from the
    /// last call's.
    fn note(&self, transport: Transport) -> bool {
        let code = transport_code(transport);
        let changed = self.last.swap(code, Ordering::AcqRel) != code;
        if changed {
            tracing::debug!(origin = %self.origin, %transport, "calls now go out over {transport}");
        }
        changed
    }

    /// The connection for the next call.
    pub(crate) async fn pick(&self, wait_for_ready: bool) -> Result<Picked, Status> {
        // The waiting and connecting run in a box (see `Pool::get`).
        match self.ready_or_next() {
            Ok(picked) => Ok(picked),
            Err(Next::Http2) => Box::pin(self.over_http2(wait_for_ready)).await,
            Err(Next::Race(h3)) => Box::pin(self.race(h3, wait_for_ready)).await,
        }
    }

    /// A connection that is up now, without waiting or connecting (QUIC
    /// may start in the background), for a balancer choosing among
    /// endpoints.
    pub(crate) fn ready(&self) -> Option<Picked> {
        self.ready_or_next().ok()
    }

    /// A connection that is up now, or what to do to get one.
    fn ready_or_next(&self) -> Result<Picked, Next> {
        let h3 = self.h3_pool();
        if let Some(conn) = h3.ready() {
            // Moving to HTTP/3 (a connection that finished after HTTP/2
            // won, or a background attempt's) clears a broken mark; calls
            // that stay on HTTP/3 touch no shared state.
            if self.note(Transport::Http3) && self.memory.quic_worked(&quic_key(&h3)) {
                tracing::debug!(origin = %self.origin, "HTTP/3 works again; no longer marked broken");
            }
            return Ok(Picked::Http3(conn));
        }
        let next = match self.memory.quic(&quic_key(&h3)) {
            Quic::Broken => Next::Http2,
            Quic::ProbeDue => {
                // The memory picked this call to probe: it must, and
                // report, or the address would stay marked.
                self.probe(h3, true);
                Next::Http2
            }
            Quic::Unknown => {
                if self.h2.ready().is_some() {
                    // HTTP/2 is up and HTTP/3 is not (lost, or an
                    // alternative just learnt): calls stay on HTTP/2 while
                    // QUIC is tried aside.
                    self.probe(h3, false);
                    Next::Http2
                } else {
                    Next::Race(h3)
                }
            }
        };
        if matches!(next, Next::Http2) {
            if let Some(conn) = self.h2.ready() {
                self.note(Transport::Http2);
                return Ok(Picked::Http2(conn));
            }
        }
        Err(next)
    }

    async fn over_http2(&self, wait_for_ready: bool) -> Result<Picked, Status> {
        let conn = self.h2.get(wait_for_ready).await?;
        self.note(Transport::Http2);
        Ok(Picked::Http2(conn))
    }

    /// A background QUIC attempt; its outcome updates the process's
    /// memory (a failure marks the address broken, or doubles the period).
    /// Unless `due` (the memory chose this caller, and allows one prober
    /// per address), at most one per channel at a time.
    fn probe(&self, h3: Arc<Pool<H3Connector>>, due: bool) {
        if !due && self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let probing = (!due).then(|| self.probing.clone());
        let memory = self.memory;
        let origin = quic_key(&h3);
        let initial = self.broken_period;
        tokio::spawn(async move {
            match h3.get(false).await {
                Ok(_) => {
                    memory.quic_worked(&origin);
                    tracing::debug!(%origin, "HTTP/3 connected in the background; new calls use it");
                }
                Err(error) => {
                    let period = memory.quic_failed(&origin, initial);
                    tracing::debug!(%origin, error = %error.message(), ?period, "HTTP/3 still fails; marked broken");
                }
            }
            if let Some(probing) = probing {
                probing.store(false, Ordering::Release);
            }
        });
    }

    /// QUIC first; TCP too after the race delay or as soon as QUIC fails.
    async fn race(
        &self,
        h3: Arc<Pool<H3Connector>>,
        wait_for_ready: bool,
    ) -> Result<Picked, Status> {
        let key = quic_key(&h3);
        let quic = h3.get(false);
        tokio::pin!(quic);
        let quic_error = tokio::select! {
            result = &mut quic => match result {
                Ok(conn) => return Ok(self.quic_won(&key, conn)),
                Err(error) => Some(error),
            },
            () = tokio::time::sleep(self.race_delay) => None,
        };
        let tcp = self.h2.get(wait_for_ready);
        tokio::pin!(tcp);
        let quic_error = match quic_error {
            Some(error) => error,
            None => tokio::select! {
                biased;
                result = &mut quic => match result {
                    Ok(conn) => return Ok(self.quic_won(&key, conn)),
                    Err(error) => error,
                },
                result = &mut tcp => match result {
                    Ok(conn) => return Ok(self.tcp_won(&key, conn, "did not connect within the race delay")),
                    // HTTP/2 failed; QUIC may still make it.
                    Err(tcp_error) => return match quic.await {
                        Ok(conn) => Ok(self.quic_won(&key, conn)),
                        Err(quic_error) => Err(self.both_failed(&quic_error, &tcp_error)),
                    },
                },
            },
        };
        match tcp.await {
            Ok(conn) => Ok(self.tcp_won(&key, conn, quic_error.message())),
            Err(tcp_error) => Err(self.both_failed(&quic_error, &tcp_error)),
        }
    }

    fn quic_won(&self, key: &str, conn: Arc<H3Connection>) -> Picked {
        self.memory.quic_worked(key);
        self.note(Transport::Http3);
        Picked::Http3(conn)
    }

    fn tcp_won(&self, key: &str, conn: Arc<H2Connection>, why: &str) -> Picked {
        let period = self.memory.quic_failed(key, self.broken_period);
        tracing::debug!(origin = %self.origin, quic = %why, ?period, "HTTP/2 won the race; HTTP/3 marked broken");
        self.note(Transport::Http2);
        Picked::Http2(conn)
    }

    fn both_failed(&self, quic: &Status, tcp: &Status) -> Status {
        Status::unavailable(format!(
            "no connection to {} over HTTP/3 ({}) or HTTP/2 ({})",
            self.authority(),
            quic.message(),
            tcp.message()
        ))
    }
}

/// The key of HTTP/3 at `h3`'s place in the process's memory.
fn quic_key(h3: &Pool<H3Connector>) -> String {
    h3.connector().target.memory_key()
}

/// Records an `alt-svc` value of a response from `origin` in `memory`; a
/// value that does not parse is ignored (and logged). Returns the `ma` of
/// the HTTP/3 alternative recorded, if one was.
fn learn_alt_svc(memory: &Memory, origin: &str, value: &http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    match grpc_h3_core::alt_svc::parse(text) {
        Ok(alt_svc) => memory.learn_alt_svc(origin, &alt_svc),
        Err(e) => {
            tracing::debug!(%origin, error = %e, "alt-svc ignored");
            None
        }
    }
}
