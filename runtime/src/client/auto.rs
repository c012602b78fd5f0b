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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// HTTP/3 connections to an Alt-Svc alternative, by its host and port.
type AlternativePool = ((String, u16), Arc<Pool<H3Connector>>);

/// Both transports to one origin, and the choice between them.
pub(crate) struct Auto {
    /// `https://host:port`, the key of the process's memory.
    origin: String,
    /// HTTP/3 at the origin's own host and port.
    h3_origin: Arc<Pool<H3Connector>>,
    /// HTTP/3 at an Alt-Svc alternative, once one is known.
    h3_alternative: Mutex<Option<AlternativePool>>,
    h2: Arc<Pool<H2Connector>>,
    race_delay: Duration,
    broken_period: Duration,
    backoff: BackoffConfig,
    memory: &'static Memory,
    /// A background QUIC attempt is running.
    probing: Arc<AtomicBool>,
    /// The transport the last call went out on, to log changes.
    last: Mutex<Option<Transport>>,
}

impl Auto {
    pub(crate) fn new(
        h3: H3Connector,
        h2: H2Connector,
        backoff: BackoffConfig,
        race_delay: Duration,
        broken_period: Duration,
    ) -> Auto {
        Auto {
            origin: format!("https://{}", h2.target.authority()),
            h3_origin: Arc::new(Pool::new(h3, backoff)),
            h3_alternative: Mutex::default(),
            h2: Arc::new(Pool::new(h2, backoff)),
            race_delay,
            broken_period,
            backoff,
            memory: memory::shared(),
            probing: Arc::default(),
            last: Mutex::default(),
        }
    }

    /// `host:port` of the origin.
    pub(crate) fn authority(&self) -> String {
        self.h2.authority()
    }

    /// Where HTTP/3 is tried now: an Alt-Svc alternative if one is known
    /// and fresh, else the origin itself.
    pub(crate) fn h3_pool(&self) -> Arc<Pool<H3Connector>> {
        let Some(alternative) = self.memory.h3_alternative(&self.origin) else {
            return self.h3_origin.clone();
        };
        let origin = &self.h3_origin.connector().target;
        let host = alternative.host.unwrap_or_else(|| origin.host.clone());
        let key = (host, alternative.port);
        if key.0 == origin.host && key.1 == origin.port {
            return self.h3_origin.clone();
        }
        let mut slot = self.h3_alternative.lock().expect("auto lock");
        match &*slot {
            Some((known, pool)) if *known == key => pool.clone(),
            _ => {
                tracing::debug!(origin = %self.origin, alternative = %format!("{}:{}", key.0, key.1), "HTTP/3 alternative from alt-svc");
                let connector = self.h3_origin.connector().retarget(key.0.clone(), key.1);
                let pool = Arc::new(Pool::new(connector, self.backoff));
                *slot = Some((key, pool.clone()));
                pool
            }
        }
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

    /// Records an `alt-svc` header value from an HTTP/2 response.
    pub(crate) fn learn_alt_svc(&self, value: &http::HeaderValue) {
        learn_alt_svc(self.memory, &self.origin, value);
    }

    /// Says where both transports stand, for a call whose deadline passed.
    pub(crate) fn describe(&self) -> String {
        format!(
            "HTTP/3: {}; HTTP/2: {}",
            self.h3_pool().describe(),
            self.h2.describe()
        )
    }

    fn note(&self, transport: Transport) {
        let mut last = self.last.lock().expect("auto lock");
        if *last != Some(transport) {
            tracing::debug!(origin = %self.origin, %transport, "calls now go out over {transport}");
            *last = Some(transport);
        }
    }

    /// The connection for the next call.
    pub(crate) async fn pick(&self, wait_for_ready: bool) -> Result<Picked, Status> {
        let h3 = self.h3_pool();
        if let Some(conn) = h3.ready() {
            if self.memory.quic_worked(&h3.authority()) {
                tracing::debug!(origin = %self.origin, "HTTP/3 works again; no longer marked broken");
            }
            self.note(Transport::Http3);
            return Ok(Picked::Http3(conn));
        }
        match self.memory.quic(&h3.authority()) {
            Quic::Broken => return self.over_http2(wait_for_ready).await,
            Quic::ProbeDue => {
                self.probe(h3);
                return self.over_http2(wait_for_ready).await;
            }
            Quic::Unknown => {}
        }
        if let Some(conn) = self.h2.ready() {
            // HTTP/2 is up and HTTP/3 is not (lost, or an alternative just
            // learnt): calls stay on HTTP/2 while QUIC is tried aside.
            self.probe(h3);
            self.note(Transport::Http2);
            return Ok(Picked::Http2(conn));
        }
        self.race(h3, wait_for_ready).await
    }

    async fn over_http2(&self, wait_for_ready: bool) -> Result<Picked, Status> {
        let conn = self.h2.get(wait_for_ready).await?;
        self.note(Transport::Http2);
        Ok(Picked::Http2(conn))
    }

    /// One background QUIC attempt at a time; its outcome updates the
    /// process's memory (a failure doubles the broken period).
    fn probe(&self, h3: Arc<Pool<H3Connector>>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let probing = self.probing.clone();
        let memory = self.memory;
        let origin = h3.authority();
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
            probing.store(false, Ordering::Release);
        });
    }

    /// QUIC first; TCP too after the race delay or as soon as QUIC fails.
    async fn race(
        &self,
        h3: Arc<Pool<H3Connector>>,
        wait_for_ready: bool,
    ) -> Result<Picked, Status> {
        let key = h3.authority();
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

/// Records every `alt-svc` value of a response from `origin` in `memory`;
/// a value that does not parse is ignored (and logged).
pub(crate) fn learn_alt_svc(memory: &Memory, origin: &str, value: &http::HeaderValue) {
    let Ok(text) = value.to_str() else {
        return;
    };
    match grpc_h3_core::alt_svc::parse(text) {
        Ok(alt_svc) => memory.learn_alt_svc(origin, &alt_svc),
        Err(e) => tracing::debug!(%origin, error = %e, "alt-svc ignored"),
    }
}
