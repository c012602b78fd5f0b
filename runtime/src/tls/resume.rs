//! What a client remembers between connections to resume them: TLS
//! session tickets (and the rustls configuration they belong to), and the addresses that completed a QUIC handshake
//! (0-RTT is only sent to an address known to answer, so that a dead
//! address cannot swallow the first calls while Happy Eyeballs would have
//! moved on).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Session tickets kept, across server names.
const SESSIONS: usize = 256;
/// Addresses remembered as answering QUIC.
const ANSWERED: usize = 64;

/// Resumption state shared by every channel built from one
/// [`ClientTlsConfig`](super::ClientTlsConfig) (and its clones, until one
/// changes what it trusts or presents).
#[derive(Debug)]
pub(crate) struct SessionMemory {
    pub(crate) resumption: rustls::client::Resumption,
    /// The rustls configuration built from the `ClientTlsConfig`, once.
    pub(crate) base: Mutex<Option<rustls::ClientConfig>>,
    answered: Mutex<VecDeque<SocketAddr>>,
}

impl SessionMemory {
    pub(crate) fn new() -> Arc<SessionMemory> {
        Arc::new(SessionMemory {
            resumption: rustls::client::Resumption::in_memory_sessions(SESSIONS),
            base: Mutex::default(),
            answered: Mutex::default(),
        })
    }

    /// Records that `addr` completed a QUIC handshake.
    pub(crate) fn answered_at(&self, addr: SocketAddr) {
        let mut answered = self.answered.lock().expect("answered lock");
        if answered.contains(&addr) {
            return;
        }
        if answered.len() == ANSWERED {
            answered.pop_front();
        }
        answered.push_back(addr);
    }

    /// Forgets `addr` (its handshake failed after 0-RTT).
    pub(crate) fn forget(&self, addr: SocketAddr) {
        self.answered
            .lock()
            .expect("answered lock")
            .retain(|a| *a != addr);
    }

    /// Whether `addr` has completed a QUIC handshake before.
    pub(crate) fn has_answered(&self, addr: SocketAddr) -> bool {
        self.answered.lock().expect("answered lock").contains(&addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answering_addresses_are_remembered_up_to_the_bound() {
        let memory = SessionMemory::new();
        let addr = |i: u16| SocketAddr::from(([127, 0, 0, 1], i));
        assert!(!memory.has_answered(addr(1)));
        for i in 1..=(ANSWERED as u16 + 1) {
            memory.answered_at(addr(i));
            memory.answered_at(addr(i));
        }
        assert!(!memory.has_answered(addr(1)), "the oldest is forgotten");
        assert!(memory.has_answered(addr(2)));
        assert!(memory.has_answered(addr(ANSWERED as u16 + 1)));
        assert_eq!(memory.answered.lock().unwrap().len(), ANSWERED);
        memory.forget(addr(2));
        assert!(!memory.has_answered(addr(2)));
    }
}
