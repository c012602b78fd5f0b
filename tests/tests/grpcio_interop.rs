//! Interop with grpcio, Python's binding of the Google C-core (the stack
//! most gRPC deployments run), over HTTP/2 with TLS and h2c, both ways:
//! grpcio's client runs the interop cases (`tests/interop/grpcio_peer.py`)
//! against grpc-h3's server, and grpc-h3's client runs them against a
//! grpcio server.
//! Also grpcio's own health and reflection clients against grpc-h3's
//! services. See `grpc_h3_tests::grpcio` for where grpcio comes from.

mod support;

use std::path::Path;

use grpc_h3::server::Listen;
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Transport};
use grpc_h3_tests::cases::{Runner, FOREIGN_SERVER_CASES};
use grpc_h3_tests::grpcio;

/// Runs grpcio's client; panics with its output if a case failed.
fn grpcio_client(args: &[&str]) -> String {
    grpcio_peer("client", args)
}

const SCRATCH: &str = env!("CARGO_TARGET_TMPDIR");

fn tempdir(name: &str) -> std::path::PathBuf {
    grpcio::tempdir(Path::new(SCRATCH), name)
}

fn grpcio_peer(role: &str, args: &[&str]) -> String {
    let output = grpcio::peer(Path::new(SCRATCH), &[&[role], args].concat())
        .output()
        .expect("running the grpcio client");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "grpcio client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_clients_pass_the_interop_cases_against_grpc_h3() {
    let dir = tempdir("grpcio-client");
    let server = support::start_server(|b| b);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.cert.cert_pem()).unwrap();
    let target = format!("127.0.0.1:{}", server.addr.port());
    let ca = ca.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        grpcio_client(&[
            "--target",
            &target,
            "--ca",
            &ca,
            "--server-name",
            "localhost",
        ])
    })
    .await
    .unwrap();
    assert_eq!(output.matches("PASS ").count(), 16, "{output}");
    server.assert_no_live_calls().await;
    server.stop().await;

    let h2c = support::start_server(|b| b.listen(Listen::H2c));
    let target = format!("127.0.0.1:{}", h2c.addr.port());
    let output = tokio::task::spawn_blocking(move || grpcio_client(&["--target", &target]))
        .await
        .unwrap();
    assert_eq!(output.matches("PASS ").count(), 16, "{output}");
    h2c.assert_no_live_calls().await;
    h2c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_health_and_reflection_clients_understand_grpc_h3() {
    let dir = tempdir("grpcio-standard");
    // What interop_server registers: health and reflection.
    let health = grpc_h3_health::HealthReporter::new();
    health.set_service_status(
        "grpc.testing.TestService",
        grpc_h3_health::ServingStatus::Serving,
    );
    let reflection = grpc_h3_reflection::Builder::new()
        .register_encoded_file_descriptor_set(grpc_h3_tests::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(grpc_h3_health::pb::FILE_DESCRIPTOR_SET)
        .build()
        .unwrap();
    let server = support::start_server(|b| {
        b.add_service(health.service())
            .add_service(reflection.v1())
            .add_service(reflection.v1alpha())
    });
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.cert.cert_pem()).unwrap();
    let target = format!("127.0.0.1:{}", server.addr.port());
    let ca = ca.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        grpcio_peer(
            "standard",
            &[
                "--target",
                &target,
                "--ca",
                &ca,
                "--server-name",
                "localhost",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(output.matches("PASS ").count(), 5, "{output}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_h3_clients_pass_the_interop_cases_against_grpcio() {
    let cert = DevCertificate::localhost().unwrap();
    let server = tokio::task::spawn_blocking({
        let cert = cert.clone();
        move || grpcio::grpcio_server(Path::new(SCRATCH), &cert)
    })
    .await
    .unwrap();
    let tls = Channel::builder(format!("https://127.0.0.1:{}", server.tls))
        .tls_config(ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
        .transport(Transport::Http2)
        .build()
        .unwrap();
    let h2c = Channel::builder(format!("http://127.0.0.1:{}", server.plain))
        .build()
        .unwrap();
    for (what, channel) in [("HTTP/2 with TLS", tls), ("h2c", h2c)] {
        let failures = Runner::new(channel).failures(FOREIGN_SERVER_CASES).await;
        assert!(
            failures.is_empty(),
            "grpcio server over {what}:\n{}",
            failures.join("\n")
        );
    }
    drop(server);
}
