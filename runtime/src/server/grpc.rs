//! The gRPC side of a server call, over `http` types: what generated
//! servers (and hand-written ones) call to turn an `http::Request` into
//! typed messages and a handler's result into an `http::Response` whose
//! body yields the framed messages and then the trailers.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;
use grpc_h3_core::call::Incoming;
use grpc_h3_core::frame::{DEFAULT_MAX_DECODING_MESSAGE_SIZE, DEFAULT_MAX_ENCODING_MESSAGE_SIZE};
use grpc_h3_core::{
    compression, protocol, Codec, CompressionEncoding, EnabledEncodings, FrameEncoder, Metadata,
    Status,
};
use http::StatusCode;

use crate::body::BoxError;
use crate::extensions::GrpcMethod;
use crate::messages::encode::{EncodeBody, Once};
use crate::{Body, Request, Response, Streaming};

/// The server-wide call settings (limits, compression, when headers go
/// out), set on the `ServerBuilder` and carried to services in each
/// request's extensions.
#[derive(Clone, Debug)]
pub struct CallSettings {
    pub(crate) max_decoding_message_size: usize,
    pub(crate) max_encoding_message_size: usize,
    pub(crate) accept_compression: EnabledEncodings,
    pub(crate) send_compression: EnabledEncodings,
    pub(crate) lazy_response_headers: bool,
    /// Where panics in response streams are counted (the server's stats).
    pub(crate) panics: Option<Arc<AtomicU64>>,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            max_decoding_message_size: DEFAULT_MAX_DECODING_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_ENCODING_MESSAGE_SIZE,
            accept_compression: EnabledEncodings::all(),
            send_compression: EnabledEncodings::default(),
            lazy_response_headers: false,
            panics: None,
        }
    }
}

/// Settings one generated service overrides for its own calls; unset ones
/// come from the server ([`CallSettings`]).
#[derive(Clone, Debug, Default)]
pub struct ServiceSettings {
    max_decoding_message_size: Option<usize>,
    max_encoding_message_size: Option<usize>,
    accept_compression: Option<EnabledEncodings>,
    send_compression: Option<EnabledEncodings>,
}

impl ServiceSettings {
    /// Largest request message this service accepts.
    pub fn max_decoding_message_size(&mut self, limit: usize) {
        self.max_decoding_message_size = Some(limit);
    }

    /// Largest response message this service sends.
    pub fn max_encoding_message_size(&mut self, limit: usize) {
        self.max_encoding_message_size = Some(limit);
    }

    /// Accepts requests compressed with `encoding` (in addition to the
    /// others this service accepts).
    pub fn accept_compressed(&mut self, encoding: CompressionEncoding) {
        self.accept_compression
            .get_or_insert_with(EnabledEncodings::default)
            .enable(encoding);
    }

    /// Compresses responses with `encoding` when the client accepts it.
    pub fn send_compressed(&mut self, encoding: CompressionEncoding) {
        self.send_compression
            .get_or_insert_with(EnabledEncodings::default)
            .enable(encoding);
    }

    fn apply(&self, mut server: CallSettings) -> CallSettings {
        if let Some(limit) = self.max_decoding_message_size {
            server.max_decoding_message_size = limit;
        }
        if let Some(limit) = self.max_encoding_message_size {
            server.max_encoding_message_size = limit;
        }
        if let Some(set) = self.accept_compression {
            server.accept_compression = set;
        }
        if let Some(set) = self.send_compression {
            server.send_compression = set;
        }
        server
    }
}

/// A Trailers-Only response: the status (and any initial metadata) in the
/// only HEADERS frame.
pub(crate) fn trailers_only(
    status: &Status,
    initial: &Metadata,
    accept: EnabledEncodings,
) -> http::Response<Body> {
    let mut headers = protocol::trailers_only(status, accept);
    initial.write_into(&mut headers);
    let mut response = http::Response::new(Body::empty());
    *response.headers_mut() = headers;
    response
}

/// The answer to a path no service serves: UNIMPLEMENTED, Trailers-Only.
pub fn unimplemented<B>(request: &http::Request<B>) -> http::Response<Body> {
    let path = request.uri().path();
    let status = match GrpcMethod::from_path(path) {
        Some(method) => Status::unimplemented(format!(
            "unknown method {} in service {}",
            method.method(),
            method.service()
        )),
        None => Status::unimplemented(format!(
            "malformed method path {path:?}: expected /package.Service/Method"
        )),
    };
    trailers_only(&status, &Metadata::new(), EnabledEncodings::all())
}

/// How a call's responses are encoded.
struct Replies<C> {
    codec: C,
    frames: FrameEncoder,
    accept: EnabledEncodings,
    lazy_headers: bool,
    panics: Option<Arc<AtomicU64>>,
}

impl<C: Codec> Replies<C> {
    fn error(&self, status: &Status) -> http::Response<Body> {
        trailers_only(status, &Metadata::new(), self.accept)
    }

    fn head(&self, metadata: &Metadata) -> http::Response<()> {
        let mut response = http::Response::new(());
        *response.headers_mut() =
            protocol::response_headers(metadata, self.frames.compression(), self.accept);
        response
    }

    fn one(mut self, result: Result<Response<C::Encode>, Status>) -> http::Response<Body> {
        let response = match result {
            Ok(response) => response,
            Err(status) => return self.error(&status),
        };
        let (metadata, message, trailers) = response.into_parts();
        match self.frames.encode(&mut self.codec, message) {
            Ok(frame) => self
                .head(&metadata)
                .map(|()| Body::from_status_body(Once::response(frame, trailers))),
            Err(status) => self.error(&status),
        }
    }

    async fn stream<S>(self, result: Result<Response<S>, Status>) -> http::Response<Body>
    where
        S: Stream<Item = Result<C::Encode, Status>> + Send + 'static,
    {
        let response = match result {
            Ok(response) => response,
            Err(status) => return self.error(&status),
        };
        let (metadata, messages, trailers) = response.into_parts();
        let head = self.head(&metadata);
        let mut body = EncodeBody::new(messages, self.codec, self.frames)
            .with_trailers(trailers)
            .counting_panics(self.panics);
        if self.lazy_headers {
            // Headers go out with the first message; a call over before one
            // is answered Trailers-Only.
            if let Err(status) = body.first_message().await {
                return trailers_only(&status, &metadata, self.accept);
            }
        }
        head.map(|()| Body::from_status_body(body))
    }
}

/// A call ready for its handler: the request and how to answer it.
type Prepared<C> = (Request<Streaming<<C as Codec>::Decode>>, Replies<C>);

/// Reads a call's head: its incoming messages as a [`Request`] and how to
/// encode its replies, or the Trailers-Only answer for a request that
/// cannot be served (an unsupported `grpc-encoding`).
fn prepare<B, C>(
    request: http::Request<B>,
    service: &ServiceSettings,
    codec: C,
) -> Result<Prepared<C>, Box<http::Response<Body>>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    C: Codec + Clone,
{
    let (mut parts, body) = request.into_parts();
    let settings = service.apply(
        parts
            .extensions
            .get::<CallSettings>()
            .cloned()
            .unwrap_or_default(),
    );
    let accept = settings.accept_compression;
    let encoding = compression::parse_encoding(
        parts.headers.get(grpc_h3_core::names::GRPC_ENCODING),
        accept,
    )
    .map_err(|status| Box::new(trailers_only(&status, &Metadata::new(), accept)))?;
    let peer_accepts =
        EnabledEncodings::from_header(parts.headers.get(grpc_h3_core::names::GRPC_ACCEPT_ENCODING));
    if parts.extensions.get::<GrpcMethod>().is_none() {
        if let Some(method) = GrpcMethod::from_path(parts.uri.path()) {
            parts.extensions.insert(method);
        }
    }
    let incoming = Incoming::server(encoding, settings.max_decoding_message_size);
    let stream = Streaming::new(Body::new(body), incoming, codec.clone());
    let metadata = Metadata::from_headers(&parts.headers);
    let replies = Replies {
        codec,
        frames: FrameEncoder::new(
            settings.send_compression.choose(peer_accepts),
            settings.max_encoding_message_size,
        ),
        accept,
        lazy_headers: settings.lazy_response_headers,
        panics: settings.panics,
    };
    Ok((
        Request::from_parts(metadata, parts.extensions, stream),
        replies,
    ))
}

/// Reads exactly one message from a unary or server-streaming request.
async fn single<T>(request: Request<Streaming<T>>) -> Result<Request<T>, Status> {
    let (mut stream, request) = request.swap(());
    let message = stream
        .message()
        .await?
        .ok_or_else(|| Status::internal("unary call ended without a request message"))?;
    if stream.message().await?.is_some() {
        return Err(Status::internal(
            "unary call received more than one request message",
        ));
    }
    Ok(request.map(|()| message))
}

/// Serves a unary call: one request in, one response out.
pub async fn unary<B, C, F, Fut>(
    request: http::Request<B>,
    service: &ServiceSettings,
    codec: C,
    handler: F,
) -> Result<http::Response<Body>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    C: Codec + Clone,
    F: FnOnce(Request<C::Decode>) -> Fut,
    Fut: Future<Output = Result<Response<C::Encode>, Status>>,
{
    let (request, replies) = match prepare(request, service, codec) {
        Ok(prepared) => prepared,
        Err(answer) => return Ok(*answer),
    };
    let result = match single(request).await {
        Ok(request) => handler(request).await,
        Err(status) => Err(status),
    };
    Ok(replies.one(result))
}

/// Serves a server-streaming call: one request in, a stream out.
pub async fn server_streaming<B, C, F, Fut, S>(
    request: http::Request<B>,
    service: &ServiceSettings,
    codec: C,
    handler: F,
) -> Result<http::Response<Body>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    C: Codec + Clone,
    F: FnOnce(Request<C::Decode>) -> Fut,
    Fut: Future<Output = Result<Response<S>, Status>>,
    S: Stream<Item = Result<C::Encode, Status>> + Send + 'static,
{
    let (request, replies) = match prepare(request, service, codec) {
        Ok(prepared) => prepared,
        Err(answer) => return Ok(*answer),
    };
    let result = match single(request).await {
        Ok(request) => handler(request).await,
        Err(status) => Err(status),
    };
    Ok(replies.stream(result).await)
}

/// Serves a client-streaming call: a stream in, one response out.
pub async fn client_streaming<B, C, F, Fut>(
    request: http::Request<B>,
    service: &ServiceSettings,
    codec: C,
    handler: F,
) -> Result<http::Response<Body>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    C: Codec + Clone,
    F: FnOnce(Request<Streaming<C::Decode>>) -> Fut,
    Fut: Future<Output = Result<Response<C::Encode>, Status>>,
{
    let (request, replies) = match prepare(request, service, codec) {
        Ok(prepared) => prepared,
        Err(answer) => return Ok(*answer),
    };
    Ok(replies.one(handler(request).await))
}

/// Serves a bidirectional-streaming call: a stream in, a stream out.
pub async fn streaming<B, C, F, Fut, S>(
    request: http::Request<B>,
    service: &ServiceSettings,
    codec: C,
    handler: F,
) -> Result<http::Response<Body>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    C: Codec + Clone,
    F: FnOnce(Request<Streaming<C::Decode>>) -> Fut,
    Fut: Future<Output = Result<Response<S>, Status>>,
    S: Stream<Item = Result<C::Encode, Status>> + Send + 'static,
{
    let (request, replies) = match prepare(request, service, codec) {
        Ok(prepared) => prepared,
        Err(answer) => return Ok(*answer),
    };
    Ok(replies.stream(handler(request).await).await)
}

/// A plain HTTP error (for requests that are not gRPC at all).
pub(crate) fn http_error(status: StatusCode) -> http::Response<Body> {
    let mut response = http::Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
