//! The server under hostile input. A raw h3 client (h3 + h3-quinn, not
//! grpc-h3) sends what a real client never would. Each case asserts the
//! documented answer, that the server still serves good calls on the same
//! and on a new connection, and that no call is left live (nothing leaked).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use grpc_h3::Request;
use grpc_h3_tests::pb::test_service_client::TestServiceClient;
use grpc_h3_tests::pb::{Empty, SimpleRequest};
use prost::Message;
use support::{frame, raw_client, start_server, RawClient, Running};

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const EMPTY: &str = "/grpc.testing.TestService/EmptyCall";

/// What the server answered.
#[derive(Debug, PartialEq)]
enum Answer {
    /// HTTP status, and `grpc-status` from the trailers or Trailers-Only.
    Grpc(u16, String),
    /// The server reset the response with this HTTP/3 code.
    Reset(u64),
}

async fn exchange(
    raw: &mut RawClient,
    request: http::Request<()>,
    body: &[Bytes],
    fin: bool,
) -> Answer {
    let mut stream = raw.sender.send_request(request).await.unwrap();
    let mut stopped = false;
    for chunk in body {
        // The server may already have answered and stopped reading; then
        // h3-quinn must not be asked to finish the stream.
        if stream.send_data(chunk.clone()).await.is_err() {
            stopped = true;
            break;
        }
    }
    if fin && !stopped {
        let _ = stream.finish().await;
    }
    let answer = async {
        let response = stream.recv_response().await?;
        let status = response.status().as_u16();
        if let Some(code) = response.headers().get("grpc-status") {
            return Ok(Answer::Grpc(status, code.to_str().unwrap().to_owned()));
        }
        if status != 200 {
            return Ok(Answer::Grpc(status, String::new()));
        }
        while stream.recv_data().await?.is_some() {}
        let trailers = stream.recv_trailers().await?.unwrap_or_default();
        let code = trailers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(Answer::Grpc(200, code.unwrap_or_default()))
    };
    let answer: Result<Answer, h3::error::StreamError> =
        tokio::time::timeout(Duration::from_secs(15), answer)
            .await
            .expect("the server answered in time");
    match answer {
        Ok(answer) => answer,
        Err(h3::error::StreamError::RemoteTerminate { code, .. }) => Answer::Reset(code.value()),
        Err(other) => panic!("unexpected stream error {other:?}"),
    }
}

fn grpc(code: &str) -> Answer {
    Answer::Grpc(200, code.to_owned())
}

fn unary_body(request: &SimpleRequest) -> Vec<Bytes> {
    vec![frame(0, &request.encode_to_vec())]
}

/// A good call on the same raw connection and on a new grpc-h3 channel,
/// then no call left live.
async fn still_serving(server: &Running, raw: &mut RawClient) {
    let request = raw.request(EMPTY, &[]);
    assert_eq!(
        exchange(raw, request, &[frame(0, b"")], true).await,
        grpc("0"),
        "same connection"
    );
    let client = TestServiceClient::new(server.channel());
    client.empty_call(Empty {}).await.expect("new connection");
    server.assert_no_live_calls().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_get_clear_answers() {
    let server = start_server(|b| b);
    let mut raw = raw_client(&server).await;
    let body = unary_body(&SimpleRequest::default());

    let mut get = raw.request(UNARY, &[]);
    *get.method_mut() = http::Method::GET;
    assert_eq!(
        exchange(&mut raw, get, &[], true).await,
        Answer::Grpc(405, String::new())
    );
    still_serving(&server, &mut raw).await;

    let mut json = raw.request(UNARY, &[]);
    json.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    assert_eq!(
        exchange(&mut raw, json, &body, true).await,
        Answer::Grpc(415, String::new())
    );
    still_serving(&server, &mut raw).await;

    // `te` is not required (documented): the call is served.
    let mut no_te = raw.request(UNARY, &[]);
    no_te.headers_mut().remove("te");
    assert_eq!(exchange(&mut raw, no_te, &body, true).await, grpc("0"));

    for garbage in ["soon", "123456789S", "5", "-1m", "1.5S"] {
        let request = raw.request(UNARY, &[("grpc-timeout", garbage)]);
        assert_eq!(
            exchange(&mut raw, request, &body, true).await,
            grpc("13"),
            "grpc-timeout {garbage}"
        );
    }
    still_serving(&server, &mut raw).await;

    let request = raw.request(UNARY, &[("grpc-encoding", "lz4")]);
    assert_eq!(exchange(&mut raw, request, &body, true).await, grpc("12"));
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_clear_answers() {
    let server = start_server(|b| b);
    let mut raw = raw_client(&server).await;
    let cases: Vec<(&str, Vec<Bytes>, &str)> = vec![
        (
            "truncated message at the end of the stream",
            vec![Bytes::from_static(&[0, 0, 0, 0, 10, 1, 2])],
            "13",
        ),
        (
            "truncated prefix",
            vec![Bytes::from_static(&[0, 0, 0])],
            "13",
        ),
        (
            "a length prefix of 4 GiB",
            vec![Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff])],
            "8",
        ),
        (
            "invalid protobuf",
            vec![frame(0, &[0x0a, 0xff, 0xff])],
            "13",
        ),
        (
            "compressed flag without grpc-encoding",
            vec![frame(1, b"x")],
            "13",
        ),
        ("an undefined flag byte", vec![frame(7, b"")], "13"),
        ("no message for a unary call", vec![], "13"),
        (
            "two messages for a unary call",
            vec![frame(0, b""), frame(0, b"")],
            "13",
        ),
    ];
    for (what, body, code) in cases {
        let request = raw.request(UNARY, &[]);
        assert_eq!(
            exchange(&mut raw, request, &body, true).await,
            grpc(code),
            "{what}"
        );
        still_serving(&server, &mut raw).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_without_buffering_it() {
    let server = start_server(|b| b);
    let mut raw = raw_client(&server).await;
    // 5 MiB against the default 4 MiB limit, really sent.
    let big = SimpleRequest {
        payload: Some(grpc_h3_tests::pb::Payload {
            r#type: 0,
            body: vec![0; 5 << 20],
        }),
        ..Default::default()
    };
    let request = raw.request(UNARY, &[]);
    assert_eq!(
        exchange(&mut raw, request, &unary_body(&big), true).await,
        grpc("8")
    );
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_far_over_the_header_limit_is_refused() {
    let server = start_server(|b| b.max_header_list_size(8 * 1024));
    let mut raw = raw_client(&server).await;
    let huge = "x".repeat(256 * 1024);
    let request = raw.request(UNARY, &[("x-huge", &huge)]);
    match raw.sender.send_request(request).await {
        // h3 refuses locally: the server advertised its limit in SETTINGS.
        Err(h3::error::StreamError::HeaderTooBig { .. }) => {}
        Ok(mut stream) => {
            let _ = stream.finish().await;
            assert_eq!(stream.recv_response().await.unwrap().status(), 431);
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_in_the_middle_of_a_message_cancels_the_call() {
    let server = start_server(|b| b);
    let mut raw = raw_client(&server).await;
    let request = raw.request("/grpc.testing.TestService/StreamingInputCall", &[]);
    let mut stream = raw.sender.send_request(request).await.unwrap();
    // Half a message, then RESET_STREAM, once the handler is reading.
    stream
        .send_data(Bytes::from_static(&[0, 0, 0, 1, 0, 1, 2, 3]))
        .await
        .unwrap();
    let probe = server.probe.clone();
    server
        .wait_for("the handler to start", |_| {
            probe.started.load(Ordering::SeqCst) == 1
        })
        .await;
    stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
    server
        .wait_for("the handler to end", |_| {
            probe.started.load(Ordering::SeqCst)
                == probe.finished.load(Ordering::SeqCst) + probe.dropped.load(Ordering::SeqCst)
        })
        .await;
    // Cancelled: dropped, or ended by the reset it read (never completed
    // with a response the client could see).
    server.assert_no_live_calls().await;
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_abandoned_streams_leak_nothing() {
    // Abandoning streams this fast is what the rapid-reset defence stops;
    // here it is lifted to look for leaks alone.
    let server = start_server(|b| b.early_reset_limit(10_000, Duration::from_secs(60)));
    let mut raw = raw_client(&server).await;
    server
        .wait_for("the connection", |s| s.connections == 1)
        .await;
    let runtime = tokio::runtime::Handle::current().metrics();
    let (server_tasks, runtime_tasks) = (server.handle.stats().tasks, runtime.num_alive_tasks());
    for i in 0..3000 {
        let request = raw.request("/grpc.testing.TestService/StreamingInputCall", &[]);
        let mut stream = raw.sender.send_request(request).await.unwrap();
        match i % 3 {
            // Reset right after the headers.
            0 => stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED),
            // Reset after part of a message.
            1 => {
                let _ = stream
                    .send_data(Bytes::from_static(&[0, 0, 0, 0, 9, 1]))
                    .await;
                stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
            }
            // Stop reading the response and walk away.
            _ => {
                stream.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
                stream.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
            }
        }
    }
    server.assert_no_live_calls().await;
    server
        .wait_for("every stream task and STOP_SENDING watcher to go", |s| {
            s.tasks == server_tasks && s.stop_watchers == 0
        })
        .await;
    for _ in 0..400 {
        if runtime.num_alive_tasks() <= runtime_tasks {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        runtime.num_alive_tasks() <= runtime_tasks,
        "{} tasks alive, {runtime_tasks} before",
        runtime.num_alive_tasks()
    );
    still_serving(&server, &mut raw).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_sends_its_fin() {
    let server = start_server(|b| b);
    let mut raw = raw_client(&server).await;
    let body = unary_body(&SimpleRequest::default());

    // With a deadline: the server resets the stream when it passes.
    let request = raw.request(UNARY, &[("grpc-timeout", "300m")]);
    assert_eq!(
        exchange(&mut raw, request, &body, false).await,
        Answer::Reset(0x10c)
    );
    still_serving(&server, &mut raw).await;

    // Without one: the call waits for the rest of the request (it holds one
    // stream slot), and is released when the client goes away.
    let request = raw.request(UNARY, &[]);
    let mut stream = raw.sender.send_request(request).await.unwrap();
    stream.send_data(body[0].clone()).await.unwrap();
    server
        .wait_for("the call to wait for its FIN", |s| s.live_calls == 1)
        .await;
    let client = TestServiceClient::new(server.channel());
    client
        .empty_call(Request::new(Empty {}))
        .await
        .expect("others are served meanwhile");
    raw.conn.close(0u32.into(), b"bye");
    server.assert_no_live_calls().await;
    server.stop().await;
}
