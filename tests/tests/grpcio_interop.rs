//! Interop with grpcio, Python's binding of the Google C-core (the stack
//! most gRPC deployments run), over HTTP/2 with TLS and h2c, both ways:
//! grpcio's client runs the interop cases (`tests/interop/grpcio_peer.py`)
//! against grpc-h3's server, and grpc-h3's client runs them against a
//! grpcio server.
//!
//! grpcio comes from `$GRPC_H3_PYTHON` (default `python3`) if it can import
//! it; otherwise these tests install the pinned version into a virtual
//! environment under `target/` (which needs PyPI once). `.ci/run` installs
//! it up front.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use grpc_h3::server::Listen;
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Transport};
use grpc_h3_tests::cases::{Runner, FOREIGN_SERVER_CASES};

const GRPCIO: &str = "grpcio==1.85.1";
const GRPCIO_TOOLS: &str = "grpcio-tools==1.85.1";
const GRPCIO_HEALTH: &str = "grpcio-health-checking==1.85.1";
const GRPCIO_REFLECTION: &str = "grpcio-reflection==1.85.1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn can_import_grpc(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import grpc, grpc_tools, grpc_health.v1.health, grpc_reflection.v1alpha.reflection",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python with grpcio and grpcio-tools, and the generated stubs.
struct Python {
    python: PathBuf,
    stubs: PathBuf,
}

fn python() -> &'static Python {
    static PYTHON: OnceLock<Python> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let system = PathBuf::from(std::env::var_os("GRPC_H3_PYTHON").unwrap_or_else(|| "python3".into()));
        let python = if can_import_grpc(&system) {
            system
        } else {
            let venv = tmp.join("grpcio-venv");
            let python = venv.join("bin/python");
            if !can_import_grpc(&python) {
                let made = Command::new(&system)
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .unwrap_or_else(|e| {
                        panic!("running {} failed ({e}): the grpcio interop tests need Python 3; install it or point GRPC_H3_PYTHON at one", system.display())
                    });
                assert!(made.success(), "creating a virtual environment in {} failed", venv.display());
                let installed = Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", GRPCIO, GRPCIO_TOOLS, GRPCIO_HEALTH, GRPCIO_REFLECTION])
                    .status()
                    .unwrap();
                assert!(
                    installed.success(),
                    "installing {GRPCIO}, {GRPCIO_TOOLS}, {GRPCIO_HEALTH} and {GRPCIO_REFLECTION} with pip failed (PyPI unreachable?); install them into the Python named by GRPC_H3_PYTHON"
                );
            }
            python
        };
        let stubs = tmp.join("grpcio-stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        let protos = repo().join("proto");
        let generated = Command::new(&python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(&protos)
            .arg(format!("--python_out={}", stubs.display()))
            .arg(format!("--grpc_python_out={}", stubs.display()))
            .args([
                "grpc/testing/empty.proto",
                "grpc/testing/messages.proto",
                "grpc/testing/test.proto",
            ])
            .status()
            .unwrap();
        assert!(generated.success(), "grpc_tools.protoc failed on {}", protos.display());
        Python { python, stubs }
    })
}

fn peer(args: &[&str]) -> Command {
    let python = python();
    let mut command = Command::new(&python.python);
    command
        .arg(repo().join("interop/grpcio_peer.py"))
        .args(args)
        .env("GRPC_H3_STUBS", &python.stubs);
    command
}

/// Runs grpcio's client; panics with its output if a case failed.
fn grpcio_client(args: &[&str]) -> String {
    grpcio_peer("client", args)
}

fn grpcio_peer(role: &str, args: &[&str]) -> String {
    let output = peer(&[&[role], args].concat())
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

fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A grpcio server process, killed when dropped.
struct GrpcioServer {
    child: Child,
    plain: u16,
    tls: u16,
}

impl Drop for GrpcioServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn grpcio_server(cert: &DevCertificate) -> GrpcioServer {
    let dir = tempdir("grpcio-server");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert_pem()).unwrap();
    std::fs::write(&key_path, cert.key_pem()).unwrap();
    let mut child = peer(&[
        "server",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("starting the grpcio server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<u16> = line
        .strip_prefix("ports ")
        .unwrap_or_else(|| panic!("grpcio server said {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    child.stdin.as_mut().unwrap().flush().unwrap();
    GrpcioServer {
        child,
        plain: ports[0],
        tls: ports[1],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_h3_clients_pass_the_interop_cases_against_grpcio() {
    let cert = DevCertificate::localhost().unwrap();
    let server = tokio::task::spawn_blocking({
        let cert = cert.clone();
        move || grpcio_server(&cert)
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
