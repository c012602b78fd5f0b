//! Counters a running server keeps, and the [`ServerStats`] snapshot of
//! them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::transport::quic::TransportCounters;

/// A count of something that exists (a connection, a call, a task) while
/// its [`Gauge`] guard lives.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    value: AtomicUsize,
}

impl Gauge {
    pub(crate) fn get(&self) -> usize {
        self.value.load(Ordering::Acquire)
    }
}

/// Holds one unit of a gauge; notifies `drained` when the gauge returns to
/// zero.
pub(crate) struct Held {
    shared: Arc<super::Shared>,
    gauge: fn(&super::Shared) -> &Gauge,
}

impl Held {
    pub(crate) fn enter(shared: &Arc<super::Shared>, gauge: fn(&super::Shared) -> &Gauge) -> Held {
        gauge(shared).value.fetch_add(1, Ordering::AcqRel);
        Held {
            shared: shared.clone(),
            gauge,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if (self.gauge)(&self.shared)
            .value
            .fetch_sub(1, Ordering::AcqRel)
            == 1
        {
            self.shared.drained.notify_waiters();
        }
    }
}

/// Events a server counts over its lifetime.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) retries_sent: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) early_reset_closes: AtomicU64,
    pub(crate) idle_closes: AtomicU64,
    pub(crate) handler_panics: Arc<AtomicU64>,
    pub(crate) early_data_calls: AtomicU64,
    pub(crate) early_data_refused: AtomicU64,
}

/// Gauges (what exists now) and counters (what happened since start) of a
/// running server, from [`ServerHandle::stats`](super::ServerHandle::stats).
/// Every resource a client can make the server hold is visible here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Calls from their headers until their response is acknowledged.
    pub live_calls: usize,
    /// Calls whose handler or response is still in progress.
    pub running_calls: usize,
    /// Open client connections, handshakes included.
    pub connections: usize,
    /// Handshakes in progress.
    pub handshakes: usize,
    /// Tasks the server has spawned and not yet finished (one per
    /// connection, one per request stream).
    pub tasks: usize,
    /// STOP_SENDING watchers registered for response streams.
    pub stop_watchers: usize,
    /// Connections established (handshake and HTTP/3 setup done) since
    /// the server started.
    pub connections_accepted: u64,
    /// Connection attempts refused: over `max_connections`, or draining.
    pub connections_refused: u64,
    /// QUIC Retry packets sent to validate client addresses.
    pub retries_sent: u64,
    /// Connections dropped for not finishing their handshake in time.
    pub handshake_timeouts: u64,
    /// Request streams refused for not sending their HEADERS in time.
    pub header_timeouts: u64,
    /// Request streams refused at or past the GOAWAY boundary.
    pub refused_after_goaway: u64,
    /// Connections closed for cancelling too many streams before the server
    /// answered (rapid reset).
    pub early_reset_closes: u64,
    /// Connections closed after `max_connection_idle` without calls.
    pub idle_closes: u64,
    /// Handlers (or their response streams) that panicked.
    pub handler_panics: u64,
    /// HTTP/3 frames refused for declaring more than their limit.
    pub refused_frames: u64,
    /// Bytes of unknown or reserved HTTP/3 frames dropped unread.
    pub unknown_frame_bytes: u64,
    /// Zero-length DATA frames dropped.
    pub empty_data_frames: u64,
    /// HTTP/3 DATA frames sent whose payload (16 KiB or more) went to QUIC
    /// without being copied.
    pub frames_sent_without_copy: u64,
    /// HTTP/3 calls run before their connection's handshake completed
    /// (0-RTT early data; replay-safe methods only).
    pub early_data_calls: u64,
    /// HTTP/3 calls refused (H3_REQUEST_REJECTED, not run) for arriving
    /// before the handshake completed while their method is not replay-safe.
    pub early_data_refused: u64,
}

/// Everything the stats are read from.
pub(crate) struct Meters {
    pub(crate) live_calls: Gauge,
    pub(crate) running_calls: Gauge,
    pub(crate) connections: Gauge,
    pub(crate) handshakes: Gauge,
    pub(crate) tasks: Gauge,
    pub(crate) stop_watchers: Arc<AtomicUsize>,
    pub(crate) counters: Counters,
    pub(crate) transport: Arc<TransportCounters>,
}

impl Meters {
    pub(crate) fn new() -> Meters {
        Meters {
            live_calls: Gauge::default(),
            running_calls: Gauge::default(),
            connections: Gauge::default(),
            handshakes: Gauge::default(),
            tasks: Gauge::default(),
            stop_watchers: Arc::default(),
            counters: Counters::default(),
            transport: Arc::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> ServerStats {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let t = &self.transport;
        ServerStats {
            live_calls: self.live_calls.get(),
            running_calls: self.running_calls.get(),
            connections: self.connections.get(),
            handshakes: self.handshakes.get(),
            tasks: self.tasks.get(),
            stop_watchers: self.stop_watchers.load(Ordering::Acquire),
            connections_accepted: count(&self.counters.connections_accepted),
            connections_refused: count(&self.counters.connections_refused),
            retries_sent: count(&self.counters.retries_sent),
            handshake_timeouts: count(&self.counters.handshake_timeouts),
            header_timeouts: count(&t.header_timeouts),
            refused_after_goaway: count(&t.refused_after_goaway),
            early_reset_closes: count(&self.counters.early_reset_closes),
            idle_closes: count(&self.counters.idle_closes),
            handler_panics: count(&self.counters.handler_panics),
            refused_frames: count(&t.refused_frames),
            unknown_frame_bytes: count(&t.unknown_frame_bytes),
            empty_data_frames: count(&t.empty_data_frames),
            frames_sent_without_copy: count(&t.frames_handed_over),
            early_data_calls: count(&self.counters.early_data_calls),
            early_data_refused: count(&self.counters.early_data_refused),
        }
    }
}
