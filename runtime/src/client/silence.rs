//! Noticing a dead QUIC peer before the idle timeout: a peer that crashed
//! (or a path that started dropping UDP) sends nothing, not even ACKs,
//! and quinn ignores the ICMP errors that would say so, so the connection
//! looks usable until the idle timeout passes (10 s by default) while
//! every call sent on it waits for its deadline.
//!
//! The evidence used instead: a call abandoned before its response headers
//! (its deadline passed, or it was cancelled) after waiting long enough for
//! any live peer to have acknowledged its request (three round trips plus
//! [`ACK_SLACK`]). The first such call records how many datagrams the
//! connection had received; if a later one, sent after that, is abandoned
//! the same way with not one datagram received since, the peer is silent
//! and the connection is closed: its calls fail UNAVAILABLE at once and the
//! next call connects again (another endpoint, or HTTP/2 when UDP is gone).
//! A slow handler is not silence: its connection still acknowledges.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Margin over three round trips for a peer's ACK (its ACK delay is at
/// most 25 ms by default) and scheduling.
pub(crate) const ACK_SLACK: Duration = Duration::from_millis(100);

/// The first unanswered abandonment of a connection: when, and how many
/// datagrams had been received then.
#[derive(Default)]
pub(crate) struct Silence {
    baseline: Mutex<Option<(Instant, u64)>>,
}

impl Silence {
    /// A call sent at `sent_at` was abandoned before its response headers
    /// at `now`; `received` reads the connection's datagram count. True
    /// when the peer has been silent since an earlier abandonment that
    /// preceded this call.
    pub(crate) fn abandoned(
        &self,
        sent_at: Instant,
        now: Instant,
        rtt: Duration,
        received: impl FnOnce() -> u64,
    ) -> bool {
        if now.saturating_duration_since(sent_at) < rtt * 3 + ACK_SLACK {
            // Too soon for an acknowledgement to be owed.
            return false;
        }
        let received = received();
        let mut baseline = self.baseline.lock().expect("silence lock");
        match *baseline {
            Some((since, count)) if count == received => sent_at > since,
            // First evidence, or the peer spoke since: start counting here.
            _ => {
                *baseline = Some((now, received));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(1);

    #[test]
    fn two_unanswered_abandonments_in_sequence_mean_silence() {
        let silence = Silence::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // The first abandonment only sets the baseline.
        assert!(!silence.abandoned(t0, t0 + s(1), RTT, || 40));
        // A call sent before the baseline proves nothing.
        assert!(!silence.abandoned(
            t0 + Duration::from_millis(500),
            t0 + s(1) + Duration::from_millis(500),
            RTT,
            || 40
        ));
        // Sent after it, abandoned with nothing received since: silent.
        assert!(silence.abandoned(t0 + s(2), t0 + s(3), RTT, || 40));
    }

    #[test]
    fn a_peer_that_acknowledges_is_not_silent() {
        let silence = Silence::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(!silence.abandoned(t0, t0 + s(1), RTT, || 40));
        // Datagrams arrived (ACKs of the request): a slow handler, not a
        // dead peer; the baseline moves.
        assert!(!silence.abandoned(t0 + s(2), t0 + s(3), RTT, || 43));
        assert!(!silence.abandoned(t0 + s(4), t0 + s(5), RTT, || 47));
    }

    #[test]
    fn calls_abandoned_quickly_are_no_evidence() {
        let silence = Silence::default();
        let t0 = Instant::now();
        let quick = Duration::from_millis(20);
        assert!(!silence.abandoned(t0, t0 + quick, RTT, || unreachable!("not read")));
        // Three round trips of 100 ms plus the slack: 400 ms are needed.
        let rtt = Duration::from_millis(100);
        assert!(
            !silence.abandoned(t0, t0 + Duration::from_millis(350), rtt, || unreachable!(
                "not read"
            ))
        );
    }
}
