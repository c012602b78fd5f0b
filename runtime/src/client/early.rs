//! 0-RTT on the client: a resumed HTTP/3 connection is usable before its
//! handshake completes, for calls that are safe to replay. Every other
//! call waits for the handshake.
//!
//! If the server rejects the early data, quinn discards the streams sent
//! in it and the calls on them fail as H3_REQUEST_REJECTED (not processed:
//! see `transport::quic`), so the channel sends them again on another
//! connection, made with a full handshake; the rejected connection takes no
//! new calls. If the
//! handshake fails or does not complete within the connect timeout, the
//! connection is closed, the calls sent early count as unprocessed (they
//! are replay-safe, so sending them again is allowed either way), and the
//! address is no longer trusted for 0-RTT.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_h3_core::retry::Idempotency;
use tokio::sync::watch;

use crate::tls::resume::SessionMemory;
use crate::transport::quic::ConnState;
use crate::Body;

/// H3_NO_ERROR, for closing a connection whose handshake never completed.
const NO_ERROR: u32 = 0x100;

/// Whether `request` may travel in 0-RTT early data: its method is marked
/// `NO_SIDE_EFFECTS` or `IDEMPOTENT` in its proto (generated clients say
/// so with the [`Idempotency`] extension).
pub(crate) fn replay_safe(request: &http::Request<Body>) -> bool {
    matches!(
        request.extensions().get::<Idempotency>(),
        Some(Idempotency::NoSideEffects | Idempotency::Idempotent)
    )
}

/// The early phase of a connection opened with 0-RTT: over once the
/// handshake has completed, failed or timed out.
pub(crate) struct EarlyPhase {
    over: watch::Receiver<bool>,
}

impl EarlyPhase {
    /// Whether the handshake is still under way (calls sent now go in
    /// early data).
    pub(crate) fn pending(&self) -> bool {
        !*self.over.borrow()
    }

    /// Resolves once the handshake is over, however it ended.
    pub(crate) async fn finished(&self) {
        let mut over = self.over.clone();
        let _ = over.wait_for(|over| *over).await;
    }
}

/// What watching a 0-RTT handshake needs.
pub(crate) struct Watch {
    pub(crate) completed: quinn::ZeroRttAccepted,
    pub(crate) quic: quinn::Connection,
    pub(crate) state: Arc<ConnState>,
    pub(crate) retired: Arc<AtomicBool>,
    pub(crate) sessions: Arc<SessionMemory>,
    pub(crate) addr: SocketAddr,
    pub(crate) timeout: Duration,
}

impl Watch {
    /// Watches the handshake in a task of its own; the phase it returns
    /// ends with it.
    pub(crate) fn spawn(self) -> EarlyPhase {
        let (done, over) = watch::channel(false);
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(self.timeout, self.completed).await;
            match outcome {
                Ok(true) => self.sessions.answered_at(self.addr),
                Ok(false) if self.quic.close_reason().is_none() => {
                    tracing::debug!(peer = %self.addr, "the server rejected 0-RTT; calls sent early go again on a new connection");
                    // Its other tickets are likely stale too (a restarted
                    // server): the next connection makes a full handshake.
                    self.sessions.forget(self.addr);
                    self.retired.store(true, Ordering::Release);
                }
                failed => {
                    tracing::debug!(peer = %self.addr, timed_out = failed.is_err(), "the handshake after 0-RTT did not complete");
                    self.sessions.forget(self.addr);
                    self.state.abandon_early_data();
                    self.retired.store(true, Ordering::Release);
                    self.quic.close(
                        quinn::VarInt::from_u32(NO_ERROR),
                        b"handshake did not complete",
                    );
                }
            }
            let _ = done.send(true);
        });
        EarlyPhase { over }
    }
}
