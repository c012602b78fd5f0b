//! One QUIC connection on the server: handshake under its timeout, the h3
//! accept loop, GOAWAY (on drain or when idle too long), and the
//! early-reset budget.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

use super::stream;
use crate::extensions::PeerInfo;
use crate::server::activity::Activity;
use crate::server::stats::Held;
use crate::server::Shared;
use crate::transport::quic::{self, ConnState, ServerStreams, StopSignals};
use crate::transport::INITIAL_STREAM_CREDIT;

/// H3_NO_ERROR.
const NO_ERROR: u32 = 0x100;
/// H3_EXCESSIVE_LOAD.
const EXCESSIVE_LOAD: u32 = 0x107;
/// Bounds on how long a connection with nothing left to do lingers after
/// its GOAWAY before closing (three round trips, within these).
const CLOSE_LINGER_MIN: Duration = Duration::from_millis(20);
const CLOSE_LINGER_MAX: Duration = Duration::from_secs(1);

/// What every request on one connection shares.
pub(crate) struct ConnectionContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: PeerInfo,
    pub(crate) stop_signals: StopSignals,
    /// What the connection's streams share in the QUIC adapter.
    pub(crate) conn_state: Arc<ConnState>,
    quic: quinn::Connection,
    /// Calls open on this connection, for the idle timer.
    activity: Arc<Activity>,
    early_resets: Mutex<TokenBucket>,
    /// Whether the TLS handshake has completed: before, requests may be
    /// 0-RTT early data, which only replay-safe methods may act on.
    pub(crate) handshake_done: AtomicBool,
}

impl ConnectionContext {
    /// Records a stream the client cancelled before the server answered;
    /// past the budget the connection is closed with H3_EXCESSIVE_LOAD.
    pub(crate) fn early_reset(&self) {
        let exhausted = self
            .early_resets
            .lock()
            .expect("early reset lock")
            .take(Instant::now());
        if exhausted && self.quic.close_reason().is_none() {
            self.shared
                .meters
                .counters
                .early_reset_closes
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %self.peer.addr, "too many streams cancelled before an answer (rapid reset); closing the connection");
            self.quic.close(
                quinn::VarInt::from_u32(EXCESSIVE_LOAD),
                b"too many streams cancelled before the server answered",
            );
        }
    }
}

/// A token bucket: `capacity` tokens, refilled at `capacity` per `period`.
struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(capacity: u32, period: Duration, now: Instant) -> TokenBucket {
        let capacity = f64::from(capacity);
        TokenBucket {
            capacity,
            per_second: capacity / period.as_secs_f64().max(f64::MIN_POSITIVE),
            tokens: capacity,
            last: now,
        }
    }

    /// Takes a token; returns whether the bucket was already empty.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            false
        } else {
            true
        }
    }
}

fn peer_info(conn: &quinn::Connection) -> PeerInfo {
    let certificates = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|certs| Arc::new(*certs));
    PeerInfo {
        addr: conn.remote_address(),
        certificates,
    }
}

type H3Connection = h3::server::Connection<quic::Connection, bytes::Bytes>;

/// A handshake still completing while the connection already serves
/// 0-RTT calls: what it resolves with, the handshake gauge it holds, and
/// when it times out.
struct PendingHandshake {
    completed: quinn::ZeroRttAccepted,
    _gauge: Held,
    deadline: Instant,
}

impl PendingHandshake {
    /// Whether the handshake completed in time (a failed handshake ends
    /// the connection, which the accept loop sees).
    async fn finish(self) -> bool {
        tokio::time::timeout_at(self.deadline, self.completed)
            .await
            .is_ok()
    }
}

/// Completes the handshake and the HTTP/3 setup within the handshake
/// timeout; with 0-RTT, the HTTP/3 setup only, the handshake going on
/// while early calls are served.
async fn establish(
    incoming: quinn::Incoming,
    shared: &Arc<Shared>,
    conn_state: Arc<ConnState>,
    streams: ServerStreams,
) -> Option<(quinn::Connection, H3Connection, Option<PendingHandshake>)> {
    let gauge = Held::enter(shared, |s| &s.meters.handshakes);
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            tracing::debug!(error = %e, "could not accept a connection");
            return None;
        }
    };
    let setup = async {
        let (conn, completed) = if shared.config.early_data.accepted {
            match connecting.into_0rtt() {
                Ok((conn, completed)) => (conn, Some(completed)),
                Err(connecting) => (connecting.await.map_err(|e| e.to_string())?, None),
            }
        } else {
            (connecting.await.map_err(|e| e.to_string())?, None)
        };
        let h3_conn = h3::server::builder()
            .max_field_section_size(shared.config.max_header_list_size)
            .build(quic::Connection::server(conn.clone(), conn_state, streams))
            .await
            .map_err(|e| format!("HTTP/3 setup failed: {e}"))?;
        Ok::<_, String>((conn, h3_conn, completed))
    };
    match tokio::time::timeout_at(deadline, setup).await {
        Ok(Ok((conn, h3_conn, completed))) => {
            let pending = completed.map(|completed| PendingHandshake {
                completed,
                _gauge: gauge,
                deadline,
            });
            if pending.is_none() {
                shared
                    .meters
                    .counters
                    .connections_accepted
                    .fetch_add(1, Ordering::Relaxed);
            }
            Some((conn, h3_conn, pending))
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "handshake failed");
            None
        }
        Err(_) => {
            shared
                .meters
                .counters
                .handshake_timeouts
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!("handshake timed out");
            None
        }
    }
}

/// Runs one connection until it closes or the server aborts.
pub(crate) async fn serve(incoming: quinn::Incoming, shared: Arc<Shared>) {
    if shared.drain.is_fired() {
        shared
            .meters
            .counters
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        incoming.refuse();
        return;
    }
    let refuse_from = Arc::new(AtomicU64::new(u64::MAX));
    let stop_signals = StopSignals::new(shared.meters.stop_watchers.clone());
    let streams = ServerStreams {
        signals: stop_signals.clone(),
        header_read_timeout: shared.config.header_read_timeout,
        refuse_from: refuse_from.clone(),
    };
    let conn_state = Arc::new(ConnState::new(
        shared.config.max_header_list_size,
        shared.meters.transport.clone(),
    ));
    // Boxed: the handshake and HTTP/3 setup take 5.7 KiB of future state,
    // which would otherwise stay part of the connection's task, and so of
    // every idle connection's memory, long after the handshake.
    let Some((conn, mut h3_conn, pending)) =
        Box::pin(establish(incoming, &shared, conn_state.clone(), streams)).await
    else {
        return;
    };
    let mut handshake = pending.map(|pending| Box::pin(pending.finish()));
    let (count, per) = shared.config.early_reset_limit;
    let ctx = Arc::new(ConnectionContext {
        shared: shared.clone(),
        peer: peer_info(&conn),
        stop_signals,
        conn_state,
        quic: conn.clone(),
        activity: Arc::default(),
        early_resets: Mutex::new(TokenBucket::new(count, per, Instant::now())),
        handshake_done: AtomicBool::new(handshake.is_none()),
    });
    let mut accepted: u64 = 0;
    let mut closing = false;
    let mut credit = StreamCredit::new(&shared.config);
    loop {
        let goaway = tokio::select! {
            result = h3_conn.accept() => match result {
                Ok(Some(resolver)) => {
                    accepted += 1;
                    // Counted before the task runs, so that the idle timer
                    // never sees an accepted call as absent.
                    let call = ctx.activity.open_call();
                    if let Some(raised) = credit.after_accept(ctx.activity.open_calls()) {
                        conn.set_max_concurrent_bi_streams(raised.into());
                    }
                    let task = Held::enter(&shared, |s| &s.meters.tasks);
                    let ctx = ctx.clone();
                    // Boxed: the call's future is several KiB, and tokio
                    // copies a task's future whole when it spawns and when
                    // it completes it; a box is copied once, as a pointer.
                    tokio::spawn(Box::pin(async move {
                        stream::handle(resolver, ctx).await;
                        drop((call, task));
                    }));
                    false
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "connection ended");
                    break;
                }
            },
            completed = async { handshake.as_mut().expect("pending").await }, if handshake.is_some() => {
                handshake = None;
                if !completed {
                    shared.meters.counters.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %ctx.peer.addr, "handshake timed out after 0-RTT");
                    break;
                }
                ctx.handshake_done.store(true, Ordering::Release);
                shared.meters.counters.connections_accepted.fetch_add(1, Ordering::Relaxed);
                false
            }
            () = shared.drain.fired(), if !closing => true,
            () = ctx.activity.idle_for(shared.config.max_connection_idle), if !closing => {
                shared.meters.counters.idle_closes.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %ctx.peer.addr, "closing an idle connection");
                true
            }
            // After GOAWAY: once the last call is over (its response
            // acknowledged), nothing is left to wait for but the GOAWAY
            // frame itself, given a few round trips to arrive.
            () = async {
                ctx.activity.quiet().await;
                tokio::time::sleep((conn.rtt() * 3).clamp(CLOSE_LINGER_MIN, CLOSE_LINGER_MAX)).await;
            }, if closing => break,
            () = shared.abort.fired() => break,
        };
        if goaway {
            closing = true;
            // Client bidi stream ids are 0, 4, 8...: the first one we have
            // not accepted is 4 * accepted. h3's shutdown(1) announces
            // exactly that id; the QUIC adapter refuses it and every later
            // one with H3_REQUEST_REJECTED before h3 sees them.
            refuse_from.store(accepted * 4, Ordering::Release);
            if let Err(e) = h3_conn.shutdown(1).await {
                tracing::debug!(error = %e, "could not send GOAWAY");
                break;
            }
        }
    }
    conn.close(quinn::VarInt::from_u32(NO_ERROR), b"");
}

/// Stream credit that grows with use: quinn keeps state for every stream
/// it allows, so a connection starts with [`INITIAL_STREAM_CREDIT`] and
/// doubles it, up to the configured limit, once half is in use.
#[derive(Debug)]
struct StreamCredit {
    now: u32,
    max: u32,
}

impl StreamCredit {
    fn new(config: &crate::server::config::ServerConfig) -> StreamCredit {
        let max = config.max_concurrent_streams;
        StreamCredit {
            now: if config.ramp_stream_credit {
                max.min(INITIAL_STREAM_CREDIT)
            } else {
                max
            },
            max,
        }
    }

    /// The new credit when `open` calls use half of it or more.
    fn after_accept(&mut self, open: usize) -> Option<u32> {
        if self.now >= self.max || open < (self.now / 2) as usize {
            return None;
        }
        self.now = self.now.saturating_mul(2).min(self.max);
        Some(self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_credit_doubles_at_half_use_up_to_the_limit() {
        let config = crate::server::config::ServerConfig {
            max_concurrent_streams: 100,
            ..Default::default()
        };
        let mut credit = StreamCredit::new(&config);
        assert_eq!(credit.now, INITIAL_STREAM_CREDIT);
        assert_eq!(credit.after_accept(15), None);
        assert_eq!(credit.after_accept(16), Some(64));
        assert_eq!(credit.after_accept(31), None);
        assert_eq!(credit.after_accept(32), Some(100));
        assert_eq!(credit.after_accept(100), None);
        let fixed = crate::server::config::ServerConfig {
            ramp_stream_credit: false,
            ..config
        };
        assert_eq!(StreamCredit::new(&fixed).now, 100);
    }

    #[test]
    fn the_early_reset_budget_refills_over_its_period() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, Duration::from_secs(3), start);
        assert!(!bucket.take(start));
        assert!(!bucket.take(start));
        assert!(!bucket.take(start));
        assert!(bucket.take(start), "the fourth at once is over budget");
        // One second later one token is back, and only one.
        let later = start + Duration::from_secs(1);
        assert!(!bucket.take(later));
        assert!(bucket.take(later));
    }
}
