//! Calls that stay quiet, servers that cap deadlines, handlers that panic
//! mid-stream, and a client facing a server that does not answer: one
//! connection attempt shared by every caller, backoff, wait-for-ready.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{payload, start, EchoClient};
use grpc_h3::client::BackoffConfig;
use grpc_h3::{Channel, Code, Request};
use tokio_stream::StreamExt;

fn quiet_server(b: grpc_h3::server::ServerBuilder) -> grpc_h3::server::ServerBuilder {
    b.idle_timeout(Duration::from_millis(600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_quiet_for_several_idle_timeouts_keep_their_connection() {
    let server = start(quiet_server).await;
    let channel = Channel::builder(format!("https://127.0.0.1:{}", server.addr.port()))
        .tls_config(server.tls())
        .idle_timeout(Duration::from_millis(600))
        .build()
        .unwrap();
    let client = EchoClient::new(channel);

    // A silent server: the handler thinks for four idle timeouts.
    let mut slow = payload(3);
    slow.sleep_ms = 2_400;
    let response = client.unary(Request::new(slow)).await.unwrap();
    assert_eq!(response.get_ref().payload.len(), 3);

    // A silent server stream: four idle timeouts between two messages.
    let mut watch = payload(0);
    watch.response_count = 2;
    watch.response_size = 1;
    watch.sleep_ms = 2_400;
    let mut stream = client
        .server_stream(Request::new(watch))
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    while let Some(message) = stream.message().await.unwrap() {
        assert_eq!(message.index, received);
        received += 1;
    }
    assert_eq!(received, 2);

    // A silent client stream: four idle timeouts between two messages.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let sending = tokio::spawn(async move {
        tx.send(payload(5)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2_400)).await;
        tx.send(payload(7)).await.unwrap();
    });
    let response = client
        .client_stream(Request::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
        .await
        .unwrap();
    sending.await.unwrap();
    assert_eq!(
        (response.get_ref().index, response.get_ref().total),
        (2, 12)
    );
    assert_eq!(
        server.handle.stats().connections_accepted,
        1,
        "all of it on one connection"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_must_be_shorter_than_the_idle_timeout() {
    let err = grpc_h3::server::Server::builder()
        .dev_certificate()
        .add_service(common::EchoService::default())
        .idle_timeout(Duration::from_secs(5))
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap_err();
    assert!(
        err.to_string().contains("shorter than idle_timeout"),
        "{err}"
    );
    let err = Channel::builder("https://localhost:1")
        .tls_config(
            grpc_h3::tls::ClientTlsConfig::new()
                .dangerous_skip_server_verification_for_development(),
        )
        .idle_timeout(Duration::from_secs(1))
        .keep_alive_interval(Some(Duration::from_secs(2)))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("keep_alive_interval"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_timeout_caps_calls_without_a_deadline() {
    let server = start(|b| b.timeout(Duration::from_millis(300))).await;
    let client = EchoClient::new(server.channel());

    let mut slow = payload(0);
    slow.sleep_ms = 30_000;
    let status = client.unary(Request::new(slow)).await.unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    server
        .stats
        .wait_for("the capped handler to be dropped", |s| {
            s.dropped.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await;

    // The handler saw the cap as its deadline.
    let mut probe = payload(0);
    probe.report_peer = true;
    let reply = client.unary(Request::new(probe)).await.unwrap();
    let text = String::from_utf8(reply.into_inner().payload).unwrap();
    assert!(text.contains("deadline=true"), "{text}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_stream_that_panics_ends_the_call_with_internal() {
    let server = start(|b| b).await;
    let client = EchoClient::new(server.channel());
    let mut request = payload(0);
    request.panic = true;
    let mut stream = client
        .server_stream(Request::new(request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().payload, b"first");
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("panicked"), "{status:?}");
    assert_eq!(server.handle.stats().handler_panics, 1);
    // The server keeps serving, on the same connection.
    client.unary(Request::new(payload(1))).await.unwrap();
    assert_eq!(server.handle.stats().connections_accepted, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_call_error_does_not_retire_the_connection() {
    let server = start(|b| b.max_header_list_size(1024)).await;
    let client = EchoClient::new(server.channel());
    client.unary(Request::new(payload(1))).await.unwrap();
    let mut request = Request::new(payload(1));
    request
        .metadata_mut()
        .insert("x-large", &"v".repeat(4096))
        .unwrap();
    let status = client.unary(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Refused by the client against the server's SETTINGS, or, when those
    // are still on their way (the control stream is not ordered with the
    // first response), by the server's frame guard: either is this call's
    // failure alone.
    assert!(
        status.message().contains("1024") || status.message().contains("H3_EXCESSIVE_LOAD"),
        "{status:?}"
    );
    client.unary(Request::new(payload(1))).await.unwrap();
    assert_eq!(
        server.handle.stats().connections_accepted,
        1,
        "the connection survived the oversized call"
    );
    server.shutdown().await;
}

/// A UDP socket that never answers, recording each QUIC connection
/// attempt it sees (a new Destination Connection ID in an Initial packet).
struct Silent {
    port: u16,
    attempts: Arc<Mutex<HashSet<Vec<u8>>>>,
}

impl Silent {
    async fn bind() -> Silent {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let attempts = Arc::new(Mutex::new(HashSet::new()));
        let seen = attempts.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                let packet = &buf[..n];
                // Long header, Initial type (RFC 9000 §17.2).
                if n > 6 && packet[0] & 0xf0 == 0xc0 {
                    let len = packet[5] as usize;
                    if n >= 6 + len {
                        seen.lock().unwrap().insert(packet[6..6 + len].to_vec());
                    }
                }
            }
        });
        Silent { port, attempts }
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_share_one_connection_attempt_then_fail_fast_during_backoff() {
    let silent = Silent::bind().await;
    let cert = grpc_h3::tls::DevCertificate::localhost().unwrap();
    let channel = Channel::builder(format!("https://127.0.0.1:{}", silent.port))
        .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
        .connect_timeout(Duration::from_millis(400))
        .connection_backoff(BackoffConfig {
            initial: Duration::from_secs(60),
            ..BackoffConfig::default()
        })
        .build()
        .unwrap();
    let client = EchoClient::new(channel);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.unary(Request::new(payload(1))).await })
        })
        .collect();
    for call in calls {
        let status = call.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains(&format!(
                "no QUIC answer from 127.0.0.1:{} within 400ms",
                silent.port
            )),
            "{status:?}"
        );
        assert!(status.message().contains("is UDP allowed"), "{status:?}");
    }
    assert_eq!(silent.attempts(), 1, "ten callers, one connection attempt");

    // Backing off: the next call fails at once with the same reason, and
    // no new attempt is made.
    let started = tokio::time::Instant::now();
    let status = client.unary(Request::new(payload(1))).await.unwrap_err();
    assert!(status.message().contains("no QUIC answer"), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(silent.attempts(), 1);

    // Waiting for ready waits out the call's deadline instead, and says
    // it never got a connection.
    let mut waiting = Request::new(payload(1));
    waiting.set_wait_for_ready(true);
    waiting.set_timeout(Duration::from_millis(300));
    let status = client.unary(waiting).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("before a connection was ready"),
        "{status:?}"
    );
    assert!(status.message().contains("no QUIC answer"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_during_the_first_attempt_names_the_addresses_tried() {
    let silent = Silent::bind().await;
    let cert = grpc_h3::tls::DevCertificate::localhost().unwrap();
    let channel = Channel::builder(format!("https://127.0.0.1:{}", silent.port))
        .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
        .build()
        .unwrap();
    let mut request = Request::new(payload(1));
    request.set_timeout(Duration::from_millis(200));
    let status = EchoClient::new(channel).unary(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains(&format!(
            "still connecting to 127.0.0.1:{0}: tried 127.0.0.1:{0} (no QUIC answer yet)",
            silent.port
        )),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_calls_survive_quiet_periods_in_both_directions() {
    let server = start(quiet_server).await;
    let channel = Channel::builder(format!("https://127.0.0.1:{}", server.addr.port()))
        .tls_config(server.tls())
        .idle_timeout(Duration::from_millis(600))
        .build()
        .unwrap();
    let client = EchoClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(payload(1)).await.unwrap();
    let mut responses = client
        .bidi(Request::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(responses.next().await.unwrap().unwrap().index, 1);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    tx.send(payload(2)).await.unwrap();
    assert_eq!(responses.next().await.unwrap().unwrap().index, 2);
    drop(tx);
    assert!(responses.next().await.is_none());
    server.shutdown().await;
}
