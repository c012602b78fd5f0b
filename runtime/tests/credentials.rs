//! Call credentials: a token provider called per call and refreshed when
//! its token expires, per-call credentials replacing the channel's, and
//! no credentials over plaintext unless allowed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{payload, start_on, EchoClient, TestServer};
use grpc_h3::client::BearerToken;
use grpc_h3::{Code, Request, Status, Transport};

/// A server that records the `authorization` header of every call.
async fn recording_server(transport: Transport) -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = start_on(transport, move |b| {
        b.layer(tower::util::MapRequestLayer::new(
            move |request: http::Request<grpc_h3::Body>| {
                let value = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .map_or("(none)", |v| v.to_str().unwrap())
                    .to_owned();
                record.lock().unwrap().push(value);
                request
            },
        ))
    })
    .await;
    (server, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_sent_and_refreshed_when_they_expire() {
    let (server, seen) = recording_server(Transport::Http3).await;
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    // Each token is valid for 10.2 s, so within the 10 s refresh margin
    // after 200 ms.
    let credentials = BearerToken::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            Ok((
                format!("t{n}"),
                Instant::now() + Duration::from_millis(10_200),
            ))
        }
    });
    let channel = server
        .channel_builder()
        .call_credentials(credentials)
        .build()
        .unwrap();
    let client = EchoClient::new(channel);
    client.unary(Request::new(payload(1))).await.unwrap();
    client.unary(Request::new(payload(1))).await.unwrap();
    assert_eq!(fetched.load(Ordering::SeqCst), 1, "the token was reused");
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.unary(Request::new(payload(1))).await.unwrap();
    assert_eq!(fetched.load(Ordering::SeqCst), 2, "the token was refreshed");

    // A call's own credentials replace the channel's.
    let mut request = Request::new(payload(1));
    request.set_call_credentials(BearerToken::fixed("mine"));
    client.unary(request).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["Bearer t1", "Bearer t1", "Bearer t2", "Bearer mine"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_source_fails_the_call_before_it_is_sent() {
    let (server, seen) = recording_server(Transport::Http2).await;
    let credentials =
        BearerToken::new(|| async { Err(Status::unauthenticated("identity provider down")) });
    let channel = server
        .channel_builder()
        .call_credentials(credentials)
        .build()
        .unwrap();
    let status = EchoClient::new(channel)
        .unary(Request::new(payload(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "identity provider down");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_refused_over_plaintext_unless_allowed() {
    let (server, seen) = recording_server(Transport::H2c).await;
    let channel = server
        .channel_builder()
        .call_credentials(BearerToken::fixed("secret"))
        .build()
        .unwrap();
    let status = EchoClient::new(channel)
        .unary(Request::new(payload(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("plaintext"), "{status:?}");
    assert!(seen.lock().unwrap().is_empty(), "the token did not leave");

    let allowed = server
        .channel_builder()
        .call_credentials(BearerToken::fixed("secret"))
        .allow_credentials_over_plaintext(true)
        .build()
        .unwrap();
    EchoClient::new(allowed)
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["Bearer secret"]);
}
