//! The client against a raw HTTP/3 server that sends exactly the bytes
//! each test wants: empty DATA frames, oversized headers, refused and
//! unprocessed requests (retried once, transparently, with their request
//! messages replayed), server-initiated streams.

mod support;

use std::time::Duration;

use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::{Channel, Code};
use grpc_h3_tests::pb::test_service_client::TestServiceClient;
use grpc_h3_tests::pb::{Empty, StreamingInputCallRequest, StreamingInputCallResponse};
use prost::Message;
use support::raw::{
    self, data_message, frame, response_headers, response_trailers, varint, RawServer, DATA,
    EXCESSIVE_LOAD, HEADERS, REQUEST_CANCELLED, REQUEST_REJECTED,
};

fn client(server: &RawServer) -> TestServiceClient {
    let channel = Channel::builder(format!("https://127.0.0.1:{}", server.port()))
        .tls_config(ClientTlsConfig::new().ca_certificate(&server.cert_pem))
        .build()
        .unwrap();
    TestServiceClient::new(channel)
}

/// A complete OK response carrying one empty message.
fn ok_empty() -> Vec<u8> {
    let mut bytes = response_headers();
    bytes.extend(data_message(b""));
    bytes.extend(response_trailers("0"));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_data_frames_in_a_response_are_skipped() {
    let server = RawServer::bind();
    let client = client(&server);
    let call = tokio::spawn(async move { client.empty_call(Empty {}).await });
    let conn = server.accept().await;
    let (mut send, _recv, _request) = conn.next_request().await;
    let mut bytes = response_headers();
    bytes.extend(frame(DATA, b""));
    bytes.extend(frame(DATA, b""));
    bytes.extend(data_message(b""));
    bytes.extend(frame(DATA, b""));
    bytes.extend(response_trailers("0"));
    raw::write_and_finish(&mut send, &bytes).await;
    call.await
        .unwrap()
        .expect("the empty frames are not the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_response_headers_frame_is_refused_unread() {
    let server = RawServer::bind();
    let client = client(&server);
    // Kept so that the connection outlives the failed call.
    let _channel = client.clone();
    let call = tokio::spawn(async move { client.empty_call(Empty {}).await });
    let conn = server.accept().await;
    let (mut send, _recv, _request) = conn.next_request().await;
    let mut head = varint(HEADERS);
    head.extend(varint(256 << 20));
    send.write_all(&head).await.unwrap();
    let block = vec![0u8; 1 << 20];
    let mut sent_mib = 0;
    let stopped = loop {
        match send.write_all(&block).await {
            Ok(()) => sent_mib += 1,
            Err(quinn::WriteError::Stopped(code)) => break code.into_inner(),
            Err(other) => panic!("unexpected {other}"),
        }
        assert!(sent_mib < 64, "the client kept reading a refused frame");
    };
    assert_eq!(stopped, u64::from(EXCESSIVE_LOAD));
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("HEADERS frame"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_accepts_no_server_initiated_streams_or_datagrams() {
    let server = RawServer::bind();
    let client = client(&server);
    let call = tokio::spawn(async move { client.empty_call(Empty {}).await });
    let conn = server.accept().await;
    assert_eq!(
        conn.conn.max_datagram_size(),
        None,
        "the client advertises no datagram support"
    );
    let opened = tokio::time::timeout(Duration::from_millis(300), conn.conn.open_bi()).await;
    assert!(
        opened.is_err(),
        "the client granted a server-initiated request stream"
    );
    let (mut send, _recv, _request) = conn.next_request().await;
    raw::write_and_finish(&mut send, &ok_empty()).await;
    call.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_is_retried_once_on_a_new_connection() {
    let server = RawServer::bind();
    let client = client(&server);
    let call = tokio::spawn(async move { client.empty_call(Empty {}).await });

    let first = server.accept().await;
    let (mut send, mut recv, _request) = first.next_request().await;
    send.reset(REQUEST_REJECTED.into()).unwrap();
    let _ = recv.stop(REQUEST_REJECTED.into());

    let second = server.accept().await;
    let (mut send, _recv, request) = second.next_request().await;
    assert_eq!(raw::messages(&request).len(), 1, "the request came again");
    raw::write_and_finish(&mut send, &ok_empty()).await;
    call.await.unwrap().expect("the retry succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_is_not_retried() {
    let server = RawServer::bind();
    let client = client(&server);
    let call = tokio::spawn(async move { client.empty_call(Empty {}).await });
    let first = server.accept().await;
    let (mut send, _recv, _request) = first.next_request().await;
    send.reset(REQUEST_CANCELLED.into()).unwrap();
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    // No second request: the wait times out, or ends with the connection
    // once the client is dropped.
    let another = tokio::time::timeout(Duration::from_millis(300), first.conn.accept_bi()).await;
    assert!(
        !matches!(another, Ok(Ok(_))),
        "the cancelled request was sent again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_goaway_is_retried_when_the_connection_closes() {
    let server = RawServer::bind();
    let client = client(&server);
    let call = tokio::spawn(async move { client.empty_call(Empty {}).await });
    let mut first = server.accept().await;
    let (_send, _recv, _request) = first.next_request().await;
    // Stream 0 was not processed: GOAWAY(0), then the connection closes.
    first.goaway(0).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.conn.close(0x100u32.into(), b"");

    let second = server.accept().await;
    let (mut send, _recv, _request) = second.next_request().await;
    raw::write_and_finish(&mut send, &ok_empty()).await;
    call.await.unwrap().expect("retried on the new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_request_is_replayed_whole_on_the_retry() {
    let server = RawServer::bind();
    let client = client(&server);
    let messages = (1..=3).map(|i| StreamingInputCallRequest {
        payload: Some(grpc_h3_tests::pb::Payload {
            r#type: 0,
            body: vec![i; i as usize * 100],
        }),
        ..Default::default()
    });
    let call = tokio::spawn(async move {
        client
            .streaming_input_call(tokio_stream::iter(messages))
            .await
    });

    let first = server.accept().await;
    let (mut send, mut recv, request) = first.next_request().await;
    assert_eq!(raw::messages(&request).len(), 3);
    send.reset(REQUEST_REJECTED.into()).unwrap();
    let _ = recv.stop(REQUEST_REJECTED.into());

    let second = server.accept().await;
    let (mut send, _recv, request) = second.next_request().await;
    let replayed = raw::messages(&request);
    let sizes: Vec<usize> = replayed
        .iter()
        .map(|m| {
            StreamingInputCallRequest::decode(&m[..])
                .unwrap()
                .payload
                .unwrap()
                .body
                .len()
        })
        .collect();
    assert_eq!(sizes, [100, 200, 300], "every message, in order");
    let reply = StreamingInputCallResponse {
        aggregated_payload_size: 600,
    };
    let mut bytes = response_headers();
    bytes.extend(data_message(&reply.encode_to_vec()));
    bytes.extend(response_trailers("0"));
    raw::write_and_finish(&mut send, &bytes).await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.get_ref().aggregated_payload_size, 600);
}
