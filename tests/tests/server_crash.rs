//! A server process killed without a word (SIGKILL): calls in flight fail
//! with UNAVAILABLE within a few idle timeouts, not at some distant TCP-like
//! timeout, and the channel reconnects by itself once the server is back.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Code, Request};
use grpc_h3_tests::pb::test_service_client::TestServiceClient;
use grpc_h3_tests::pb::{Empty, ResponseParameters, StreamingOutputCallRequest};

/// Starts `interop_server` on 127.0.0.1:`port` with the given identity;
/// returns it and its port.
fn spawn_server(port: u16, cert: &Path, key: &Path) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_interop_server"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--tls_cert_file")
        .arg(cert)
        .arg("--tls_key_file")
        .arg(key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    let port = listening
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect(&listening);
    (child, port)
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_calls_promptly_and_the_channel_reconnects_when_it_returns() {
    let dir = TempDir(std::env::temp_dir().join(format!("grpc-h3-crash-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let dev = DevCertificate::localhost().unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, dev.cert_pem()).unwrap();
    std::fs::write(&key, dev.key_pem()).unwrap();

    let (mut server, port) = spawn_server(0, &cert, &key);
    let idle = Duration::from_secs(1);
    let channel = Channel::builder(format!("https://127.0.0.1:{port}"))
        .tls_config(ClientTlsConfig::new().ca_certificate(dev.cert_pem()))
        .idle_timeout(idle)
        .build()
        .unwrap();
    let client = TestServiceClient::new(channel);
    client.empty_call(Empty {}).await.unwrap();

    // A bidirectional call in flight, between two messages.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let ask = StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    tx.send(ask).await.unwrap();
    let mut responses = client
        .full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    responses.message().await.unwrap().unwrap();

    server.kill().unwrap();
    server.wait().unwrap();
    let killed = Instant::now();
    let status = responses.message().await.unwrap_err();
    let noticed = killed.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("stopped answering"), "{status:?}");
    assert!(
        noticed < idle * 5,
        "a dead server was noticed only after {noticed:?} (idle timeout {idle:?})"
    );
    eprintln!("killed server noticed after {noticed:?}");

    let (mut server, _) = spawn_server(port, &cert, &key);
    let mut request = Request::new(Empty {});
    request.set_wait_for_ready(true);
    request.set_timeout(Duration::from_secs(30));
    client
        .empty_call(request)
        .await
        .expect("the channel reconnects to the restarted server");
    server.kill().unwrap();
    server.wait().unwrap();
    drop(tx);
}
