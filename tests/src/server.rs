//! `grpc.testing.TestService` as interop-test-descriptions.md specifies it.
//!
//! Written against the runtime's service API rather than the generated
//! trait: CompressedResponse needs a per-message compression switch, which
//! the codec provides ([`FlaggedCodec`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use grpc_h3::codegen::{self, BoxFuture, NamedService, ProstCodec, ServiceSettings};
use grpc_h3::{Body, Code, Metadata, Request, Response, Status, Streaming};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::pb::{
    EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};
use crate::FlaggedCodec;

/// Echoed into the response headers.
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
/// Echoed into the trailers.
pub const ECHO_TRAILING_BIN: &str = "x-grpc-test-echo-trailing-bin";

/// Counts handler runs, so tests can see that a call reached its handler
/// and how it left it.
#[derive(Debug, Default)]
pub struct HandlerProbe {
    /// Handlers that started running.
    pub started: AtomicUsize,
    /// Handlers that returned a reply.
    pub finished: AtomicUsize,
    /// Of those, replies that are errors without a message (Trailers-Only).
    pub failed: AtomicUsize,
    /// Handlers dropped before they returned (the call was cancelled).
    pub dropped: AtomicUsize,
}

type Reply = Result<http::Response<Body>, Infallible>;

/// A handler future that reports to a [`HandlerProbe`].
pub struct Probed {
    call: BoxFuture<Reply>,
    probe: Arc<HandlerProbe>,
    started: bool,
    finished: bool,
}

impl Future for Probed {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        if !self.started {
            self.started = true;
            self.probe.started.fetch_add(1, Ordering::SeqCst);
        }
        let reply = ready!(self.call.as_mut().poll(cx));
        self.finished = true;
        if matches!(&reply, Ok(response) if response.headers().contains_key("grpc-status")) {
            self.probe.failed.fetch_add(1, Ordering::SeqCst);
        }
        self.probe.finished.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(reply)
    }
}

impl Drop for Probed {
    fn drop(&mut self) {
        if self.started && !self.finished {
            self.probe.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The interop `TestService`.
#[derive(Clone, Debug, Default)]
pub struct TestService {
    /// What its handlers did.
    pub probe: Arc<HandlerProbe>,
}

impl NamedService for TestService {
    const NAME: &'static str = "grpc.testing.TestService";
}

impl tower_service::Service<http::Request<Body>> for TestService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Probed;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Probed {
        Probed {
            call: route(request),
            probe: self.probe.clone(),
            started: false,
            finished: false,
        }
    }
}

fn route(request: http::Request<Body>) -> BoxFuture<Reply> {
    let settings = ServiceSettings::default();
    let method = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned();
    Box::pin(async move {
        match method.as_str() {
            "EmptyCall" => {
                codegen::unary(
                    request,
                    &settings,
                    ProstCodec::<Empty, Empty>::default(),
                    |_| async { Ok(Response::new(Empty {})) },
                )
                .await
            }
            "UnaryCall" => {
                // Read as a stream of one to see the request's compressed flag.
                let codec = FlaggedCodec::<SimpleResponse, SimpleRequest>::default();
                let flags = codec.clone();
                codegen::client_streaming(request, &settings, codec, move |request| {
                    unary_call(request, flags)
                })
                .await
            }
            "StreamingInputCall" => {
                codegen::client_streaming(
                    request,
                    &settings,
                    ProstCodec::<StreamingInputCallResponse, StreamingInputCallRequest>::default(),
                    streaming_input_call,
                )
                .await
            }
            "StreamingOutputCall" | "FullDuplexCall" | "HalfDuplexCall" => {
                let codec = FlaggedCodec::<StreamingOutputCallResponse, StreamingOutputCallRequest>::default();
                let flags = codec.clone();
                let half = method == "HalfDuplexCall";
                codegen::streaming(request, &settings, codec, move |request| {
                    duplex(request, flags, half)
                })
                .await
            }
            // UnimplementedCall and anything else: UNIMPLEMENTED.
            _ => Ok(codegen::unimplemented(&request)),
        }
    })
}

fn zeros(size: i32) -> Result<Payload, Status> {
    let size = usize::try_from(size)
        .map_err(|_| Status::invalid_argument(format!("negative size {size}")))?;
    Ok(Payload {
        r#type: 0,
        body: vec![0; size],
    })
}

/// Copies the echo headers of `request` into `response`.
fn echo_metadata<T>(request: &Metadata, response: &mut Response<T>) -> Result<(), Status> {
    let bad = |e: grpc_h3::MetadataError| Status::internal(e.to_string());
    if let Some(value) = request.get(ECHO_INITIAL) {
        response
            .metadata_mut()
            .insert(ECHO_INITIAL, value)
            .map_err(bad)?;
    }
    if let Some(value) = request.get_bin(ECHO_TRAILING_BIN) {
        let value = value.map_err(bad)?;
        response
            .trailers_mut()
            .insert_bin(ECHO_TRAILING_BIN, value)
            .map_err(bad)?;
    }
    Ok(())
}

fn echo_status(status: &Option<EchoStatus>, request: &Metadata) -> Option<Status> {
    let echo = status.as_ref().filter(|s| s.code != 0)?;
    let mut status = Status::new(Code::from_i32(echo.code), echo.message.clone());
    if let Some(Ok(value)) = request.get_bin(ECHO_TRAILING_BIN) {
        let _ = status.metadata_mut().insert_bin(ECHO_TRAILING_BIN, value);
    }
    Some(status)
}

fn check_compressed(expected: Option<bool>, actual: bool) -> Result<(), Status> {
    match expected {
        Some(true) if !actual => Err(Status::invalid_argument(
            "expected a compressed request message",
        )),
        Some(false) if actual => Err(Status::invalid_argument(
            "expected an uncompressed request message",
        )),
        _ => Ok(()),
    }
}

async fn unary_call(
    request: Request<Streaming<SimpleRequest>>,
    flags: FlaggedCodec<SimpleResponse, SimpleRequest>,
) -> Result<Response<SimpleResponse>, Status> {
    let (metadata, mut stream) = request.into_parts();
    let message = stream
        .message()
        .await?
        .ok_or_else(|| Status::internal("unary call without a request message"))?;
    let compressed = stream.last_message_compressed();
    if stream.message().await?.is_some() {
        return Err(Status::internal(
            "unary call with more than one request message",
        ));
    }
    check_compressed(message.expect_compressed.map(|b| b.value), compressed)?;
    if let Some(status) = echo_status(&message.response_status, &metadata) {
        return Err(status);
    }
    flags.push(message.response_compressed.is_some_and(|b| b.value));
    let mut response = Response::new(SimpleResponse {
        payload: Some(zeros(message.response_size)?),
        ..Default::default()
    });
    echo_metadata(&metadata, &mut response)?;
    Ok(response)
}

async fn streaming_input_call(
    request: Request<Streaming<StreamingInputCallRequest>>,
) -> Result<Response<StreamingInputCallResponse>, Status> {
    let mut stream = request.into_inner();
    let mut total = 0usize;
    while let Some(message) = stream.message().await? {
        check_compressed(
            message.expect_compressed.map(|b| b.value),
            stream.last_message_compressed(),
        )?;
        total += message.payload.map_or(0, |p| p.body.len());
    }
    Ok(Response::new(StreamingInputCallResponse {
        aggregated_payload_size: i32::try_from(total).unwrap_or(i32::MAX),
    }))
}

type OutputStream = ReceiverStream<Result<StreamingOutputCallResponse, Status>>;

/// Sends one response per `ResponseParameters`, sleeping `interval_us`
/// before each; `Err` when the call is gone.
async fn respond(
    params: &[ResponseParameters],
    flags: &FlaggedCodec<StreamingOutputCallResponse, StreamingOutputCallRequest>,
    tx: &mpsc::Sender<Result<StreamingOutputCallResponse, Status>>,
) -> Result<(), ()> {
    for param in params {
        if param.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(param.interval_us as u64)).await;
        }
        let item = zeros(param.size).map(|payload| StreamingOutputCallResponse {
            payload: Some(payload),
        });
        // The flag is queued before the message, so the encoder pairs them.
        flags.push(param.compressed.is_some_and(|b| b.value));
        tx.send(item).await.map_err(|_| ())?;
    }
    Ok(())
}

/// StreamingOutputCall, FullDuplexCall and (with `half`) HalfDuplexCall.
async fn duplex(
    request: Request<Streaming<StreamingOutputCallRequest>>,
    flags: FlaggedCodec<StreamingOutputCallResponse, StreamingOutputCallRequest>,
    half: bool,
) -> Result<Response<OutputStream>, Status> {
    let (metadata, mut incoming) = request.into_parts();
    let (tx, rx) = mpsc::channel(8);
    let mut response = Response::new(ReceiverStream::new(rx));
    echo_metadata(&metadata, &mut response)?;
    tokio::spawn(async move {
        let mut buffered = Vec::new();
        loop {
            let message = match incoming.message().await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            if let Some(status) = echo_status(&message.response_status, &metadata) {
                let _ = tx.send(Err(status)).await;
                return;
            }
            if half {
                buffered.push(message);
            } else if respond(&message.response_parameters, &flags, &tx)
                .await
                .is_err()
            {
                return;
            }
        }
        for message in buffered {
            if respond(&message.response_parameters, &flags, &tx)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(response)
}

/// A server builder with the interop `TestService`, compressing responses
/// when a request asks for it, and the runtime's default limits (4 MiB per
/// message). Add a TLS identity and bind it.
pub fn builder() -> grpc_h3::server::ServerBuilder {
    builder_with(TestService::default())
}

/// [`builder`] with this `service` (to keep its probe).
pub fn builder_with(service: TestService) -> grpc_h3::server::ServerBuilder {
    grpc_h3::server::Server::builder()
        .add_service(service)
        .send_compressed(grpc_h3::CompressionEncoding::Gzip)
}
