//! The README's first command, `cargo run -p grpc-h3-examples --bin demo`,
//! really makes an HTTP/3 call and exits 0.

use std::process::Command;

#[test]
fn demo_calls_the_greeter_over_http3_and_exits_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_demo")).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Hello HTTP/3!"), "{stdout}");
    assert!(stdout.contains("ALPN h3"), "{stdout}");
}

#[test]
fn route_guide_and_user_service_examples_run() {
    for (bin, expect) in [
        (
            env!("CARGO_BIN_EXE_routeguide"),
            "RouteChat (bidirectional)",
        ),
        (env!("CARGO_BIN_EXE_user-service"), "DeadlineExceeded"),
    ] {
        let output = Command::new(bin).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{bin}: {stdout}");
        assert!(stdout.contains(expect), "{bin}: {stdout}");
    }
}

#[test]
fn every_example_explains_itself_with_help() {
    for bin in [
        env!("CARGO_BIN_EXE_demo"),
        env!("CARGO_BIN_EXE_routeguide"),
        env!("CARGO_BIN_EXE_user-service"),
        env!("CARGO_BIN_EXE_helloworld-server"),
        env!("CARGO_BIN_EXE_helloworld-client"),
    ] {
        let output = Command::new(bin).arg("--help").output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{bin} --help: {stdout}");
        assert!(stdout.contains("Usage:"), "{bin} --help: {stdout}");
        assert!(
            stdout.lines().next().is_some_and(|l| l.len() > 20),
            "{bin}: {stdout}"
        );
    }
}

#[test]
fn helloworld_server_and_client_agree_on_the_development_certificate() {
    use std::io::{BufRead, BufReader};
    let mut server = Command::new(env!("CARGO_BIN_EXE_helloworld-server"))
        .args(["--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let cert_line = lines.next().unwrap().unwrap();
    assert!(cert_line.contains("development certificate"), "{cert_line}");
    let listening = lines.next().unwrap().unwrap();
    let port = listening
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect(&listening)
        .to_owned();
    // No certificate passed: the client finds the same user's one.
    let output = Command::new(env!("CARGO_BIN_EXE_helloworld-client"))
        .args([
            "--addr",
            &format!("https://localhost:{port}"),
            "--name",
            "you",
        ])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim(), "Hello you!");
}

#[test]
fn a_missing_certificate_file_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_helloworld-server"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--cert",
            "/nonexistent/cert.pem",
            "--key",
            "/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reading the certificate file /nonexistent/cert.pem"),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_helloworld-client"))
        .args(["--ca", "/nonexistent/ca.pem"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}
