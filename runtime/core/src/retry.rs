//! Retries as gRFC A6 defines them, without I/O: a [`RetryPolicy`] (how
//! many attempts, which codes, what backoff), the per-channel
//! [`RetryThrottle`] (a token bucket that stops retries while most calls
//! fail), and [`RetryState`], which decides after each failed attempt
//! whether and when the next one goes. The transport drives it: it sends,
//! reports each outcome, and sleeps as told.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::Code;

/// The most attempts a policy may ask for (gRFC A6 caps `maxAttempts`).
pub const MAX_ATTEMPTS_CAP: u32 = 5;

/// The trailer in which a server says when to retry (milliseconds), or
/// not to (a negative or malformed value).
pub const RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// The header telling the server how many attempts went before this one.
pub const PREVIOUS_RPC_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// When and how often a failed call is sent again.
///
/// ```
/// use std::time::Duration;
/// use grpc_h3_core::retry::RetryPolicy;
/// use grpc_h3_core::Code;
///
/// let policy = RetryPolicy::new(4)
///     .initial_backoff(Duration::from_millis(100))
///     .max_backoff(Duration::from_secs(1))
///     .backoff_multiplier(2.0)
///     .retryable_codes([Code::Unavailable, Code::ResourceExhausted]);
/// assert_eq!(policy.max_attempts(), 4);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    backoff_multiplier: f64,
    retryable_codes: Vec<Code>,
    non_idempotent: bool,
}

impl RetryPolicy {
    /// A policy allowing `max_attempts` attempts in all (the first
    /// included; at least 2, at most [`MAX_ATTEMPTS_CAP`], values outside
    /// are clamped), retrying UNAVAILABLE after a backoff of up to 100 ms
    /// that grows ×2 per retry up to 1 s.
    pub fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: max_attempts.clamp(2, MAX_ATTEMPTS_CAP),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            retryable_codes: vec![Code::Unavailable],
            non_idempotent: false,
        }
    }

    /// The first retry waits a random time up to this. Default: 100 ms.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The bound of the backoff's growth. Default: 1 s.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The backoff's growth per retry (values ≤ 0 count as 1). Default: 2.
    pub fn backoff_multiplier(mut self, multiplier: f64) -> Self {
        self.backoff_multiplier = if multiplier > 0.0 { multiplier } else { 1.0 };
        self
    }

    /// The status codes that are retried. Default: UNAVAILABLE.
    pub fn retryable_codes(mut self, codes: impl IntoIterator<Item = Code>) -> Self {
        self.retryable_codes = codes.into_iter().collect();
        self
    }

    /// Applies the policy to methods not marked idempotent in their proto
    /// (`option idempotency_level`) too. Such a method may have had its
    /// effect on the server when an attempt failed, so by default only
    /// idempotent and side-effect-free methods are retried by a policy
    /// (calls the server never processed are retried for every method
    /// regardless). Default: false.
    pub fn retry_non_idempotent(mut self, retry: bool) -> Self {
        self.non_idempotent = retry;
        self
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a failure with `code` may be retried.
    pub fn retries(&self, code: Code) -> bool {
        self.retryable_codes.contains(&code)
    }

    /// Whether the policy applies to a method of this idempotency.
    pub fn applies_to(&self, idempotency: Idempotency) -> bool {
        self.non_idempotent || idempotency != Idempotency::Unknown
    }
}

/// What a method's proto says about repeating it
/// (`google.protobuf.MethodOptions.idempotency_level`); generated clients
/// put it in each call's extensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Not stated: the method may change state each time it runs.
    #[default]
    Unknown,
    /// `NO_SIDE_EFFECTS`: reads only.
    NoSideEffects,
    /// `IDEMPOTENT`: running it twice is the same as once.
    Idempotent,
}

impl Idempotency {
    /// The level from the proto enum's number (0 unknown, 1
    /// `NO_SIDE_EFFECTS`, 2 `IDEMPOTENT`).
    pub fn from_proto(level: i32) -> Idempotency {
        match level {
            1 => Idempotency::NoSideEffects,
            2 => Idempotency::Idempotent,
            _ => Idempotency::Unknown,
        }
    }
}

/// gRFC A6's retry throttling, one per channel: tokens start at
/// `max_tokens`; each failed attempt with a retryable code takes one, each
/// success gives back `token_ratio`; retries are allowed only while more
/// than half the tokens are left. So under sustained failure the channel
/// stops multiplying its load by the retry count.
#[derive(Debug)]
pub struct RetryThrottle {
    /// Thousandths of a token (A6 allows three decimals in the ratio).
    max_milli: u32,
    ratio_milli: u32,
    milli: AtomicU32,
}

impl RetryThrottle {
    /// A throttle with `max_tokens` (1 to 1000) and `token_ratio` (more
    /// than 0, three decimals kept).
    pub fn new(max_tokens: u32, token_ratio: f64) -> RetryThrottle {
        let max_milli = max_tokens.clamp(1, 1000) * 1000;
        RetryThrottle {
            max_milli,
            ratio_milli: ((token_ratio * 1000.0).round() as u32).max(1),
            milli: AtomicU32::new(max_milli),
        }
    }

    /// Records a failed attempt with a retryable code.
    pub fn failure(&self) {
        let _ = self
            .milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(1000))
            });
    }

    /// Records a call that succeeded.
    pub fn success(&self) {
        let max = self.max_milli;
        let _ = self
            .milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some((t + self.ratio_milli).min(max))
            });
    }

    /// Whether a retry may go now.
    pub fn allows_retry(&self) -> bool {
        self.milli.load(Ordering::Acquire) > self.max_milli / 2
    }

    /// Tokens left, for diagnostics.
    pub fn tokens(&self) -> f64 {
        f64::from(self.milli.load(Ordering::Acquire)) / 1000.0
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum RetryDecision {
    /// Send the next attempt after this delay.
    RetryAfter(Duration),
    /// Give the failure to the caller; why no retry.
    Stop(&'static str),
}

/// A server's `grpc-retry-pushback-ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushback {
    /// None sent: the backoff decides.
    None,
    /// Retry after this long.
    After(Duration),
    /// Do not retry (a negative or malformed value).
    Refused,
}

impl Pushback {
    /// Reads the value of a `grpc-retry-pushback-ms` trailer.
    pub fn parse(value: Option<&[u8]>) -> Pushback {
        let Some(value) = value else {
            return Pushback::None;
        };
        match std::str::from_utf8(value).ok().map(str::trim) {
            Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse::<u64>().map_or(Pushback::Refused, |ms| {
                    Pushback::After(Duration::from_millis(ms))
                })
            }
            _ => Pushback::Refused,
        }
    }
}

/// One call's progress through its policy.
#[derive(Debug)]
pub struct RetryState<'a> {
    policy: &'a RetryPolicy,
    /// Attempts made so far.
    attempts: u32,
    /// The bound of the next random backoff.
    backoff: Duration,
}

impl<'a> RetryState<'a> {
    /// A call about to make its first attempt.
    pub fn new(policy: &'a RetryPolicy) -> RetryState<'a> {
        RetryState {
            policy,
            attempts: 1,
            backoff: policy.initial_backoff,
        }
    }

    /// Attempts made so far (the first included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Decides about the attempt that just failed with `code`. `random`
    /// is uniform in `[0, 1)` (the backoff is `random × bound`, A6's full
    /// jitter); `throttle`, the channel's, is told about the failure.
    pub fn after_failure(
        &mut self,
        code: Code,
        pushback: Pushback,
        throttle: Option<&RetryThrottle>,
        random: f64,
    ) -> RetryDecision {
        if !self.policy.retries(code) {
            return RetryDecision::Stop("status code not retryable");
        }
        if let Some(throttle) = throttle {
            throttle.failure();
            if !throttle.allows_retry() {
                return RetryDecision::Stop("retries throttled: too many recent failures");
            }
        }
        if self.attempts >= self.policy.max_attempts {
            return RetryDecision::Stop("no attempts left");
        }
        let delay = match pushback {
            Pushback::Refused => return RetryDecision::Stop("the server asked not to retry"),
            Pushback::After(delay) => {
                // The server's pacing replaces the backoff, which starts
                // over after it.
                self.backoff = self.policy.initial_backoff;
                delay
            }
            Pushback::None => {
                let delay = self.backoff.mul_f64(random.clamp(0.0, 1.0));
                self.backoff = self
                    .backoff
                    .mul_f64(self.policy.backoff_multiplier)
                    .min(self.policy.max_backoff);
                delay
            }
        };
        self.attempts += 1;
        RetryDecision::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(4)
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(300))
            .backoff_multiplier(2.0)
            .retryable_codes([Code::Unavailable])
    }

    #[test]
    fn attempts_are_bounded_and_the_backoff_grows_to_its_cap() {
        let policy = policy();
        let mut state = RetryState::new(&policy);
        let mut delays = Vec::new();
        loop {
            match state.after_failure(Code::Unavailable, Pushback::None, None, 0.999_999) {
                RetryDecision::RetryAfter(delay) => delays.push(delay.as_millis()),
                RetryDecision::Stop(why) => {
                    assert_eq!(why, "no attempts left");
                    break;
                }
            }
        }
        assert_eq!(delays, [99, 199, 299]);
        assert_eq!(state.attempts(), 4);
    }

    #[test]
    fn the_cap_is_five_attempts_and_at_least_two() {
        assert_eq!(RetryPolicy::new(9).max_attempts(), 5);
        assert_eq!(RetryPolicy::new(0).max_attempts(), 2);
    }

    #[test]
    fn a_code_not_listed_is_not_retried() {
        let policy = policy();
        let mut state = RetryState::new(&policy);
        assert_eq!(
            state.after_failure(Code::Internal, Pushback::None, None, 0.5),
            RetryDecision::Stop("status code not retryable")
        );
    }

    #[test]
    fn pushback_sets_the_delay_or_stops_retries() {
        let policy = policy();
        let mut state = RetryState::new(&policy);
        assert_eq!(
            state.after_failure(
                Code::Unavailable,
                Pushback::After(Duration::from_secs(3)),
                None,
                0.5
            ),
            RetryDecision::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            state.after_failure(Code::Unavailable, Pushback::Refused, None, 0.5),
            RetryDecision::Stop("the server asked not to retry")
        );
        assert_eq!(
            Pushback::parse(Some(b"250")),
            Pushback::After(Duration::from_millis(250))
        );
        assert_eq!(Pushback::parse(Some(b"-1")), Pushback::Refused);
        assert_eq!(Pushback::parse(Some(b"soon")), Pushback::Refused);
        assert_eq!(Pushback::parse(Some(b"")), Pushback::Refused);
        assert_eq!(Pushback::parse(None), Pushback::None);
    }

    #[test]
    fn the_throttle_stops_retries_below_half_its_tokens_and_recovers_with_successes() {
        let throttle = RetryThrottle::new(10, 0.5);
        let policy = RetryPolicy::new(5);
        // Each failure takes a token: 10 → 6 still allows (6 > 5).
        for _ in 0..4 {
            let mut state = RetryState::new(&policy);
            assert!(matches!(
                state.after_failure(Code::Unavailable, Pushback::None, Some(&throttle), 0.1),
                RetryDecision::RetryAfter(_)
            ));
        }
        // 6 → 5: no longer more than half.
        let mut state = RetryState::new(&policy);
        assert_eq!(
            state.after_failure(Code::Unavailable, Pushback::None, Some(&throttle), 0.1),
            RetryDecision::Stop("retries throttled: too many recent failures")
        );
        assert_eq!(throttle.tokens(), 5.0);
        // Two successes give back a token.
        throttle.success();
        throttle.success();
        assert!(throttle.allows_retry());
        // Never above the maximum.
        for _ in 0..100 {
            throttle.success();
        }
        assert_eq!(throttle.tokens(), 10.0);
    }

    #[test]
    fn idempotency_decides_whether_a_policy_applies() {
        let policy = policy();
        assert!(policy.applies_to(Idempotency::Idempotent));
        assert!(policy.applies_to(Idempotency::NoSideEffects));
        assert!(!policy.applies_to(Idempotency::Unknown));
        assert!(policy
            .retry_non_idempotent(true)
            .applies_to(Idempotency::Unknown));
        assert_eq!(Idempotency::from_proto(2), Idempotency::Idempotent);
        assert_eq!(Idempotency::from_proto(7), Idempotency::Unknown);
    }
}
