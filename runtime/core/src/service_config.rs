//! [`ServiceConfig`]: retry policies per method or service and retry
//! throttling, built in code or read from gRPC's service-config JSON
//! (`methodConfig[].retryPolicy`, `retryThrottling`; other fields are
//! accepted and ignored).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::retry::RetryPolicy;
use crate::Code;

/// Which calls a [`ServiceConfig`] entry covers: the most specific entry
/// wins, as in gRPC.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MethodSelector {
    /// Every method (the default entry).
    All,
    /// Every method of one service (`package.Service`).
    Service(String),
    /// One method (`package.Service`, `Method`).
    Method(String, String),
}

impl MethodSelector {
    /// The lookup key: `""`, `"pkg.Service"` or `"pkg.Service/Method"`.
    fn key(&self) -> String {
        match self {
            MethodSelector::All => String::new(),
            MethodSelector::Service(service) => service.clone(),
            MethodSelector::Method(service, method) => format!("{service}/{method}"),
        }
    }
}

/// Retry policies and throttling for a channel, as gRPC's service config
/// carries them (gRFC A6).
///
/// ```
/// use grpc_h3_core::service_config::ServiceConfig;
///
/// let config = ServiceConfig::from_json(r#"{
///   "methodConfig": [{
///     "name": [{"service": "routeguide.RouteGuide"}],
///     "retryPolicy": {
///       "maxAttempts": 4,
///       "initialBackoff": "0.1s",
///       "maxBackoff": "1s",
///       "backoffMultiplier": 2,
///       "retryableStatusCodes": ["UNAVAILABLE"]
///     }
///   }],
///   "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}
/// }"#).unwrap();
/// let policy = config.policy_for("/routeguide.RouteGuide/GetFeature").unwrap();
/// assert_eq!(policy.max_attempts(), 4);
/// assert!(config.policy_for("/other.Service/Call").is_none());
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ServiceConfig {
    policies: HashMap<String, Arc<RetryPolicy>>,
    throttling: Option<(u32, f64)>,
}

/// Why a service config was refused: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfigError(String);

impl fmt::Display for ServiceConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid service config: {}", self.0)
    }
}

impl std::error::Error for ServiceConfigError {}

fn invalid(what: impl Into<String>) -> ServiceConfigError {
    ServiceConfigError(what.into())
}

impl ServiceConfig {
    /// An empty config: no retries beyond the transparent ones.
    pub fn new() -> ServiceConfig {
        ServiceConfig::default()
    }

    /// Retries the calls `selector` covers under `policy`.
    pub fn retry_policy(mut self, selector: MethodSelector, policy: RetryPolicy) -> Self {
        self.policies.insert(selector.key(), Arc::new(policy));
        self
    }

    /// Throttles retries (see [`RetryThrottle`](crate::retry::RetryThrottle)):
    /// `max_tokens` from 1 to 1000, `token_ratio` above 0.
    pub fn retry_throttling(mut self, max_tokens: u32, token_ratio: f64) -> Self {
        self.throttling = Some((max_tokens, token_ratio));
        self
    }

    /// The throttling parameters, if any.
    pub fn throttling(&self) -> Option<(u32, f64)> {
        self.throttling
    }

    /// The policy for a call to `path` (`/package.Service/Method`): the
    /// method's own entry, else its service's, else the default.
    pub fn policy_for(&self, path: &str) -> Option<&RetryPolicy> {
        if self.policies.is_empty() {
            return None;
        }
        let name = path.strip_prefix('/').unwrap_or(path);
        let service = name.split_once('/').map_or(name, |(service, _)| service);
        self.policies
            .get(name)
            .or_else(|| self.policies.get(service))
            .or_else(|| self.policies.get(""))
            .map(|policy| &**policy)
    }

    /// Reads gRPC's service-config JSON. Field names may be camelCase or
    /// snake_case; durations are strings like `"0.5s"`; status codes are
    /// names (`"UNAVAILABLE"`) or numbers. A retry policy missing a
    /// required field, or with one out of range, is an error naming it.
    pub fn from_json(text: &str) -> Result<ServiceConfig, ServiceConfigError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let root = root
            .as_object()
            .ok_or_else(|| invalid("the top level must be an object"))?;
        let mut config = ServiceConfig::new();
        if let Some(methods) = field(root, "methodConfig", "method_config") {
            let methods = methods
                .as_array()
                .ok_or_else(|| invalid("methodConfig must be an array"))?;
            for (i, method) in methods.iter().enumerate() {
                let at = |what: &str| format!("methodConfig[{i}]{what}");
                let method = method
                    .as_object()
                    .ok_or_else(|| invalid(format!("{} must be an object", at(""))))?;
                let Some(policy) = field(method, "retryPolicy", "retry_policy") else {
                    continue;
                };
                let policy = retry_policy(policy)
                    .map_err(|e| invalid(format!("{}.{e}", at(".retryPolicy"))))?;
                let names = field(method, "name", "name")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid(format!("{} needs a name list", at(""))))?;
                for (j, name) in names.iter().enumerate() {
                    let selector = selector(name)
                        .map_err(|e| invalid(format!("{}: {e}", at(&format!(".name[{j}]")))))?;
                    let key = selector.key();
                    if config.policies.contains_key(&key) {
                        return Err(invalid(format!(
                            "{}: {key:?} is named twice",
                            at(&format!(".name[{j}]"))
                        )));
                    }
                    config.policies.insert(key, Arc::new(policy.clone()));
                }
            }
        }
        if let Some(throttling) = field(root, "retryThrottling", "retry_throttling") {
            let throttling = throttling
                .as_object()
                .ok_or_else(|| invalid("retryThrottling must be an object"))?;
            let max_tokens = field(throttling, "maxTokens", "max_tokens")
                .and_then(Value::as_u64)
                .filter(|t| (1..=1000).contains(t))
                .ok_or_else(|| invalid("retryThrottling.maxTokens must be 1 to 1000"))?;
            let ratio = field(throttling, "tokenRatio", "token_ratio")
                .and_then(Value::as_f64)
                .filter(|r| *r > 0.0)
                .ok_or_else(|| invalid("retryThrottling.tokenRatio must be above 0"))?;
            config.throttling = Some((max_tokens as u32, ratio));
        }
        Ok(config)
    }
}

/// `object[camel]`, or `object[snake]`.
fn field<'a>(object: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|v| !v.is_null())
}

fn selector(name: &Value) -> Result<MethodSelector, String> {
    let name = name.as_object().ok_or("must be an object")?;
    let text = |key: &str| -> Result<String, String> {
        match name.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{key} must be a string")),
        }
    };
    let (service, method) = (text("service")?, text("method")?);
    match (service.is_empty(), method.is_empty()) {
        (true, true) => Ok(MethodSelector::All),
        (true, false) => Err("a method needs its service".into()),
        (false, true) => Ok(MethodSelector::Service(service)),
        (false, false) => Ok(MethodSelector::Method(service, method)),
    }
}

fn retry_policy(value: &Value) -> Result<RetryPolicy, String> {
    let policy = value.as_object().ok_or("must be an object")?;
    let max_attempts = field(policy, "maxAttempts", "max_attempts")
        .and_then(Value::as_u64)
        .filter(|n| *n >= 2)
        .ok_or("maxAttempts: required, at least 2")?;
    let duration = |camel: &str, snake: &str| -> Result<Duration, String> {
        field(policy, camel, snake)
            .and_then(Value::as_str)
            .and_then(parse_duration)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{camel}: required, a positive duration such as \"0.1s\""))
    };
    let initial = duration("initialBackoff", "initial_backoff")?;
    let max = duration("maxBackoff", "max_backoff")?;
    let multiplier = field(policy, "backoffMultiplier", "backoff_multiplier")
        .and_then(Value::as_f64)
        .filter(|m| *m > 0.0)
        .ok_or("backoffMultiplier: required, above 0")?;
    let codes = field(policy, "retryableStatusCodes", "retryable_status_codes")
        .and_then(Value::as_array)
        .filter(|codes| !codes.is_empty())
        .ok_or("retryableStatusCodes: required, not empty")?
        .iter()
        .map(status_code)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(
        RetryPolicy::new(u32::try_from(max_attempts).unwrap_or(u32::MAX))
            .initial_backoff(initial)
            .max_backoff(max)
            .backoff_multiplier(multiplier)
            .retryable_codes(codes),
    )
}

/// A protobuf JSON duration: decimal seconds with an `s` suffix.
fn parse_duration(text: &str) -> Option<Duration> {
    let seconds = text.strip_suffix('s')?;
    if seconds.is_empty() || seconds.starts_with('-') {
        return None;
    }
    let value: f64 = seconds.parse().ok()?;
    Duration::try_from_secs_f64(value).ok()
}

/// `"UNAVAILABLE"`, `"unavailable"` or `14`.
fn status_code(value: &Value) -> Result<Code, String> {
    if let Some(number) = value.as_u64() {
        return Code::ALL
            .get(usize::try_from(number).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| format!("retryableStatusCodes: no status code {number}"));
    }
    let name = value
        .as_str()
        .ok_or("retryableStatusCodes: names or numbers")?;
    Code::ALL
        .into_iter()
        .find(|code| screaming_name(*code).eq_ignore_ascii_case(name))
        .ok_or_else(|| format!("retryableStatusCodes: unknown status code {name:?}"))
}

/// `DeadlineExceeded` as `DEADLINE_EXCEEDED`.
fn screaming_name(code: Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_entry_wins() {
        let config = ServiceConfig::new()
            .retry_policy(MethodSelector::All, RetryPolicy::new(2))
            .retry_policy(MethodSelector::Service("a.S".into()), RetryPolicy::new(3))
            .retry_policy(
                MethodSelector::Method("a.S".into(), "M".into()),
                RetryPolicy::new(4),
            );
        let attempts = |path| config.policy_for(path).map(RetryPolicy::max_attempts);
        assert_eq!(attempts("/a.S/M"), Some(4));
        assert_eq!(attempts("/a.S/Other"), Some(3));
        assert_eq!(attempts("/b.T/M"), Some(2));
        assert_eq!(ServiceConfig::new().policy_for("/a.S/M"), None);
    }

    #[test]
    fn json_reads_policies_codes_durations_and_throttling() {
        let config = ServiceConfig::from_json(
            r#"{"loadBalancingConfig": [{"round_robin": {}}],
                "method_config": [{
                  "name": [{"service": "a.S", "method": "M"}, {"service": "b.T"}],
                  "timeout": "1s",
                  "retry_policy": {"max_attempts": 9, "initial_backoff": "0.25s",
                    "max_backoff": "2s", "backoff_multiplier": 1.5,
                    "retryable_status_codes": ["unavailable", 8, "DEADLINE_EXCEEDED"]}
                }],
                "retryThrottling": {"maxTokens": 20, "tokenRatio": 0.25}}"#,
        )
        .unwrap();
        let expected = RetryPolicy::new(5)
            .initial_backoff(Duration::from_millis(250))
            .max_backoff(Duration::from_secs(2))
            .backoff_multiplier(1.5)
            .retryable_codes([
                Code::Unavailable,
                Code::ResourceExhausted,
                Code::DeadlineExceeded,
            ]);
        assert_eq!(config.policy_for("/a.S/M"), Some(&expected));
        assert_eq!(config.policy_for("/b.T/X"), Some(&expected));
        assert_eq!(config.policy_for("/a.S/Other"), None);
        assert_eq!(config.throttling(), Some((20, 0.25)));
    }

    #[test]
    fn json_errors_name_the_field() {
        let error = |json: &str| ServiceConfig::from_json(json).unwrap_err().to_string();
        let policy = |fields: &str| {
            format!(
                r#"{{"methodConfig": [{{"name": [{{"service": "a.S"}}], "retryPolicy": {{{fields}}}}}]}}"#
            )
        };
        assert!(error("[]").contains("top level"));
        assert!(error(&policy(r#""maxAttempts": 1"#))
            .contains("methodConfig[0].retryPolicy.maxAttempts"));
        let missing_backoff = policy(
            r#""maxAttempts": 3, "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#,
        );
        assert!(error(&missing_backoff).contains("initialBackoff"));
        let bad_code = policy(
            r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["SOMETIMES"]"#,
        );
        assert!(error(&bad_code).contains("SOMETIMES"));
        let throttle = r#"{"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}"#;
        assert!(error(throttle).contains("maxTokens"));
    }

    #[test]
    fn durations_are_decimal_seconds() {
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".01s"), Some(Duration::from_millis(10)));
        assert_eq!(parse_duration("1.5"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(screaming_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    }
}
