//! Every resource a client can make the server hold has a bound and a
//! timeout. Each test plays the abusive client with raw HTTP/3 bytes and
//! observes the server itself (its counters and gauges), then checks that
//! everyone else is still served.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use grpc_h3_tests::pb::test_service_client::TestServiceClient;
use grpc_h3_tests::pb::{Empty, SimpleRequest, SimpleResponse};
use prost::Message;
use support::raw::{
    self, data_message, frame, qpack, read_frames, request_headers, varint, DATA, EXCESSIVE_LOAD,
    HEADERS, REQUEST_REJECTED, SETTINGS,
};
use support::{raw_client, raw_quic, start_server, Running};

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const DUPLEX: &str = "/grpc.testing.TestService/FullDuplexCall";

async fn serves_others(server: &Running) {
    TestServiceClient::new(server.channel())
        .empty_call(Empty {})
        .await
        .expect("the server still serves other clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_data_frames_are_not_the_end_of_the_request() {
    let server = start_server(|b| b);
    let (_endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
    let request = SimpleRequest {
        response_size: 10,
        ..Default::default()
    };
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut bytes = request_headers(UNARY);
    bytes.extend(frame(DATA, b""));
    bytes.extend(data_message(&request.encode_to_vec()));
    bytes.extend(frame(DATA, b""));
    raw::write_and_finish(&mut send, &bytes).await;
    let frames = read_frames(&mut recv)
        .await
        .expect("an answer, not a reset");
    // Frames of the types HTTP/3 defines (h3 also sends grease frames).
    let types: Vec<u64> = frames
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t <= 0xd)
        .collect();
    assert_eq!(types.first(), Some(&HEADERS));
    assert_eq!(types.last(), Some(&HEADERS), "trailers end the response");
    let messages = raw::messages(&frames);
    assert_eq!(messages.len(), 1, "{types:?}");
    let response = SimpleResponse::decode(&messages[0][..]).unwrap();
    assert_eq!(response.payload.unwrap().body.len(), 10);
    assert_eq!(server.handle.stats().empty_data_frames, 2);
    serves_others(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_headers_frame_is_refused_before_it_is_buffered() {
    let server = start_server(|b| b);
    let (_endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut head = varint(HEADERS);
    head.extend(varint(512 << 20));
    send.write_all(&head).await.unwrap();
    let block = vec![0u8; 1 << 20];
    let mut sent_mib = 0;
    let stopped = loop {
        match send.write_all(&block).await {
            Ok(()) => sent_mib += 1,
            Err(quinn::WriteError::Stopped(code)) => break code.into_inner(),
            Err(other) => panic!("unexpected {other}"),
        }
        assert!(sent_mib < 64, "the server kept reading a refused frame");
    };
    assert_eq!(stopped, u64::from(EXCESSIVE_LOAD));
    assert_eq!(read_frames(&mut recv).await.unwrap_err(), EXCESSIVE_LOAD);
    assert_eq!(server.handle.stats().refused_frames, 1);
    // The connection itself is fine.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut bytes = request_headers(UNARY);
    bytes.extend(data_message(&SimpleRequest::default().encode_to_vec()));
    raw::write_and_finish(&mut send, &bytes).await;
    assert_eq!(
        raw::messages(&read_frames(&mut recv).await.unwrap()).len(),
        1
    );
    serves_others(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_control_frame_closes_the_connection() {
    let server = start_server(|b| b);
    let (_endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
    let mut control = conn.open_uni().await.unwrap();
    let mut bytes = varint(0x00); // control stream
    bytes.extend(varint(SETTINGS));
    bytes.extend(varint(1 << 30));
    control.write_all(&bytes).await.unwrap();
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), u64::from(EXCESSIVE_LOAD));
            let reason = String::from_utf8_lossy(&close.reason);
            assert!(reason.contains("SETTINGS"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.handle.stats().refused_frames, 1);
    serves_others(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_finish_their_headers_are_refused_and_freed() {
    let server = start_server(|b| b.header_read_timeout(Duration::from_millis(300)));
    let (_endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
    server
        .wait_for("the connection task", |s| s.connections == 1)
        .await;
    let baseline = server.handle.stats().tasks;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let (mut send, recv) = conn.open_bi().await.unwrap();
        let mut partial = varint(HEADERS);
        partial.extend(varint(200));
        partial.extend([0u8; 50]);
        send.write_all(&partial).await.unwrap();
        streams.push((send, recv));
    }
    for (_send, mut recv) in streams {
        assert_eq!(read_frames(&mut recv).await.unwrap_err(), REQUEST_REJECTED);
    }
    assert_eq!(server.handle.stats().header_timeouts, 50);
    server
        .wait_for("every stream task to end", |s| s.tasks == baseline)
        .await;
    serves_others(&server).await;
    server.stop().await;
}

/// Reads the server's control stream on a bare QUIC connection up to its
/// GOAWAY; returns the id it carries.
async fn wait_for_goaway(conn: &quinn::Connection) -> u64 {
    loop {
        let mut uni = conn.accept_uni().await.unwrap();
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = uni.read_chunk(usize::MAX, true).await {
            bytes.extend_from_slice(&chunk.bytes);
            if bytes.first() != Some(&0x00) {
                break; // not the control stream
            }
            let frames = raw::parse_frames_partial(&bytes[1..]);
            if let Some((_, payload)) = frames.iter().find(|(t, _)| *t == raw::GOAWAY) {
                return raw::parse_varint(payload);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_goaway_are_refused_before_their_headers_are_read() {
    let server = start_server(|b| b);
    let (_endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
    // A call in flight keeps the drain (and the connection) going.
    let (mut in_flight, _in_flight_recv) = conn.open_bi().await.unwrap();
    in_flight.write_all(&request_headers(DUPLEX)).await.unwrap();
    server
        .wait_for("the call to start", |s| s.live_calls == 1)
        .await;

    server.begin_stop();
    let boundary = wait_for_goaway(&conn).await;
    assert_eq!(boundary, 4, "the first stream not processed");
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&varint(HEADERS)).await.unwrap(); // not even a length
    assert_eq!(read_frames(&mut recv).await.unwrap_err(), REQUEST_REJECTED);
    let stats = server.handle.stats();
    assert_eq!((stats.refused_after_goaway, stats.header_timeouts), (1, 0));
    in_flight.reset(0x10c_u32.into()).unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_until_one_closes() {
    let server = start_server(|b| b.max_connections(2));
    let (_e1, first) = raw_quic(server.addr, server.cert.cert_pem()).await;
    let (_e2, _second) = raw_quic(server.addr, server.cert.cert_pem()).await;
    let status = TestServiceClient::new(server.channel())
        .empty_call(Empty {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), grpc_h3::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("refused"), "{status:?}");
    assert!(server.handle.stats().connections_refused >= 1);

    first.close(0u32.into(), b"done");
    server.wait_for("a free slot", |s| s.connections == 1).await;
    let channel = server.channel();
    let mut request = grpc_h3::Request::new(Empty {});
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(20));
    TestServiceClient::new(channel)
        .empty_call(request)
        .await
        .expect("served once a slot is free");
    server.stop().await;
}

/// Forwards a client's first datagram to `server` and nothing after it, and
/// everything the server sends back: a handshake that can never complete.
async fn first_packet_only(server: SocketAddr) -> SocketAddr {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let (n, client) = front.recv_from(&mut buf).await.unwrap();
        back.send_to(&buf[..n], server).await.unwrap();
        let mut from_server = vec![0u8; 65536];
        loop {
            tokio::select! {
                Ok((n, _)) = back.recv_from(&mut from_server) => {
                    let _ = front.send_to(&from_server[..n], client).await;
                }
                Ok(_) = front.recv_from(&mut buf) => {} // dropped
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_that_stall_are_dropped_after_the_handshake_timeout() {
    let server = start_server(|b| b.handshake_timeout(Duration::from_millis(300)));
    let relay = first_packet_only(server.addr).await;
    let channel = grpc_h3::Channel::builder(format!("https://127.0.0.1:{}", relay.port()))
        .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(server.cert.cert_pem()))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let status = TestServiceClient::new(channel)
        .empty_call(Empty {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), grpc_h3::Code::Unavailable, "{status:?}");
    server
        .wait_for("the stalled handshake to be dropped", |s| {
            s.handshake_timeouts == 1 && s.handshakes == 0 && s.connections == 0
        })
        .await;
    serves_others(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_handshake_load_clients_validate_their_address_first() {
    // A threshold of zero sends every new client through a Retry.
    let server = start_server(|b| b.retry_above_handshakes(0));
    serves_others(&server).await;
    let stats = server.handle.stats();
    assert!(stats.retries_sent >= 1, "{stats:?}");
    assert_eq!(stats.connections_accepted, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_resets_close_the_connection_with_excessive_load() {
    let server = start_server(|b| b.early_reset_limit(20, Duration::from_secs(60)));
    let mut raw = raw_client(&server).await;
    for _ in 0..200 {
        let request = raw.request(UNARY, &[]);
        match raw.sender.send_request(request).await {
            Ok(mut stream) => {
                // The request message never comes: the server has nothing
                // to answer yet when the client walks away.
                stream.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
                stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
            }
            // The server closed the connection already.
            Err(_) => break,
        }
        tokio::task::yield_now().await;
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), raw.conn.closed())
        .await
        .expect("the server closed the connection");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), u64::from(EXCESSIVE_LOAD));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.handle.stats().early_reset_closes, 1);
    serves_others(&server).await;
    server.stop().await;
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_blocks_with_more_fields_than_h3_can_hold_never_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    // Limits above the ceiling get the ceiling: 4 MiB would let h3 build
    // a HeaderMap too large for http (a panic), u64::MAX would not even
    // encode into h3's SETTINGS frame (a panic too).
    for limit in [4 << 20, u64::MAX] {
        let server = start_server(|b| b.max_header_list_size(limit));
        let (_endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
        let names: Vec<String> = (0..30_000).map(|i| format!("x{i}")).collect();
        let mut fields = vec![
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", UNARY),
            ("content-type", "application/grpc"),
        ];
        fields.extend(names.iter().map(|n| (n.as_str(), "")));
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let _ = send.write_all(&frame(HEADERS, &qpack(&fields))).await;
        let _ = send.finish();
        let _ = read_frames(&mut recv).await;
        serves_others(&server).await;
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "a panic with limit {limit}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_credit_starts_small_and_grows_to_the_limit_with_use() {
    // A connection starts with credit for 32 request streams; holding
    // open calls must raise it, by doubling, to the configured 100.
    let server = start_server(|b| b.max_concurrent_streams(100));
    let channel = grpc_h3::Channel::builder(format!("https://127.0.0.1:{}", server.addr.port()))
        .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(server.cert.cert_pem()))
        .transport(grpc_h3::Transport::Http3)
        .build()
        .unwrap();
    let client = TestServiceClient::new(channel);
    let mut held = Vec::new();
    for _ in 0..100 {
        let (keep, requests) =
            tokio::sync::mpsc::channel::<grpc_h3_tests::pb::StreamingOutputCallRequest>(1);
        let client = client.clone();
        let call = tokio::spawn(async move {
            client
                .full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(requests))
                .await
        });
        held.push((keep, call));
    }
    server
        .wait_for("all 100 calls running in their handlers at once", |_| {
            server.probe.started.load(Ordering::SeqCst) == 100
        })
        .await;
    drop(held);
    serves_others(&server).await;
}
