//! The four call kinds, limits, metadata, statuses and compression, end to
//! end on loopback over each transport (HTTP/3, HTTP/2 with TLS, h2c).

mod common;

use std::time::Duration;

use common::pb::EchoRequest;
use common::{payload, start_on, EchoClient};
use grpc_h3::{Code, CompressionEncoding, Request, Status};

const MIB: usize = 1024 * 1024;

fn stream_of(requests: Vec<EchoRequest>) -> tokio_stream::Iter<std::vec::IntoIter<EchoRequest>> {
    tokio_stream::iter(requests)
}

on_every_transport! {
async fn unary_round_trip(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let response = client.unary(Request::new(payload(10))).await.unwrap();
    assert_eq!(response.get_ref().payload, vec![b'p'; 10]);
    server.shutdown().await;
}
}

on_every_transport! {
async fn all_four_kinds_with_messages_above_4_mib(t: Transport) {
    let big = 5 * MIB;
    let server = start_on(t, |b| b.max_decoding_message_size(8 * MIB)).await;
    let mut client = EchoClient::new(server.channel());
    client.options.max_decoding_message_size = 8 * MIB;

    let unary = client.unary(Request::new(payload(big))).await.unwrap();
    assert_eq!(unary.get_ref().payload.len(), big);

    let request = EchoRequest {
        response_count: 3,
        response_size: big as u32,
        ..Default::default()
    };
    let mut stream = client
        .server_stream(Request::new(request))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(msg) = stream.message().await.unwrap() {
        assert_eq!(msg.payload.len(), big);
        seen.push(msg.index);
    }
    assert_eq!(seen, [0, 1, 2]);
    assert!(stream.trailers().is_some());

    let requests = vec![payload(big), payload(big), payload(1)];
    let summary = client
        .client_stream(Request::new(stream_of(requests)))
        .await
        .unwrap();
    assert_eq!(summary.get_ref().index, 3);
    assert_eq!(summary.get_ref().total, (2 * big + 1) as u64);

    let requests = vec![payload(big), payload(7), payload(big)];
    let mut echoes = client
        .bidi(Request::new(stream_of(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut sizes = Vec::new();
    while let Some(msg) = echoes.message().await.unwrap() {
        sizes.push(msg.payload.len());
    }
    assert_eq!(sizes, [big, 7, big]);
    server.shutdown().await;
}
}

on_every_transport! {
async fn bidi_is_interactive(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut echoes = client
        .bidi(Request::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
        .await
        .unwrap()
        .into_inner();
    // Each echo arrives before the next request is sent: ping-pong.
    for i in 0..20u32 {
        tx.send(payload(i as usize)).await.unwrap();
        let echo = echoes.message().await.unwrap().unwrap();
        assert_eq!(echo.index, i + 1);
        assert_eq!(echo.payload.len(), i as usize);
    }
    drop(tx);
    assert!(echoes.message().await.unwrap().is_none());
    server.shutdown().await;
}
}

on_every_transport! {
async fn empty_streams_and_zero_length_messages(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let empty = client.unary(Request::new(payload(0))).await.unwrap();
    assert!(empty.get_ref().payload.is_empty());

    let summary = client
        .client_stream(Request::new(stream_of(vec![])))
        .await
        .unwrap();
    assert_eq!(summary.get_ref().index, 0);

    let mut echoes = client
        .bidi(Request::new(stream_of(vec![])))
        .await
        .unwrap()
        .into_inner();
    assert!(echoes.message().await.unwrap().is_none());

    let request = EchoRequest {
        response_count: 0,
        ..Default::default()
    };
    let mut stream = client
        .server_stream(Request::new(request))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_none());
    server.shutdown().await;
}
}

on_every_transport! {
async fn thousand_concurrent_unary_calls_on_one_connection(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let calls: Vec<_> = (0..1000usize)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let response = client.unary(Request::new(payload(i % 300))).await?;
                assert_eq!(response.get_ref().payload.len(), i % 300);
                Ok::<_, Status>(())
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        server
            .stats
            .completed
            .load(std::sync::atomic::Ordering::SeqCst),
        1000
    );
    server.wait_no_live_calls().await;
    server.shutdown().await;
}
}

on_every_transport! {
async fn every_status_code_round_trips_with_a_unicode_message(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let message = "ünïcødé ✓ 100% \u{1F600}\nnew line";
    for code in Code::ALL.into_iter().skip(1) {
        let request = EchoRequest {
            status_code: code as i32,
            status_message: message.into(),
            ..Default::default()
        };
        let status = client
            .unary(Request::new(request.clone()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code);
        assert_eq!(status.message(), message);

        // The same status ending a stream, after messages (not Trailers-Only).
        let request = EchoRequest {
            response_count: 2,
            ..request
        };
        let mut stream = client
            .server_stream(Request::new(request))
            .await
            .unwrap()
            .into_inner();
        assert!(stream.message().await.unwrap().is_some());
        assert!(stream.message().await.unwrap().is_some());
        let status = stream.message().await.unwrap_err();
        assert_eq!((status.code(), status.message()), (code, message));
        assert!(stream.message().await.unwrap().is_none());
    }
    server.shutdown().await;
}
}

on_every_transport! {
async fn binary_and_ascii_metadata_round_trip_initial_and_trailing(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let blob: Vec<u8> = (0..=255u8).collect();
    let mut request = Request::new(payload(1));
    request
        .metadata_mut()
        .insert("x-echo-initial", "hello there")
        .unwrap();
    request
        .metadata_mut()
        .insert_bin("x-echo-trailing-bin", &blob)
        .unwrap();
    let response = client.unary(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-echo-initial"),
        Some("hello there")
    );
    assert_eq!(
        &response
            .trailers()
            .get_bin("x-echo-trailing-bin")
            .unwrap()
            .unwrap()[..],
        &blob[..]
    );

    // Trailing metadata also rides along with an error status.
    let mut request = Request::new(EchoRequest {
        status_code: Code::NotFound as i32,
        status_message: "gone".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert_bin("x-echo-trailing-bin", [1u8, 2, 3])
        .unwrap();
    let status = client.unary(request).await.unwrap_err();
    assert_eq!(
        &status
            .metadata()
            .get_bin("x-echo-trailing-bin")
            .unwrap()
            .unwrap()[..],
        [1, 2, 3]
    );

    // Streaming: initial metadata with the head, trailing at the end.
    let mut request = Request::new(EchoRequest {
        response_count: 1,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-echo-initial", "s")
        .unwrap();
    request
        .metadata_mut()
        .insert_bin("x-echo-trailing-bin", [9u8])
        .unwrap();
    let response = client.server_stream(request).await.unwrap();
    assert_eq!(response.metadata().get("x-echo-initial"), Some("s"));
    let mut stream = response.into_inner();
    while stream.message().await.unwrap().is_some() {}
    assert_eq!(
        &stream
            .trailers()
            .unwrap()
            .get_bin("x-echo-trailing-bin")
            .unwrap()
            .unwrap()[..],
        [9]
    );
    server.shutdown().await;
}
}

on_every_transport! {
async fn gzip_round_trips_both_ways(t: Transport) {
    let server = start_on(t, |b| b.send_compressed(CompressionEncoding::Gzip)).await;
    let mut client = EchoClient::new(server.channel());
    client.options.send_compression = Some(CompressionEncoding::Gzip);
    // Highly compressible and above the 4 MiB limit uncompressed would be
    // on the wire well below it; the limit applies after decompression.
    let response = client.unary(Request::new(payload(MIB))).await.unwrap();
    assert_eq!(response.get_ref().payload, vec![b'p'; MIB]);

    let requests = vec![payload(1000), payload(0), payload(5000)];
    let mut echoes = client
        .bidi(Request::new(stream_of(requests)))
        .await
        .unwrap()
        .into_inner();
    let mut sizes = Vec::new();
    while let Some(msg) = echoes.message().await.unwrap() {
        sizes.push(msg.payload.len());
    }
    assert_eq!(sizes, [1000, 0, 5000]);

    // A per-call override turns compression off for one call.
    let mut request = Request::new(payload(10));
    request.set_compression(None);
    assert_eq!(
        client.unary(request).await.unwrap().get_ref().payload.len(),
        10
    );
    server.shutdown().await;
}
}

on_every_transport! {
async fn zstd_round_trips_both_ways(t: Transport) {
    let server = start_on(t, |b| b.send_compressed(CompressionEncoding::Zstd)).await;
    let mut client = EchoClient::new(server.channel());
    client.options.send_compression = Some(CompressionEncoding::Zstd);
    let response = client.unary(Request::new(payload(MIB))).await.unwrap();
    assert_eq!(response.get_ref().payload, vec![b'p'; MIB]);
    let mut request = payload(10);
    request.response_count = 2;
    request.response_size = 100_000;
    let mut stream = client
        .server_stream(Request::new(request))
        .await
        .unwrap()
        .into_inner();
    while let Some(msg) = stream.message().await.unwrap() {
        assert_eq!(msg.payload.len(), 100_000);
        assert!(stream.last_message_compressed(), "the server answers in zstd");
    }
    server.shutdown().await;
}
}

on_every_transport! {
async fn compressed_request_to_a_server_that_refuses_compression_is_unimplemented(t: Transport) {
    let server = start_on(t, |b| b.accept_no_compression()).await;
    let mut client = EchoClient::new(server.channel());
    client.options.send_compression = Some(CompressionEncoding::Gzip);
    let status = client.unary(Request::new(payload(10))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("gzip"), "{}", status.message());
    client.options.send_compression = None;
    client.unary(Request::new(payload(10))).await.unwrap();
    server.shutdown().await;
}
}

on_every_transport! {
async fn oversize_messages_are_resource_exhausted_in_both_directions(t: Transport) {
    let server = start_on(t, |b| b.max_decoding_message_size(1000)).await;
    let mut client = EchoClient::new(server.channel());

    // Request over the server's limit.
    let status = client.unary(Request::new(payload(2000))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Response over the client's limit.
    client.options.max_decoding_message_size = 100;
    let request = EchoRequest {
        response_size: 500,
        ..Default::default()
    };
    let status = client.unary(Request::new(request)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Request over the client's own sending limit never leaves the client.
    client.options.max_encoding_message_size = 10;
    let status = client.unary(Request::new(payload(50))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = client
        .client_stream(Request::new(stream_of(vec![payload(1), payload(50)])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The channel still works.
    client.options = Default::default();
    client.unary(Request::new(payload(10))).await.unwrap();
    server.wait_no_live_calls().await;
    server.shutdown().await;
}
}

on_every_transport! {
async fn unknown_service_and_method_are_unimplemented(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    for path in ["/test.Nope/Unary", "/test.Echo/Nope"] {
        let status = client
            .call_path(path, Request::new(payload(1)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
    }
    server.shutdown().await;
}
}

on_every_transport! {
async fn a_panicking_handler_is_internal_and_the_server_keeps_serving(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let request = EchoRequest {
        panic: true,
        ..Default::default()
    };
    let status = client.unary(Request::new(request)).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(status.message().contains("panicked"));
    client.unary(Request::new(payload(3))).await.unwrap();
    server.wait_no_live_calls().await;
    server.shutdown().await;
}
}

on_every_transport! {
async fn handlers_see_peer_transport_method_and_deadline(t: Transport) {
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let mut request = Request::new(EchoRequest {
        report_peer: true,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(5));
    let response = client.unary(request).await.unwrap();
    // The client sees the transport too.
    assert_eq!(response.extensions().get::<grpc_h3::Transport>(), Some(&t));
    let text = String::from_utf8(response.into_inner().payload).unwrap();
    assert_eq!(
        text,
        format!("addr=127.0.0.1 certs=0 deadline=true transport={t} method=Unary")
    );
    server.shutdown().await;
}
}

on_every_transport! {
async fn server_answering_before_the_request_ends_is_not_a_client_error(t: Transport) {
    // The first message makes the server fail the call at once, while the
    // client still has an endless stream to send: the server stops reading
    // (STOP_SENDING with H3_NO_ERROR) and the client must report the
    // server's status, not a send failure or a cancellation.
    let server = start_on(t, |b| b).await;
    let client = EchoClient::new(server.channel());
    let first = EchoRequest {
        status_code: Code::FailedPrecondition as i32,
        status_message: "stop right there".into(),
        ..Default::default()
    };
    let endless =
        tokio_stream::iter(std::iter::once(first.clone()).chain(std::iter::repeat(payload(1000))));
    let status = client
        .client_stream(Request::new(endless))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::FailedPrecondition, "stop right there")
    );

    let endless =
        tokio_stream::iter(std::iter::once(first).chain(std::iter::repeat(payload(1000))));
    let mut echoes = client
        .bidi(Request::new(endless))
        .await
        .unwrap()
        .into_inner();
    let status = echoes.message().await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    client.unary(Request::new(payload(1))).await.unwrap();
    server.wait_no_live_calls().await;
    server.shutdown().await;
}
}
