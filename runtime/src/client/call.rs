//! The four call kinds on a [`Channel`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_core::Stream;
use grpc_h3_core::protocol::{self, ResponseHead};
use grpc_h3_core::{Codec, CompressionEncoding, FrameDecoder, FrameEncoder, Metadata, Status};
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::attempt::{self, local_failure_or, Attempt, Outbox};
use super::{CallOptions, Channel};
use crate::transport::h3_body::{ClientRecvBody, ClientSendBody};
use crate::{Request, Response, Streaming};

struct CallSetup {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    encoding: Option<CompressionEncoding>,
    cancellation: Option<CancellationToken>,
    wait_for_ready: bool,
    /// Whether the call got a connection (its deadline message says so).
    connected: AtomicBool,
}

impl CallSetup {
    fn new<T>(channel: &Channel, request: &Request<T>, options: &CallOptions) -> CallSetup {
        let timeout = request.timeout().or(options.timeout);
        CallSetup {
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
            encoding: request
                .compression_override()
                .unwrap_or(options.send_compression),
            cancellation: request.cancellation().cloned(),
            wait_for_ready: request.wait_for_ready().unwrap_or(channel.wait_for_ready),
            connected: AtomicBool::new(false),
        }
    }
}

/// The response head and the stream it opens.
type Head<T> = (Metadata, Streaming<T>);

/// A request sent whole, and the attempt it went on.
type Sent = (ClientSendBody, Attempt);

impl Channel {
    /// Runs `call` under the deadline and the cancellation token: when either
    /// fires, the call future is dropped (which resets the stream) and the
    /// result is DEADLINE_EXCEEDED or CANCELLED.
    async fn within<T>(
        &self,
        setup: &CallSetup,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let timed = async {
            let Some(deadline) = setup.deadline else {
                return call.await;
            };
            match tokio::time::timeout_at(deadline, call).await {
                Ok(result) => result
                    .map_err(|status| crate::streaming::blame_deadline(status, Some(deadline))),
                Err(_) if !setup.connected.load(Ordering::Acquire) => {
                    Err(Status::deadline_exceeded(format!(
                        "deadline exceeded ({:?}) before a connection was ready; {}",
                        setup.timeout.unwrap_or_default(),
                        self.pool.describe()
                    )))
                }
                Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
            }
        };
        match &setup.cancellation {
            None => timed.await,
            Some(token) => tokio::select! {
                result = timed => result,
                () = token.cancelled() => Err(crate::streaming::cancelled_by_client()),
            },
        }
    }

    fn request_head(
        &self,
        path: &str,
        metadata: &Metadata,
        setup: &CallSetup,
        options: &CallOptions,
    ) -> Result<impl Fn() -> http::Request<()>, Status> {
        let uri = http::Uri::builder()
            .scheme("https")
            .authority(self.pool.authority())
            .path_and_query(path)
            .build()
            .map_err(|e| Status::internal(format!("invalid method path {path:?}: {e}")))?;
        let headers = protocol::request_headers(
            metadata,
            setup.timeout,
            setup.encoding,
            options.accept_compression,
        );
        Ok(move || {
            let mut request = http::Request::new(());
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            request
        })
    }

    /// Opens a request stream, on a second connection if the first turned
    /// out to be going away before the request left.
    async fn open(
        &self,
        setup: &CallSetup,
        request: &impl Fn() -> http::Request<()>,
    ) -> Result<(ClientSendBody, Attempt), Status> {
        for _ in 0..2 {
            let conn = self.pool.get(setup.wait_for_ready).await?;
            setup.connected.store(true, Ordering::Release);
            match attempt::open_on(conn, request()).await {
                Ok(attempt) => return Ok(attempt),
                Err(Some(status)) => return Err(status),
                Err(None) => continue,
            }
        }
        Err(Status::unavailable(
            "the connection went away twice before the request could be sent",
        ))
    }

    /// Sends a single-message request and reads the response head,
    /// retrying once if the server did not process the request.
    async fn single_attempt(
        &self,
        setup: &CallSetup,
        request: &impl Fn() -> http::Request<()>,
        frame: bytes::Bytes,
    ) -> Result<(Sent, StatusCode, HeaderMap), Status> {
        let mut retried = false;
        loop {
            let (mut send, mut attempt) = self.open(setup, request).await?;
            attempt::send_one(&mut send, frame.clone()).await;
            match attempt.head().await {
                Ok((status, headers)) => return Ok(((send, attempt), status, headers)),
                Err(failure) if failure.unprocessed && !retried => {
                    tracing::debug!(status = %failure.status, "the server did not process the request; retrying once");
                    retried = true;
                }
                Err(failure) => return Err(failure.status),
            }
        }
    }

    /// Classifies the response head and opens the stream of messages;
    /// a Trailers-Only OK response is an empty stream.
    fn response_stream<C: Codec>(
        status: StatusCode,
        headers: &HeaderMap,
        recv: ClientRecvBody,
        codec: C,
        options: &CallOptions,
    ) -> Result<Head<C::Decode>, Status> {
        match protocol::parse_response(status, headers, options.accept_compression)? {
            ResponseHead::TrailersOnly(status) if status.code() == grpc_h3_core::Code::Ok => {
                let decoder = FrameDecoder::new(None, 0);
                let stream = Streaming::new(Box::new(recv), decoder, codec)
                    .into_finished(status.metadata().clone());
                Ok((Metadata::new(), stream))
            }
            ResponseHead::TrailersOnly(status) => Err(status),
            ResponseHead::Headers { metadata, encoding } => {
                let decoder = FrameDecoder::new(encoding, options.max_decoding_message_size);
                Ok((metadata, Streaming::new(Box::new(recv), decoder, codec)))
            }
        }
    }

    /// Reads a response that must hold exactly one message.
    async fn read_one<T>(
        head: Head<T>,
        keep_alive: Box<dyn std::any::Any + Send>,
    ) -> Result<Response<T>, Status> {
        let (metadata, stream) = head;
        let mut stream = stream.for_client(None, None, keep_alive);
        let message = stream
            .message()
            .await?
            .ok_or_else(|| Status::internal("response ended without a message"))?;
        if stream.message().await?.is_some() {
            return Err(Status::internal(
                "unary response carried more than one message",
            ));
        }
        let trailers = stream.trailers().cloned().unwrap_or_default();
        Ok(Response::from_parts(metadata, message, trailers))
    }

    /// Encodes the single request message, then runs the call up to its
    /// response head.
    async fn open_single<C: Codec>(
        &self,
        request: Request<C::Encode>,
        path: &str,
        codec: &mut C,
        options: &CallOptions,
        setup: &CallSetup,
    ) -> Result<(Sent, StatusCode, HeaderMap), Status> {
        let (metadata, message) = request.into_parts();
        let mut frames = FrameEncoder::new(setup.encoding, options.max_encoding_message_size);
        // Encoded first: an oversize request never opens a stream.
        let frame = frames.encode(codec, message)?;
        let head = self.request_head(path, &metadata, setup, options)?;
        self.single_attempt(setup, &head, frame).await
    }

    /// Runs a streaming-request call up to its response head; the request
    /// messages are sent by a task, and replayed if the first attempt was
    /// not processed. Returns the head and what must live as long as the
    /// call.
    async fn open_streaming<C, S>(
        &self,
        setup: &CallSetup,
        head: &impl Fn() -> http::Request<()>,
        outbox: &std::sync::Arc<Outbox<C, S>>,
        codec: C,
        options: &CallOptions,
    ) -> Result<(Head<C::Decode>, Box<dyn std::any::Any + Send>), Status>
    where
        C: Codec,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let mut retried = false;
        loop {
            let (send, mut attempt) = self.open(setup, head).await?;
            let task = outbox.spawn_sender(send);
            match attempt.head().await {
                Ok((status, headers)) => {
                    outbox.commit();
                    let Attempt { recv, sender, .. } = attempt;
                    let head = Self::response_stream(status, &headers, recv, codec, options)?;
                    return Ok((head, Box::new((sender, task))));
                }
                Err(failure) if failure.unprocessed && !retried && outbox.replayable() => {
                    tracing::debug!(status = %failure.status, "the server did not process the request; retrying once");
                    retried = true;
                    drop(task);
                }
                Err(failure) => return Err(failure.status),
            }
        }
    }

    /// A unary call: one request, one response.
    pub async fn unary<C: Codec>(
        &self,
        request: Request<C::Encode>,
        path: &str,
        mut codec: C,
        options: &CallOptions,
    ) -> Result<Response<C::Decode>, Status> {
        let setup = CallSetup::new(self, &request, options);
        self.within(&setup, async {
            let ((send, attempt), status, headers) = self
                .open_single(request, path, &mut codec, options, &setup)
                .await?;
            let Attempt { recv, sender, .. } = attempt;
            let head = Self::response_stream(status, &headers, recv, codec, options)?;
            Self::read_one(head, Box::new((sender, send))).await
        })
        .await
    }

    /// A server-streaming call: one request, a stream of responses.
    pub async fn server_streaming<C: Codec>(
        &self,
        request: Request<C::Encode>,
        path: &str,
        mut codec: C,
        options: &CallOptions,
    ) -> Result<Response<Streaming<C::Decode>>, Status> {
        let setup = CallSetup::new(self, &request, options);
        let (metadata, stream) = self
            .within(&setup, async {
                let ((send, attempt), status, headers) = self
                    .open_single(request, path, &mut codec, options, &setup)
                    .await?;
                let Attempt { recv, sender, .. } = attempt;
                let (metadata, stream) =
                    Self::response_stream(status, &headers, recv, codec, options)?;
                Ok((
                    metadata,
                    stream.for_client(
                        setup.deadline,
                        setup.cancellation.clone(),
                        Box::new((sender, send)),
                    ),
                ))
            })
            .await?;
        Ok(Response::from_parts(metadata, stream, Metadata::new()))
    }

    /// A client-streaming call: a stream of requests, one response.
    pub async fn client_streaming<C, S>(
        &self,
        request: Request<S>,
        path: &str,
        codec: C,
        options: &CallOptions,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: Codec + Clone,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let setup = CallSetup::new(self, &request, options);
        let (metadata, messages) = request.into_parts();
        let frames = FrameEncoder::new(setup.encoding, options.max_encoding_message_size);
        let outbox = Outbox::new(messages, codec.clone(), frames);
        let result = self
            .within(&setup, async {
                let head = self.request_head(path, &metadata, &setup, options)?;
                let (head, keep_alive) = self
                    .open_streaming(&setup, &head, &outbox, codec, options)
                    .await?;
                Self::read_one(head, keep_alive).await
            })
            .await;
        result.map_err(|status| local_failure_or(&outbox.failure, status))
    }

    /// A bidirectional-streaming call: requests and responses flow
    /// independently. It returns once the response headers arrive; a server
    /// may send them only with its first message, so send a first request
    /// message before awaiting the call if the server answers only after
    /// reading one.
    pub async fn streaming<C, S>(
        &self,
        request: Request<S>,
        path: &str,
        codec: C,
        options: &CallOptions,
    ) -> Result<Response<Streaming<C::Decode>>, Status>
    where
        C: Codec + Clone,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let setup = CallSetup::new(self, &request, options);
        let (metadata, messages) = request.into_parts();
        let frames = FrameEncoder::new(setup.encoding, options.max_encoding_message_size);
        let outbox = Outbox::new(messages, codec.clone(), frames);
        let result = self
            .within(&setup, async {
                let head = self.request_head(path, &metadata, &setup, options)?;
                let ((metadata, stream), keep_alive) = self
                    .open_streaming(&setup, &head, &outbox, codec, options)
                    .await?;
                let stream = stream
                    .for_client(setup.deadline, setup.cancellation.clone(), keep_alive)
                    .with_local_failure(outbox.failure.clone());
                Ok((metadata, stream))
            })
            .await;
        let (metadata, stream) =
            result.map_err(|status| local_failure_or(&outbox.failure, status))?;
        Ok(Response::from_parts(metadata, stream, Metadata::new()))
    }
}
