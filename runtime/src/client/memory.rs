//! What the process remembers, shared by every channel: where HTTP/3
//! failed (broken-QUIC memory, as browsers keep it, per QUIC `host:port`)
//! and where origins said HTTP/3 is (Alt-Svc, per origin). Both are bounded; the oldest entries
//! go first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use grpc_h3_core::alt_svc::{AltSvc, Alternative};

/// Origins remembered at most, per table.
pub(crate) const MAX_ORIGINS: usize = 1024;

/// The longest HTTP/3 stays marked broken: 48 hours.
pub(crate) const MAX_BROKEN_PERIOD: Duration = Duration::from_secs(48 * 60 * 60);

/// Where HTTP/3 stands for one origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quic {
    /// Nothing known against it: race it against HTTP/2.
    Unknown,
    /// Marked broken: go straight to HTTP/2.
    Broken,
    /// The broken period passed: use HTTP/2 and try QUIC in the background
    /// (this caller was picked to try it).
    ProbeDue,
}

#[derive(Debug)]
struct Broken {
    until: Instant,
    period: Duration,
    probing: bool,
}

/// An HTTP/3 alternative learnt from `alt-svc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct H3Alternative {
    /// The host to connect to, `None` for the origin's own.
    pub(crate) host: Option<String>,
    pub(crate) port: u16,
    pub(crate) expires: Instant,
}

/// The process's memory of origins.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    broken: Mutex<HashMap<String, Broken>>,
    alt_svc: Mutex<HashMap<String, H3Alternative>>,
    /// Bumped whenever the Alt-Svc table changes, so that channels look it
    /// up only then, not on every call.
    alt_svc_generation: AtomicU64,
}

/// The memory every channel of the process shares.
pub(crate) fn shared() -> &'static Memory {
    static MEMORY: OnceLock<Memory> = OnceLock::new();
    MEMORY.get_or_init(Memory::default)
}

/// Drops the entry that matters least when `map` is full.
fn make_room<V>(map: &mut HashMap<String, V>, key: &str, expiry: impl Fn(&V) -> Instant) {
    if map.len() < MAX_ORIGINS || map.contains_key(key) {
        return;
    }
    if let Some(oldest) = map
        .iter()
        .min_by_key(|(_, v)| expiry(v))
        .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

impl Memory {
    /// Where HTTP/3 stands for `origin`. When a broken period has passed,
    /// one caller gets [`Quic::ProbeDue`] and must report the probe's
    /// outcome ([`Memory::quic_worked`] or [`Memory::quic_failed`]).
    pub(crate) fn quic(&self, origin: &str) -> Quic {
        let mut broken = self.broken.lock().expect("memory lock");
        match broken.get_mut(origin) {
            None => Quic::Unknown,
            Some(entry) if Instant::now() < entry.until || entry.probing => Quic::Broken,
            Some(entry) => {
                entry.probing = true;
                Quic::ProbeDue
            }
        }
    }

    /// HTTP/3 lost to HTTP/2 on `origin` (it failed or was too slow): broken
    /// for `initial` the first time, twice as long as last time on each
    /// repeat, at most 48 hours.
    pub(crate) fn quic_failed(&self, origin: &str, initial: Duration) -> Duration {
        let mut broken = self.broken.lock().expect("memory lock");
        let period = match broken.get(origin) {
            Some(entry) => (entry.period * 2).min(MAX_BROKEN_PERIOD),
            None => initial.min(MAX_BROKEN_PERIOD),
        };
        make_room(&mut broken, origin, |b| b.until);
        broken.insert(
            origin.to_owned(),
            Broken {
                until: Instant::now() + period,
                period,
                probing: false,
            },
        );
        period
    }

    /// HTTP/3 works on `origin`: whatever was remembered against it goes.
    /// Returns whether it had been marked broken.
    pub(crate) fn quic_worked(&self, origin: &str) -> bool {
        self.broken
            .lock()
            .expect("memory lock")
            .remove(origin)
            .is_some()
    }

    /// Changes whenever the Alt-Svc table does.
    pub(crate) fn alt_svc_generation(&self) -> u64 {
        self.alt_svc_generation.load(Ordering::Acquire)
    }

    /// Records an `alt-svc` header received from `origin`: its first
    /// `h3` alternative, until its `ma` passes; `clear` forgets it.
    /// Returns the `ma` of the alternative recorded, if one was.
    pub(crate) fn learn_alt_svc(&self, origin: &str, alt_svc: &AltSvc) -> Option<Duration> {
        let mut table = self.alt_svc.lock().expect("memory lock");
        match alt_svc {
            AltSvc::Clear => {
                if table.remove(origin).is_some() {
                    self.alt_svc_generation.fetch_add(1, Ordering::AcqRel);
                }
                None
            }
            AltSvc::Alternatives(alternatives) => {
                let Alternative {
                    host,
                    port,
                    max_age,
                    ..
                } = alternatives.iter().find(|a| a.protocol == "h3")?;
                let expires = Instant::now().checked_add(*max_age)?;
                make_room(&mut table, origin, |a| a.expires);
                let learnt = H3Alternative {
                    host: host.clone(),
                    port: *port,
                    expires,
                };
                let same_place = table
                    .get(origin)
                    .is_some_and(|known| known.host == learnt.host && known.port == learnt.port);
                table.insert(origin.to_owned(), learnt);
                if !same_place {
                    self.alt_svc_generation.fetch_add(1, Ordering::AcqRel);
                }
                Some(*max_age)
            }
        }
    }

    /// The HTTP/3 alternative known for `origin`, if still fresh.
    pub(crate) fn h3_alternative(&self, origin: &str) -> Option<H3Alternative> {
        let mut table = self.alt_svc.lock().expect("memory lock");
        match table.get(origin) {
            Some(alternative) if Instant::now() < alternative.expires => Some(alternative.clone()),
            Some(_) => {
                table.remove(origin);
                self.alt_svc_generation.fetch_add(1, Ordering::AcqRel);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grpc_h3_core::alt_svc::parse;

    #[test]
    fn broken_periods_double_up_to_the_cap_and_clear_on_success() {
        let memory = Memory::default();
        assert_eq!(memory.quic("o"), Quic::Unknown);
        assert_eq!(
            memory.quic_failed("o", Duration::from_secs(300)),
            Duration::from_secs(300)
        );
        assert_eq!(memory.quic("o"), Quic::Broken);
        assert_eq!(
            memory.quic_failed("o", Duration::from_secs(300)),
            Duration::from_secs(600)
        );
        for _ in 0..20 {
            memory.quic_failed("o", Duration::from_secs(300));
        }
        assert_eq!(
            memory.quic_failed("o", Duration::from_secs(300)),
            MAX_BROKEN_PERIOD
        );
        assert!(memory.quic_worked("o"));
        assert_eq!(memory.quic("o"), Quic::Unknown);
        assert!(!memory.quic_worked("o"));
    }

    #[test]
    fn one_caller_probes_when_the_period_has_passed() {
        let memory = Memory::default();
        memory.quic_failed("o", Duration::ZERO);
        assert_eq!(memory.quic("o"), Quic::ProbeDue);
        assert_eq!(
            memory.quic("o"),
            Quic::Broken,
            "a second caller does not probe too"
        );
        // The probe failed: broken again, for longer (0 doubled stays 0 here,
        // so the next caller probes again).
        memory.quic_failed("o", Duration::ZERO);
        assert_eq!(memory.quic("o"), Quic::ProbeDue);
    }

    #[test]
    fn tables_are_bounded() {
        let memory = Memory::default();
        let alt = parse(r#"h3=":1""#).unwrap();
        for i in 0..MAX_ORIGINS + 100 {
            memory.quic_failed(&format!("o{i}"), Duration::from_secs(i as u64 + 1));
            memory.learn_alt_svc(&format!("o{i}"), &alt);
        }
        assert_eq!(memory.broken.lock().unwrap().len(), MAX_ORIGINS);
        assert_eq!(memory.alt_svc.lock().unwrap().len(), MAX_ORIGINS);
        // The entries that expire first went first.
        assert_eq!(memory.quic("o0"), Quic::Unknown);
        assert_eq!(memory.quic(&format!("o{}", MAX_ORIGINS + 99)), Quic::Broken);
    }

    #[test]
    fn alt_svc_is_learnt_expires_and_clears() {
        let memory = Memory::default();
        memory.learn_alt_svc("o", &parse(r#"h2=":1", h3="alt:8443"; ma=60"#).unwrap());
        let alternative = memory.h3_alternative("o").unwrap();
        assert_eq!(
            (alternative.host.as_deref(), alternative.port),
            (Some("alt"), 8443)
        );
        memory.learn_alt_svc("o", &parse("clear").unwrap());
        assert_eq!(memory.h3_alternative("o"), None);
        memory.learn_alt_svc("o", &parse(r#"h3=":9"; ma=0"#).unwrap());
        assert_eq!(memory.h3_alternative("o"), None, "ma=0 is already stale");
        memory.learn_alt_svc("o", &parse(r#"h2=":9""#).unwrap());
        assert_eq!(memory.h3_alternative("o"), None, "only h3 is remembered");
    }

    #[test]
    fn the_generation_changes_only_when_an_alternative_does() {
        let memory = Memory::default();
        let start = memory.alt_svc_generation();
        memory.learn_alt_svc("o", &parse(r#"h3=":1""#).unwrap());
        let learnt = memory.alt_svc_generation();
        assert_ne!(learnt, start);
        // The same alternative again (a refreshed `ma`): no change.
        memory.learn_alt_svc("o", &parse(r#"h3=":1"; ma=99"#).unwrap());
        assert_eq!(memory.alt_svc_generation(), learnt);
        memory.learn_alt_svc("o", &parse(r#"h3=":2""#).unwrap());
        assert_ne!(memory.alt_svc_generation(), learnt);
        let moved = memory.alt_svc_generation();
        memory.learn_alt_svc("o", &parse("clear").unwrap());
        assert_ne!(memory.alt_svc_generation(), moved);
    }
}
