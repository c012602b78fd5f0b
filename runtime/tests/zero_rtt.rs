//! 0-RTT: resumed HTTP/3 connections carry replay-safe calls in TLS early
//! data; nothing else runs from early data, and replays are refused.
//!
//! The raw clients here are quinn + h3 + rustls configured by hand, so the
//! server is tested against early data grpc-h3's own channel would never
//! send (a method that is not replay-safe, a reused ticket).

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Buf;
use common::pb::EchoRequest;
use common::{grpc_frame, start, start_at, EchoClient};
use grpc_h3::client::Idempotency;
use grpc_h3::server::ServerStats;
use grpc_h3::{Channel, Request, Transport};
use h3::error::{Code, StreamError};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};

const UNARY: &str = "/test.Echo/Unary";

fn request(idempotency: Option<Idempotency>) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest::default());
    request.set_timeout(Duration::from_secs(10));
    if let Some(level) = idempotency {
        request.extensions_mut().insert(level);
    }
    request
}

/// Waits (bounded) until `check` holds of the server's stats.
async fn until(server: &common::TestServer, what: &str, check: impl Fn(&ServerStats) -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !check(&server.handle.stats()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: {:?}", server.handle.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_channel_sends_replay_safe_calls_early_and_holds_the_rest() {
    let server = start(|b| b.allow_early_data(UNARY)).await;
    let relay = Relay::start(server.addr).await;
    let tls = server.tls();
    let channel = |early_data: bool| {
        let uri = format!("https://127.0.0.1:{}", relay.addr.port());
        Channel::builder(uri)
            .tls_config(tls.clone())
            .transport(Transport::Http3)
            .early_data(early_data)
            .build()
            .unwrap()
    };
    // The first connection makes a full handshake and gets tickets.
    EchoClient::new(channel(true))
        .unary(request(None))
        .await
        .unwrap();
    assert_eq!(server.handle.stats().early_data_calls, 0);

    // A new channel from the same TLS configuration resumes. With the
    // server's answers held, its handshake cannot finish: the replay-safe
    // call runs from early data, and the other (no idempotency level)
    // waits in the client instead of being sent and refused.
    relay.hold();
    let second = EchoClient::new(channel(true));
    let safe = tokio::spawn({
        let second = second.clone();
        async move {
            second
                .unary(request(Some(Idempotency::NoSideEffects)))
                .await
        }
    });
    let other = tokio::spawn(async move { second.unary(request(None)).await });
    until(&server, "the replay-safe call ran early", |s| {
        s.early_data_calls == 1
    })
    .await;
    server
        .stats
        .wait_for("the early call completed", |h| {
            h.completed.load(Ordering::SeqCst) == 2
        })
        .await;
    relay.release().await;
    safe.await.unwrap().unwrap();
    other.await.unwrap().unwrap();
    let stats = server.handle.stats();
    assert_eq!(stats.early_data_calls, 1, "{stats:?}");
    assert_eq!(stats.early_data_refused, 0, "{stats:?}");
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 3);

    // Turned off on the channel: nothing goes early.
    relay.hold();
    let off = tokio::spawn({
        let off = EchoClient::new(channel(false));
        async move { off.unary(request(Some(Idempotency::Idempotent))).await }
    });
    until(&server, "the handshake began", |s| {
        s.handshakes > 0 || s.connections > 1
    })
    .await;
    relay.release().await;
    off.await.unwrap().unwrap();
    assert_eq!(server.handle.stats().early_data_calls, 1);
    server.shutdown().await;
}

// One thread: the channel then has one UDP endpoint (one per thread), so
// the old and the new connection share the client address the relay
// forwards to.
#[tokio::test(flavor = "current_thread")]
async fn a_handshake_that_never_completes_sends_the_early_calls_again_elsewhere() {
    let server = start(|b| b.allow_early_data(UNARY)).await;
    let relay = Relay::start(server.addr).await;
    let tls = server.tls();
    let channel = || {
        Channel::builder(format!("https://127.0.0.1:{}", relay.addr.port()))
            .tls_config(tls.clone())
            .transport(Transport::Http3)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    EchoClient::new(channel())
        .unary(request(None))
        .await
        .unwrap();

    // The resumed connection's handshake cannot complete while the relay
    // drops the server's answers: the server runs the early call, but the
    // client never hears back and gives up on the handshake at the connect
    // timeout. The call, replay-safe, goes again on a new connection (a
    // full handshake: the address is no longer trusted with 0-RTT), whose
    // answers the relay lets through, and runs again, as replay-safe calls
    // may.
    relay.drop_answers_until_next_connection();
    EchoClient::new(channel())
        .unary(request(Some(Idempotency::Idempotent)))
        .await
        .expect("sent again after the failed handshake");
    let stats = server.handle.stats();
    assert_eq!(stats.early_data_calls, 1, "{stats:?}");
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_calls_rejected_by_a_restarted_server_are_sent_again() {
    // The tickets come from a server that then restarts on the same port:
    // the new process does not know them, so it rejects the early data.
    let server = start(|b| b.allow_early_data(UNARY)).await;
    let (addr, cert, tls) = (server.addr, server.cert.clone(), server.tls());
    let channel = |tls| {
        server
            .channel_builder()
            .tls_config(tls)
            .transport(Transport::Http3)
            .build()
            .unwrap()
    };
    EchoClient::new(channel(tls.clone()))
        .unary(request(None))
        .await
        .unwrap();
    let resumed = channel(tls);
    server.shutdown().await;

    let restarted = start_at(addr, cert, |b| b.allow_early_data(UNARY)).await;
    EchoClient::new(resumed)
        .unary(request(Some(Idempotency::Idempotent)))
        .await
        .expect("the call rejected in early data succeeds after the handshake");
    let stats = restarted.handle.stats();
    assert_eq!(stats.early_data_calls, 0, "{stats:?}");
    assert_eq!(restarted.stats.completed.load(Ordering::SeqCst), 1);
    restarted.shutdown().await;
}

/// A UDP relay between a client and the server. It records the client's
/// first flight (every datagram it sends before the server's first
/// answer), to replay it later from another address as an attacker on the
/// path could; and it can hold the server's answers back, which keeps the
/// client from finishing its handshake: while they are held, everything the
/// client sends is early data and the server is certainly before the end
/// of its handshake, however fast the machine.
struct Relay {
    addr: std::net::SocketAddr,
    first_flight: Arc<Mutex<Vec<Vec<u8>>>>,
    recording: Arc<std::sync::atomic::AtomicBool>,
    held: Arc<Mutex<Option<Vec<Vec<u8>>>>>,
    /// While set, the server's answers are dropped; holds the destination
    /// connection id of the connection they are dropped for, once seen.
    dropping: Arc<Mutex<Option<Option<Vec<u8>>>>>,
    socket: Arc<tokio::net::UdpSocket>,
    client: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

impl Relay {
    async fn start(server: std::net::SocketAddr) -> Relay {
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let relay = Relay {
            addr: socket.local_addr().unwrap(),
            first_flight: Arc::default(),
            recording: Arc::new(true.into()),
            held: Arc::default(),
            dropping: Arc::default(),
            socket: socket.clone(),
            client: Arc::default(),
        };
        let (recorded, recording, held, client) = (
            relay.first_flight.clone(),
            relay.recording.clone(),
            relay.held.clone(),
            relay.client.clone(),
        );
        let dropping = relay.dropping.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let datagram = buf[..n].to_vec();
                if from == server {
                    recording.store(false, Ordering::SeqCst);
                    if dropping.lock().unwrap().is_some() {
                        continue;
                    }
                    if let Some(held) = held.lock().unwrap().as_mut() {
                        held.push(datagram);
                        continue;
                    }
                    let to = *client.lock().unwrap();
                    if let Some(to) = to {
                        let _ = socket.send_to(&datagram, to).await;
                    }
                } else {
                    *client.lock().unwrap() = Some(from);
                    if let Some(dcid) = initial_dcid(&datagram) {
                        let mut dropping = dropping.lock().unwrap();
                        match dropping.as_mut() {
                            Some(first @ None) => *first = Some(dcid),
                            Some(Some(first)) if *first != dcid => *dropping = None,
                            _ => {}
                        }
                    }
                    if recording.load(Ordering::SeqCst) {
                        recorded.lock().unwrap().push(datagram.clone());
                    }
                    let _ = socket.send_to(&datagram, server).await;
                }
            }
        });
        relay
    }

    /// Holds the server's answers from now on, and records the next first
    /// flight.
    fn hold(&self) {
        *self.held.lock().unwrap() = Some(Vec::new());
        self.first_flight.lock().unwrap().clear();
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Drops the server's answers to the next connection, until the client
    /// starts another one: that connection's handshake cannot complete.
    fn drop_answers_until_next_connection(&self) {
        *self.dropping.lock().unwrap() = Some(None);
    }

    /// Delivers the held answers, and the later ones as they come.
    async fn release(&self) {
        let held = self.held.lock().unwrap().take().unwrap_or_default();
        let to = self.client.lock().unwrap().expect("a client");
        for datagram in held {
            self.socket.send_to(&datagram, to).await.unwrap();
        }
    }

    /// Sends the recorded first flight to `server` again, from a new port.
    async fn replay(&self, server: std::net::SocketAddr) -> usize {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let flight = self.first_flight.lock().unwrap().clone();
        for datagram in &flight {
            socket.send_to(datagram, server).await.unwrap();
        }
        // Kept open a moment so that the server's answers are not refused
        // by the kernel before the attempt times out on its own.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        flight.len()
    }
}

/// The destination connection id of a QUIC v1 Initial packet (long header,
/// type 0) at the start of `datagram`.
fn initial_dcid(datagram: &[u8]) -> Option<Vec<u8>> {
    let first = *datagram.first()?;
    if first & 0x80 == 0 || first & 0x30 != 0 {
        return None;
    }
    let len = usize::from(*datagram.get(5)?);
    datagram.get(6..6 + len).map(<[u8]>::to_vec)
}

/// quinn + h3 by hand, sending early data whenever the session allows.
struct EarlyClient {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    addr: std::net::SocketAddr,
    authority: String,
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>;

impl EarlyClient {
    fn new(server: &common::TestServer, store: Arc<dyn ClientSessionStore>) -> EarlyClient {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(server.cert.cert_pem().as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.enable_early_data = true;
        tls.resumption = rustls::client::Resumption::store(store);
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        EarlyClient {
            endpoint: quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap(),
            config: quinn::ClientConfig::new(Arc::new(crypto)),
            addr: server.addr,
            authority: format!("127.0.0.1:{}", server.addr.port()),
        }
    }

    /// The same client (same TLS configuration, so the same sessions),
    /// connecting to `addr` (a relay) instead.
    fn via(&self, addr: std::net::SocketAddr) -> EarlyClient {
        EarlyClient {
            endpoint: self.endpoint.clone(),
            config: self.config.clone(),
            addr,
            authority: self.authority.clone(),
        }
    }

    fn connecting(&self) -> quinn::Connecting {
        self.endpoint
            .connect_with(self.config.clone(), self.addr, "localhost")
            .unwrap()
    }

    /// A full handshake, and one call so that the tickets have arrived.
    async fn handshake(&self) {
        let conn = self.connecting().await.unwrap();
        let mut sender = h3_on(conn).await;
        let status = self.call(&mut sender, UNARY).await.unwrap();
        assert_eq!(status.as_deref(), Some("0"));
    }

    /// A resumed connection in its early phase, HTTP/3 set up on it.
    async fn early(&self) -> (Sender, quinn::ZeroRttAccepted) {
        let (conn, accepted) = self
            .connecting()
            .into_0rtt()
            .unwrap_or_else(|_| panic!("the session allows 0-RTT"));
        (h3_on(conn).await, accepted)
    }

    /// Sends one unary call; its `grpc-status`, or the stream error.
    async fn call(&self, sender: &mut Sender, path: &str) -> Result<Option<String>, StreamError> {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("https://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let mut stream = sender.send_request(request).await?;
        stream
            .send_data(grpc_frame(&EchoRequest::default()))
            .await?;
        stream.finish().await?;
        let response = stream.recv_response().await?;
        if let Some(status) = response.headers().get("grpc-status") {
            return Ok(Some(status.to_str().unwrap().to_owned()));
        }
        while let Some(mut data) = stream.recv_data().await? {
            data.advance(data.remaining());
        }
        let trailers = stream.recv_trailers().await?;
        Ok(trailers
            .and_then(|t| t.get("grpc-status").cloned())
            .map(|v| v.to_str().unwrap().to_owned()))
    }
}

async fn h3_on(conn: quinn::Connection) -> Sender {
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    sender
}

fn rejected(result: &Result<Option<String>, StreamError>) -> bool {
    matches!(result, Err(StreamError::RemoteTerminate { code, .. }) if *code == Code::H3_REQUEST_REJECTED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_not_safe_to_replay_never_runs_from_early_data() {
    // No method is declared replay-safe here.
    let server = start(|b| b).await;
    let relay = Relay::start(server.addr).await;
    let direct = EarlyClient::new(&server, Arc::new(ClientSessionMemoryCache::new(8)));
    direct.handshake().await;
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 1);

    // The call in early data, the server's answers held until it has
    // refused it (so its handshake certainly had not completed).
    relay.hold();
    let client = direct.via(relay.addr);
    let (mut sender, accepted) = client.early().await;
    let (early, ()) = tokio::join!(client.call(&mut sender, UNARY), async {
        until(&server, "the early call was refused", |s| {
            s.early_data_refused == 1
        })
        .await;
        relay.release().await;
    });
    assert!(rejected(&early), "refused from early data: {early:?}");
    let stats = server.handle.stats();
    assert_eq!(stats.early_data_refused, 1, "{stats:?}");
    assert_eq!(stats.early_data_calls, 0, "{stats:?}");
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 1, "not run");

    // After the handshake the same call on the same connection runs.
    assert!(accepted.await, "the server accepted the early data");
    let after = client.call(&mut sender, UNARY).await.unwrap();
    assert_eq!(after.as_deref(), Some("0"));
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_first_flight_runs_nothing() {
    let server = start(|b| {
        b.allow_early_data(UNARY)
            .handshake_timeout(Duration::from_millis(500))
    })
    .await;
    let relay = Relay::start(server.addr).await;
    let direct = EarlyClient::new(&server, Arc::new(ClientSessionMemoryCache::new(8)));
    direct.handshake().await;

    // A resumed connection through the relay: its replay-safe call runs
    // from early data, once (the server's answers held until it has).
    relay.hold();
    let client = direct.via(relay.addr);
    let (mut sender, accepted) = client.early().await;
    let (first, ()) = tokio::join!(client.call(&mut sender, UNARY), async {
        until(&server, "the early call ran", |s| s.early_data_calls == 1).await;
        relay.release().await;
    });
    assert_eq!(first.unwrap().as_deref(), Some("0"));
    assert!(accepted.await);
    assert_eq!(server.handle.stats().early_data_calls, 1);
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 2);

    // Once that connection is gone, the same first flight (ClientHello
    // with the ticket, and the call in 0-RTT packets) replayed from another
    // address: the ticket has been used, so TLS rejects the early data and
    // the call cannot even be decrypted; the attempt goes no further than
    // its handshake.
    drop(sender);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while server.handle.stats().connections > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(closed.is_ok(), "{:?}", server.handle.stats());
    // Sent again every half second: until QUIC has forgotten the finished
    // connection, packets with its connection id go to it and are dropped.
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while server.handle.stats().handshake_timeouts == 0 {
            assert!(relay.replay(server.addr).await > 0);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let stats = server.handle.stats();
    assert!(
        waited.is_ok(),
        "the replayed attempt reached the server: {stats:?}"
    );
    assert_eq!(stats.early_data_calls, 1, "{stats:?}");
    assert_eq!(
        server.stats.completed.load(Ordering::SeqCst),
        2,
        "nothing ran again"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_early_data_off_or_client_certificates_runs_nothing_early() {
    let (client_ca, _identity) = common::client_ca_and_identity();
    for (what, configure) in [
        (
            "early data off",
            Box::new(|b: grpc_h3::server::ServerBuilder| {
                b.allow_early_data(UNARY).early_data(false)
            }) as Box<dyn Fn(_) -> _>,
        ),
        (
            "optional client certificates",
            Box::new(move |b: grpc_h3::server::ServerBuilder| {
                b.allow_early_data(UNARY)
                    .client_ca_certificate(client_ca.as_bytes(), grpc_h3::tls::ClientAuth::Optional)
            }),
        ),
    ] {
        let server = start(configure).await;
        let client = EarlyClient::new(&server, Arc::new(ClientSessionMemoryCache::new(8)));
        client.handshake().await;
        // Its tickets do not allow early data at all.
        assert!(
            client.connecting().into_0rtt().is_err(),
            "{what}: the ticket offers no 0-RTT"
        );
        assert_eq!(server.handle.stats().early_data_calls, 0, "{what}");
        server.shutdown().await;
    }
}

/// A full handshake carries no early data, so no call on it may be taken
/// for early data, even one that arrives with the client's Finished,
/// before the server's accept loop has looked at the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_right_behind_a_full_handshake_are_not_early_data() {
    let server = start(|b| b).await;
    for _ in 0..40 {
        let channel = Channel::builder(format!("https://127.0.0.1:{}", server.addr.port()))
            .tls_config(server.tls())
            .transport(Transport::Http3)
            .early_data(false)
            .build()
            .unwrap();
        EchoClient::new(channel).unary(request(None)).await.unwrap();
    }
    let stats = server.handle.stats();
    assert_eq!(
        (stats.early_data_calls, stats.early_data_refused),
        (0, 0),
        "{stats:?}"
    );
    server.shutdown().await;
}
