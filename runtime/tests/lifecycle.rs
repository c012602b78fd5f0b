//! Deadlines, cancellation, graceful shutdown, reconnection and mutual TLS,
//! end to end on loopback over each transport.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::pb::EchoRequest;
use common::{payload, start, start_at_on, start_on, EchoClient};
use grpc_h3::tls::ClientAuth;
use grpc_h3::{Code, Request};

fn sleeping(ms: u32) -> EchoRequest {
    EchoRequest {
        sleep_ms: ms,
        ..Default::default()
    }
}

on_every_transport! {
async fn deadline_expiry_fails_the_call_and_drops_the_server_handler(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let mut request = Request::new(sleeping(30_000));
    request.set_timeout(Duration::from_millis(200));
    let status = client.unary(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // The handler was dropped, not left to finish its 30 s sleep.
    server
        .stats
        .wait_for("the handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 0);
    server.wait_no_live_calls().await;

    // The same for a stream that outlives its deadline.
    let mut request = Request::new(EchoRequest {
        response_count: 1000,
        sleep_ms: 100,
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(300));
    let mut stream = client.server_stream(request).await.unwrap().into_inner();
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended cleanly past its deadline"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded);
    server
        .stats
        .wait_for("the stream handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 2
        })
        .await;
    client.unary(Request::new(payload(1))).await.unwrap();
    server.wait_no_live_calls().await;
    server.shutdown().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_enforces_grpc_timeout_by_resetting_the_stream() {
    // A raw client sends grpc-timeout but never enforces it itself: the
    // server's own deadline must end the call (gRFC G2: RESET_STREAM with
    // H3_REQUEST_CANCELLED).
    let server = start(|b| b).await;
    let mut raw = common::raw_client(&server).await;
    let request = raw.request("/test.Echo/Unary", &[("grpc-timeout", "200m")]);
    let mut stream = raw.sender.send_request(request).await.unwrap();
    stream
        .send_data(common::grpc_frame(&sleeping(30_000)))
        .await
        .unwrap();
    stream.finish().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), stream.recv_response())
        .await
        .expect("the server ended the call")
        .unwrap_err();
    assert!(
        matches!(err, h3::error::StreamError::RemoteTerminate { code, .. } if code == h3::error::Code::H3_REQUEST_CANCELLED),
        "{err:?}"
    );
    server
        .stats
        .wait_for("the handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
    server.wait_no_live_calls().await;
    server.shutdown().await;
}

on_every_transport! {
async fn client_cancel_is_observed_by_the_server(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());

    // Unary: the request is complete, so only STOP_SENDING tells the server.
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.unary(Request::new(sleeping(30_000))).await })
    };
    server
        .stats
        .wait_for("the handler to start", |s| {
            s.running.load(Ordering::SeqCst) == 1
        })
        .await;
    call.abort();
    server
        .stats
        .wait_for("the unary handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 1
        })
        .await;

    // Server streaming: drop the response stream halfway.
    let request = EchoRequest {
        response_count: 10_000,
        response_size: 100,
        ..Default::default()
    };
    let mut stream = client
        .server_stream(Request::new(request))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        stream.message().await.unwrap().unwrap();
    }
    drop(stream);
    server
        .stats
        .wait_for("the stream handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 2
        })
        .await;

    // Bidi: drop while the server waits for more requests.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut echoes = client
        .bidi(Request::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
        .await
        .unwrap()
        .into_inner();
    tx.send(payload(3)).await.unwrap();
    echoes.message().await.unwrap().unwrap();
    drop(echoes);
    server
        .stats
        .wait_for("the bidi handler to stop", |s| {
            s.running.load(Ordering::SeqCst) == 0
        })
        .await;
    drop(tx);

    server.wait_no_live_calls().await;
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 0);
    client.unary(Request::new(payload(1))).await.unwrap();
    server.shutdown().await;
}
}

on_every_transport! {
async fn graceful_shutdown_loses_no_in_flight_call_and_refuses_new_ones(t: Transport) {
    let mut server = start_on(t, |b| b.grace_period(Duration::from_secs(20))).await;
    let client = EchoClient::new(server.channel());
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.unary(Request::new(sleeping(500))).await })
        })
        .collect();
    server
        .stats
        .wait_for("every call to start", |s| {
            s.running.load(Ordering::SeqCst) == 50
        })
        .await;
    server.begin_shutdown();

    // Once the drain is under way, new calls are refused with a retryable
    // status while the others finish. (A call that raced ahead of the
    // shutdown signal is simply served.)
    let mut raced = 0;
    let refused = async {
        loop {
            match client.unary(Request::new(payload(1))).await {
                Ok(_) => {
                    raced += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(status) => return status,
            }
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("refused in time");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert!(response.get_ref().payload.is_empty());
    }
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 50 + raced);
    assert_eq!(server.stats.dropped.load(Ordering::SeqCst), 0);
    server.wait_stopped().await;
}
}

on_every_transport! {
async fn grace_period_expiry_makes_the_server_drop_calls(t: Transport) {
    let mut server = start_on(t, |b| b.grace_period(Duration::from_millis(200))).await;
    let client = EchoClient::new(server.channel());
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.unary(Request::new(sleeping(30_000))).await })
    };
    server
        .stats
        .wait_for("the call to start", |s| {
            s.running.load(Ordering::SeqCst) == 1
        })
        .await;
    server.begin_shutdown();
    let status = call.await.unwrap().unwrap_err();
    // The server resets the stream (CANCELLED) and closes the connection
    // (UNAVAILABLE); which the client sees first is a race of two packets.
    assert!(
        matches!(status.code(), Code::Cancelled | Code::Unavailable),
        "{status:?}"
    );
    // The client may hear of the close before the server's task has
    // dropped the handler: wait for the drop rather than race it.
    server
        .stats
        .wait_for("the handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
    server.wait_stopped().await;
}
}

on_every_transport! {
async fn channel_reconnects_after_the_server_restarts(t: Transport) {
    let server = start_on(t, |b| b).await;
    let (addr, cert) = (server.addr, server.cert.clone());
    let channel = server
        .channel_builder()
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let client = EchoClient::new(channel);
    client.unary(Request::new(payload(1))).await.unwrap();
    server.shutdown().await;

    let status = client.unary(Request::new(payload(1))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // The channel is backing off after that failed attempt: a call that
    // waits for ready rides out the backoff and reconnects by itself.
    let server = start_at_on(t, addr, cert, |b| b).await;
    let mut request = Request::new(payload(2));
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(20));
    let response = client.unary(request).await.unwrap();
    assert_eq!(response.get_ref().payload.len(), 2);
    server.shutdown().await;
}
}

on_every_transport! {
tls async fn mutual_tls_accepts_a_valid_client_certificate_and_refuses_a_missing_one(t: Transport) {
    let (ca_pem, identity) = common::client_ca_and_identity();
    let server = start_on(t, |b| b.client_ca_certificate(&ca_pem, ClientAuth::Required)).await;

    let with_cert = EchoClient::new(server.channel_with(server.tls().identity(identity.clone())));
    let request = EchoRequest {
        report_peer: true,
        ..Default::default()
    };
    let response = with_cert
        .unary(Request::new(request.clone()))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&response.get_ref().payload),
        format!("addr=127.0.0.1 certs=1 deadline=false transport={t} method=Unary")
    );

    let without = EchoClient::new(server.channel());
    let status = without
        .unary(Request::new(request.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // A certificate from an unknown CA is refused too.
    let (_, stranger) = common::client_ca_and_identity();
    let wrong = EchoClient::new(server.channel_with(server.tls().identity(stranger)));
    assert_eq!(
        wrong.unary(Request::new(request)).await.unwrap_err().code(),
        Code::Unavailable
    );
    server.shutdown().await;
}
}

on_every_transport! {
tls async fn optional_client_auth_accepts_both(t: Transport) {
    let (ca_pem, identity) = common::client_ca_and_identity();
    let server = start_on(t, |b| b.client_ca_certificate(&ca_pem, ClientAuth::Optional)).await;
    let request = EchoRequest {
        report_peer: true,
        ..Default::default()
    };
    let anonymous = EchoClient::new(server.channel());
    let response = anonymous
        .unary(Request::new(request.clone()))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&response.get_ref().payload).contains("certs=0"));
    let known = EchoClient::new(server.channel_with(server.tls().identity(identity)));
    let response = known.unary(Request::new(request)).await.unwrap();
    assert!(String::from_utf8_lossy(&response.get_ref().payload).contains("certs=1"));
    server.shutdown().await;
}
}

on_every_transport! {
tls async fn untrusted_server_certificate_is_unavailable_with_a_clear_message(t: Transport) {
    let server = start_on(t, |b| b).await;
    let other = grpc_h3::tls::DevCertificate::localhost().unwrap();
    let client = EchoClient::new(
        server.channel_with(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(other.cert_pem())),
    );
    let status = client.unary(Request::new(payload(1))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("connecting to"),
        "{}",
        status.message()
    );
    server.shutdown().await;
}
}

on_every_transport! {
async fn a_cancellation_token_ends_the_call_with_cancelled_on_both_sides(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());

    let token = grpc_h3::CancellationToken::new();
    let mut request = Request::new(sleeping(30_000));
    request.set_cancellation(token.clone());
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.unary(request).await })
    };
    server
        .stats
        .wait_for("the handler to start", |s| {
            s.running.load(Ordering::SeqCst) == 1
        })
        .await;
    token.cancel();
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    server
        .stats
        .wait_for("the handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 1
        })
        .await;

    // On a response stream: messages flow until the token fires.
    let token = grpc_h3::CancellationToken::new();
    let mut request = Request::new(EchoRequest {
        response_count: 10_000,
        response_size: 10,
        ..Default::default()
    });
    request.set_cancellation(token.clone());
    let mut stream = client.server_stream(request).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    token.cancel();
    assert_eq!(stream.message().await.unwrap_err().code(), Code::Cancelled);
    assert!(stream.message().await.unwrap().is_none());
    server
        .stats
        .wait_for("the stream handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 2
        })
        .await;
    server.wait_no_live_calls().await;
    server.shutdown().await;
}
}
