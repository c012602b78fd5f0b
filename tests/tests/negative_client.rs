//! The client under hostile responses. A raw h3 server (h3 + h3-quinn, not
//! grpc-h3) answers each method with something broken; the client must
//! report the documented status every time, and the channel must stay
//! usable.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grpc_h3::codegen::ProstCodec;
use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::{CallOptions, Channel, Code, Request, Status};
use h3::error::Code as H3;
use http::{HeaderMap, HeaderValue};
use support::{frame, raw_server_tls};
use tokio::sync::mpsc;

type RawStream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

fn grpc_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers
}

fn trailers(status: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("grpc-status", HeaderValue::from_static(status));
    headers
}

async fn respond(
    stream: &mut RawStream,
    status: u16,
    headers: HeaderMap,
    body: &[Bytes],
    trailers: Option<HeaderMap>,
) {
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    *response.headers_mut() = headers;
    stream.send_response(response).await.unwrap();
    for chunk in body {
        stream.send_data(chunk.clone()).await.unwrap();
    }
    if let Some(trailers) = trailers {
        stream.send_trailers(trailers).await.unwrap();
    }
    stream.finish().await.unwrap();
}

/// Answers the method named in the path.
async fn behave(method: &str, mut stream: RawStream, goaway: mpsc::Sender<()>) {
    let ok_message = frame(0, b"");
    match method {
        "Ok" => {
            respond(
                &mut stream,
                200,
                grpc_headers(),
                &[ok_message],
                Some(trailers("0")),
            )
            .await
        }
        "NoGrpcStatus" => {
            let mut other = HeaderMap::new();
            other.insert("x-note", HeaderValue::from_static("no status here"));
            respond(&mut stream, 200, grpc_headers(), &[ok_message], Some(other)).await
        }
        "EmptyTrailers" => {
            respond(
                &mut stream,
                200,
                grpc_headers(),
                &[ok_message],
                Some(HeaderMap::new()),
            )
            .await
        }
        "NoTrailers" => respond(&mut stream, 200, grpc_headers(), &[ok_message], None).await,
        "InvalidStatus" => {
            respond(
                &mut stream,
                200,
                grpc_headers(),
                &[ok_message],
                Some(trailers("abc")),
            )
            .await
        }
        "OutOfRangeStatus" => {
            respond(
                &mut stream,
                200,
                grpc_headers(),
                &[ok_message],
                Some(trailers("99")),
            )
            .await
        }
        "Truncated" => {
            let truncated = Bytes::from_static(&[0, 0, 0, 0, 10, 1, 2, 3]);
            respond(
                &mut stream,
                200,
                grpc_headers(),
                &[truncated],
                Some(trailers("0")),
            )
            .await
        }
        "Huge" => {
            let huge = frame(0, &vec![0u8; 5 << 20]);
            // The client stops reading this one; errors are expected.
            let mut response = http::Response::new(());
            *response.headers_mut() = grpc_headers();
            if stream.send_response(response).await.is_ok() {
                let _ = stream.send_data(huge).await;
            }
        }
        "Silent" => std::future::pending::<()>().await,
        "Goaway" => {
            goaway.send(()).await.unwrap();
            respond(
                &mut stream,
                200,
                grpc_headers(),
                &[ok_message],
                Some(trailers("0")),
            )
            .await
        }
        other if other.starts_with("Http") => {
            let status = other[4..].parse().unwrap();
            respond(&mut stream, status, HeaderMap::new(), &[], None).await
        }
        other if other.starts_with("Reset") => {
            let code = u64::from_str_radix(&other[5..], 16).unwrap();
            stream.stop_stream(H3::from(code));
        }
        other => panic!("no behaviour for {other}"),
    }
}

/// Starts the raw server; returns its address, the PEM to trust, and a
/// count of the connections it accepted.
async fn raw_server() -> (SocketAddr, String, Arc<AtomicUsize>) {
    let (tls, pem) = raw_server_tls();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut h3_conn = h3::server::Connection::new(h3_quinn::Connection::new(conn))
                    .await
                    .unwrap();
                let (goaway_tx, mut goaway_rx) = mpsc::channel(1);
                loop {
                    tokio::select! {
                        accepted = h3_conn.accept() => match accepted {
                            Ok(Some(resolver)) => {
                                let goaway = goaway_tx.clone();
                                tokio::spawn(async move {
                                    let Ok((request, mut stream)) = resolver.resolve_request().await else { return };
                                    while let Ok(Some(_)) = stream.recv_data().await {}
                                    let method = request.uri().path().rsplit('/').next().unwrap_or("").to_owned();
                                    behave(&method, stream, goaway).await;
                                });
                            }
                            _ => break,
                        },
                        Some(()) = goaway_rx.recv() => {
                            let _ = h3_conn.shutdown(1).await;
                        }
                    }
                }
            });
        }
    });
    (addr, pem, connections)
}

async fn call(
    channel: &Channel,
    method: &str,
    options: &CallOptions,
    timeout: Option<Duration>,
) -> Result<(), Status> {
    let mut request = Request::new(());
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    let path = format!("/raw.Bad/{method}");
    let path: http::uri::PathAndQuery = path.parse().expect("a valid path");
    grpc_h3::client::Grpc::with_options(channel.clone(), options.clone())
        .unary(request, path, ProstCodec::<(), ()>::default())
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_response_gets_the_documented_status() {
    let (addr, pem, connections) = raw_server().await;
    let channel = Channel::builder(format!("https://127.0.0.1:{}", addr.port()))
        .tls_config(ClientTlsConfig::new().ca_certificate(pem))
        .build()
        .unwrap();
    let options = CallOptions::default();
    let cases: &[(&str, Code)] = &[
        ("NoGrpcStatus", Code::Internal),
        ("EmptyTrailers", Code::Internal),
        ("NoTrailers", Code::Internal),
        ("InvalidStatus", Code::Unknown),
        ("OutOfRangeStatus", Code::Unknown),
        ("Truncated", Code::Internal),
        ("Huge", Code::ResourceExhausted),
        // The HTTP-to-gRPC mapping, row by row.
        ("Http400", Code::Internal),
        ("Http401", Code::Unauthenticated),
        ("Http403", Code::PermissionDenied),
        ("Http404", Code::Unimplemented),
        ("Http429", Code::Unavailable),
        ("Http502", Code::Unavailable),
        ("Http503", Code::Unavailable),
        ("Http504", Code::Unavailable),
        ("Http500", Code::Unknown),
        ("Http418", Code::Unknown),
        // gRFC G2: RESET_STREAM codes.
        ("Reset100", Code::Internal),          // H3_NO_ERROR
        ("Reset10b", Code::Unavailable),       // H3_REQUEST_REJECTED
        ("Reset10c", Code::Cancelled),         // H3_REQUEST_CANCELLED
        ("Reset107", Code::ResourceExhausted), // H3_EXCESSIVE_LOAD
        ("Reset102", Code::Internal),          // H3_INTERNAL_ERROR
        ("Reset10e", Code::Internal),          // H3_MESSAGE_ERROR
        ("Reset21", Code::Internal),           // not an HTTP/3 code
    ];
    for (method, code) in cases {
        let status = call(&channel, method, &options, Some(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), *code, "{method}: {status:?}");
        call(&channel, "Ok", &options, None)
            .await
            .unwrap_or_else(|e| panic!("after {method}: {e:?}"));
    }

    // A server that never answers: the client's own deadline.
    let status = call(
        &channel,
        "Silent",
        &options,
        Some(Duration::from_millis(200)),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    call(&channel, "Ok", &options, None).await.unwrap();

    // GOAWAY during a call: the call completes, later calls move to a new
    // connection (a call the old one refuses is retried there).
    let before = connections.load(Ordering::SeqCst);
    call(&channel, "Goaway", &options, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    for _ in 0..3 {
        call(&channel, "Ok", &options, Some(Duration::from_secs(10)))
            .await
            .unwrap();
    }
    assert_eq!(connections.load(Ordering::SeqCst), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_unavailable() {
    // Nothing listens on this port: the handshake times out.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    let channel = Channel::builder(format!("https://127.0.0.1:{port}"))
        .tls_config(ClientTlsConfig::new().ca_certificate(raw_server_tls().1))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let status = call(&channel, "Ok", &CallOptions::default(), None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}
