//! `grpc-h3` run as a process against a grpc-h3 server (the interop
//! `TestService`, health, reflection, and the example UserService for
//! rich errors) over HTTP/3 and over HTTP/2: every command, schema from
//! files, completions and help.

mod common;

use std::path::Path;

use common::{documents, grpc_h3, serve, SCRATCH};

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
async fn a_bad_message_mid_stream_cancels_the_call_instead_of_ending_it() {
    use std::sync::atomic::Ordering;
    let target = serve().await;
    let ca = target.ca.to_str().unwrap();
    let run = grpc_h3(
        &[
            "--cacert",
            ca,
            "--http3",
            "-d",
            "@",
            &target.address,
            "grpc.testing.TestService/StreamingInputCall",
        ],
        "{\"payload\": {\"body\": \"AAA=\"}}\n{\"nope\": 1}\n",
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("request message #2"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // The server saw a cancelled call, not a one-message request: a
    // handler that ran either failed or was dropped; none answered OK.
    // Before the fix it answered OK on the first message alone.
    let p = &target.probe;
    let counts = || {
        (
            p.started.load(Ordering::SeqCst),
            p.finished.load(Ordering::SeqCst),
            p.failed.load(Ordering::SeqCst),
            p.dropped.load(Ordering::SeqCst),
        )
    };
    for _ in 0..400 {
        let (started, finished, _, dropped) = counts();
        if started == finished + dropped {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (started, finished, failed, dropped) = counts();
    assert_eq!(finished, failed, "a handler answered OK: {:?}", counts());
    assert_eq!(started, finished + dropped, "{:?}", counts());
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
