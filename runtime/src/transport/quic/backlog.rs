//! Back-pressure between h3's receive buffer and quinn.
//!
//! h3 0.0.8 pulls one more chunk from the QUIC stream every time it looks
//! for a frame or for DATA payload, whether or not what it already holds
//! would do. When a packet carries several DATA frames (a stream of small
//! messages), it pulls chunks faster than the application takes frames, and
//! everything quinn has ends up in h3's buffer. Two things follow:
//!
//! - quinn returns flow-control credit for what h3 pulled, so the peer is
//!   no longer held back by the stream window: a reader slower than its
//!   peer buffers whatever the peer sends, without bound;
//! - h3 recomputes its buffer's length by walking its list of chunks, several
//!   times per frame, so each frame costs time proportional to the chunks
//!   held (a stream of 100-byte messages over HTTP/3 ran at a third of its
//!   HTTP/2 rate).
//!
//! The adapter therefore counts the DATA payload it hands to h3 and the body
//! wrappers count what h3 hands on to the application. While h3 holds more
//! than [`BACKLOG_LIMIT`] bytes of payload, the receive side does not read
//! from quinn: h3 serves the application from its buffer, and quinn's window
//! (and the peer) wait for the application, as flow control intends.
//!
//! Both sides find one stream's counter through [`Backlogs`], keyed by
//! stream id: the adapter registers it when the stream opens, the body
//! wrapper claims it once h3 has handed over the stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// DATA payload h3 may hold for the application before the adapter stops
/// reading from quinn. Up to one more chunk (one packet's worth, or what
/// quinn had reassembled) arrives on top of it.
pub(crate) const BACKLOG_LIMIT: u64 = 16 * 1024;

/// DATA payload handed to h3 and not yet handed on, for one stream.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    held: AtomicU64,
    claimed: AtomicBool,
}

impl Backlog {
    /// Payload the adapter passed to h3.
    pub(crate) fn handed_to_h3(&self, bytes: u64) {
        if bytes > 0 {
            self.held.fetch_add(bytes, Ordering::AcqRel);
        }
    }

    /// Payload h3 passed on to the application.
    pub(crate) fn delivered(&self, bytes: u64) {
        // Saturating: a miscount must not wrap into "full" forever.
        let _ = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    /// Payload h3 holds now.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Whether h3 holds enough that reading more can wait. Only a claimed
    /// counter fills: nobody counts off what h3 hands on from a stream
    /// whose body wrapper never claimed it, and gating such a stream could
    /// never lift.
    pub(crate) fn full(&self) -> bool {
        self.claimed.load(Ordering::Acquire) && self.held() > BACKLOG_LIMIT
    }
}

/// The backlogs of one connection's request streams whose body wrapper
/// has not claimed them yet.
#[derive(Debug, Default)]
pub(crate) struct Backlogs {
    unclaimed: Mutex<HashMap<u64, Arc<Backlog>>>,
}

impl Backlogs {
    /// A counter for stream `id`, kept until claimed or forgotten.
    pub(super) fn register(&self, id: u64) -> Arc<Backlog> {
        let backlog = Arc::new(Backlog::default());
        self.unclaimed
            .lock()
            .expect("backlog lock")
            .insert(id, backlog.clone());
        backlog
    }

    /// The counter of stream `id`, for the wrapper that reads its body.
    pub(crate) fn claim(&self, id: u64) -> Option<Arc<Backlog>> {
        let backlog = self.unclaimed.lock().expect("backlog lock").remove(&id)?;
        backlog.claimed.store(true, Ordering::Release);
        Some(backlog)
    }

    /// Drops the entry of a stream that ends unclaimed (refused, or failed
    /// before its headers).
    pub(super) fn forget(&self, id: u64, backlog: &Backlog) {
        if !backlog.claimed.load(Ordering::Acquire) {
            self.unclaimed.lock().expect("backlog lock").remove(&id);
        }
    }

    /// Streams registered and not claimed or forgotten.
    #[cfg(test)]
    pub(crate) fn unclaimed(&self) -> usize {
        self.unclaimed.lock().expect("backlog lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_and_forgotten_streams_leave_nothing_behind() {
        let backlogs = Backlogs::default();
        let first = backlogs.register(0);
        let second = backlogs.register(4);
        assert_eq!(backlogs.unclaimed(), 2);
        let claimed = backlogs.claim(0).expect("registered");
        assert!(Arc::ptr_eq(&claimed, &first));
        backlogs.forget(0, &first);
        backlogs.forget(4, &second);
        assert_eq!(backlogs.unclaimed(), 0);
        assert!(backlogs.claim(4).is_none());
    }

    #[test]
    fn an_unclaimed_counter_never_fills() {
        let backlogs = Backlogs::default();
        let backlog = backlogs.register(0);
        backlog.handed_to_h3(2 * BACKLOG_LIMIT);
        assert!(!backlog.full());
        backlogs.claim(0).expect("registered");
        assert!(backlog.full());
    }

    #[test]
    fn full_above_the_limit_and_never_below_zero() {
        let backlog = Backlog::default();
        backlog.claimed.store(true, Ordering::Release);
        backlog.handed_to_h3(BACKLOG_LIMIT);
        assert!(!backlog.full());
        backlog.handed_to_h3(1);
        assert!(backlog.full());
        backlog.delivered(1);
        assert!(!backlog.full());
        backlog.delivered(2 * BACKLOG_LIMIT);
        assert_eq!(backlog.held(), 0);
    }
}
