//! `grpc-h3` run as a process against a grpc-h3 server (the interop
//! `TestService`, health, reflection, and the example UserService for
//! rich errors) over HTTP/3 and over HTTP/2, and against grpcio's server
//! with reflection over HTTP/2.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use grpc_h3::tls::DevCertificate;
use grpc_h3_examples::user::v1::user_service_server::UserServiceServer;
use grpc_h3_examples::user_service::MyUserService;
use tokio::io::AsyncWriteExt;

const SCRATCH: &str = env!("CARGO_TARGET_TMPDIR");

struct Target {
    address: String,
    ca: PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Our server with what `interop_server` registers, plus the UserService.
async fn serve() -> Target {
    serve_with(DevCertificate::localhost().unwrap()).await
}

async fn serve_with(cert: DevCertificate) -> Target {
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
    let bound = grpc_h3_tests::server::builder()
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
        _stop: stop,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn grpc_h3(args: &[&str], stdin: &str) -> Run {
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
fn documents(stdout: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

async fn every_command_works(transport: &str) {
    let target = serve().await;
    let ca = target.ca.to_str().unwrap();
    let base = ["--cacert", ca, transport];
    let run = |extra: &'static [&'static str], words: Vec<&str>, stdin: &'static str| {
        let args: Vec<String> = base
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .chain(std::iter::once(target.address.clone()))
            .chain(words.into_iter().map(str::to_owned))
            .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            grpc_h3(&args, stdin).await
        }
    };

    let listed = run(&[], vec!["list"], "").await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    for service in [
        "grpc.testing.TestService",
        "grpc.health.v1.Health",
        "user.v1.UserService",
    ] {
        assert!(
            listed.stdout.lines().any(|l| l == service),
            "{}",
            listed.stdout
        );
    }
    let methods = run(&[], vec!["list", "grpc.testing.TestService"], "").await;
    assert!(
        methods
            .stdout
            .contains("grpc.testing.TestService.FullDuplexCall\n"),
        "{}",
        methods.stdout
    );

    let described = run(&[], vec!["describe", "grpc.testing.SimpleRequest"], "").await;
    assert_eq!(described.code, 0, "{}", described.stderr);
    assert!(
        described.stdout.contains("int32 response_size = 2;"),
        "{}",
        described.stdout
    );
    let described = run(
        &[],
        vec!["describe", "grpc.testing.TestService.StreamingInputCall"],
        "",
    )
    .await;
    assert!(
        described
            .stdout
            .contains("(stream grpc.testing.StreamingInputCallRequest)"),
        "{}",
        described.stdout
    );

    // Unary, with metadata echoed back and -v showing it.
    let unary = run(
        &[
            "-v",
            "-d",
            r#"{"responseSize": 3}"#,
            "-H",
            "x-grpc-test-echo-initial: hello",
            "-H",
            "x-grpc-test-echo-trailing-bin: AAEC",
        ],
        vec!["grpc.testing.TestService/UnaryCall"],
        "",
    )
    .await;
    assert_eq!(unary.code, 0, "{}", unary.stderr);
    assert_eq!(
        documents(&unary.stdout),
        [serde_json::json!({"payload": {"body": "AAAA"}})]
    );
    let expected_transport = if transport == "--http3" { "h3" } else { "h2" };
    assert!(
        unary
            .stderr
            .contains(&format!("* transport: {expected_transport}")),
        "{}",
        unary.stderr
    );
    assert!(
        unary.stderr.contains("x-grpc-test-echo-initial: hello"),
        "{}",
        unary.stderr
    );
    assert!(
        unary.stderr.contains("x-grpc-test-echo-trailing-bin: AAEC"),
        "{}",
        unary.stderr
    );
    assert!(
        unary.stderr.contains("* timing: first byte"),
        "{}",
        unary.stderr
    );

    // Server streaming, with the dotted method form.
    let streamed = run(
        &[
            "-d",
            r#"{"response_parameters": [{"size": 1}, {"size": 2}]}"#,
        ],
        vec!["grpc.testing.TestService.StreamingOutputCall"],
        "",
    )
    .await;
    assert_eq!(streamed.code, 0, "{}", streamed.stderr);
    assert_eq!(documents(&streamed.stdout).len(), 2, "{}", streamed.stdout);

    // Client streaming from stdin, concatenated and newline-delimited.
    let summed = run(
        &["-d", "@"],
        vec!["grpc.testing.TestService/StreamingInputCall"],
        "{\"payload\": {\"body\": \"AAA=\"}} {\"payload\": {\"body\": \"AA==\"}}\n{\"payload\": {}}\n",
    )
    .await;
    assert_eq!(summed.code, 0, "{}", summed.stderr);
    assert_eq!(
        documents(&summed.stdout),
        [serde_json::json!({"aggregatedPayloadSize": 3})]
    );

    // Bidirectional from stdin, and --emit-defaults.
    let chat = run(
        &["-d", "@", "--emit-defaults"],
        vec!["grpc.testing.TestService/FullDuplexCall"],
        "{\"responseParameters\": [{\"size\": 0}]}\n{\"responseParameters\": [{\"size\": 2}]}\n",
    )
    .await;
    assert_eq!(chat.code, 0, "{}", chat.stderr);
    let chat = documents(&chat.stdout);
    assert_eq!(chat.len(), 2);
    assert_eq!(chat[0]["payload"]["body"], "", "{chat:?}");

    // An error with google.rpc details: NOT_FOUND exits 64 + 5.
    let missing = run(
        &[
            "-H",
            "authorization: Bearer t0k3n",
            "-d",
            r#"{"id": "ghost"}"#,
        ],
        vec!["user.v1.UserService/GetUser"],
        "",
    )
    .await;
    assert_eq!(missing.code, 69, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("Code: NotFound"),
        "{}",
        missing.stderr
    );
    assert!(
        missing
            .stderr
            .contains("type.googleapis.com/google.rpc.ResourceInfo"),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains(r#""resourceName":"ghost""#),
        "{}",
        missing.stderr
    );

    // A deadline: DEADLINE_EXCEEDED exits 64 + 4.
    let late = run(
        &[
            "--max-time",
            "0.3",
            "-d",
            r#"{"response_parameters": [{"size": 1, "interval_us": 5000000}]}"#,
        ],
        vec!["grpc.testing.TestService/StreamingOutputCall"],
        "",
    )
    .await;
    assert_eq!(late.code, 68, "{}", late.stderr);
    assert!(
        late.stderr.contains("Code: DeadlineExceeded"),
        "{}",
        late.stderr
    );

    // Bad request data is refused before anything is sent.
    let bad = run(
        &["-d", r#"{"nope": 1}"#],
        vec!["grpc.testing.TestService/UnaryCall"],
        "",
    )
    .await;
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr
            .contains("not a valid grpc.testing.SimpleRequest"),
        "{}",
        bad.stderr
    );

    // Health, as a container probe uses it.
    let healthy = grpc_h3(
        &[
            "--cacert",
            ca,
            transport,
            "health",
            &target.address,
            "grpc.testing.TestService",
        ],
        "",
    )
    .await;
    assert_eq!(
        (healthy.code, healthy.stdout.as_str()),
        (0, "SERVING\n"),
        "{}",
        healthy.stderr
    );
    let unknown = grpc_h3(
        &[
            "--cacert",
            ca,
            transport,
            "health",
            &target.address,
            "no.Such",
        ],
        "",
    )
    .await;
    assert_eq!(unknown.code, 69, "{}", unknown.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_over_http3() {
    every_command_works("--http3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_over_http2() {
    every_command_works("--http2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_from_proto_and_protoset_files_without_reflection() {
    let target = serve().await;
    let ca = target.ca.to_str().unwrap();
    let protos = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/proto");
    let call = ["-d", r#"{"responseSize": 1}"#];
    let proto = grpc_h3(
        &[
            &[
                "--cacert",
                ca,
                "--proto",
                &format!("{protos}/grpc/testing/test.proto"),
                "-I",
                protos,
            ],
            &call[..],
            &[&target.address, "grpc.testing.TestService/UnaryCall"],
        ]
        .concat(),
        "",
    )
    .await;
    assert_eq!(proto.code, 0, "{}", proto.stderr);
    assert_eq!(
        documents(&proto.stdout),
        [serde_json::json!({"payload": {"body": "AA=="}})]
    );

    let dir = grpc_h3_tests::grpcio::tempdir(Path::new(SCRATCH), "cli-protoset");
    let protoset = dir.join("testing.protoset");
    std::fs::write(&protoset, grpc_h3_tests::pb::FILE_DESCRIPTOR_SET).unwrap();
    let from_set = grpc_h3(
        &[
            &["--cacert", ca, "--protoset", protoset.to_str().unwrap()],
            &call[..],
            &[&target.address, "grpc.testing.TestService/UnaryCall"],
        ]
        .concat(),
        "",
    )
    .await;
    assert_eq!(from_set.code, 0, "{}", from_set.stderr);

    let missing = grpc_h3(
        &[
            "--cacert",
            ca,
            "--proto",
            "/nonexistent/x.proto",
            &target.address,
            "list",
        ],
        "",
    )
    .await;
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("/nonexistent/x.proto"),
        "{}",
        missing.stderr
    );
}

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

#[tokio::test]
async fn completions_and_help() {
    let bash = grpc_h3(&["completions", "bash"], "").await;
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("complete -F"), "{}", bash.stdout);
    let help = grpc_h3(&["--help"], "").await;
    assert!(
        help.stdout
            .contains("grpc-h3 [FLAGS] ADDRESS list [SERVICE]"),
        "{}",
        help.stdout
    );
    let nothing = grpc_h3(
        &["127.0.0.1:9", "--connect-timeout", "0.5", "--http2", "list"],
        "",
    )
    .await;
    assert_eq!(nothing.code, 64 + 14, "{}", nothing.stderr);
    assert!(nothing.stderr.contains("127.0.0.1:9"), "{}", nothing.stderr);
}
