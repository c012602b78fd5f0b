//! The server's HTTP/2 side under hostile input. A raw HTTP/2 client (the
//! h2 crate over plaintext TCP, not grpc-h3) sends what a real client never
//! would. Each case asserts the documented answer, that the server still
//! serves good calls, and that nothing is left live.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use grpc_h3::server::Listen;
use grpc_h3_tests::pb::test_service_client::TestServiceClient;
use grpc_h3_tests::pb::{Empty, SimpleRequest};
use prost::Message;
use support::{frame, start_server, Running};

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const EMPTY: &str = "/grpc.testing.TestService/EmptyCall";

type Sender = h2::client::SendRequest<Bytes>;

/// What the server answered.
#[derive(Debug, PartialEq)]
enum Answer {
    /// HTTP status, and `grpc-status` from the trailers or Trailers-Only.
    Grpc(u16, String),
    /// The server reset the stream with this reason.
    Reset(h2::Reason),
}

fn grpc(code: &str) -> Answer {
    Answer::Grpc(200, code.to_owned())
}

async fn raw_client(server: &Running) -> Sender {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

fn request(path: &str, extra: &[(&str, &str)]) -> http::Request<()> {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

async fn exchange(
    sender: &mut Sender,
    request: http::Request<()>,
    body: &[Bytes],
    end: bool,
) -> Answer {
    let mut ready = sender.clone().ready().await.unwrap();
    let end_at_headers = body.is_empty() && end;
    let (response, mut send) = ready.send_request(request, end_at_headers).unwrap();
    for (i, chunk) in body.iter().enumerate() {
        let last = i + 1 == body.len() && end;
        if send.send_data(chunk.clone(), last).is_err() {
            break;
        }
    }
    let answer = async {
        let response = response.await?;
        let status = response.status().as_u16();
        if let Some(code) = response.headers().get("grpc-status") {
            return Ok(Answer::Grpc(status, code.to_str().unwrap().to_owned()));
        }
        if status != 200 {
            return Ok(Answer::Grpc(status, String::new()));
        }
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await?.unwrap_or_default();
        let code = trailers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(Answer::Grpc(200, code.unwrap_or_default()))
    };
    let answer: Result<Answer, h2::Error> = tokio::time::timeout(Duration::from_secs(15), answer)
        .await
        .expect("the server answered in time");
    drop(send);
    match answer {
        Ok(answer) => answer,
        Err(e) if e.is_reset() => Answer::Reset(e.reason().unwrap()),
        Err(other) => panic!("unexpected stream error {other:?}"),
    }
}

fn unary_body(request: &SimpleRequest) -> Vec<Bytes> {
    vec![frame(0, &request.encode_to_vec())]
}

fn h2c_server() -> Running {
    start_server(|b| b.listen(Listen::H2c))
}

/// A good call on the same raw connection and on a new grpc-h3 channel,
/// then no call left live.
async fn still_serving(server: &Running, raw: &mut Sender) {
    assert_eq!(
        exchange(raw, request(EMPTY, &[]), &[frame(0, b"")], true).await,
        grpc("0"),
        "same connection"
    );
    let channel = grpc_h3::Channel::builder(format!("http://127.0.0.1:{}", server.addr.port()))
        .build()
        .unwrap();
    TestServiceClient::new(channel)
        .empty_call(Empty {})
        .await
        .expect("new connection");
    server.assert_no_live_calls().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_heads_and_bodies_get_clear_answers() {
    let server = h2c_server();
    let mut raw = raw_client(&server).await;
    let body = unary_body(&SimpleRequest::default());

    let mut get = request(UNARY, &[]);
    *get.method_mut() = http::Method::GET;
    assert_eq!(
        exchange(&mut raw, get, &[], true).await,
        Answer::Grpc(405, String::new())
    );
    let mut json = request(UNARY, &[]);
    json.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    assert_eq!(
        exchange(&mut raw, json, &body, true).await,
        Answer::Grpc(415, String::new())
    );
    for garbage in ["soon", "123456789S", "-1m"] {
        let bad = request(UNARY, &[("grpc-timeout", garbage)]);
        assert_eq!(
            exchange(&mut raw, bad, &body, true).await,
            grpc("13"),
            "{garbage}"
        );
    }
    let lz4 = request(UNARY, &[("grpc-encoding", "lz4")]);
    assert_eq!(exchange(&mut raw, lz4, &body, true).await, grpc("12"));
    still_serving(&server, &mut raw).await;

    let bodies: Vec<(&str, Vec<Bytes>, &str)> = vec![
        (
            "truncated message",
            vec![Bytes::from_static(&[0, 0, 0, 0, 10, 1, 2])],
            "13",
        ),
        (
            "a 4 GiB length prefix",
            vec![Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff])],
            "8",
        ),
        (
            "invalid protobuf",
            vec![frame(0, &[0x0a, 0xff, 0xff])],
            "13",
        ),
        (
            "compressed without grpc-encoding",
            vec![frame(1, b"x")],
            "13",
        ),
        ("no message for a unary call", vec![], "13"),
        (
            "two messages for a unary call",
            vec![frame(0, b""), frame(0, b"")],
            "13",
        ),
        (
            "empty DATA frames around the message",
            vec![Bytes::new(), body[0].clone(), Bytes::new()],
            "0",
        ),
    ];
    for (what, body, code) in bodies {
        assert_eq!(
            exchange(&mut raw, request(UNARY, &[]), &body, true).await,
            grpc(code),
            "{what}"
        );
    }
    // 5 MiB against the default 4 MiB limit, really sent.
    let big = SimpleRequest {
        payload: Some(grpc_h3_tests::pb::Payload {
            r#type: 0,
            body: vec![0; 5 << 20],
        }),
        ..Default::default()
    };
    assert_eq!(
        exchange(&mut raw, request(UNARY, &[]), &unary_body(&big), true).await,
        grpc("8")
    );
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_deadline_resets_the_stream_with_cancel() {
    // The raw client never enforces its grpc-timeout and never ends its
    // request: the server's deadline must end the call with
    // RST_STREAM(CANCEL), as PROTOCOL-HTTP2 says, and drop the handler
    // (still waiting for the end of the unary request).
    let server = h2c_server();
    let mut raw = raw_client(&server).await;
    let open = request(UNARY, &[("grpc-timeout", "300m")]);
    let body = unary_body(&SimpleRequest::default());
    assert_eq!(
        exchange(&mut raw, open, &body, false).await,
        Answer::Reset(h2::Reason::CANCEL)
    );
    let probe = server.probe.clone();
    server
        .wait_for("the handler to be dropped", |_| {
            probe.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_cancels_the_handler() {
    let server = h2c_server();
    let mut raw = raw_client(&server).await;
    let mut ready = raw.clone().ready().await.unwrap();
    let (_response, mut send) = ready
        .send_request(
            request("/grpc.testing.TestService/StreamingInputCall", &[]),
            false,
        )
        .unwrap();
    send.send_data(Bytes::from_static(&[0, 0, 0, 1, 0, 1, 2, 3]), false)
        .unwrap();
    let probe = server.probe.clone();
    server
        .wait_for("the handler to start", |_| {
            probe.started.load(Ordering::SeqCst) == 1
        })
        .await;
    send.send_reset(h2::Reason::CANCEL);
    server
        .wait_for("the handler to end", |_| {
            probe.started.load(Ordering::SeqCst)
                == probe.finished.load(Ordering::SeqCst) + probe.dropped.load(Ordering::SeqCst)
        })
        .await;
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_abandoned_calls_leak_nothing() {
    let server = h2c_server();
    let mut raw = raw_client(&server).await;
    server
        .wait_for("the connection", |s| s.connections == 1)
        .await;
    let tasks = server.handle.stats().tasks;
    let probe = server.probe.clone();
    for i in 0..300 {
        let mut ready = raw.clone().ready().await.unwrap();
        let path = "/grpc.testing.TestService/StreamingInputCall";
        let (response, mut send) = ready.send_request(request(path, &[]), false).unwrap();
        if i % 2 == 1 {
            let _ = send.send_data(Bytes::from_static(&[0, 0, 0, 0, 9, 1]), false);
        }
        // Abandoned once its handler runs (abandoning streams before the
        // server even accepted them is the rapid reset, tested below).
        server
            .wait_for("the handler to start", |_| {
                probe.started.load(Ordering::SeqCst) == i + 1
            })
            .await;
        send.send_reset(h2::Reason::CANCEL);
        drop(response);
    }
    server.assert_no_live_calls().await;
    server
        .wait_for("every call's task to go", |s| s.tasks == tasks)
        .await;
    // Each ended when its handler read the reset, or was dropped.
    assert_eq!(
        probe.finished.load(Ordering::SeqCst) + probe.dropped.load(Ordering::SeqCst),
        300
    );
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_gets_goaway_and_others_are_served() {
    let server = h2c_server();
    let raw = raw_client(&server).await;
    // Streams opened and reset at once, faster than the server accepts
    // them (CVE-2023-44487): h2 counts them and ends the connection with
    // GOAWAY(ENHANCE_YOUR_CALM).
    let mut refused = None;
    for _ in 0..10_000 {
        let mut ready = match raw.clone().ready().await {
            Ok(ready) => ready,
            Err(e) => {
                refused = Some(e);
                break;
            }
        };
        let path = "/grpc.testing.TestService/StreamingInputCall";
        match ready.send_request(request(path, &[]), false) {
            Ok((_, mut send)) => send.send_reset(h2::Reason::CANCEL),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    // The client sees the GOAWAY, or (still writing) the closed socket;
    // the server's count says why it closed.
    let refused = refused.expect("the flood was stopped");
    assert!(
        refused.is_io()
            || refused.is_go_away() && refused.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM),
        "{refused:?}"
    );
    server
        .wait_for("the connection to be closed and counted", |s| {
            s.connections == 0 && s.early_reset_closes == 1
        })
        .await;
    let mut fresh = raw_client(&server).await;
    still_serving(&server, &mut fresh).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_over_the_header_limit_is_refused() {
    let server = start_server(|b| b.listen(Listen::H2c).max_header_list_size(8 * 1024));
    let mut raw = raw_client(&server).await;
    // Over the limit: HTTP 431 for this request, the connection lives.
    let big = "x".repeat(16 * 1024);
    let answer = exchange(
        &mut raw,
        request(EMPTY, &[("x-big", &big)]),
        &[frame(0, b"")],
        true,
    )
    .await;
    assert_eq!(answer, Answer::Grpc(431, String::new()));
    still_serving(&server, &mut raw).await;

    // Far over it (4x, h2's abuse threshold): the connection is closed with
    // GOAWAY(ENHANCE_YOUR_CALM) before the block is even decoded.
    let huge = "x".repeat(64 * 1024);
    let mut ready = raw.clone().ready().await.unwrap();
    let (response, _send) = ready
        .send_request(request(EMPTY, &[("x-huge", &huge)]), true)
        .unwrap();
    let error = response.await.unwrap_err();
    assert!(error.is_go_away(), "{error:?}");
    assert_eq!(error.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM));
    let mut fresh = raw_client(&server).await;
    still_serving(&server, &mut fresh).await;
    server.stop().await;
}
