//! Which transports a server listens on, and how HTTP/2 responses point
//! clients at HTTP/3 (`alt-svc`).

mod common;

use std::time::Duration;

use common::{payload, start_on, EchoClient};
use grpc_h3::server::Listen;
use grpc_h3::{Code, Request, Transport};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_responses_advertise_http3_on_the_same_port() {
    let server = start_on(Transport::Http2, |b| b).await;
    let response = EchoClient::new(server.channel())
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    let expected = format!("h3=\":{}\"; ma=86400", server.addr.port());
    assert_eq!(response.metadata().get("alt-svc"), Some(expected.as_str()));
    server.shutdown().await;

    // Not when told not to, and never over HTTP/3 itself.
    let quiet = start_on(Transport::Http2, |b| b.advertise_http3(false)).await;
    let response = EchoClient::new(quiet.channel())
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    assert_eq!(response.metadata().get("alt-svc"), None);
    quiet.shutdown().await;
    let h3 = start_on(Transport::Http3, |b| b).await;
    let response = EchoClient::new(h3.channel())
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    assert_eq!(response.metadata().get("alt-svc"), None);
    h3.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transport_can_be_turned_off() {
    let quick = |server: &common::TestServer, transport: Transport| {
        let port = server.addr.port();
        grpc_h3::Channel::builder(format!("https://127.0.0.1:{port}"))
            .tls_config(server.tls())
            .transport(transport)
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };

    // HTTP/3 only: nothing on TCP, and no alt-svc to give anyway.
    let h3_only = start_on(Transport::Http3, |b| b.listen(Listen::Http3Only)).await;
    EchoClient::new(quick(&h3_only, Transport::Http3))
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    let status = EchoClient::new(quick(&h3_only, Transport::Http2))
        .unary(Request::new(payload(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("TCP connect failed"),
        "{status:?}"
    );
    h3_only.shutdown().await;

    // HTTP/2 only: no QUIC answer, and no alt-svc pointing at nothing.
    let h2_only = start_on(Transport::Http2, |b| b.listen(Listen::Http2Only)).await;
    let response = EchoClient::new(quick(&h2_only, Transport::Http2))
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    assert_eq!(response.metadata().get("alt-svc"), None);
    let status = EchoClient::new(quick(&h2_only, Transport::Http3))
        .unary(Request::new(payload(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("no QUIC answer"), "{status:?}");
    h2_only.shutdown().await;

    // h2c: plaintext only; a TLS client is refused at the handshake.
    let h2c = start_on(Transport::H2c, |b| b).await;
    EchoClient::new(h2c.channel())
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    let status = EchoClient::new(quick(&h2c, Transport::Http2))
        .unary(Request::new(payload(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    h2c.shutdown().await;
}

on_every_transport! {
async fn a_channel_connects_from_the_local_address_it_was_given(t: Transport) {
    let server = start_on(t, |b| b).await;
    let from = |ip: &str| {
        EchoClient::new(
            server
                .channel_builder()
                .local_address(ip.parse().unwrap())
                .connect_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        )
    };
    let request = common::pb::EchoRequest {
        report_peer: true,
        ..Default::default()
    };
    // All of 127/8 is loopback: the server sees the address we chose.
    let response = from("127.0.0.2").unary(Request::new(request)).await.unwrap();
    let text = String::from_utf8(response.into_inner().payload).unwrap();
    assert!(text.starts_with("addr=127.0.0.2 "), "{text}");
    // An address of the other family cannot reach an IPv4 server.
    let status = from("::1").unary(Request::new(payload(1))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("another address family"), "{status:?}");
    server.shutdown().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_runs_on_sockets_made_elsewhere() {
    // UDP and TCP on one port, bound by the application.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let cert = grpc_h3::tls::DevCertificate::localhost().unwrap();
    let server = grpc_h3::server::Server::builder()
        .tls_identity(cert.cert_pem(), cert.key_pem())
        .add_service(common::EchoService::default())
        .from_sockets(Some(udp), Some(tcp))
        .unwrap();
    assert_eq!(server.local_addr().unwrap().port(), port);
    let stop = grpc_h3::CancellationToken::new();
    let serving = tokio::spawn(server.serve_with_shutdown(stop.clone().cancelled_owned()));
    for transport in [Transport::Http3, Transport::Http2] {
        let channel = grpc_h3::Channel::builder(format!("https://127.0.0.1:{port}"))
            .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
            .transport(transport)
            .build()
            .unwrap();
        let response = EchoClient::new(channel)
            .unary(Request::new(payload(2)))
            .await
            .unwrap();
        assert_eq!(response.extensions().get(), Some(&transport));
    }
    stop.cancel();
    serving.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_serves_http2_on_any_byte_stream() {
    // In-memory pipes instead of sockets: the server takes one end of
    // each, a plain hyper HTTP/2 client the other, and grpc-h3's generic
    // client calls through that.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<tokio::io::DuplexStream>>(1);
    let stop = grpc_h3::CancellationToken::new();
    let echo = common::EchoService::default();
    let serving = tokio::spawn(
        grpc_h3::server::Server::builder()
            .listen(grpc_h3::server::Listen::H2c)
            .add_service(echo)
            .serve_with_incoming(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                stop.clone().cancelled_owned(),
            ),
    );
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    tx.send(Ok(server_end)).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(client_end),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let service = tower::service_fn(move |mut request: http::Request<grpc_h3::Body>| {
        let mut sender = sender.clone();
        *request.uri_mut() = format!("http://in-memory{}", request.uri())
            .parse()
            .unwrap();
        async move { sender.send_request(request).await }
    });
    let grpc = grpc_h3::client::Grpc::new(service);
    let reply = grpc
        .unary(
            Request::new(payload(5)),
            http::uri::PathAndQuery::from_static("/test.Echo/Unary"),
            grpc_h3::codec::ProstCodec::<common::pb::EchoRequest, common::pb::EchoResponse>::default(),
        )
        .await
        .unwrap();
    assert_eq!(reply.get_ref().payload.len(), 5);
    stop.cancel();
    serving.await.unwrap().unwrap();
}

/// Frames larger than the QUIC flow-control windows reach quinn in pieces
/// (the adapter hands each frame over as one chunk, or as header and
/// payload without a copy from 16 KiB on, and quinn takes what the window
/// allows): every byte arrives once and in order, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_larger_than_the_quic_windows_arrive_whole() {
    let mut narrow = quinn::TransportConfig::default();
    narrow
        .stream_receive_window(quinn::VarInt::from_u32(4096))
        .receive_window(quinn::VarInt::from_u32(8192))
        .send_window(8192);
    let narrow = std::sync::Arc::new(narrow);
    let server = start_on(Transport::Http3, |b| b.quic_transport_config(narrow)).await;
    let client = EchoClient::new(server.channel());
    // Distinct bytes in every message, so a piece sent twice, lost or
    // out of place changes what comes back.
    let requests: Vec<_> = (0..12u32)
        .map(|i| common::pb::EchoRequest {
            payload: (0..20_000 + i * 997).map(|b| (b * 31 + i) as u8).collect(),
            ..Default::default()
        })
        .collect();
    let sent: Vec<Vec<u8>> = requests.iter().map(|r| r.payload.clone()).collect();
    let mut echoes = client
        .bidi(Request::new(tokio_stream::iter(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    while let Some(echo) = echoes.message().await.unwrap() {
        received.push(echo.payload);
    }
    assert_eq!(received, sent);
    // The echoes' frames (each 20 KB or more: one message, or several
    // ready together) went to quinn as the response's own bytes.
    let handed_over = server.handle.stats().frames_sent_without_copy;
    assert!(
        (1..=12).contains(&handed_over),
        "{handed_over} frames handed over"
    );
    server.shutdown().await;
}
