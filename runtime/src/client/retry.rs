//! Retries on a [`Channel`](super::Channel): the transparent retry of a
//! call the server never processed (every method, once, at once), and the
//! retry policies of the channel's [`ServiceConfig`] (gRFC A6; for
//! methods marked idempotent unless the policy says otherwise), both
//! driven by the sans-IO [`RetryState`] of the core.
//!
//! A call can be sent again only while its request can be replayed: the
//! generated client puts a [`Replay`] in the request's extensions, which
//! rebuilds the request until the server answers with headers (the call
//! commits) or a streaming call has sent more than 64 KiB. A request
//! without one (from a tonic client, say) is sent once.

use std::sync::Arc;
use std::time::Duration;

use grpc_h3_core::retry::{
    Idempotency, Pushback, RetryDecision, RetryState, RetryThrottle, PREVIOUS_RPC_ATTEMPTS,
    RETRY_PUSHBACK_MS,
};
use grpc_h3_core::service_config::ServiceConfig;
use grpc_h3_core::timeout::encode_timeout;
use grpc_h3_core::{Code, Status};
use tokio::time::Instant;

use super::channel::{ConnectWatch, Inner, ResponseBody};
use crate::errors::TransportError;
use crate::Body;

/// Rebuilds a call's request for another attempt, or says it can no
/// longer be sent again (`None`).
pub(crate) type MakeRequest = dyn Fn() -> Option<http::Request<Body>> + Send + Sync;

/// Put in a request's extensions by the generated client: how to send it
/// again.
#[derive(Clone)]
pub(crate) struct Replay(pub(crate) Arc<MakeRequest>);

/// A channel's retry configuration.
pub(crate) struct Retries {
    pub(crate) config: ServiceConfig,
    pub(crate) throttle: Option<RetryThrottle>,
}

impl Retries {
    pub(crate) fn new(config: ServiceConfig) -> Retries {
        Retries {
            throttle: config
                .throttling()
                .map(|(tokens, ratio)| RetryThrottle::new(tokens, ratio)),
            config,
        }
    }
}

/// What a call needs to send its attempts.
pub(crate) struct Attempts<'a> {
    pub(crate) inner: &'a Arc<Inner>,
    pub(crate) replay: Replay,
    pub(crate) deadline: Option<Instant>,
    pub(crate) wait_for_ready: bool,
    pub(crate) watch: Option<&'a ConnectWatch>,
}

type Outcome = Result<http::Response<ResponseBody>, TransportError>;

impl Attempts<'_> {
    /// Sends `request`, and again as long as the failure allows: at once
    /// if the server never processed it (once), after the policy's backoff
    /// or the server's pushback if the policy retries its status.
    pub(crate) async fn run(self, mut request: http::Request<Body>) -> Outcome {
        let inner = self.inner;
        let idempotency = request
            .extensions()
            .get::<Idempotency>()
            .copied()
            .unwrap_or_default();
        let retries = inner.retries.as_ref();
        let policy = retries
            .and_then(|r| r.config.policy_for(request.uri().path()))
            .filter(|policy| policy.applies_to(idempotency));
        let throttle = retries.and_then(|r| r.throttle.as_ref());
        let mut state = policy.map(RetryState::new);
        let mut transparent_done = false;
        let mut sent = 0u32;
        loop {
            let result = inner
                .send_once(request, self.wait_for_ready, self.watch)
                .await;
            sent += 1;
            let (code, pushback) = match &result {
                Ok(response) => match trailers_only_code(response) {
                    None | Some(Code::Ok) => {
                        if let Some(throttle) = throttle {
                            throttle.success();
                        }
                        return result;
                    }
                    Some(code) => (
                        code,
                        Pushback::parse(
                            response
                                .headers()
                                .get(RETRY_PUSHBACK_MS)
                                .map(http::HeaderValue::as_bytes),
                        ),
                    ),
                },
                Err(error) if error.unprocessed() && !transparent_done => {
                    transparent_done = true;
                    tracing::debug!(error = %error.status().message(), "the server did not process the call; sending it again");
                    match self.next(sent).await {
                        Some(next) => {
                            request = next?;
                            continue;
                        }
                        None => return finish(result),
                    }
                }
                Err(error) => (error.status().code(), Pushback::None),
            };
            let Some(state) = &mut state else {
                return finish(result);
            };
            let delay = match state.after_failure(
                code,
                pushback,
                throttle,
                super::backoff::random_unit(),
            ) {
                RetryDecision::RetryAfter(delay) => delay,
                RetryDecision::Stop(why) => {
                    tracing::debug!(%code, attempts = state.attempts(), why, "not retried");
                    return finish(result);
                }
            };
            if self
                .deadline
                .is_some_and(|deadline| Instant::now() + delay >= deadline)
            {
                tracing::debug!(%code, "not retried: the deadline comes first");
                return finish(result);
            }
            tracing::debug!(%code, attempt = state.attempts(), ?delay, "retrying");
            tokio::time::sleep(delay).await;
            match self.next(sent).await {
                Some(next) => request = next?,
                None => return finish(result),
            }
        }
    }

    /// The request for the next attempt, `sent` having gone: rebuilt,
    /// made absolute, credentials added, with the time left as its
    /// timeout. `None` when it can no longer be replayed.
    async fn next(&self, sent: u32) -> Option<Result<http::Request<Body>, TransportError>> {
        let mut request = (self.replay.0)()?;
        if let Err(error) = self.inner.prepare(&mut request).await {
            return Some(Err(error));
        }
        let headers = request.headers_mut();
        headers.insert(PREVIOUS_RPC_ATTEMPTS, http::HeaderValue::from(sent));
        if let Some(deadline) = self.deadline {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            if let Ok(value) = http::HeaderValue::from_str(&encode_timeout(left)) {
                headers.insert(grpc_h3_core::names::GRPC_TIMEOUT, value);
            }
        }
        Some(Ok(request))
    }
}

/// The status of a Trailers-Only response (or of an HTTP error status),
/// if the response is one.
fn trailers_only_code(response: &http::Response<ResponseBody>) -> Option<Code> {
    if let Some(status) = Status::from_trailers(response.headers()) {
        return Some(status.code());
    }
    (response.status() != http::StatusCode::OK)
        .then(|| Status::from_http_status(response.status()).code())
}

/// The outcome given to the caller: the channel has done the retrying, so
/// a failure no longer invites the caller to send the call again.
fn finish(result: Outcome) -> Outcome {
    result.map_err(|error| {
        if error.unprocessed() {
            TransportError::new(error.into_status(), false)
        } else {
            error
        }
    })
}
