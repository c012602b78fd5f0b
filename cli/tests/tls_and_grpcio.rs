//! `grpc-h3` with TLS options (mutual TLS, the development certificate)
//! and against a stack we did not write: grpcio's server, through its
//! reflection service, over HTTP/2 with TLS and h2c.

mod common;

use std::path::Path;

use common::{documents, grpc_h3, serve_with, SCRATCH};
use grpc_h3::tls::DevCertificate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_describes_and_calls_a_grpcio_server_through_its_reflection() {
    let scratch = Path::new(SCRATCH);
    let cert = DevCertificate::localhost().unwrap();
    let server = tokio::task::spawn_blocking({
        let cert = cert.clone();
        move || grpc_h3_tests::grpcio::grpcio_server(Path::new(SCRATCH), &cert)
    })
    .await
    .unwrap();
    let ca = grpc_h3_tests::grpcio::tempdir(scratch, "cli-grpcio").join("ca.pem");
    std::fs::write(&ca, cert.cert_pem()).unwrap();
    let ca = ca.to_str().unwrap();
    let tls = format!("localhost:{}", server.tls);
    let listed = grpc_h3(&["--cacert", ca, "--http2", &tls, "list"], "").await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.contains("grpc.testing.TestService\n"),
        "{}",
        listed.stdout
    );
    let described = grpc_h3(
        &[
            "--cacert",
            ca,
            &tls,
            "describe",
            "grpc.testing.SimpleResponse",
        ],
        "",
    )
    .await;
    assert!(
        described.stdout.contains("string username = 2;"),
        "{}{}",
        described.stdout,
        described.stderr
    );
    // Automatic transport: grpcio has no HTTP/3, so TCP wins the race.
    let called = grpc_h3(
        &[
            "-v",
            "--cacert",
            ca,
            "-d",
            r#"{"responseSize": 2}"#,
            &tls,
            "grpc.testing.TestService/UnaryCall",
        ],
        "",
    )
    .await;
    assert_eq!(called.code, 0, "{}", called.stderr);
    assert_eq!(
        documents(&called.stdout),
        [serde_json::json!({"payload": {"body": "AAA="}})]
    );
    assert!(
        called.stderr.contains("* transport: h2"),
        "{}",
        called.stderr
    );
    let plain = format!("127.0.0.1:{}", server.plain);
    let failed = grpc_h3(
        &[
            "--plaintext",
            "-d",
            r#"{"responseStatus": {"code": 7, "message": "no"}}"#,
            &plain,
            "grpc.testing.TestService/UnaryCall",
        ],
        "",
    )
    .await;
    assert_eq!(failed.code, 64 + 7, "{}", failed.stderr);
    let healthy = grpc_h3(
        &["--plaintext", "health", &plain, "grpc.testing.TestService"],
        "",
    )
    .await;
    assert_eq!(healthy.code, 0, "{}", healthy.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cert_trusts_this_users_development_certificate() {
    let target = serve_with(DevCertificate::for_this_user().unwrap()).await;
    let listed = grpc_h3(&["--dev-cert", "--http3", &target.address, "list"], "").await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let refused = grpc_h3(
        &["--http3", "--connect-timeout", "2", &target.address, "list"],
        "",
    )
    .await;
    assert_eq!(refused.code, 64 + 14, "{}", refused.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_cert_and_key() {
    let server_cert = DevCertificate::localhost().unwrap();
    let client_cert = DevCertificate::generate(&["cli-client"]).unwrap();
    let bound = grpc_h3_tests::server::builder()
        .tls_identity(server_cert.cert_pem(), server_cert.key_pem())
        .client_ca_certificate(client_cert.cert_pem(), grpc_h3::tls::ClientAuth::Required)
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let port = bound.local_addr().unwrap().port();
    tokio::spawn(bound.serve());
    let dir = grpc_h3_tests::grpcio::tempdir(Path::new(SCRATCH), "cli-mtls");
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca = write("ca.pem", server_cert.cert_pem());
    let cert = write("client.pem", client_cert.cert_pem());
    let key = write("client.key", client_cert.key_pem());
    let protoset = dir.join("testing.protoset");
    std::fs::write(&protoset, grpc_h3_tests::pb::FILE_DESCRIPTOR_SET).unwrap();
    let address = format!("localhost:{port}");
    let call = |with_identity: bool| {
        let mut args = vec!["--cacert".to_owned(), ca.clone(), "--http3".into()];
        if with_identity {
            args.extend(["--cert".into(), cert.clone(), "--key".into(), key.clone()]);
        }
        args.extend(["--protoset".into(), protoset.to_str().unwrap().into()]);
        args.extend([address.clone(), "grpc.testing.TestService/EmptyCall".into()]);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            grpc_h3(&args, "").await
        }
    };
    let accepted = call(true).await;
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let refused = call(false).await;
    assert_ne!(refused.code, 0, "{}", refused.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_and_missing_reflection_services() {
    let cert = DevCertificate::localhost().unwrap();
    let dir = grpc_h3_tests::grpcio::tempdir(Path::new(SCRATCH), "cli-reflection-kinds");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert_pem()).unwrap();
    let ca = ca.to_str().unwrap();
    let reflection = grpc_h3_reflection::Builder::new()
        .register_encoded_file_descriptor_set(grpc_h3_tests::pb::FILE_DESCRIPTOR_SET)
        .build()
        .unwrap();
    // Only v1alpha, as older servers have; then no reflection at all.
    for with_v1alpha in [true, false] {
        let mut builder =
            grpc_h3_tests::server::builder().tls_identity(cert.cert_pem(), cert.key_pem());
        if with_v1alpha {
            builder = builder.add_service(reflection.v1alpha());
        }
        let bound = builder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = format!("localhost:{}", bound.local_addr().unwrap().port());
        tokio::spawn(bound.serve());
        let listed = grpc_h3(&["--cacert", ca, "--http3", &address, "list"], "").await;
        if with_v1alpha {
            assert_eq!(listed.code, 0, "{}", listed.stderr);
            assert!(
                listed.stdout.contains("grpc.testing.TestService\n"),
                "{}",
                listed.stdout
            );
        } else {
            assert_eq!(listed.code, 64 + 12, "{}", listed.stderr);
            assert!(
                listed.stderr.contains("--proto or --protoset"),
                "{}",
                listed.stderr
            );
        }
    }
}
