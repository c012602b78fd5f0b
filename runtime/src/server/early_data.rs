//! 0-RTT on the server: which calls may run from TLS early data, the
//! session tickets that make early data possible, and the
//! [`ServerBuilder`] methods that configure both.
//!
//! A client resuming a session may send requests with its first packet
//! (0-RTT). Such a request can be captured and replayed, so the server runs
//! it before the handshake completes only if its method is safe to repeat
//! (see [`NamedService::REPLAY_SAFE_METHODS`](super::NamedService::REPLAY_SAFE_METHODS)).
//! Any other request that arrives before the handshake completes is
//! refused with H3_REQUEST_REJECTED, which tells the client it was not
//! processed; the client sends it again once the handshake is done.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

use super::ServerBuilder;

/// Session tickets the server remembers at most (each a few hundred
/// bytes); past this the oldest are forgotten and their clients make a
/// full handshake.
pub(crate) const TICKET_CACHE_ENTRIES: usize = 4096;

/// The server's 0-RTT settings.
#[derive(Clone, Debug)]
pub(crate) struct EarlyDataConfig {
    /// Whether early data is accepted at all (our own TLS configuration).
    pub(crate) enabled: bool,
    /// How long a session ticket can be used to resume.
    pub(crate) ticket_lifetime: Duration,
    /// Each service's replay-safe methods, by service name.
    by_service: HashMap<String, &'static [&'static str]>,
    /// Further replay-safe methods, as full paths (`/pkg.Service/Method`).
    paths: HashSet<String>,
    /// Whether HTTP/3 connections run requests before their handshake
    /// completes: decided when the server is assembled, from the TLS
    /// configuration in effect.
    pub(crate) accepted: bool,
}

impl Default for EarlyDataConfig {
    fn default() -> Self {
        EarlyDataConfig {
            enabled: true,
            ticket_lifetime: Duration::from_secs(24 * 60 * 60),
            by_service: HashMap::new(),
            paths: HashSet::new(),
            accepted: false,
        }
    }
}

impl EarlyDataConfig {
    /// Whether the method at `path` (`/pkg.Service/Method`) may run from
    /// early data.
    pub(crate) fn replay_safe(&self, path: &str) -> bool {
        if self.paths.contains(path) {
            return true;
        }
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return false;
        };
        self.by_service
            .get(service)
            .is_some_and(|methods| methods.contains(&method))
    }

    /// Records the replay-safe methods of the service named `service`,
    /// replacing those of an earlier service with that name.
    pub(crate) fn set_service(&mut self, service: &str, methods: &'static [&'static str]) {
        self.by_service.insert(service.to_owned(), methods);
    }
}

impl ServerBuilder {
    /// Whether HTTP/3 clients resuming a session may send calls in TLS
    /// early data (0-RTT), saving them a round trip. Default: on.
    ///
    /// Only methods that are safe to repeat run from early data: those the
    /// proto marks `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT`
    /// (generated services list them), and those named with
    /// [`allow_early_data`](Self::allow_early_data). Every other call that
    /// arrives before the handshake completes is refused with
    /// H3_REQUEST_REJECTED (never run), and the client sends it again after
    /// the handshake, as RFC 8470's 425 (Too Early) asks of HTTP clients.
    ///
    /// Replay: session tickets are kept by this server process and each
    /// can be used once, so a replay of captured early data is refused by
    /// TLS and never reaches a service. What remains: an attacker who
    /// intercepts a client's first flight and races a copy ahead of it can
    /// make a replay-safe method run once more than the client asked (the
    /// client's own copy is then refused and sent again). This is why only
    /// methods declared safe to repeat run from early data.
    ///
    /// Early data is off when the server verifies client certificates
    /// ([`client_ca_certificate`](Self::client_ca_certificate)): a call must
    /// not run before the client has proved who it is. With your own
    /// [`rustls_config`](Self::rustls_config), its `max_early_data_size`
    /// decides (0 or `u32::MAX` for QUIC) and its session storage is used;
    /// if it verifies client certificates, set `max_early_data_size` to 0,
    /// since a call run from early data cannot see the client's
    /// certificate yet.
    /// HTTP/2 never accepts early data (tickets still resume sessions).
    ///
    /// ```
    /// use grpc_h3::server::Server;
    ///
    /// let builder = Server::builder().dev_certificate().early_data(false);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn early_data(mut self, enabled: bool) -> Self {
        self.config.early_data.enabled = enabled;
        self
    }

    /// How long a session ticket the server issues can resume a session
    /// (and so carry early data); older tickets lead to a full handshake.
    /// The server remembers at most 4,096 tickets. Default: 24 hours.
    #[must_use]
    pub fn session_ticket_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.early_data.ticket_lifetime = lifetime;
        self
    }

    /// Lets the method at `path` (`/pkg.Service/Method`) run from 0-RTT
    /// early data, as methods marked idempotent in their proto do: for
    /// services whose generated code does not say (tonic's, hand-written
    /// routes). Only for methods that are safe to run twice; see
    /// [`early_data`](Self::early_data).
    #[must_use]
    pub fn allow_early_data(mut self, path: impl Into<String>) -> Self {
        self.config.early_data.paths.insert(path.into());
        self
    }

    /// Whether HTTP/3 connections with TLS configuration `tls` run
    /// replay-safe calls from early data: ours when early data is on and no
    /// client certificate is asked for; the user's own when its
    /// `max_early_data_size` allows early data.
    pub(super) fn accepts_early_data(&self, tls: &rustls::ServerConfig) -> bool {
        match &self.rustls_config {
            Some(_) => tls.max_early_data_size != 0,
            None => self.config.early_data.enabled && self.client_auth.is_none(),
        }
    }
}

/// Server session storage whose tickets expire after a lifetime and can
/// each be used once (rustls takes a TLS 1.3 ticket out of the store when a
/// client resumes with it).
#[derive(Debug)]
pub(crate) struct TicketStore {
    inner: Arc<ServerSessionMemoryCache>,
    lifetime: Duration,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl TicketStore {
    /// A store of at most [`TICKET_CACHE_ENTRIES`] tickets, each usable for
    /// `lifetime`.
    pub(crate) fn new(lifetime: Duration) -> Arc<TicketStore> {
        Arc::new(TicketStore {
            inner: ServerSessionMemoryCache::new(TICKET_CACHE_ENTRIES),
            lifetime,
        })
    }

    /// The session stored with its issue time, if still within the
    /// lifetime.
    fn fresh(&self, stored: Vec<u8>) -> Option<Vec<u8>> {
        let (issued, session) = stored.split_at_checked(8)?;
        let issued = u64::from_be_bytes(issued.try_into().ok()?);
        let age = Duration::from_millis(now_millis().saturating_sub(issued));
        (age < self.lifetime).then(|| session.to_vec())
    }
}

impl StoresServerSessions for TicketStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut stored = Vec::with_capacity(8 + value.len());
        stored.extend_from_slice(&now_millis().to_be_bytes());
        stored.extend_from_slice(&value);
        self.inner.put(key, stored)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key).and_then(|stored| self.fresh(stored))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.take(key).and_then(|stored| self.fresh(stored))
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_resumes_once_and_only_within_its_lifetime() {
        let store = TicketStore::new(Duration::from_secs(3600));
        assert!(store.put(b"ticket".to_vec(), b"session".to_vec()));
        assert_eq!(store.take(b"ticket").as_deref(), Some(&b"session"[..]));
        assert_eq!(store.take(b"ticket"), None, "a ticket is single-use");

        let expired = TicketStore::new(Duration::ZERO);
        assert!(expired.put(b"ticket".to_vec(), b"session".to_vec()));
        assert_eq!(expired.take(b"ticket"), None);
        assert!(expired.put(b"id".to_vec(), b"session".to_vec()));
        assert_eq!(expired.get(b"id"), None);
    }

    #[test]
    fn the_ticket_store_forgets_the_oldest_past_its_bound() {
        let store = TicketStore::new(Duration::from_secs(3600));
        for i in 0..=TICKET_CACHE_ENTRIES {
            assert!(store.put(i.to_be_bytes().to_vec(), b"session".to_vec()));
        }
        assert_eq!(store.get(&0usize.to_be_bytes()), None, "the oldest went");
        let newest = TICKET_CACHE_ENTRIES.to_be_bytes();
        assert!(store.get(&newest).is_some());
    }

    #[test]
    fn replay_safe_methods_come_from_their_service_or_by_path() {
        let mut config = EarlyDataConfig::default();
        config.set_service("pkg.Kv", &["Get", "Watch"]);
        config.paths.insert("/other.Svc/Read".to_owned());
        assert!(config.replay_safe("/pkg.Kv/Get"));
        assert!(!config.replay_safe("/pkg.Kv/Put"));
        assert!(config.replay_safe("/other.Svc/Read"));
        assert!(!config.replay_safe("/other.Svc/Write"));
        assert!(!config.replay_safe("pkg.Kv/Get"));
        assert!(!config.replay_safe("/pkg.Kv"));
        // A service added again under the same name replaces the first.
        config.set_service("pkg.Kv", &[]);
        assert!(!config.replay_safe("/pkg.Kv/Get"));
    }
}
