//! The gRPC layer on `http` + `tower`: interceptors on both sides, tower
//! layers (tower-http's TraceLayer, concurrency limits, request mapping)
//! around servers and channels, the extensions they see, and a client
//! calling a server in memory with no transport at all.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pb::{EchoRequest, EchoResponse};
use common::{payload, start_on, EchoService};
use grpc_h3::client::Grpc;
use grpc_h3::codec::ProstCodec;
use grpc_h3::{
    Code, GrpcMethod, InterceptedService, PeerInfo, Request, Status, Streaming, Transport,
};
use http::uri::PathAndQuery;

const UNARY: &str = "/test.Echo/Unary";

fn unary_path() -> PathAndQuery {
    PathAndQuery::from_static(UNARY)
}

/// Calls Unary through any service a client can use.
async fn unary<T>(grpc: &Grpc<T>, request: Request<EchoRequest>) -> Result<EchoResponse, Status>
where
    T: grpc_h3::client::GrpcService<grpc_h3::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::ResponseBody: Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<grpc_h3::BoxError>,
{
    grpc.unary(request, unary_path(), ProstCodec::default())
        .await
        .map(grpc_h3::Response::into_inner)
}

/// Who the server's interceptor let in, as an extension for the handler.
#[derive(Clone, Debug)]
struct Caller(String);

fn check_token(mut request: Request<()>) -> Result<Request<()>, Status> {
    let caller = match request.metadata().get("authorization") {
        Some("Bearer alice") => "alice",
        Some(_) => return Err(Status::permission_denied("unknown token")),
        None => return Err(Status::unauthenticated("no bearer token")),
    };
    request.extensions_mut().insert(Caller(caller.to_owned()));
    request.metadata_mut().insert("x-caller", caller).unwrap();
    Ok(request)
}

fn add_token(mut request: Request<()>) -> Result<Request<()>, Status> {
    request
        .metadata_mut()
        .insert("authorization", "Bearer alice")
        .unwrap();
    Ok(request)
}

on_every_transport! {
async fn interceptors_guard_servers_and_decorate_clients(t: Transport) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    // Replaces the server's own test.Echo (same name).
    let echo = EchoService::default();
    let stats = echo.stats.clone();
    let guarded = InterceptedService::new(echo, move |request: Request<()>| {
        let request = check_token(request)?;
        record.lock().unwrap().push(request.extensions().get::<Caller>().cloned());
        Ok(request)
    });
    let server = start_on(t, |b| b.add_service(guarded)).await;

    // No token, a wrong one: refused with the interceptor's status.
    let bare = Grpc::new(server.channel());
    let status = unary(&bare, Request::new(payload(1))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut wrong = Request::new(payload(1));
    wrong.metadata_mut().insert("authorization", "Bearer mallory").unwrap();
    assert_eq!(unary(&bare, wrong).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(stats.running.load(Ordering::SeqCst) + stats.completed.load(Ordering::SeqCst), 0, "refused calls never reach the handler");

    // A client interceptor adds the token to every call.
    let authed = Grpc::new(InterceptedService::new(server.channel(), add_token));
    let reply = unary(&authed, Request::new(payload(3))).await.unwrap();
    assert_eq!(reply.payload.len(), 3);
    assert_eq!(stats.completed.load(Ordering::SeqCst), 1);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].as_ref().map(|c| c.0.as_str()), Some("alice"));
    server.shutdown().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_interceptors_can_wait_and_refuse() {
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = lookups.clone();
    let guarded = grpc_h3::AsyncInterceptedService::new(
        EchoService::default(),
        move |request: Request<()>| {
            let counted = counted.clone();
            async move {
                // A token service that takes a moment to answer.
                tokio::time::sleep(Duration::from_millis(5)).await;
                counted.fetch_add(1, Ordering::SeqCst);
                check_token(request)
            }
        },
    );
    let server = start_on(Transport::Http3, |b| b.add_service(guarded)).await;
    let bare = Grpc::new(server.channel());
    assert_eq!(
        unary(&bare, Request::new(payload(1)))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let authed = Grpc::new(InterceptedService::new(server.channel(), add_token));
    unary(&authed, Request::new(payload(1))).await.unwrap();
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

on_every_transport! {
async fn server_layers_see_the_call_extensions_and_tower_http_traces_statuses(t: Transport) {
    // A layer recording what every call carries in its extensions.
    let seen: Arc<Mutex<Vec<(String, Transport, bool)>>> = Arc::default();
    let record = seen.clone();
    let recorder = tower::util::MapRequestLayer::new(move |request: http::Request<grpc_h3::Body>| {
        let method = request.extensions().get::<GrpcMethod>().map(|m| m.path().to_owned());
        let transport = *request.extensions().get::<Transport>().unwrap();
        let peer = request.extensions().get::<PeerInfo>().is_some();
        record.lock().unwrap().push((method.unwrap_or_default(), transport, peer));
        request
    });
    // tower-http's gRPC tracing classifies calls by the grpc-status it
    // finds in the trailers (or a Trailers-Only head).
    let failures = Arc::new(AtomicUsize::new(0));
    let ends = Arc::new(AtomicUsize::new(0));
    let (failed, ended) = (failures.clone(), ends.clone());
    let trace = tower_http::trace::TraceLayer::new_for_grpc()
        .on_failure(move |_: tower_http::classify::GrpcFailureClass, _: Duration, _: &tracing::Span| {
            failed.fetch_add(1, Ordering::SeqCst);
        })
        .on_eos(move |_: Option<&http::HeaderMap>, _: Duration, _: &tracing::Span| {
            ended.fetch_add(1, Ordering::SeqCst);
        });
    let server = start_on(t, |b| b.layer(trace).layer(recorder)).await;
    let grpc = Grpc::new(server.channel());
    unary(&grpc, Request::new(payload(1))).await.unwrap();
    let failing = EchoRequest {
        status_code: Code::NotFound as i32,
        status_message: "no such thing".into(),
        ..Default::default()
    };
    let status = unary(&grpc, Request::new(failing)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = grpc
        .unary::<ProstCodec<EchoRequest, EchoResponse>>(
            Request::new(payload(1)),
            PathAndQuery::from_static("/test.Echo/Nope"),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    server.wait_no_live_calls().await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (UNARY.to_owned(), t, true),
            (UNARY.to_owned(), t, true),
            ("/test.Echo/Nope".to_owned(), t, true),
        ]
    );
    // NOT_FOUND and UNIMPLEMENTED are failures; the OK call reached its
    // trailers (the end of stream).
    assert_eq!(failures.load(Ordering::SeqCst), 2);
    assert!(ends.load(Ordering::SeqCst) >= 1);
    server.shutdown().await;
}
}

on_every_transport! {
async fn client_layers_sit_between_the_client_and_the_channel(t: Transport) {
    let server = start_on(t, |b| b).await;
    // At most two calls in flight from this client, and a header added to
    // each request by a plain tower layer.
    let layered = tower::ServiceBuilder::new()
        .concurrency_limit(2)
        .map_request(|mut request: http::Request<grpc_h3::Body>| {
            request.headers_mut().insert("x-echo-initial", http::HeaderValue::from_static("layered"));
            request
        })
        .service(server.channel());
    let grpc = Grpc::new(layered);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let grpc = grpc.clone();
            tokio::spawn(async move {
                let request = Request::new(EchoRequest { sleep_ms: 50, ..payload(1) });
                grpc.unary(request, unary_path(), ProstCodec::<EchoRequest, EchoResponse>::default()).await
            })
        })
        .collect();
    let mut most = 0;
    while !calls.iter().all(|c| c.is_finished()) {
        most = most.max(server.stats.running.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.metadata().get("x-echo-initial"), Some("layered"));
    }
    assert!(most <= 2, "{most} calls ran at once behind a limit of 2");
    assert_eq!(server.stats.completed.load(Ordering::SeqCst), 8);
    server.shutdown().await;
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_calls_a_server_in_memory_with_no_transport() {
    // The server is a tower service and the client calls through any
    // tower service: joined directly, every call kind works in-process.
    let service = EchoService::default();
    let stats = service.stats.clone();
    let grpc = Grpc::new(service);
    assert_eq!(
        unary(&grpc, Request::new(payload(7)))
            .await
            .unwrap()
            .payload
            .len(),
        7
    );

    let mut replies: Streaming<EchoResponse> = grpc
        .server_streaming(
            Request::new(EchoRequest {
                response_count: 3,
                response_size: 2,
                ..Default::default()
            }),
            PathAndQuery::from_static("/test.Echo/ServerStream"),
            ProstCodec::<EchoRequest, EchoResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut count = 0;
    while replies.message().await.unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, 3);

    let summary = grpc
        .client_streaming(
            Request::new(tokio_stream::iter(vec![payload(1), payload(2)])),
            PathAndQuery::from_static("/test.Echo/ClientStream"),
            ProstCodec::<EchoRequest, EchoResponse>::default(),
        )
        .await
        .unwrap();
    assert_eq!((summary.get_ref().index, summary.get_ref().total), (2, 3));

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(payload(4)).await.unwrap();
    let mut echoes = grpc
        .streaming(
            Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            PathAndQuery::from_static("/test.Echo/Bidi"),
            ProstCodec::<EchoRequest, EchoResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(echoes.message().await.unwrap().unwrap().payload.len(), 4);
    drop(tx);
    assert!(echoes.message().await.unwrap().is_none());

    // Deadlines hold in memory too: the handler is dropped.
    let mut slow = Request::new(EchoRequest {
        sleep_ms: 30_000,
        ..Default::default()
    });
    slow.set_timeout(Duration::from_millis(100));
    assert_eq!(
        unary(&grpc, slow).await.unwrap_err().code(),
        Code::DeadlineExceeded
    );
    stats
        .wait_for("the handler to be dropped", |s| {
            s.dropped.load(Ordering::SeqCst) == 1
        })
        .await;
}
