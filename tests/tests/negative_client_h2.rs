//! The client's HTTP/2 side under hostile responses. A raw HTTP/2 server
//! (the h2 crate, plaintext, not grpc-h3) answers each method with
//! something broken; the client must report the status PROTOCOL-HTTP2
//! documents every time, retry what the server refused unprocessed, and
//! keep the channel usable.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grpc_h3::client::Grpc;
use grpc_h3::codegen::ProstCodec;
use grpc_h3::{Channel, Code, Request, Status, Transport};
use http::{HeaderMap, HeaderValue};
use support::frame;
use tokio::sync::mpsc;

type Respond = h2::server::SendResponse<Bytes>;

fn grpc_response(status: u16) -> http::Response<()> {
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    if status == 200 {
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
    }
    response
}

fn trailers(status: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from_static(status));
    headers
}

/// Sends a response: headers, the chunks (each its own DATA frame, empty
/// ones included), then trailers or the end of the stream.
fn respond(respond: &mut Respond, status: u16, body: &[Bytes], trailers: Option<HeaderMap>) {
    let end_at_headers = body.is_empty() && trailers.is_none();
    let Ok(mut send) = respond.send_response(grpc_response(status), end_at_headers) else {
        return;
    };
    let last = body.len();
    for (i, chunk) in body.iter().enumerate() {
        let end = i + 1 == last && trailers.is_none();
        if send.send_data(chunk.clone(), end).is_err() {
            return;
        }
    }
    if let Some(trailers) = trailers {
        let _ = send.send_trailers(trailers);
    }
}

/// Answers the method named in the path.
async fn behave(method: &str, mut reply: Respond) {
    let ok = frame(0, b"");
    match method {
        "Ok" => respond(&mut reply, 200, &[ok], Some(trailers("0"))),
        "EmptyDataFrames" => respond(
            &mut reply,
            200,
            &[Bytes::new(), ok, Bytes::new()],
            Some(trailers("0")),
        ),
        "NoGrpcStatus" => {
            let mut other = HeaderMap::new();
            other.insert("x-note", HeaderValue::from_static("no status here"));
            respond(&mut reply, 200, &[ok], Some(other))
        }
        "NoTrailers" => respond(&mut reply, 200, &[ok], None),
        "InvalidStatus" => respond(&mut reply, 200, &[ok], Some(trailers("abc"))),
        "Truncated" => respond(
            &mut reply,
            200,
            &[Bytes::from_static(&[0, 0, 0, 0, 10, 1, 2, 3])],
            Some(trailers("0")),
        ),
        "Huge" => {
            let huge = frame(0, &vec![0u8; 5 << 20]);
            respond(&mut reply, 200, &[huge], Some(trailers("0")));
        }
        "Silent" => std::future::pending::<()>().await,
        other if other.starts_with("Http") => {
            respond(&mut reply, other[4..].parse().unwrap(), &[], None)
        }
        other if other.starts_with("Reset") => {
            let code: u32 = other[5..].parse().unwrap();
            reply.send_reset(h2::Reason::from(code));
        }
        other => panic!("no behaviour for {other}"),
    }
    // Keep the stream's handle until the peer has read what was sent.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// What the raw server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// Starts the raw h2c server; `Goaway` requests make it send GOAWAY on
/// their connection, then answer them.
async fn raw_server() -> (SocketAddr, Arc<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                counts.connections.fetch_add(1, Ordering::SeqCst);
                let (goaway_tx, mut goaway_rx) = mpsc::channel::<Respond>(1);
                loop {
                    tokio::select! {
                        accepted = conn.accept() => match accepted {
                            Some(Ok((request, reply))) => {
                                counts.requests.fetch_add(1, Ordering::SeqCst);
                                let goaway = goaway_tx.clone();
                                tokio::spawn(async move {
                                    let method = request.uri().path().rsplit('/').next().unwrap_or("").to_owned();
                                    let mut body = request.into_body();
                                    while let Some(Ok(chunk)) = body.data().await {
                                        let _ = body.flow_control().release_capacity(chunk.len());
                                    }
                                    if method == "Goaway" {
                                        let _ = goaway.send(reply).await;
                                    } else {
                                        behave(&method, reply).await;
                                    }
                                });
                            }
                            _ => break,
                        },
                        Some(mut reply) = goaway_rx.recv() => {
                            conn.graceful_shutdown();
                            respond(&mut reply, 200, &[frame(0, b"")], Some(trailers("0")));
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn call(channel: &Channel, method: &str, timeout: Option<Duration>) -> Result<(), Status> {
    let mut request = Request::new(());
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    let path = format!("/raw.Bad/{method}").parse().unwrap();
    Grpc::new(channel.clone())
        .unary(request, path, ProstCodec::<(), ()>::default())
        .await
        .map(|response| {
            assert_eq!(response.extensions().get(), Some(&Transport::H2c));
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_http2_response_gets_the_documented_status() {
    let (addr, seen) = raw_server().await;
    let channel = Channel::builder(format!("http://127.0.0.1:{}", addr.port()))
        .build()
        .unwrap();
    call(&channel, "Ok", None).await.unwrap();
    call(&channel, "EmptyDataFrames", None).await.unwrap();
    let h2 = |reason: h2::Reason| format!("Reset{}", u32::from(reason));
    let cases: Vec<(String, Code)> = vec![
        ("NoGrpcStatus".into(), Code::Internal),
        ("NoTrailers".into(), Code::Internal),
        ("InvalidStatus".into(), Code::Unknown),
        ("Truncated".into(), Code::Internal),
        ("Huge".into(), Code::ResourceExhausted),
        // The HTTP-to-gRPC mapping.
        ("Http400".into(), Code::Internal),
        ("Http401".into(), Code::Unauthenticated),
        ("Http403".into(), Code::PermissionDenied),
        ("Http404".into(), Code::Unimplemented),
        ("Http429".into(), Code::Unavailable),
        ("Http503".into(), Code::Unavailable),
        ("Http500".into(), Code::Unknown),
        // PROTOCOL-HTTP2's RST_STREAM mapping.
        (h2(h2::Reason::NO_ERROR), Code::Internal),
        (h2(h2::Reason::PROTOCOL_ERROR), Code::Internal),
        (h2(h2::Reason::INTERNAL_ERROR), Code::Internal),
        (h2(h2::Reason::FLOW_CONTROL_ERROR), Code::Internal),
        (h2(h2::Reason::REFUSED_STREAM), Code::Unavailable),
        (h2(h2::Reason::CANCEL), Code::Cancelled),
        (h2(h2::Reason::ENHANCE_YOUR_CALM), Code::ResourceExhausted),
        (h2(h2::Reason::INADEQUATE_SECURITY), Code::PermissionDenied),
    ];
    for (method, code) in &cases {
        let before = seen.requests.load(Ordering::SeqCst);
        let status = call(&channel, method, Some(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), *code, "{method}: {status:?}");
        // REFUSED_STREAM means unprocessed: sent again once, transparently.
        let attempts = seen.requests.load(Ordering::SeqCst) - before;
        let expected = if method == &h2(h2::Reason::REFUSED_STREAM) {
            2
        } else {
            1
        };
        assert_eq!(attempts, expected, "{method}");
        call(&channel, "Ok", None)
            .await
            .unwrap_or_else(|e| panic!("after {method}: {e:?}"));
    }

    // A server that never answers: the client's own deadline, and the
    // stream is reset rather than left open.
    let status = call(&channel, "Silent", Some(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    call(&channel, "Ok", None).await.unwrap();

    // GOAWAY during a call: the call completes, later calls move to a new
    // connection.
    let before = seen.connections.load(Ordering::SeqCst);
    call(&channel, "Goaway", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    for _ in 0..3 {
        call(&channel, "Ok", Some(Duration::from_secs(10)))
            .await
            .unwrap();
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_on_tcp_is_unavailable_and_says_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let channel = Channel::builder(format!("http://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let status = call(&channel, "Ok", None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("TCP connect failed"),
        "{}",
        status.message()
    );
}
