//! Retry policies (gRFC A6) over real calls: a server that fails the
//! first attempts; idempotent methods retried and non-idempotent ones not,
//! the server's pushback obeyed, throttling under sustained failure, and
//! no retry once the response has started. Each test counts the attempts
//! the server saw.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pb::{EchoRequest, EchoResponse};
use grpc_h3::client::{Grpc, Idempotency, MethodSelector, RetryPolicy, ServiceConfig};
use grpc_h3::codec::ProstCodec;
use grpc_h3::codegen::{self, BoxFuture, ServiceSettings};
use grpc_h3::server::{NamedService, Server};
use grpc_h3::tls::DevCertificate;
use grpc_h3::{Body, Channel, Code, Request, Response, Status, Transport};
use http::uri::PathAndQuery;

/// How the flaky server fails.
#[derive(Clone, Default)]
struct Behaviour {
    /// Attempts that fail before one succeeds (`u32::MAX`: all).
    fail_first: u32,
    code: Option<Code>,
    /// A `grpc-retry-pushback-ms` sent with each failure.
    pushback: Option<&'static str>,
}

/// Fails the first attempts of every call, then answers; remembers each
/// attempt's `grpc-previous-rpc-attempts`.
#[derive(Clone, Default)]
struct Flaky {
    behaviour: Arc<Mutex<Behaviour>>,
    attempts: Arc<AtomicU32>,
    previous: Arc<Mutex<Vec<Option<String>>>>,
}

impl NamedService for Flaky {
    const NAME: &'static str = "test.Flaky";
}

type Codec = ProstCodec<EchoResponse, EchoRequest>;
type ClientCodec = ProstCodec<EchoRequest, EchoResponse>;

impl Flaky {
    /// Counts the attempt; its failure, if it is to fail.
    fn attempt(&self, headers: &http::HeaderMap) -> Option<Status> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        self.previous.lock().unwrap().push(
            headers
                .get("grpc-previous-rpc-attempts")
                .map(|v| v.to_str().unwrap().to_owned()),
        );
        let behaviour = self.behaviour.lock().unwrap().clone();
        if attempt >= behaviour.fail_first {
            return None;
        }
        let mut status = Status::new(behaviour.code.unwrap_or(Code::Unavailable), "flaky");
        if let Some(pushback) = behaviour.pushback {
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", pushback)
                .unwrap();
        }
        Some(status)
    }
}

impl tower_service::Service<http::Request<Body>> for Flaky {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        let settings = ServiceSettings::default();
        Box::pin(async move {
            let failure = this.attempt(request.headers());
            match request.uri().path() {
                "/test.Flaky/Unary" => {
                    codegen::unary(request, &settings, Codec::default(), move |_| async move {
                        match failure {
                            Some(status) => Err(status),
                            None => Ok(Response::new(EchoResponse::default())),
                        }
                    })
                    .await
                }
                // One message, then the failure in the trailers: the call
                // has committed by then.
                "/test.Flaky/ServerStream" => {
                    codegen::server_streaming(request, &settings, Codec::default(), move |_| {
                        let items = [Ok(EchoResponse::default())]
                            .into_iter()
                            .chain(failure.map(Err));
                        async move { Ok(Response::new(tokio_stream::iter(items))) }
                    })
                    .await
                }
                _ => Ok(codegen::unimplemented(&request)),
            }
        })
    }
}

struct FlakyServer {
    flaky: Flaky,
    addr: SocketAddr,
    cert: DevCertificate,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(behaviour: Behaviour) -> FlakyServer {
    let flaky = Flaky::default();
    *flaky.behaviour.lock().unwrap() = behaviour;
    let cert = DevCertificate::localhost().unwrap();
    let bound = Server::builder()
        .tls_identity(cert.cert_pem(), cert.key_pem())
        .add_service(flaky.clone())
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = bound.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve_with_shutdown(async {
        let _ = rx.await;
    }));
    FlakyServer {
        flaky,
        addr,
        cert,
        _shutdown: tx,
    }
}

impl FlakyServer {
    fn channel(&self, transport: Transport, config: ServiceConfig) -> Channel {
        Channel::builder(format!("https://127.0.0.1:{}", self.addr.port()))
            .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(self.cert.cert_pem()))
            .transport(transport)
            .service_config(config)
            .build()
            .unwrap()
    }

    fn attempts(&self) -> u32 {
        self.flaky.attempts.swap(0, Ordering::SeqCst)
    }
}

fn request(idempotency: Option<Idempotency>) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest::default());
    request.set_timeout(Duration::from_secs(10));
    if let Some(level) = idempotency {
        request.extensions_mut().insert(level);
    }
    request
}

async fn unary(channel: &Channel, idempotency: Option<Idempotency>) -> Result<(), Status> {
    Grpc::new(channel.clone())
        .unary(
            request(idempotency),
            PathAndQuery::from_static("/test.Flaky/Unary"),
            ClientCodec::default(),
        )
        .await
        .map(drop)
}

fn retry_unavailable(attempts: u32) -> ServiceConfig {
    ServiceConfig::new().retry_policy(
        MethodSelector::Service("test.Flaky".into()),
        RetryPolicy::new(attempts)
            .initial_backoff(Duration::from_millis(10))
            .max_backoff(Duration::from_millis(50))
            .retryable_codes([Code::Unavailable]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_method_is_retried_until_it_succeeds_on_both_transports() {
    for transport in [Transport::Http3, Transport::Http2] {
        let server = start(Behaviour {
            fail_first: 2,
            ..Behaviour::default()
        })
        .await;
        let channel = server.channel(transport, retry_unavailable(3));
        unary(&channel, Some(Idempotency::Idempotent))
            .await
            .unwrap_or_else(|s| panic!("{transport}: {s:?}"));
        assert_eq!(server.attempts(), 3, "{transport}");
        // Each retry told the server how many attempts went before it.
        assert_eq!(
            *server.flaky.previous.lock().unwrap(),
            [None, Some("1".to_owned()), Some("2".to_owned())],
            "{transport}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_stop_at_the_policy_maximum() {
    let server = start(Behaviour {
        fail_first: u32::MAX,
        ..Behaviour::default()
    })
    .await;
    let channel = server.channel(Transport::Http3, retry_unavailable(4));
    let status = unary(&channel, Some(Idempotency::NoSideEffects))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.attempts(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_not_marked_idempotent_is_not_retried_unless_the_policy_says_so() {
    let server = start(Behaviour {
        fail_first: 1,
        ..Behaviour::default()
    })
    .await;
    let channel = server.channel(Transport::Http3, retry_unavailable(3));
    let status = unary(&channel, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.attempts(), 1, "the server may have acted on it");

    server.flaky.attempts.store(0, Ordering::SeqCst);
    let config = ServiceConfig::new().retry_policy(
        MethodSelector::All,
        RetryPolicy::new(3)
            .initial_backoff(Duration::from_millis(10))
            .retry_non_idempotent(true),
    );
    let channel = server.channel(Transport::Http3, config);
    unary(&channel, None).await.unwrap();
    assert_eq!(server.attempts(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_not_listed_is_not_retried() {
    let server = start(Behaviour {
        fail_first: 1,
        code: Some(Code::Internal),
        ..Behaviour::default()
    })
    .await;
    let channel = server.channel(Transport::Http3, retry_unavailable(3));
    let status = unary(&channel, Some(Idempotency::Idempotent))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(server.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_pushback_replaces_the_backoff_or_stops_retries() {
    // The policy's backoff is an hour; the server says "now": the retry
    // goes at once, well within the call's 10 s deadline.
    let hour = ServiceConfig::new().retry_policy(
        MethodSelector::All,
        RetryPolicy::new(2)
            .initial_backoff(Duration::from_secs(3600))
            .max_backoff(Duration::from_secs(3600)),
    );
    let server = start(Behaviour {
        fail_first: 1,
        pushback: Some("0"),
        ..Behaviour::default()
    })
    .await;
    let channel = server.channel(Transport::Http3, hour.clone());
    unary(&channel, Some(Idempotency::Idempotent))
        .await
        .unwrap();
    assert_eq!(server.attempts(), 2);

    // A negative pushback: no retry at all.
    let server = start(Behaviour {
        fail_first: 1,
        pushback: Some("-1"),
        ..Behaviour::default()
    })
    .await;
    let channel = server.channel(Transport::Http3, retry_unavailable(5));
    let status = unary(&channel, Some(Idempotency::Idempotent))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.attempts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_stops_retries_under_sustained_failure() {
    let server = start(Behaviour {
        fail_first: u32::MAX,
        ..Behaviour::default()
    })
    .await;
    // From JSON, as a service config arrives.
    let config = ServiceConfig::from_json(
        r#"{"methodConfig": [{"name": [{}],
              "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s",
                "maxBackoff": "0.01s", "backoffMultiplier": 1,
                "retryableStatusCodes": ["UNAVAILABLE"]}}],
            "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.1}}"#,
    )
    .unwrap();
    let channel = server.channel(Transport::Http3, config);
    // 4 tokens: the first failure leaves 3 (> 2, retry), the second 2
    // (not > 2, stop); every later call fails once and stops.
    let mut attempts = Vec::new();
    for _ in 0..5 {
        let status = unary(&channel, Some(Idempotency::Idempotent))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        attempts.push(server.attempts());
    }
    assert_eq!(attempts, [2, 1, 1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_response_started_is_not_retried() {
    let server = start(Behaviour {
        fail_first: 1,
        ..Behaviour::default()
    })
    .await;
    let channel = server.channel(Transport::Http3, retry_unavailable(3));
    let response = Grpc::new(channel)
        .server_streaming(
            request(Some(Idempotency::Idempotent)),
            PathAndQuery::from_static("/test.Flaky/ServerStream"),
            ClientCodec::default(),
        )
        .await
        .expect("the headers and first message arrive");
    let mut stream = response.into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.attempts(), 1);
}
