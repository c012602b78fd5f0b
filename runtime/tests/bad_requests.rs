//! Requests our client would never send, from a raw h3 client: each gets a
//! clear answer, and the server keeps serving on the same connection.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{grpc_frame, payload, raw_client, start, RawClient};

/// Sends one request and returns (HTTP status, headers or trailers holding
/// grpc-status).
async fn exchange(
    raw: &mut RawClient,
    request: http::Request<()>,
    body: &[Bytes],
) -> (u16, http::HeaderMap) {
    let mut stream = raw.sender.send_request(request).await.unwrap();
    for chunk in body {
        // The server may already have answered and stopped reading.
        if stream.send_data(chunk.clone()).await.is_err() {
            break;
        }
    }
    let _ = stream.finish().await;
    let response = tokio::time::timeout(Duration::from_secs(10), stream.recv_response())
        .await
        .expect("answered in time")
        .unwrap();
    let status = response.status().as_u16();
    if response.headers().contains_key("grpc-status") || status != 200 {
        return (status, response.headers().clone());
    }
    while stream.recv_data().await.unwrap().is_some() {}
    let trailers = stream.recv_trailers().await.unwrap().expect("trailers");
    (status, trailers)
}

fn grpc_status(headers: &http::HeaderMap) -> &str {
    headers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("<none>")
}

async fn assert_still_serves(raw: &mut RawClient) {
    let request = raw.request("/test.Echo/Unary", &[]);
    let (status, trailers) = exchange(raw, request, &[grpc_frame(&payload(3))]).await;
    assert_eq!((status, grpc_status(&trailers)), (200, "0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_malformed_request_gets_a_clear_answer() {
    let server = start(|b| b).await;
    let mut raw = raw_client(&server).await;
    let ok_body = [grpc_frame(&payload(1))];

    // Not POST: HTTP 405.
    let mut get = raw.request("/test.Echo/Unary", &[]);
    *get.method_mut() = http::Method::GET;
    assert_eq!(exchange(&mut raw, get, &[]).await.0, 405);

    // Not application/grpc: HTTP 415.
    let mut json = raw.request("/test.Echo/Unary", &[]);
    json.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    assert_eq!(exchange(&mut raw, json, &ok_body).await.0, 415);

    // Garbage grpc-timeout: INTERNAL, naming the header.
    let bad_timeout = raw.request("/test.Echo/Unary", &[("grpc-timeout", "soon")]);
    let (status, headers) = exchange(&mut raw, bad_timeout, &ok_body).await;
    assert_eq!((status, grpc_status(&headers)), (200, "13"));
    assert!(headers["grpc-message"]
        .to_str()
        .unwrap()
        .contains("grpc-timeout"));

    // Unknown grpc-encoding: UNIMPLEMENTED, advertising what is supported.
    let lz4 = raw.request("/test.Echo/Unary", &[("grpc-encoding", "lz4")]);
    let (status, headers) = exchange(&mut raw, lz4, &ok_body).await;
    assert_eq!((status, grpc_status(&headers)), (200, "12"));
    assert_eq!(headers["grpc-accept-encoding"], "gzip");

    // Malformed path: UNIMPLEMENTED.
    let path = raw.request("/no-method", &[]);
    assert_eq!(
        grpc_status(&exchange(&mut raw, path, &ok_body).await.1),
        "12"
    );

    // Compressed flag without grpc-encoding: INTERNAL.
    let request = raw.request("/test.Echo/Unary", &[]);
    let body = [Bytes::from_static(&[1, 0, 0, 0, 1, 0])];
    assert_eq!(
        grpc_status(&exchange(&mut raw, request, &body).await.1),
        "13"
    );

    // Truncated message at the end of the stream: INTERNAL.
    let request = raw.request("/test.Echo/Unary", &[]);
    let body = [Bytes::from_static(&[0, 0, 0, 0, 10, 1, 2])];
    assert_eq!(
        grpc_status(&exchange(&mut raw, request, &body).await.1),
        "13"
    );

    // Length prefix of 4 GiB: RESOURCE_EXHAUSTED before anything is buffered.
    let request = raw.request("/test.Echo/Unary", &[]);
    let body = [Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff])];
    assert_eq!(
        grpc_status(&exchange(&mut raw, request, &body).await.1),
        "8"
    );

    // Invalid protobuf: INTERNAL.
    let request = raw.request("/test.Echo/Unary", &[]);
    let body = [Bytes::from_static(&[0, 0, 0, 0, 2, 0x0a, 0xff])];
    assert_eq!(
        grpc_status(&exchange(&mut raw, request, &body).await.1),
        "13"
    );

    // No message at all for a unary call: INTERNAL.
    let request = raw.request("/test.Echo/Unary", &[]);
    assert_eq!(grpc_status(&exchange(&mut raw, request, &[]).await.1), "13");

    // Two messages for a unary call: INTERNAL.
    let request = raw.request("/test.Echo/Unary", &[]);
    let two = [grpc_frame(&payload(1)), grpc_frame(&payload(1))];
    assert_eq!(
        grpc_status(&exchange(&mut raw, request, &two).await.1),
        "13"
    );

    assert_still_serves(&mut raw).await;
    server.wait_no_live_calls().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_and_the_connection_survives() {
    let server = start(|b| b.max_header_list_size(4096)).await;
    let mut raw = raw_client(&server).await;
    let huge = "x".repeat(64 * 1024);
    let request = raw.request("/test.Echo/Unary", &[("x-huge", &huge)]);
    match raw.sender.send_request(request).await {
        // h3 refuses locally: the server advertised its limit in SETTINGS.
        Err(h3::error::StreamError::HeaderTooBig { .. }) => {}
        Ok(mut stream) => {
            let _ = stream.finish().await;
            let response = stream.recv_response().await.unwrap();
            assert_eq!(response.status(), 431);
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
    assert_still_serves(&mut raw).await;
    server.shutdown().await;
}
