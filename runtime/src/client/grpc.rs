//! [`Grpc`]: the four call kinds over any [`GrpcService`], with deadlines,
//! cancellation, compression, limits and one transparent retry of calls
//! the server did not process.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use grpc_h3_core::call::{blame_deadline, Incoming};
use grpc_h3_core::{protocol, Codec, CompressionEncoding, FrameEncoder, Metadata, Status};
use http::uri::PathAndQuery;
use http::Extensions;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::channel::{deadline_before_connection, ConnectWatch, WaitForReady};
use super::outbox::{local_failure_or, Outbox};
use super::retry::{MakeRequest, Replay};
use super::{CallOptions, GrpcService};
use crate::body::BoxError;
use crate::errors::{is_unprocessed, status_from_error};
use crate::messages::cancelled_by_client;
use crate::messages::encode::Once;
use crate::{Body, Request, Response, Streaming};

/// A gRPC client over any [`GrpcService`]: what generated clients are made
/// of, usable directly to call methods by path.
///
/// ```no_run
/// # async fn f(channel: grpc_h3::Channel) -> Result<(), grpc_h3::Status> {
/// use grpc_h3::client::Grpc;
/// use grpc_h3::codec::ProstCodec;
/// use http::uri::PathAndQuery;
///
/// let grpc = Grpc::new(channel);
/// let path = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
/// // Request and response types are any prost messages.
/// let reply: grpc_h3::Response<()> = grpc
///     .unary(grpc_h3::Request::new(()), path, ProstCodec::<(), ()>::default())
///     .await?;
/// # let _ = reply; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Grpc<T> {
    inner: T,
    options: CallOptions,
}

/// What one call needs to know about itself while it runs.
struct Setup {
    /// The call's span: method, transport, status, duration.
    span: tracing::Span,
    started: Instant,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    encoding: Option<CompressionEncoding>,
    cancellation: Option<CancellationToken>,
    /// Set when the call has a deadline (its message may need it).
    watch: Option<ConnectWatch>,
}

impl<T> Grpc<T> {
    /// A client over `inner` with default [`CallOptions`].
    pub fn new(inner: T) -> Grpc<T> {
        Grpc::with_options(inner, CallOptions::default())
    }

    /// A client over `inner` with these options.
    pub fn with_options(inner: T, options: CallOptions) -> Grpc<T> {
        Grpc { inner, options }
    }

    /// The options every call starts from.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// Mutable access to the options.
    pub fn options_mut(&mut self) -> &mut CallOptions {
        &mut self.options
    }

    /// The service calls go through.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Consumes the client, returning the service.
    pub fn into_inner(self) -> T {
        self.inner
    }

    fn setup<M>(&self, request: &Request<M>, path: &PathAndQuery) -> Setup {
        let timeout = request.timeout().or(self.options.timeout);
        Setup {
            span: tracing::debug_span!(
                "grpc.client",
                method = path.path(),
                transport = tracing::field::Empty,
                grpc.status = tracing::field::Empty,
                duration_ms = tracing::field::Empty,
            ),
            started: Instant::now(),
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            encoding: request
                .compression_override()
                .unwrap_or(self.options.send_compression),
            cancellation: request.cancellation().cloned(),
            watch: timeout.map(|_| ConnectWatch::default()),
        }
    }

    /// The request head, rebuilt for each attempt.
    fn head(
        &self,
        path: &PathAndQuery,
        metadata: Metadata,
        mut extensions: Extensions,
        wait_for_ready: Option<bool>,
        setup: &Setup,
    ) -> impl Fn(Body) -> http::Request<Body> + Send + Sync + 'static {
        if let Some(wait) = wait_for_ready {
            extensions.insert(WaitForReady(wait));
        }
        if let Some(watch) = &setup.watch {
            extensions.insert(watch.clone());
        }
        let uri = http::Uri::from(path.clone());
        let (timeout, encoding, accept) = (
            setup.timeout,
            setup.encoding,
            self.options.accept_compression,
        );
        // Built afresh per attempt (a retry is rare): cheaper than building
        // once and copying for every attempt.
        move |body| {
            let mut request = http::Request::new(body);
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = uri.clone();
            *request.headers_mut() =
                protocol::request_headers(&metadata, timeout, encoding, accept);
            *request.extensions_mut() = extensions.clone();
            request
        }
    }
}

/// Runs `call` under the call's deadline and cancellation token: when
/// either fires the call future is dropped (which cancels the stream) and
/// the result is DEADLINE_EXCEEDED or CANCELLED.
///
/// The call comes pinned by the caller: its future is large, and each
/// wrapper holding it by value would copy it again.
async fn within<R, F>(setup: &Setup, call: Pin<&mut F>) -> Result<R, Status>
where
    F: Future<Output = Result<R, Status>> + ?Sized,
{
    let result = traced(setup, call).instrument(setup.span.clone()).await;
    let status = match &result {
        Ok(_) => "0".to_owned(),
        Err(status) => (status.code() as i32).to_string(),
    };
    setup
        .span
        .record("grpc.status", status.as_str())
        .record("duration_ms", setup.started.elapsed().as_secs_f64() * 1e3);
    tracing::debug!(parent: &setup.span, "call ended");
    result
}

/// [`within`] without the span bookkeeping.
async fn traced<R, F>(setup: &Setup, call: Pin<&mut F>) -> Result<R, Status>
where
    F: Future<Output = Result<R, Status>> + ?Sized,
{
    let timed = async {
        let Some(deadline) = setup.deadline else {
            return call.await;
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => {
                result.map_err(|status| blame_deadline(status, Instant::now() >= deadline))
            }
            Err(_) => Err(
                match setup.watch.as_ref().and_then(ConnectWatch::describe) {
                    Some(where_) => {
                        deadline_before_connection(setup.timeout.unwrap_or_default(), &where_)
                    }
                    None => Status::deadline_exceeded("deadline exceeded"),
                },
            ),
        }
    };
    match &setup.cancellation {
        None => timed.await,
        Some(token) => tokio::select! {
            result = timed => result,
            () = token.cancelled() => Err(cancelled_by_client()),
        },
    }
}

/// Reads a response that must hold exactly one message.
async fn read_one<M>(
    metadata: Metadata,
    extensions: Extensions,
    mut stream: Streaming<M>,
) -> Result<Response<M>, Status> {
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
    let mut response = Response::from_parts(metadata, message, trailers);
    *response.extensions_mut() = extensions;
    Ok(response)
}

impl<T> Grpc<T>
where
    T: GrpcService<Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::ResponseBody: Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError>,
{
    /// Sends the request built by `head` around the body made by `body`,
    /// again if the server did not process it and `replayable` still says
    /// yes, and opens the response: initial metadata, extensions, and the
    /// stream of messages.
    async fn open<C>(
        &self,
        head: impl Fn(Body) -> http::Request<Body> + Send + Sync + 'static,
        body: impl Fn() -> Body + Send + Sync + 'static,
        replayable: impl Fn() -> bool + Send + Sync + 'static,
        codec: C,
    ) -> Result<(Metadata, Extensions, Streaming<C::Decode>), Status>
    where
        C: Codec + Send + 'static,
    {
        // How to send the request again, for the channel's retries (a
        // grpc-h3 `Channel` retries by itself and clears `unprocessed` on
        // what it returns) or, once, here.
        let make: Arc<MakeRequest> = Arc::new(move || replayable().then(|| head(body())));
        let mut unprocessed: Option<BoxError> = None;
        let response = loop {
            let Some(mut request) = make() else {
                // Only after a failure: the first attempt is always made.
                return Err(unprocessed.map_or_else(
                    || Status::internal("the call's request could not be built"),
                    status_from_error,
                ));
            };
            request.extensions_mut().insert(Replay(make.clone()));
            let mut inner = self.inner.clone();
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(|e| status_from_error(e.into()))?;
            match inner.call(request).await {
                Ok(response) => {
                    if let Some(transport) = response.extensions().get::<crate::Transport>() {
                        tracing::Span::current().record("transport", transport.as_str());
                    }
                    break response;
                }
                Err(error) => {
                    let error: BoxError = error.into();
                    if unprocessed.is_none() && is_unprocessed(&*error) {
                        tracing::debug!(%error, "the server did not process the request; retrying once");
                        unprocessed = Some(error);
                        continue;
                    }
                    return Err(status_from_error(error));
                }
            }
        };
        let (parts, body) = response.into_parts();
        let (metadata, incoming) = Incoming::client(
            parts.status,
            &parts.headers,
            self.options.accept_compression,
            self.options.max_decoding_message_size,
        )?;
        let stream = Streaming::new(Body::new(body), incoming, codec);
        Ok((metadata, parts.extensions, stream))
    }

    /// Encodes the single request message (an oversize one never opens a
    /// stream) and opens the call.
    async fn open_single<C>(
        &self,
        request: Request<C::Encode>,
        path: &PathAndQuery,
        mut codec: C,
        setup: &Setup,
    ) -> Result<(Metadata, Extensions, Streaming<C::Decode>), Status>
    where
        C: Codec + Send + 'static,
    {
        let wait_for_ready = request.wait_for_ready();
        let (metadata, extensions, message) = request.into_parts_with_extensions();
        let mut frames = FrameEncoder::new(setup.encoding, self.options.max_encoding_message_size);
        let frame = frames.encode(&mut codec, message)?;
        let head = self.head(path, metadata, extensions, wait_for_ready, setup);
        let body = move || Body::from_status_body(Once::request(frame.clone()));
        self.open(head, body, || true, codec).await
    }

    /// Opens a call whose request is a stream of messages, sent (and
    /// replayed if need be) from `outbox`.
    async fn open_streaming<C>(
        &self,
        request: Request<()>,
        path: &PathAndQuery,
        outbox: &Arc<Outbox<C>>,
        codec: C,
        setup: &Setup,
    ) -> Result<(Metadata, Extensions, Streaming<C::Decode>), Status>
    where
        C: Codec + Send + 'static,
        C::Encode: Send + 'static,
    {
        let wait_for_ready = request.wait_for_ready();
        let (metadata, extensions, ()) = request.into_parts_with_extensions();
        let head = self.head(path, metadata, extensions, wait_for_ready, setup);
        let (source, replay) = (outbox.clone(), outbox.clone());
        let body = move || Body::from_status_body(source.body());
        let opened = self
            .open(head, body, move || replay.replayable(), codec)
            .await;
        if opened.is_ok() {
            outbox.commit();
        }
        opened
    }

    /// The request's messages, ready to be sent by [`Self::open_streaming`].
    fn outbox<C, S>(
        &self,
        request: Request<S>,
        codec: C,
        setup: &Setup,
    ) -> (Request<()>, Arc<Outbox<C>>)
    where
        C: Codec + Send + 'static,
        C::Encode: Send + 'static,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let (messages, request) = request.swap(());
        let frames = FrameEncoder::new(setup.encoding, self.options.max_encoding_message_size);
        (request, Outbox::new(messages, codec, frames))
    }

    /// A unary call: one request, one response.
    pub async fn unary<C>(
        &self,
        request: Request<C::Encode>,
        path: PathAndQuery,
        codec: C,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: Codec + Send + 'static,
    {
        let setup = self.setup(&request, &path);
        let call = pin!(async {
            let (metadata, extensions, stream) =
                self.open_single(request, &path, codec, &setup).await?;
            read_one(metadata, extensions, stream).await
        });
        within(&setup, call).await
    }

    /// A server-streaming call: one request, a stream of responses.
    pub async fn server_streaming<C>(
        &self,
        request: Request<C::Encode>,
        path: PathAndQuery,
        codec: C,
    ) -> Result<Response<Streaming<C::Decode>>, Status>
    where
        C: Codec + Send + 'static,
    {
        let setup = self.setup(&request, &path);
        let (metadata, extensions, stream) = within(
            &setup,
            pin!(self.open_single(request, &path, codec, &setup)),
        )
        .await?;
        let stream = stream.for_client(setup.deadline, setup.cancellation, Box::new(()));
        let mut response = Response::new(stream);
        *response.metadata_mut() = metadata;
        *response.extensions_mut() = extensions;
        Ok(response)
    }

    /// A client-streaming call: a stream of requests, one response.
    pub async fn client_streaming<C, S>(
        &self,
        request: Request<S>,
        path: PathAndQuery,
        codec: C,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: Codec + Clone + Send + 'static,
        C::Encode: Send + 'static,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let setup = self.setup(&request, &path);
        let (request, outbox) = self.outbox(request, codec.clone(), &setup);
        let call = pin!(async {
            let (metadata, extensions, stream) = self
                .open_streaming(request, &path, &outbox, codec, &setup)
                .await?;
            read_one(metadata, extensions, stream).await
        });
        let result = within(&setup, call).await;
        result.map_err(|status| local_failure_or(&outbox.failure, status))
    }

    /// A bidirectional-streaming call: requests and responses flow
    /// independently. It returns once the response headers arrive; a server
    /// may send them only with its first message, so the request stream
    /// should yield a first message without waiting for a response when the
    /// server answers only after reading one.
    pub async fn streaming<C, S>(
        &self,
        request: Request<S>,
        path: PathAndQuery,
        codec: C,
    ) -> Result<Response<Streaming<C::Decode>>, Status>
    where
        C: Codec + Clone + Send + 'static,
        C::Encode: Send + 'static,
        S: Stream<Item = C::Encode> + Send + 'static,
    {
        let setup = self.setup(&request, &path);
        let (request, outbox) = self.outbox(request, codec.clone(), &setup);
        let opened = within(
            &setup,
            pin!(self.open_streaming(request, &path, &outbox, codec, &setup)),
        )
        .await;
        let (metadata, extensions, stream) =
            opened.map_err(|status| local_failure_or(&outbox.failure, status))?;
        let stream = stream
            .for_client(setup.deadline, setup.cancellation, Box::new(()))
            .with_local_failure(outbox.failure.clone());
        let mut response = Response::new(stream);
        *response.metadata_mut() = metadata;
        *response.extensions_mut() = extensions;
        Ok(response)
    }
}
