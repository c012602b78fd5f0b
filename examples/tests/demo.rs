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
