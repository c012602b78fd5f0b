//! What the CLI tests share: a grpc-h3 server with what `interop_server`
//! registers plus the example UserService, and the CLI run as a process.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use grpc_h3::tls::DevCertificate;
use grpc_h3_examples::user::v1::user_service_server::UserServiceServer;
use grpc_h3_examples::user_service::MyUserService;
use tokio::io::AsyncWriteExt;

pub const SCRATCH: &str = env!("CARGO_TARGET_TMPDIR");

pub struct Target {
    pub address: String,
    pub ca: PathBuf,
    /// What the interop service's handlers did.
    pub probe: std::sync::Arc<grpc_h3_tests::server::HandlerProbe>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Our server with what `interop_server` registers, plus the UserService.
pub async fn serve() -> Target {
    serve_with(DevCertificate::localhost().unwrap()).await
}

pub async fn serve_with(cert: DevCertificate) -> Target {
    let health = grpc_h3_health::HealthReporter::new();
    health.set_service_status(
        "grpc.testing.TestService",
        grpc_h3_health::ServingStatus::Serving,
    );
    let reflection = grpc_h3_reflection::Builder::new()
        .register_encoded_file_descriptor_set(grpc_h3_tests::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(grpc_h3_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(grpc_h3_examples::user::v1::FILE_DESCRIPTOR_SET)
        .build()
        .unwrap();
    let service = grpc_h3_tests::server::TestService::default();
    let probe = service.probe.clone();
    let bound = grpc_h3_tests::server::builder_with(service)
        .tls_identity(cert.cert_pem(), cert.key_pem())
        .add_service(health.service())
        .add_service(reflection.v1())
        .add_service(UserServiceServer::new(MyUserService::new(
            "t0k3n",
            Duration::ZERO,
        )))
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let port = bound.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve_with_shutdown(async {
        let _ = stopped.await;
    }));
    let dir = grpc_h3_tests::grpcio::tempdir(Path::new(SCRATCH), &format!("cli-{port}"));
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert_pem()).unwrap();
    Target {
        address: format!("localhost:{port}"),
        ca,
        probe,
        _stop: stop,
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub async fn grpc_h3(args: &[&str], stdin: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_grpc-h3"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("grpc-h3 finished")
        .unwrap();
    Run {
        code: status.code().unwrap(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// The JSON documents printed, one per response message.
pub fn documents(stdout: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}
