//! gRPC connection backoff (grpc's `connection-backoff.md`): the delay
//! between connection attempts grows from 1 s by ×1.6 up to 120 s, with
//! ±20 % jitter, and each attempt may take at least the minimum connect
//! timeout (20 s).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The backoff parameters; the defaults are grpc's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// Delay after the first failure. Default: 1 s.
    pub initial: Duration,
    /// Growth factor per failure. Default: 1.6.
    pub multiplier: f64,
    /// Relative jitter, both ways. Default: 0.2.
    pub jitter: f64,
    /// Longest delay. Default: 120 s.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
        }
    }
}

/// Where a channel is in its backoff sequence.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    /// The delay before the next attempt, without jitter.
    current: Duration,
}

/// A number in `[0, 1)`, different on every call (jitter needs no more
/// than this, and no dependency).
pub(crate) fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig) -> Backoff {
        Backoff {
            config,
            current: config.initial,
        }
    }

    /// The delay to wait after a failed attempt (counted from that
    /// attempt's start), given `unit` in `[0, 1)` for the jitter; advances
    /// the sequence.
    pub(crate) fn next_delay_with(&mut self, unit: f64) -> Duration {
        let base = self.current;
        let grown = base.as_secs_f64() * self.config.multiplier;
        self.current = Duration::from_secs_f64(grown.min(self.config.max.as_secs_f64()));
        let jitter = self.config.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((base.as_secs_f64() * (1.0 + jitter)).max(0.0))
    }

    /// [`Backoff::next_delay_with`] with random jitter.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.next_delay_with(random_unit())
    }

    /// Back to the initial delay (after a successful connection).
    pub(crate) fn reset(&mut self) {
        self.current = self.config.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_multiplier_up_to_the_cap() {
        let mut backoff = Backoff::new(BackoffConfig::default());
        let delays: Vec<f64> = (0..14)
            .map(|_| backoff.next_delay_with(0.5).as_secs_f64())
            .collect();
        let expected = [1.0, 1.6, 2.56, 4.096, 6.5536];
        for (got, want) in delays.iter().zip(expected) {
            assert!((got - want).abs() < 1e-9, "{delays:?}");
        }
        assert_eq!(*delays.last().unwrap(), 120.0, "{delays:?}");
        backoff.reset();
        assert_eq!(backoff.next_delay_with(0.5), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut low = Backoff::new(BackoffConfig::default());
        let mut high = Backoff::new(BackoffConfig::default());
        assert_eq!(low.next_delay_with(0.0), Duration::from_millis(800));
        assert_eq!(high.next_delay_with(0.99), Duration::from_millis(1196));
        for _ in 0..100 {
            let d = Backoff::new(BackoffConfig::default()).next_delay();
            assert!(
                (Duration::from_millis(800)..Duration::from_millis(1200)).contains(&d),
                "{d:?}"
            );
        }
    }
}
