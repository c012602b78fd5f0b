//! The interop client's test cases. Each returns `Err(reason)` when an
//! assertion fails.

use std::time::{Duration, Instant};

use grpc_h3::client::Grpc;
use grpc_h3::codegen::ProstCodec;
use grpc_h3::{
    CallOptions, CancellationToken, Channel, Code, CompressionEncoding, Request, Status,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::pb::test_service_client::TestServiceClient;
use crate::pb::unimplemented_service_client::UnimplementedServiceClient;
use crate::pb::{
    BoolValue, EchoStatus, Empty, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingOutputCallRequest,
};
use crate::server::{ECHO_INITIAL, ECHO_TRAILING_BIN};
use crate::FlaggedCodec;

/// grpc's cases, then ours, in the order `all` runs them.
pub const ALL: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
    "concurrent_unary",
    "rpc_soak",
];

/// The cases a server written with another gRPC library can pass: all of
/// grpc's but those that check, message by message, whether the request
/// was compressed (tonic's and grpcio's handler APIs do not say).
pub const FOREIGN_SERVER_CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
    "concurrent_unary",
];

type CaseResult = Result<String, String>;

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(what())
    }
}

fn zeros(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; size],
    })
}

fn failed(status: Status) -> String {
    format!("call failed: {status}")
}

fn expect_code(
    result: Result<impl Sized, Status>,
    code: Code,
    message: Option<&str>,
) -> Result<(), String> {
    match result {
        Ok(_) => Err(format!("expected {code:?}, the call succeeded")),
        Err(status) if status.code() == code && message.is_none_or(|m| m == status.message()) => {
            Ok(())
        }
        Err(status) => Err(format!("expected {code:?} {message:?}, got {status}")),
    }
}

fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..Default::default()
    }
}

fn params(sizes: &[i32]) -> Vec<ResponseParameters> {
    sizes
        .iter()
        .map(|&size| ResponseParameters {
            size,
            ..Default::default()
        })
        .collect()
}

/// The longest any one case may take.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the interop cases against one server.
#[derive(Clone, Debug)]
pub struct Runner {
    channel: Channel,
    client: TestServiceClient,
}

impl Runner {
    /// A runner calling over `channel`.
    pub fn new(channel: Channel) -> Runner {
        Runner {
            client: TestServiceClient::new(channel.clone()),
            channel,
        }
    }

    /// Runs one case by name; `Ok` carries a short detail line. A case that
    /// takes longer than [`CASE_TIMEOUT`] fails (a hang is a failure, not
    /// a wait).
    pub async fn run(&self, case: &str) -> CaseResult {
        tokio::time::timeout(CASE_TIMEOUT, self.run_case(case))
            .await
            .unwrap_or_else(|_| Err(format!("did not finish within {CASE_TIMEOUT:?}")))
    }

    /// Runs `cases` one after another; returns `"case: reason"` for each
    /// that failed (empty when all passed).
    pub async fn failures(&self, cases: &[&str]) -> Vec<String> {
        let mut failures = Vec::new();
        for case in cases {
            if let Err(reason) = self.run(case).await {
                failures.push(format!("{case}: {reason}"));
            }
        }
        failures
    }

    async fn run_case(&self, case: &str) -> CaseResult {
        match case {
            "empty_unary" => self.empty_unary().await,
            "large_unary" => self.large_unary().await,
            "client_compressed_unary" => self.client_compressed_unary().await,
            "server_compressed_unary" => self.server_compressed_unary().await,
            "client_streaming" => self.client_streaming().await,
            "client_compressed_streaming" => self.client_compressed_streaming().await,
            "server_streaming" => self.server_streaming(false).await,
            "server_compressed_streaming" => self.server_streaming(true).await,
            "ping_pong" => self.ping_pong().await,
            "empty_stream" => self.empty_stream().await,
            "custom_metadata" => self.custom_metadata().await,
            "status_code_and_message" => self.status_code_and_message("test status message").await,
            "special_status_message" => {
                self.status_code_and_message(
                    "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n",
                )
                .await
            }
            "unimplemented_method" => self.unimplemented_method().await,
            "unimplemented_service" => self.unimplemented_service().await,
            "cancel_after_begin" => self.cancel_after_begin().await,
            "cancel_after_first_response" => self.cancel_after_first_response().await,
            "timeout_on_sleeping_server" => self.timeout_on_sleeping_server().await,
            "concurrent_unary" => self.concurrent_unary().await,
            "rpc_soak" => self.rpc_soak().await,
            other => Err(format!(
                "unknown test case {other:?}; known: {}",
                ALL.join(", ")
            )),
        }
    }

    async fn empty_unary(&self) -> CaseResult {
        let reply = self.client.empty_call(Empty {}).await.map_err(failed)?;
        check(reply.get_ref() == &Empty {}, || "reply is not empty".into())?;
        Ok(String::new())
    }

    async fn large_unary(&self) -> CaseResult {
        let reply = self
            .client
            .unary_call(large_request())
            .await
            .map_err(failed)?;
        let body = &reply.get_ref().payload.as_ref().ok_or("no payload")?.body;
        check(
            body.len() == 314_159 && body.iter().all(|b| *b == 0),
            || format!("payload of {} bytes, expected 314159 zeros", body.len()),
        )?;
        Ok(String::new())
    }

    async fn client_compressed_unary(&self) -> CaseResult {
        let expect = |value| SimpleRequest {
            expect_compressed: Some(BoolValue { value }),
            ..large_request()
        };
        // The probe: claims compression but is sent uncompressed.
        expect_code(
            self.client.unary_call(expect(true)).await,
            Code::InvalidArgument,
            None,
        )
        .map_err(|e| format!("probe: {e}"))?;
        let mut compressed = Request::new(expect(true));
        compressed.set_compression(Some(CompressionEncoding::Gzip));
        let reply = self.client.unary_call(compressed).await.map_err(failed)?;
        check(
            reply
                .get_ref()
                .payload
                .as_ref()
                .is_some_and(|p| p.body.len() == 314_159),
            || "bad payload size".into(),
        )?;
        let mut plain = Request::new(expect(false));
        plain.set_compression(None);
        self.client.unary_call(plain).await.map_err(failed)?;
        Ok(String::new())
    }

    async fn server_compressed_unary(&self) -> CaseResult {
        for compressed in [true, false] {
            let request = SimpleRequest {
                response_compressed: Some(BoolValue { value: compressed }),
                ..large_request()
            };
            // A unary call read as a stream of one shows the message flag.
            let mut replies = Grpc::with_options(self.channel.clone(), CallOptions::default())
                .server_streaming(
                    Request::new(request),
                    http::uri::PathAndQuery::from_static("/grpc.testing.TestService/UnaryCall"),
                    ProstCodec::<SimpleRequest, SimpleResponse>::default(),
                )
                .await
                .map_err(failed)?
                .into_inner();
            let reply = replies
                .message()
                .await
                .map_err(failed)?
                .ok_or("no response")?;
            check(replies.last_message_compressed() == compressed, || {
                format!(
                    "response_compressed={compressed} but the flag was {}",
                    !compressed
                )
            })?;
            check(
                reply.payload.is_some_and(|p| p.body.len() == 314_159),
                || "bad payload size".into(),
            )?;
            check(replies.message().await.map_err(failed)?.is_none(), || {
                "more than one response".into()
            })?;
        }
        Ok(String::new())
    }

    async fn client_streaming(&self) -> CaseResult {
        let requests: Vec<_> = [27_182, 8, 1_828, 45_904]
            .into_iter()
            .map(|size| StreamingInputCallRequest {
                payload: zeros(size),
                ..Default::default()
            })
            .collect();
        let reply = self
            .client
            .streaming_input_call(tokio_stream::iter(requests))
            .await
            .map_err(failed)?;
        let size = reply.get_ref().aggregated_payload_size;
        check(size == 74_922, || {
            format!("aggregated_payload_size {size}, expected 74922")
        })?;
        Ok(String::new())
    }

    async fn client_compressed_streaming(&self) -> CaseResult {
        let message = |value, size| StreamingInputCallRequest {
            expect_compressed: Some(BoolValue { value }),
            payload: zeros(size),
        };
        let probe = self
            .client
            .streaming_input_call(tokio_stream::iter(vec![message(true, 27_182)]))
            .await;
        expect_code(probe, Code::InvalidArgument, None).map_err(|e| format!("probe: {e}"))?;

        // First message compressed, second not: a per-message switch.
        let codec = FlaggedCodec::<StreamingInputCallRequest, crate::pb::StreamingInputCallResponse>::default();
        codec.push(true);
        codec.push(false);
        let options = CallOptions {
            send_compression: Some(CompressionEncoding::Gzip),
            ..CallOptions::default()
        };
        let requests = tokio_stream::iter(vec![message(true, 27_182), message(false, 45_904)]);
        let reply = Grpc::with_options(self.channel.clone(), options)
            .client_streaming(
                Request::new(requests),
                http::uri::PathAndQuery::from_static(
                    "/grpc.testing.TestService/StreamingInputCall",
                ),
                codec,
            )
            .await
            .map_err(failed)?;
        let size = reply.get_ref().aggregated_payload_size;
        check(size == 73_086, || {
            format!("aggregated_payload_size {size}, expected 73086")
        })?;
        Ok(String::new())
    }

    async fn server_streaming(&self, compressed: bool) -> CaseResult {
        let sizes: &[i32] = if compressed {
            &[31_415, 92_653]
        } else {
            &[31_415, 9, 2_653, 58_979]
        };
        let mut response_parameters = params(sizes);
        if compressed {
            response_parameters[0].compressed = Some(BoolValue { value: true });
            response_parameters[1].compressed = Some(BoolValue { value: false });
        }
        let request = StreamingOutputCallRequest {
            response_parameters,
            ..Default::default()
        };
        let mut replies = self
            .client
            .streaming_output_call(request)
            .await
            .map_err(failed)?
            .into_inner();
        let mut seen = Vec::new();
        while let Some(reply) = replies.message().await.map_err(failed)? {
            if compressed {
                let want = seen.is_empty();
                check(replies.last_message_compressed() == want, || {
                    format!(
                        "response {} should {}be compressed",
                        seen.len(),
                        if want { "" } else { "not " }
                    )
                })?;
            }
            seen.push(reply.payload.map_or(0, |p| p.body.len() as i32));
        }
        check(seen == sizes, || {
            format!("response sizes {seen:?}, expected {sizes:?}")
        })?;
        Ok(String::new())
    }

    async fn ping_pong(&self) -> CaseResult {
        let exchanges = [(31_415, 27_182), (9, 8), (2_653, 1_828), (58_979, 45_904)];
        let request = |(response, request): (i32, usize)| StreamingOutputCallRequest {
            response_parameters: params(&[response]),
            payload: zeros(request),
            ..Default::default()
        };
        // The first request goes out before the call is awaited: a server
        // may send its response headers only with its first response.
        let (tx, rx) = mpsc::channel(1);
        tx.send(request(exchanges[0]))
            .await
            .map_err(|_| "the call ended early")?;
        let mut replies = self
            .client
            .full_duplex_call(ReceiverStream::new(rx))
            .await
            .map_err(failed)?
            .into_inner();
        for (i, exchange) in exchanges.into_iter().enumerate() {
            if i > 0 {
                tx.send(request(exchange))
                    .await
                    .map_err(|_| "the call ended early")?;
            }
            let reply = replies
                .message()
                .await
                .map_err(failed)?
                .ok_or("stream ended early")?;
            let size = reply.payload.map_or(0, |p| p.body.len());
            check(size == exchange.0 as usize, || {
                format!("response of {size} bytes, expected {}", exchange.0)
            })?;
        }
        drop(tx);
        check(replies.message().await.map_err(failed)?.is_none(), || {
            "extra response".into()
        })?;
        Ok(String::new())
    }

    async fn empty_stream(&self) -> CaseResult {
        let mut replies = self
            .client
            .full_duplex_call(tokio_stream::iter(Vec::<StreamingOutputCallRequest>::new()))
            .await
            .map_err(failed)?
            .into_inner();
        check(replies.message().await.map_err(failed)?.is_none(), || {
            "expected no responses".into()
        })?;
        Ok(String::new())
    }

    async fn custom_metadata(&self) -> CaseResult {
        const INITIAL: &str = "test_initial_metadata_value";
        const TRAILING: [u8; 3] = [0xab, 0xab, 0xab];
        fn with_metadata<T>(message: T) -> Request<T> {
            let mut request = Request::new(message);
            request
                .metadata_mut()
                .insert(ECHO_INITIAL, INITIAL)
                .expect("valid metadata");
            request
                .metadata_mut()
                .insert_bin(ECHO_TRAILING_BIN, TRAILING)
                .expect("valid metadata");
            request
        }
        let check_echo =
            |initial: Option<&str>,
             trailing: Option<Result<bytes::Bytes, grpc_h3::MetadataError>>| {
                check(initial == Some(INITIAL), || {
                    format!("initial metadata {initial:?}")
                })?;
                check(
                    trailing
                        .as_ref()
                        .is_some_and(|t| t.as_ref().is_ok_and(|t| t[..] == TRAILING)),
                    || format!("trailing metadata {trailing:?}"),
                )
            };

        let reply = self
            .client
            .unary_call(with_metadata(large_request()))
            .await
            .map_err(failed)?;
        check_echo(
            reply.metadata().get(ECHO_INITIAL),
            reply.trailers().get_bin(ECHO_TRAILING_BIN),
        )
        .map_err(|e| format!("unary: {e}"))?;

        let request = StreamingOutputCallRequest {
            response_parameters: params(&[314_159]),
            payload: zeros(271_828),
            ..Default::default()
        };
        let response = self
            .client
            .full_duplex_call(with_metadata(tokio_stream::iter(vec![request])))
            .await
            .map_err(failed)?;
        let initial = response.metadata().get(ECHO_INITIAL).map(str::to_owned);
        let mut replies = response.into_inner();
        while replies.message().await.map_err(failed)?.is_some() {}
        let trailers = replies.trailers().ok_or("no trailers")?;
        check_echo(initial.as_deref(), trailers.get_bin(ECHO_TRAILING_BIN))
            .map_err(|e| format!("full duplex: {e}"))?;
        Ok(String::new())
    }

    async fn status_code_and_message(&self, message: &str) -> CaseResult {
        let echo = Some(EchoStatus {
            code: 2,
            message: message.to_owned(),
        });
        let request = SimpleRequest {
            response_status: echo.clone(),
            ..Default::default()
        };
        expect_code(
            self.client.unary_call(request).await,
            Code::Unknown,
            Some(message),
        )
        .map_err(|e| format!("unary: {e}"))?;

        let request = StreamingOutputCallRequest {
            response_status: echo,
            ..Default::default()
        };
        // The status may come Trailers-Only, failing the call itself, or
        // after response headers, ending the stream.
        let result = match self
            .client
            .full_duplex_call(tokio_stream::iter(vec![request]))
            .await
        {
            Err(status) => Err(status),
            Ok(response) => {
                let mut replies = response.into_inner();
                loop {
                    match replies.message().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => break Ok(()),
                        Err(status) => break Err(status),
                    }
                }
            }
        };
        expect_code(result, Code::Unknown, Some(message))
            .map_err(|e| format!("full duplex: {e}"))?;
        Ok(String::new())
    }

    async fn unimplemented_method(&self) -> CaseResult {
        // This proto names the method UnimplementedMethod; newer ones call
        // it UnimplementedCall, the path interop-test-descriptions.md uses.
        expect_code(
            self.client.unimplemented_method(Empty {}).await,
            Code::Unimplemented,
            None,
        )?;
        let newer = Grpc::with_options(self.channel.clone(), CallOptions::default())
            .unary(
                Request::new(Empty {}),
                http::uri::PathAndQuery::from_static("/grpc.testing.TestService/UnimplementedCall"),
                ProstCodec::<Empty, Empty>::default(),
            )
            .await;
        expect_code(newer, Code::Unimplemented, None)?;
        Ok(String::new())
    }

    async fn unimplemented_service(&self) -> CaseResult {
        let client = UnimplementedServiceClient::new(self.channel.clone());
        expect_code(
            client.unimplemented_call(Empty {}).await,
            Code::Unimplemented,
            None,
        )?;
        Ok(String::new())
    }

    async fn cancel_after_begin(&self) -> CaseResult {
        let token = CancellationToken::new();
        let (_tx, rx) = mpsc::channel::<StreamingInputCallRequest>(1);
        let mut request = Request::new(ReceiverStream::new(rx));
        request.set_cancellation(token.clone());
        let client = self.client.clone();
        let call = tokio::spawn(async move { client.streaming_input_call(request).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        token.cancel();
        expect_code(
            call.await.map_err(|e| e.to_string())?,
            Code::Cancelled,
            None,
        )?;
        Ok(String::new())
    }

    async fn cancel_after_first_response(&self) -> CaseResult {
        let token = CancellationToken::new();
        let (tx, rx) = mpsc::channel(1);
        let mut request = Request::new(ReceiverStream::new(rx));
        request.set_cancellation(token.clone());
        // Sent before the call is awaited (see ping_pong).
        let first = StreamingOutputCallRequest {
            response_parameters: params(&[31_415]),
            payload: zeros(27_182),
            ..Default::default()
        };
        tx.send(first).await.map_err(|_| "the call ended early")?;
        let mut replies = self
            .client
            .full_duplex_call(request)
            .await
            .map_err(failed)?
            .into_inner();
        replies
            .message()
            .await
            .map_err(failed)?
            .ok_or("no first response")?;
        token.cancel();
        let next = replies.message().await;
        expect_code(next, Code::Cancelled, None)?;
        Ok(String::new())
    }

    async fn timeout_on_sleeping_server(&self) -> CaseResult {
        let (tx, rx) = mpsc::channel(1);
        let mut request = Request::new(ReceiverStream::new(rx));
        request.set_timeout(Duration::from_millis(1));
        let first = StreamingOutputCallRequest {
            payload: zeros(27_182),
            ..Default::default()
        };
        let _ = tx.send(first).await;
        let result = match self.client.full_duplex_call(request).await {
            Ok(response) => response.into_inner().message().await.map(|_| ()),
            Err(status) => Err(status),
        };
        expect_code(result, Code::DeadlineExceeded, None)?;
        Ok(String::new())
    }

    async fn concurrent_unary(&self) -> CaseResult {
        let calls: Vec<_> = (0..1000)
            .map(|_| {
                let client = self.client.clone();
                tokio::spawn(async move {
                    let request = SimpleRequest {
                        response_size: 1_000,
                        payload: zeros(1_000),
                        ..Default::default()
                    };
                    client.unary_call(request).await
                })
            })
            .collect();
        let started = Instant::now();
        for call in calls {
            let reply = call.await.map_err(|e| e.to_string())?.map_err(failed)?;
            check(
                reply
                    .get_ref()
                    .payload
                    .as_ref()
                    .is_some_and(|p| p.body.len() == 1_000),
                || "bad payload".into(),
            )?;
        }
        Ok(format!(
            "1000 calls on one connection in {:.0} ms",
            started.elapsed().as_secs_f64() * 1e3
        ))
    }

    async fn rpc_soak(&self) -> CaseResult {
        const CALLS: usize = 200;
        let mut latencies = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let request = SimpleRequest {
                response_size: 1_024,
                payload: zeros(1_024),
                ..Default::default()
            };
            let started = Instant::now();
            self.client.unary_call(request).await.map_err(failed)?;
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let at =
            |q: f64| latencies[((CALLS as f64 * q) as usize).min(CALLS - 1)].as_secs_f64() * 1e3;
        Ok(format!(
            "{CALLS} sequential calls: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        ))
    }
}
