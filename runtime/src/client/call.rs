//! The four call kinds on a [`Channel`].

use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_core::Stream;
use grpc_h3_core::protocol::{self, ResponseHead};
use grpc_h3_core::{Codec, CompressionEncoding, FrameDecoder, FrameEncoder, Metadata, Status};
use h3::error::StreamError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::Sender;
use super::{CallOptions, Channel};
use crate::transport::h3_body::{ClientRecvBody, ClientSendBody, SendError};
use crate::transport::h3_status;
use crate::{Request, Response, Streaming};

/// Aborts the request-sending task when the call is dropped (its send half
/// then resets the stream).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A failure on our own sending side (e.g. a request message over the
/// limit) that explains why the call ended, better than the reset it causes.
type LocalFailure = Arc<Mutex<Option<Status>>>;

fn local_failure_or(failure: &LocalFailure, status: Status) -> Status {
    failure
        .lock()
        .expect("failure lock")
        .take()
        .unwrap_or(status)
}

struct CallSetup {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    encoding: Option<CompressionEncoding>,
    cancellation: Option<CancellationToken>,
}

impl CallSetup {
    fn new<T>(request: &Request<T>, options: &CallOptions) -> CallSetup {
        let timeout = request.timeout().or(options.timeout);
        CallSetup {
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
            encoding: request
                .compression_override()
                .unwrap_or(options.send_compression),
            cancellation: request.cancellation().cloned(),
        }
    }
}

/// Runs `call` under the deadline and the cancellation token: when either
/// fires, the call future is dropped (which resets the stream) and the
/// result is DEADLINE_EXCEEDED or CANCELLED.
async fn within<T>(
    setup: &CallSetup,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match &setup.cancellation {
        None => within_deadline(setup.deadline, call).await,
        Some(token) => tokio::select! {
            result = within_deadline(setup.deadline, call) => result,
            () = token.cancelled() => Err(crate::streaming::cancelled_by_client()),
        },
    }
}

async fn within_deadline<T>(
    deadline: Option<Instant>,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match deadline {
        None => call.await,
        Some(deadline) => match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => {
                result.map_err(|status| crate::streaming::blame_deadline(status, Some(deadline)))
            }
            Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
        },
    }
}

impl Channel {
    /// Opens the request stream and sends the headers. A call refused
    /// because the connection was going away (GOAWAY) or already lost never
    /// reached the server, so it is retried once on a fresh connection.
    async fn open(
        &self,
        path: &str,
        metadata: &Metadata,
        setup: &CallSetup,
        options: &CallOptions,
    ) -> Result<(ClientSendBody, ClientRecvBody, Sender), Status> {
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = self.pool.get().await?;
            let mut sender = conn.sender.clone();
            let mut request = http::Request::new(());
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            match sender.send_request(request).await {
                Ok(stream) => {
                    let (send, recv) = stream.split();
                    return Ok((ClientSendBody::new(send), ClientRecvBody::new(recv), sender));
                }
                Err(
                    e @ (StreamError::RemoteClosing { .. } | StreamError::ConnectionError { .. }),
                ) if attempt == 1 => {
                    tracing::debug!(error = %e, "connection unusable; retrying on a new one");
                    conn.retire();
                }
                Err(e) => {
                    conn.retire();
                    return Err(h3_status::status_for_stream(e));
                }
            }
        }
    }

    /// Reads the response head; `Ok(None)` is a Trailers-Only OK response.
    async fn read_head<C: Codec>(
        &self,
        mut recv: ClientRecvBody,
        codec: C,
        options: &CallOptions,
    ) -> Result<(Metadata, Streaming<C::Decode>), Status> {
        let response = recv
            .stream_mut()
            .recv_response()
            .await
            .map_err(h3_status::status_for_stream)?;
        let (parts, ()) = response.into_parts();
        match protocol::parse_response(parts.status, &parts.headers, options.accept_compression)? {
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
    async fn read_one<C: Codec>(
        &self,
        recv: ClientRecvBody,
        codec: C,
        options: &CallOptions,
        keep_alive: Box<dyn std::any::Any + Send>,
    ) -> Result<Response<C::Decode>, Status> {
        let (metadata, stream) = self.read_head(recv, codec, options).await?;
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

    /// Sends one request message and the end of the request. Failures are
    /// only logged: the response side reports the call's outcome.
    async fn send_one(send: &mut ClientSendBody, frame: bytes::Bytes) {
        let result = match send.send(frame).await {
            Ok(()) => send.finish().await,
            Err(e) => Err(e),
        };
        if let Err(SendError::Failed(status)) = result {
            tracing::debug!(%status, "sending the request failed");
        }
    }

    /// Encodes the single request message, opens the call and sends it.
    async fn open_single<C: Codec>(
        &self,
        request: Request<C::Encode>,
        path: &str,
        codec: &mut C,
        options: &CallOptions,
        setup: &CallSetup,
    ) -> Result<(ClientSendBody, ClientRecvBody, Sender), Status> {
        let (metadata, message) = request.into_parts();
        let mut frames = FrameEncoder::new(setup.encoding, options.max_encoding_message_size);
        // Encoded first: an oversize request never opens a stream.
        let frame = frames.encode(codec, message)?;
        let (mut send, recv, sender) = self.open(path, &metadata, setup, options).await?;
        Self::send_one(&mut send, frame).await;
        Ok((send, recv, sender))
    }

    /// Opens a call whose requests come from a stream, sent by a task;
    /// returns the response side and what must live as long as the call.
    async fn open_streaming<C, S>(
        &self,
        request: Request<S>,
        path: &str,
        codec: &C,
        options: &CallOptions,
        setup: &CallSetup,
        failure: &LocalFailure,
    ) -> Result<(ClientRecvBody, Box<dyn std::any::Any + Send>), Status>
    where
        C: Codec + Clone,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let (metadata, messages) = request.into_parts();
        let (send, recv, sender) = self.open(path, &metadata, setup, options).await?;
        let frames = FrameEncoder::new(setup.encoding, options.max_encoding_message_size);
        let task = Self::spawn_sender(send, messages, codec.clone(), frames, failure.clone());
        Ok((recv, Box::new((sender, task))))
    }

    /// A unary call: one request, one response.
    pub async fn unary<C: Codec>(
        &self,
        request: Request<C::Encode>,
        path: &str,
        mut codec: C,
        options: &CallOptions,
    ) -> Result<Response<C::Decode>, Status> {
        let setup = CallSetup::new(&request, options);
        within(&setup, async {
            // A failed send fails the receive side too, which says why.
            let (_send, recv, sender) = self
                .open_single(request, path, &mut codec, options, &setup)
                .await?;
            self.read_one(recv, codec, options, Box::new(sender)).await
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
        let setup = CallSetup::new(&request, options);
        let (metadata, stream) = within(&setup, async {
            let (send, recv, sender) = self
                .open_single(request, path, &mut codec, options, &setup)
                .await?;
            let (metadata, stream) = self.read_head(recv, codec, options).await?;
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

    /// Starts sending `messages` on a task; returns what keeps it running.
    fn spawn_sender<C, S>(
        mut send: ClientSendBody,
        messages: S,
        mut codec: C,
        mut frames: FrameEncoder,
        failure: LocalFailure,
    ) -> AbortOnDrop
    where
        C: Codec,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        AbortOnDrop(tokio::spawn(async move {
            let mut messages = std::pin::pin!(messages);
            while let Some(message) = poll_fn(|cx| messages.as_mut().poll_next(cx)).await {
                let frame = match frames.encode(&mut codec, message) {
                    Ok(frame) => frame,
                    Err(status) => {
                        // Dropping `send` resets the stream; the reader
                        // reports this status instead of CANCELLED.
                        *failure.lock().expect("failure lock") = Some(status);
                        return;
                    }
                };
                if send.send(frame).await.is_err() {
                    // Stopped or failed: the response tells the outcome.
                    return;
                }
            }
            let _ = send.finish().await;
        }))
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
        let setup = CallSetup::new(&request, options);
        let failure = LocalFailure::default();
        let result = within(&setup, async {
            let (recv, keep_alive) = self
                .open_streaming(request, path, &codec, options, &setup, &failure)
                .await?;
            self.read_one(recv, codec, options, keep_alive).await
        })
        .await;
        result.map_err(|status| local_failure_or(&failure, status))
    }

    /// A bidirectional-streaming call: requests and responses flow
    /// independently.
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
        let setup = CallSetup::new(&request, options);
        let failure = LocalFailure::default();
        let result = within(&setup, async {
            let (recv, keep_alive) = self
                .open_streaming(request, path, &codec, options, &setup, &failure)
                .await?;
            let (metadata, stream) = self.read_head(recv, codec, options).await?;
            let stream = stream
                .for_client(setup.deadline, setup.cancellation.clone(), keep_alive)
                .with_local_failure(failure.clone());
            Ok((metadata, stream))
        })
        .await;
        let (metadata, stream) = result.map_err(|status| local_failure_or(&failure, status))?;
        Ok(Response::from_parts(metadata, stream, Metadata::new()))
    }
}
