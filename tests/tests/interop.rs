//! The interop matrix: our client against our server on every transport
//! (HTTP/3 with both header modes, HTTP/2 with TLS, h2c), through the same
//! code the binaries run, and through the binaries themselves.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use grpc_h3::server::Listen;
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Transport};
use grpc_h3_tests::cases::{Runner, ALL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_our_server_sending_headers_at_once() {
    every_case_passes(false, Transport::Http3).await;
}

/// Response headers only with the first message, and Trailers-Only for
/// calls that end before one: what grpc-go and others do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_our_server_sending_headers_with_the_first_message() {
    every_case_passes(true, Transport::Http3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_over_http2_with_tls() {
    every_case_passes(false, Transport::Http2).await;
    every_case_passes(true, Transport::Http2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_over_h2c() {
    every_case_passes(false, Transport::H2c).await;
}

async fn every_case_passes(lazy_headers: bool, transport: Transport) {
    let cert = DevCertificate::localhost().unwrap();
    let mut builder = grpc_h3_tests::server::builder()
        .tls_identity(cert.cert_pem(), cert.key_pem())
        .lazy_response_headers(lazy_headers);
    if transport == Transport::H2c {
        builder = builder.listen(Listen::H2c);
    }
    let server = builder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = server.local_addr().unwrap().port();
    let handle = server.handle();
    let stop = grpc_h3::CancellationToken::new();
    let serving = tokio::spawn(server.serve_with_shutdown(stop.clone().cancelled_owned()));

    let channel = match transport {
        Transport::H2c => Channel::builder(format!("http://127.0.0.1:{port}")),
        transport => Channel::builder(format!("https://127.0.0.1:{port}"))
            .tls_config(ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
            .transport(transport),
    }
    .build()
    .unwrap();
    let runner = Runner::new(channel);
    let failures = runner.failures(ALL).await;
    assert!(
        failures.is_empty(),
        "failed cases over {transport} (lazy headers: {lazy_headers}):\n{}",
        failures.join("\n")
    );
    assert!(runner
        .run("no_such_case")
        .await
        .unwrap_err()
        .contains("unknown test case"));

    // Nothing is left running once the cancelled calls have been reaped.
    for _ in 0..200 {
        if handle.live_calls() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(handle.live_calls(), 0);
    stop.cancel();
    serving.await.unwrap().unwrap();
}

/// Starts `interop_server` on an ephemeral port with `extra` arguments:
/// the process, its stdout's remaining lines, the PEM path and the port.
fn start_interop_server(
    extra: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
    String,
    String,
) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_interop_server"))
        .args(["--port", "0", "--host", "127.0.0.1"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let pem_line = lines.next().unwrap().unwrap();
    let pem = pem_line
        .strip_prefix("development certificate PEM: ")
        .expect(&pem_line)
        .to_owned();
    let listening = lines.next().unwrap().unwrap();
    let port = listening
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect(&listening)
        .to_owned();
    (server, lines, pem, port)
}

/// Runs every case with `interop_client --transport auto`; returns the
/// transport it ended on.
fn every_case_passes_choosing_the_transport(port: &str, pem: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_interop_client"))
        .args(["--server_host", "127.0.0.1", "--server_port", port])
        .args([
            "--ca_file",
            pem,
            "--transport",
            "auto",
            "--test_case",
            "all",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS ")).count(),
        ALL.len(),
        "{stdout}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("transport in use: "))
        .expect(&stdout)
        .to_owned()
}

#[test]
fn without_http3_the_client_choosing_by_itself_passes_over_http2() {
    let (mut server, _lines, pem, port) = start_interop_server(&["--http3=false"]);
    let transport = every_case_passes_choosing_the_transport(&port, &pem);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(transport, "h2");
}

#[test]
fn the_binaries_work_from_the_command_line() {
    let (mut server, mut lines, pem, port) = start_interop_server(&[]);

    let output = Command::new(env!("CARGO_BIN_EXE_interop_client"))
        .args([
            "--server_host",
            "127.0.0.1",
            "--server_port",
            &port,
            "--ca_file",
            &pem,
        ])
        .args(["--server_host_override", "localhost", "--test_case", "all"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS ")).count(),
        ALL.len(),
        "{stdout}"
    );

    // The same server over HTTP/2 with TLS, on the same port.
    let output = Command::new(env!("CARGO_BIN_EXE_interop_client"))
        .args(["--server_host", "127.0.0.1", "--server_port", &port])
        .args(["--ca_file", &pem, "--transport", "h2"])
        .args(["--test_case", "empty_unary,large_unary,ping_pong"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS ")).count(),
        3,
        "{stdout}"
    );

    // Choosing by itself, the client finds HTTP/3.
    assert_eq!(every_case_passes_choosing_the_transport(&port, &pem), "h3");

    // A failing case makes the client exit non-zero.
    let output = Command::new(env!("CARGO_BIN_EXE_interop_client"))
        .args([
            "--server_host",
            "127.0.0.1",
            "--server_port",
            &port,
            "--ca_file",
            &pem,
        ])
        .args(["--test_case", "empty_unary,bogus_case"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.contains("PASS empty_unary") && stdout.contains("FAIL bogus_case"),
        "{stdout}"
    );

    // SIGTERM drains and exits cleanly.
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.next().unwrap().unwrap(), "interop_server stopped");
    // The certificate is the user's development certificate, kept for the
    // next run, not a temporary file left behind.
    assert_eq!(
        std::path::Path::new(&pem),
        grpc_h3::tls::DevCertificate::user_path().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_server_answers_health_checks_for_the_test_service() {
    use grpc_h3_health::pb::health_client::HealthClient;
    use grpc_h3_health::pb::HealthCheckRequest;
    use grpc_h3_health::ServingStatus;

    let (mut server, _lines, pem, port) = start_interop_server(&[]);
    let ca = std::fs::read(&pem).unwrap();
    let channel = grpc_h3::Channel::builder(format!("https://localhost:{port}"))
        .tls_config(grpc_h3::tls::ClientTlsConfig::new().ca_certificate(ca))
        .build()
        .unwrap();
    let client = HealthClient::new(channel);
    for service in ["", "grpc.testing.TestService"] {
        let status = client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
