//! The receive side's back-pressure on a real QUIC stream over loopback:
//! with h3's pull pattern (a chunk asked for at every step, nothing handed
//! on), reading from quinn stops once the backlog is full, and resumes as
//! the application takes data.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h3::quic::RecvStream as _;

use super::backlog::BACKLOG_LIMIT;
use super::streams::AbortCode;
use super::{ConnState, RecvStream, TransportCounters};
use crate::tls::DevCertificate;

/// Tiny DATA frames (type 0, length 10), as a stream of small messages
/// packs them: many per packet.
const FRAMES: usize = 40_000;
const PAYLOAD: usize = 10;

fn data_frames() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAMES * (PAYLOAD + 2));
    for i in 0..FRAMES {
        bytes.extend([0x00, PAYLOAD as u8]);
        bytes.extend(std::iter::repeat_n((i % 251) as u8, PAYLOAD));
    }
    bytes
}

async fn connected_pair() -> (quinn::Endpoint, quinn::Connection, quinn::Connection) {
    let cert = DevCertificate::localhost().unwrap();
    let provider = crate::tls::default_provider();
    let server_tls = crate::tls::server_config(&cert.identity(), None, provider).unwrap();
    let server_tls = crate::tls::with_alpn(&server_tls, crate::tls::ALPN_H3);
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from((*server_tls).clone()).unwrap();
    let server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let client_tls = crate::tls::ClientTlsConfig::new()
        .ca_certificate(cert.cert_pem())
        .build(false)
        .unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).unwrap();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = client
        .connect(server.local_addr().unwrap(), "localhost")
        .unwrap();
    let accepting = async { server.accept().await.unwrap().await.unwrap() };
    let (client_conn, server_conn) = tokio::join!(connecting, accepting);
    (client, client_conn.unwrap(), server_conn)
}

/// One step of h3's pull pattern: the next chunk if the adapter gives one
/// right now.
fn pull_now(stream: &mut RecvStream) -> Poll<Option<Bytes>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    stream.poll_data(&mut cx).map(|r| r.unwrap())
}

#[tokio::test]
async fn reading_from_quinn_waits_while_h3_holds_a_full_backlog() {
    let (_client_endpoint, client, server) = connected_pair().await;
    let sent = data_frames();
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let (mut send, _recv) = client.open_bi().await.unwrap();
            send.write_all(&sent).await.unwrap();
            send.finish().unwrap();
            send.stopped().await.ok();
            client
        })
    };
    let (_send, recv) = server.accept_bi().await.unwrap();
    let state = Arc::new(ConnState::new(
        16 << 10,
        Arc::new(TransportCounters::default()),
    ));
    let mut stream = RecvStream::request(recv, state.clone(), AbortCode::new());
    let backlog = state
        .backlogs
        .claim(stream.recv_id().into_inner())
        .expect("the stream registered its backlog");

    // Pull without handing anything on, as h3 does while it looks for
    // frames, until the backlog is full.
    let mut received = Vec::new();
    let mut largest_chunk = 0;
    while !backlog.full() {
        let chunk = poll_fn(|cx| stream.poll_data(cx)).await.unwrap();
        let chunk = chunk.expect("the peer sent more than the limit");
        largest_chunk = largest_chunk.max(chunk.len());
        received.extend_from_slice(&chunk);
    }
    assert!(received.len() < sent.len(), "the test needs data left over");
    assert!(
        backlog.held() <= BACKLOG_LIMIT + largest_chunk as u64,
        "held {} with chunks of at most {largest_chunk}",
        backlog.held()
    );
    // Full: nothing more is read, however often h3 asks.
    for _ in 0..100 {
        assert!(pull_now(&mut stream).is_pending());
    }
    let held_when_full = backlog.held();

    // The application takes what h3 holds: reading resumes, and the whole
    // stream arrives, in order, every payload byte counted once.
    let mut payload_counted = held_when_full;
    backlog.delivered(held_when_full);
    while let Some(chunk) = poll_fn(|cx| stream.poll_data(cx)).await.unwrap() {
        received.extend_from_slice(&chunk);
        payload_counted += backlog.held();
        backlog.delivered(backlog.held());
    }
    assert_eq!(received, sent);
    assert_eq!(payload_counted, (FRAMES * PAYLOAD) as u64);
    drop(stream);
    assert_eq!(state.backlogs.unclaimed(), 0);
    writer.await.unwrap();
}
