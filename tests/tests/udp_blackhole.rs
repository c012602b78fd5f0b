//! UDP black-holed after the QUIC handshake, with calls in flight: the
//! server (`interop_server`) runs in a network namespace of its own,
//! reached over a veth pair; once an automatic channel's calls go over
//! HTTP/3, nftables in that namespace drops every UDP packet to and from
//! the server. The pending calls must fail UNAVAILABLE within the idle
//! timeout (keep-alive gets no answer), and the next call must succeed
//! over HTTP/2. Needs root, `ip` and `nft` (`.ci/run` installs them); the
//! namespace is removed afterwards, also when the test fails.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Code, Transport};
use grpc_h3_tests::pb::test_service_client::TestServiceClient;
use grpc_h3_tests::pb::{ResponseParameters, SimpleRequest, StreamingOutputCallRequest};

const NS: &str = "gh3t-bh";
const HOST_DEV: &str = "gh3t-h";
const NS_DEV: &str = "gh3t-n";
const HOST_IP: &str = "10.204.0.2";
const SERVER_IP: &str = "10.204.0.1";
const PORT: u16 = 47651;
const TABLE: &str = "gh3t_blackhole";

fn run(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} failed ({e}): this test needs root, iproute2 and nftables (apt-get install iproute2 nftables)",
                args.join(" ")
            )
        });
    assert!(
        output.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// The namespace, the veth pair and the server in it; all removed on drop.
struct Lab {
    server: Option<Child>,
}

impl Lab {
    fn create() -> Lab {
        Lab::remove();
        let lab = Lab { server: None };
        run(&["ip", "netns", "add", NS]);
        run(&[
            "ip", "link", "add", HOST_DEV, "type", "veth", "peer", "name", NS_DEV,
        ]);
        run(&["ip", "link", "set", NS_DEV, "netns", NS]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_IP}/30"),
            "dev",
            HOST_DEV,
        ]);
        run(&["ip", "link", "set", HOST_DEV, "up"]);
        run(&[
            "ip",
            "-n",
            NS,
            "addr",
            "add",
            &format!("{SERVER_IP}/30"),
            "dev",
            NS_DEV,
        ]);
        run(&["ip", "-n", NS, "link", "set", NS_DEV, "up"]);
        run(&["ip", "-n", NS, "link", "set", "lo", "up"]);
        lab
    }

    /// Drops every UDP packet to or from the server's port, inside the
    /// server's namespace.
    fn black_hole_udp(&self) {
        let nft = |rule: &[&str]| {
            let mut args = vec!["ip", "netns", "exec", NS, "nft"];
            args.extend_from_slice(rule);
            run(&args);
        };
        nft(&["add", "table", "inet", TABLE]);
        for (chain, hook, match_) in [("in", "input", "dport"), ("out", "output", "sport")] {
            nft(&[
                "add",
                "chain",
                "inet",
                TABLE,
                chain,
                &format!("{{ type filter hook {hook} priority 0; }}"),
            ]);
            nft(&[
                "add",
                "rule",
                "inet",
                TABLE,
                chain,
                "udp",
                match_,
                &PORT.to_string(),
                "drop",
            ]);
        }
    }

    fn remove() {
        // Deleting the namespace deletes its end of the veth pair, and so
        // both ends, and its nftables table.
        let _ = Command::new("ip").args(["netns", "del", NS]).output();
        let _ = Command::new("ip").args(["link", "del", HOST_DEV]).output();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        Lab::remove();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_black_holed_mid_connection_fails_pending_calls_promptly_and_moves_to_http2() {
    let mut lab = Lab::create();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("udp-blackhole");
    std::fs::create_dir_all(&dir).unwrap();
    let cert = DevCertificate::localhost().unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert_pem()).unwrap();
    std::fs::write(&key_path, cert.key_pem()).unwrap();
    lab.server = Some(
        Command::new("ip")
            .args(["netns", "exec", NS, env!("CARGO_BIN_EXE_interop_server")])
            .args(["--host", SERVER_IP, "--port", &PORT.to_string()])
            .arg("--tls_cert_file")
            .arg(&cert_path)
            .arg("--tls_key_file")
            .arg(&key_path)
            .stdout(Stdio::null())
            .spawn()
            .expect("starting interop_server in the namespace"),
    );
    let server: SocketAddr = format!("{SERVER_IP}:{PORT}").parse().unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(server).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "interop_server in {NS} never listened on {server}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let idle_timeout = Duration::from_secs(2);
    let channel = Channel::builder(format!("https://{server}"))
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(cert.cert_pem())
                .server_name("localhost"),
        )
        .idle_timeout(idle_timeout)
        .race_delay(Duration::from_millis(200))
        .build()
        .unwrap();
    let client = TestServiceClient::new(channel.clone());
    let first = client.unary_call(SimpleRequest::default()).await.unwrap();
    assert_eq!(
        first.extensions().get::<Transport>(),
        Some(&Transport::Http3),
        "UDP works at first"
    );

    // Calls in flight: server streams whose one message comes in a minute.
    let mut pending = Vec::new();
    for _ in 0..4 {
        let request = StreamingOutputCallRequest {
            response_parameters: vec![ResponseParameters {
                size: 1,
                interval_us: 60_000_000,
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = client.streaming_output_call(request).await.unwrap();
        pending.push(response.into_inner());
    }

    lab.black_hole_udp();
    let cut = Instant::now();
    let mut waits = Vec::new();
    for mut stream in pending {
        let outcome = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("a pending call ended instead of hanging");
        let status = outcome.expect_err("no message can arrive through the black hole");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        waits.push(cut.elapsed());
    }
    // Promptly: about the idle timeout (no keep-alive answered), far from
    // the minute the calls would otherwise wait.
    let slowest = waits.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < idle_timeout * 5,
        "pending calls failed after {waits:?}; idle timeout {idle_timeout:?}"
    );

    // The next call races again: QUIC gets no answer, TCP wins.
    let mut request = grpc_h3::Request::new(SimpleRequest::default());
    request.set_timeout(Duration::from_secs(20));
    let next = client.unary_call(request).await.unwrap();
    assert_eq!(
        next.extensions().get::<Transport>(),
        Some(&Transport::Http2),
        "calls move to HTTP/2 once UDP is gone"
    );
    assert_eq!(channel.current_transport(), Some(Transport::Http2));
    eprintln!(
        "pending calls failed {:?} after the cut (idle timeout {idle_timeout:?}); the next call went over HTTP/2",
        slowest
    );
}
