//! Names and endpoints: round robin over several servers (skipping one
//! that goes away, taking it back when it returns), a custom resolver, and
//! Happy Eyeballs past a silent IPv6 address. Real servers on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{payload, start_at_on, EchoClient, TestServer};
use grpc_h3::client::{BackoffConfig, LoadBalancing, ResolveFuture, Resolver};
use grpc_h3::tls::DevCertificate;
use grpc_h3::{Channel, Request, Transport};

/// Calls served by each server so far.
fn served(servers: &[&TestServer]) -> Vec<usize> {
    servers
        .iter()
        .map(|s| s.stats.completed.load(Ordering::SeqCst))
        .collect()
}

/// Calls served by each server between two snapshots.
fn difference(after: &[usize], before: &[usize]) -> Vec<usize> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

async fn call(client: &EchoClient) {
    let mut request = Request::new(payload(10));
    request.set_timeout(Duration::from_secs(10));
    client.unary(request).await.expect("the call succeeds");
}

/// Calls until every server in `servers` has served one since `before`
/// (bounded: at most 200 calls, 25 ms apart); every call must succeed.
async fn until_all_serve(client: &EchoClient, servers: &[&TestServer]) {
    let before = served(servers);
    for _ in 0..200 {
        call(client).await;
        if difference(&served(servers), &before).iter().all(|&n| n > 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "some server never got a call: {:?}",
        difference(&served(servers), &before)
    );
}

/// Fast reconnection, so that a server that comes back rejoins quickly.
fn quick_backoff() -> BackoffConfig {
    BackoffConfig {
        initial: Duration::from_millis(50),
        multiplier: 1.6,
        jitter: 0.2,
        max: Duration::from_millis(200),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_calls_skips_a_server_that_left_and_takes_it_back() {
    let cert = DevCertificate::localhost().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = start_at_on(Transport::Http3, any, cert.clone(), |b| b).await;
    let mut b = start_at_on(Transport::Http3, any, cert.clone(), |b| b).await;
    let c = start_at_on(Transport::Http3, any, cert.clone(), |b| b).await;
    let b_addr = b.addr;
    let channel = Channel::builder(format!("https://localhost:{}", a.addr.port()))
        .tls_config(a.tls())
        .endpoints([a.addr, b.addr, c.addr].map(|addr| addr.to_string()))
        .load_balancing(LoadBalancing::RoundRobin)
        .connection_backoff(quick_backoff())
        .build()
        .unwrap();
    let client = EchoClient::new(channel.clone());
    until_all_serve(&client, &[&a, &b, &c]).await;
    let mut addresses = channel.balanced_addresses();
    addresses.sort();
    let mut expected = vec![a.addr, b.addr, c.addr];
    expected.sort();
    assert_eq!(addresses, expected);

    // All three up: calls rotate, exactly evenly.
    let before = served(&[&a, &b, &c]);
    for _ in 0..30 {
        call(&client).await;
    }
    assert_eq!(difference(&served(&[&a, &b, &c]), &before), [10, 10, 10]);

    // B leaves (GOAWAY, then its port closes): every call still succeeds,
    // on A and C.
    b.begin_shutdown();
    b.wait_stopped().await;
    let before = served(&[&a, &c]);
    for _ in 0..30 {
        call(&client).await;
    }
    let spread = difference(&served(&[&a, &c]), &before);
    assert_eq!(spread.iter().sum::<usize>(), 30);
    assert!(spread.iter().all(|&n| n >= 10), "A and C share: {spread:?}");

    // B returns on its old address: it gets calls again.
    let b = start_at_on(Transport::Http3, b_addr, cert, |b| b).await;
    until_all_serve(&client, &[&b]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = served(&[&a, &b, &c]);
    for _ in 0..30 {
        call(&client).await;
    }
    assert_eq!(difference(&served(&[&a, &b, &c]), &before), [10, 10, 10]);
}

/// Answers every name with the addresses it holds now, counting lookups.
#[derive(Clone, Default)]
struct Table {
    addresses: Arc<Mutex<Vec<SocketAddr>>>,
    lookups: Arc<Mutex<Vec<String>>>,
}

impl Resolver for Table {
    fn resolve(&self, host: &str, _port: u16) -> ResolveFuture {
        self.lookups.lock().unwrap().push(host.to_owned());
        let addresses = self.addresses.lock().unwrap().clone();
        Box::pin(async move { Ok(addresses) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_follows_the_resolver_as_addresses_change() {
    let cert = DevCertificate::localhost().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = start_at_on(Transport::Http2, any, cert.clone(), |b| b).await;
    let b = start_at_on(Transport::Http2, any, cert, |b| b).await;
    let table = Table::default();
    *table.addresses.lock().unwrap() = vec![a.addr];
    let channel = Channel::builder("https://service.test:1")
        .tls_config(a.tls().server_name("localhost"))
        .transport(Transport::Http2)
        .resolver(table.clone())
        .resolve_interval(Duration::from_millis(100))
        .load_balancing(LoadBalancing::RoundRobin)
        .build()
        .unwrap();
    let client = EchoClient::new(channel.clone());
    call(&client).await;
    assert_eq!(channel.balanced_addresses(), [a.addr]);
    assert_eq!(table.lookups.lock().unwrap()[0], "service.test");

    // The name gains B: the next resolution adds it.
    *table.addresses.lock().unwrap() = vec![a.addr, b.addr];
    until_all_serve(&client, &[&b]).await;
    assert_eq!(channel.balanced_addresses(), [a.addr, b.addr]);

    // The name loses A: calls go to B only.
    *table.addresses.lock().unwrap() = vec![b.addr];
    for _ in 0..200 {
        if channel.balanced_addresses() == [b.addr] {
            break;
        }
        call(&client).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(channel.balanced_addresses(), [b.addr]);
    let before = served(&[&a, &b]);
    for _ in 0..10 {
        call(&client).await;
    }
    assert_eq!(difference(&served(&[&a, &b]), &before), [0, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_ipv6_address_does_not_hold_up_a_live_ipv4_one() {
    let server = common::start(|b| b).await;
    // An IPv6 address that takes QUIC packets and never answers.
    let silent = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let table = Table::default();
    *table.addresses.lock().unwrap() = vec![silent_addr, server.addr];
    let channel = Channel::builder("https://dual-stack.test:1")
        .tls_config(server.tls().server_name("localhost"))
        .transport(Transport::Http3)
        .resolver(table)
        .build()
        .unwrap();
    let client = EchoClient::new(channel.clone());
    let started = Instant::now();
    call(&client).await;
    let elapsed = started.elapsed();
    // IPv6 first; IPv4 250 ms later (Happy Eyeballs), long before the
    // connect timeout (20 s) would give up on IPv6.
    assert!(
        elapsed < Duration::from_secs(5),
        "the first call took {elapsed:?}"
    );
    assert_eq!(channel.current_transport(), Some(Transport::Http3));
}

/// A UDP relay in front of a server that can be cut: from then on it
/// drops every datagram both ways, as a crashed host or a path that
/// stopped carrying UDP does (no ICMP, no CONNECTION_CLOSE).
struct Relay {
    addr: SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Relay {
        let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        back.connect(server).await.unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = Arc::new(Mutex::new(None::<SocketAddr>));
        let (f, b, c, k) = (front.clone(), back.clone(), client.clone(), cut.clone());
        tokio::spawn(async move {
            let mut buf = vec![0; 65536];
            while let Ok((n, from)) = f.recv_from(&mut buf).await {
                *c.lock().unwrap() = Some(from);
                if !k.load(Ordering::SeqCst) {
                    let _ = b.send(&buf[..n]).await;
                }
            }
        });
        let (f, k) = (front.clone(), cut.clone());
        tokio::spawn(async move {
            let mut buf = vec![0; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                let to = *client.lock().unwrap();
                if let (Some(to), false) = (to, k.load(Ordering::SeqCst)) {
                    let _ = f.send_to(&buf[..n], to).await;
                }
            }
        });
        Relay {
            addr: front.local_addr().unwrap(),
            cut,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http3_endpoint_is_dropped_after_two_unanswered_calls_not_the_idle_timeout() {
    let cert = DevCertificate::localhost().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = start_at_on(Transport::Http3, any, cert.clone(), |b| b).await;
    let b = start_at_on(Transport::Http3, any, cert, |b| b).await;
    let relay = Relay::start(a.addr).await;
    let channel = Channel::builder(format!("https://localhost:{}", a.addr.port()))
        .tls_config(a.tls())
        .transport(Transport::Http3)
        .endpoints([relay.addr, b.addr].map(|addr| addr.to_string()))
        .load_balancing(LoadBalancing::RoundRobin)
        .idle_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let client = EchoClient::new(channel.clone());
    until_all_serve(&client, &[&a, &b]).await;

    relay.cut.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for _ in 0..30 {
        let mut request = Request::new(payload(10));
        request.set_timeout(Duration::from_millis(500));
        outcomes.push(client.unary(request).await.map(drop).map_err(|s| s.code()));
    }
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    // The first call to the silent endpoint sets the baseline, the second
    // proves the silence; every later call goes to B. Without the
    // evidence, every other call would fail until the 60 s idle timeout.
    assert_eq!(failed, 2, "{outcomes:?}");
    assert!(outcomes[10..].iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(channel.balanced_addresses().len(), 2);
}
