//! Interop with tonic, a gRPC stack we did not write, both ways:
//!
//! - a tonic-generated, tonic-implemented `TestService` served by grpc-h3's
//!   server, over HTTP/3, HTTP/2 and h2c (grpc-h3's interop cases call it);
//! - the same tonic service on tonic's own HTTP/2 server, called by
//!   grpc-h3's client;
//! - tonic's generated client calling grpc-h3's server, over tonic's
//!   HTTP/2 channel and over grpc-h3's HTTP/3 channel.

mod support;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use grpc_h3::server::{Listen, Server};
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::Transport;
use grpc_h3_tests::cases::{Runner, FOREIGN_SERVER_CASES};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

#[allow(clippy::all, dead_code, missing_docs, unreachable_pub)]
mod tonic_pb {
    include!(concat!(env!("OUT_DIR"), "/tonic/grpc.testing.rs"));
}

use tonic_pb::test_service_client::TestServiceClient as TonicClient;
use tonic_pb::test_service_server::{TestService, TestServiceServer};
use tonic_pb::{
    Empty, Payload, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING_BIN: &str = "x-grpc-test-echo-trailing-bin";

fn zeros(size: i32) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; usize::try_from(size).unwrap_or(0)],
    })
}

fn echo_status(status: Option<&tonic_pb::EchoStatus>) -> Result<(), Status> {
    match status {
        Some(s) if s.code != 0 => Err(Status::new(s.code.into(), s.message.clone())),
        _ => Ok(()),
    }
}

/// `TestService` written with tonic, as a tonic user would.
#[derive(Default)]
struct TonicTestService;

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn echo_initial<T>(request: &tonic::metadata::MetadataMap, response: &mut Response<T>) {
    if let Some(value) = request.get(ECHO_INITIAL) {
        response.metadata_mut().insert(ECHO_INITIAL, value.clone());
    }
}

async fn respond_to(
    request: StreamingOutputCallRequest,
) -> Result<Vec<StreamingOutputCallResponse>, Status> {
    echo_status(request.response_status.as_ref())?;
    let mut out = Vec::new();
    for params in request.response_parameters {
        if params.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(params.interval_us as u64)).await;
        }
        out.push(StreamingOutputCallResponse {
            payload: zeros(params.size),
        });
    }
    Ok(out)
}

#[tonic::async_trait]
impl TestService for TonicTestService {
    async fn empty_call(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let metadata = request.metadata().clone();
        let message = request.into_inner();
        echo_status(message.response_status.as_ref())?;
        let mut response = Response::new(SimpleResponse {
            payload: zeros(message.response_size),
            ..Default::default()
        });
        echo_initial(&metadata, &mut response);
        Ok(response)
    }

    type StreamingOutputCallStream = Stream<StreamingOutputCallResponse>;

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Self::StreamingOutputCallStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let message = request.into_inner();
        tokio::spawn(async move {
            let status = message.response_status.clone();
            for params in message.response_parameters {
                if params.interval_us > 0 {
                    tokio::time::sleep(Duration::from_micros(params.interval_us as u64)).await;
                }
                let reply = StreamingOutputCallResponse {
                    payload: zeros(params.size),
                };
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
            }
            if let Err(status) = echo_status(status.as_ref()) {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn streaming_input_call(
        &self,
        request: Request<tonic::Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut stream = request.into_inner();
        let mut total = 0;
        while let Some(message) = stream.message().await? {
            total += message.payload.map_or(0, |p| p.body.len());
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: total as i32,
        }))
    }

    type FullDuplexCallStream = Stream<StreamingOutputCallResponse>;

    async fn full_duplex_call(
        &self,
        request: Request<tonic::Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::FullDuplexCallStream>, Status> {
        let metadata = request.metadata().clone();
        let mut requests = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(next) = requests.next().await {
                let replies = match next {
                    Ok(request) => respond_to(request).await,
                    Err(status) => Err(status),
                };
                match replies {
                    Ok(replies) => {
                        for reply in replies {
                            if tx.send(Ok(reply)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        let mut response: Response<Self::FullDuplexCallStream> =
            Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)));
        echo_initial(&metadata, &mut response);
        Ok(response)
    }

    type HalfDuplexCallStream = Stream<StreamingOutputCallResponse>;

    async fn half_duplex_call(
        &self,
        request: Request<tonic::Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::HalfDuplexCallStream>, Status> {
        let mut requests = request.into_inner();
        let mut replies = Vec::new();
        while let Some(request) = requests.message().await? {
            replies.extend(respond_to(request).await?);
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(
            replies.into_iter().map(Ok),
        ))))
    }

    async fn unimplemented_method(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("not implemented, on purpose"))
    }
}

/// Echoes `x-grpc-test-echo-trailing-bin` into the trailers, as the interop
/// spec asks; tonic handlers have no way to add trailers themselves, so
/// (like tonic's own interop server) a tower layer does it.
#[derive(Clone)]
struct EchoTrailers<S>(S);

impl<S, B, ResBody> tower::Service<http::Request<B>> for EchoTrailers<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body + Send + 'static,
{
    type Response = http::Response<WithTrailer<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let echo = request.headers().get(ECHO_TRAILING_BIN).cloned();
        let call = self.0.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|inner| WithTrailer { inner, echo }))
        })
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for EchoTrailers<S> {
    const NAME: &'static str = S::NAME;
}

struct WithTrailer<B> {
    inner: B,
    echo: Option<http::HeaderValue>,
}

impl<B: http_body::Body + Unpin> http_body::Body for WithTrailer<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match (polled, self.echo.clone()) {
            (Poll::Ready(Some(Ok(frame))), Some(echo)) if frame.is_trailers() => {
                let mut trailers = frame.into_trailers().unwrap_or_default();
                trailers.insert(ECHO_TRAILING_BIN, echo);
                Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
            }
            (polled, _) => polled,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

async fn run_cases(runner: &Runner, cases: &[&str], what: &str) {
    let failures = runner.failures(cases).await;
    assert!(
        failures.is_empty(),
        "{what}: failed cases:\n{}",
        failures.join("\n")
    );
}

fn tonic_service() -> EchoTrailers<TestServiceServer<TonicTestService>> {
    EchoTrailers(TestServiceServer::new(TonicTestService))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_service_is_served_over_http3_http2_and_h2c() {
    use tonic::server::NamedService as _;
    let name = TestServiceServer::<TonicTestService>::NAME;
    let cert = DevCertificate::localhost().unwrap();
    for transport in [Transport::Http3, Transport::Http2, Transport::H2c] {
        let mut builder = Server::builder()
            .tls_identity(cert.cert_pem(), cert.key_pem())
            .add_routed_service(name, tonic_service());
        if transport == Transport::H2c {
            builder = builder.listen(Listen::H2c);
        }
        let server = builder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = server.local_addr().unwrap().port();
        let handle = server.handle();
        let stop = grpc_h3::CancellationToken::new();
        let serving = tokio::spawn(server.serve_with_shutdown(stop.clone().cancelled_owned()));
        let channel = match transport {
            Transport::H2c => grpc_h3::Channel::builder(format!("http://127.0.0.1:{port}")),
            transport => grpc_h3::Channel::builder(format!("https://127.0.0.1:{port}"))
                .tls_config(ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
                .transport(transport),
        }
        .build()
        .unwrap();
        run_cases(
            &Runner::new(channel),
            FOREIGN_SERVER_CASES,
            &format!("tonic service over {transport}"),
        )
        .await;
        for _ in 0..200 {
            if handle.live_calls() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(handle.live_calls(), 0, "{transport}");
        stop.cancel();
        serving.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_h3_client_calls_tonics_own_http2_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(tonic_service())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stop_rx.await;
                },
            ),
    );
    let channel = grpc_h3::Channel::builder(format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    run_cases(
        &Runner::new(channel),
        FOREIGN_SERVER_CASES,
        "tonic's server",
    )
    .await;
    let _ = stop_tx.send(());
    serving.await.unwrap().unwrap();
}

/// What a tonic client checks against grpc-h3's interop server.
async fn tonic_client_cases<T>(mut client: TonicClient<T>, what: &str)
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    client.empty_call(Empty {}).await.expect(what);

    let mut request = Request::new(SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert(ECHO_INITIAL, "test_initial_metadata_value".parse().unwrap());
    request.metadata_mut().insert_bin(
        ECHO_TRAILING_BIN,
        tonic::metadata::MetadataValue::from_bytes(&[0xab, 0xab, 0xab]),
    );
    let response = client.unary_call(request).await.expect(what);
    assert_eq!(
        response.metadata().get(ECHO_INITIAL).unwrap(),
        "test_initial_metadata_value",
        "{what}"
    );
    assert_eq!(
        response.get_ref().payload.as_ref().unwrap().body.len(),
        314_159,
        "{what}"
    );

    let sizes = [31_415, 9, 2_653, 58_979];
    let request = StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| tonic_pb::ResponseParameters {
                size,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut replies = client
        .streaming_output_call(request)
        .await
        .expect(what)
        .into_inner();
    let mut got = Vec::new();
    while let Some(reply) = replies.message().await.expect(what) {
        got.push(reply.payload.unwrap().body.len() as i32);
    }
    assert_eq!(got, sizes, "{what}");

    let requests = [27_182, 8, 1_828, 45_904].map(|size| StreamingInputCallRequest {
        payload: zeros(size),
        ..Default::default()
    });
    let total = client
        .streaming_input_call(tokio_stream::iter(requests))
        .await
        .expect(what)
        .into_inner()
        .aggregated_payload_size;
    assert_eq!(total, 74_922, "{what}");

    // Ping-pong: each request answered before the next is sent.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .full_duplex_call(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect(what)
        .into_inner();
    for size in [31_415, 9, 2_653] {
        tx.send(StreamingOutputCallRequest {
            response_parameters: vec![tonic_pb::ResponseParameters {
                size,
                ..Default::default()
            }],
            payload: zeros(size),
            ..Default::default()
        })
        .await
        .unwrap();
        let reply = replies.message().await.expect(what).expect(what);
        assert_eq!(reply.payload.unwrap().body.len() as i32, size, "{what}");
    }
    drop(tx);
    assert!(replies.message().await.expect(what).is_none(), "{what}");

    // Status and message, Unicode included.
    let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
    let status = client
        .unary_call(SimpleRequest {
            response_status: Some(tonic_pb::EchoStatus {
                code: 2,
                message: message.into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown, "{what}");
    assert_eq!(status.message(), message, "{what}");

    // A deadline the server cannot meet.
    let mut request = Request::new(StreamingOutputCallRequest {
        response_parameters: vec![tonic_pb::ResponseParameters {
            size: 1,
            interval_us: 5_000_000,
            ..Default::default()
        }],
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(100));
    let outcome = async {
        let mut replies = client.streaming_output_call(request).await?.into_inner();
        replies.message().await
    }
    .await;
    let status = outcome.unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{what}: {status:?}"
    );

    let status = client.unimplemented_method(Empty {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_clients_call_the_grpc_h3_server_over_http2_and_http3() {
    // tonic's own HTTP/2 channel, to grpc-h3's h2c listener.
    let h2c = support::start_server(|b| b.listen(Listen::H2c));
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", h2c.addr.port()))
            .unwrap();
    let channel = endpoint.connect().await.unwrap();
    tonic_client_cases(TonicClient::new(channel), "tonic channel over h2c").await;
    h2c.assert_no_live_calls().await;
    h2c.stop().await;

    // tonic's generated client over grpc-h3's channel: HTTP/3, and HTTP/2
    // with TLS, to the same server.
    let server = support::start_server(|b| b);
    for transport in [Transport::Http3, Transport::Http2] {
        let channel =
            grpc_h3::Channel::builder(format!("https://127.0.0.1:{}", server.addr.port()))
                .tls_config(ClientTlsConfig::new().ca_certificate(server.cert.cert_pem()))
                .transport(transport)
                .build()
                .unwrap();
        tonic_client_cases(
            TonicClient::new(channel),
            &format!("grpc-h3 channel over {transport}"),
        )
        .await;
    }
    server.assert_no_live_calls().await;
    server.stop().await;
}
