//! [`Request`] and [`Response`]: a message plus its metadata.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use grpc_h3_core::{CompressionEncoding, Metadata};
use http::Extensions;
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use crate::extensions::{Deadline, GrpcMethod, PeerInfo};

/// A request: a message (or a stream of them) with custom metadata.
///
/// On the client, [`Request::set_timeout`] and [`Request::set_compression`]
/// override the client's defaults for this call. On the server, the request
/// also tells the deadline, the peer and the method; all of them, and
/// whatever layers and interceptors add, are in [`Request::extensions`].
///
/// ```
/// use std::time::Duration;
/// let mut request = grpc_h3::Request::new("hello");
/// request.metadata_mut().insert("authorization", "Bearer token").unwrap();
/// request.set_timeout(Duration::from_secs(2));
/// assert_eq!(request.timeout(), Some(Duration::from_secs(2)));
/// ```
#[derive(Debug)]
pub struct Request<T> {
    metadata: Metadata,
    message: T,
    extensions: Extensions,
    timeout: Option<Duration>,
    compression: Option<Option<CompressionEncoding>>,
    cancellation: Option<CancellationToken>,
    wait_for_ready: Option<bool>,
}

impl<T> Request<T> {
    /// A request with empty metadata.
    pub fn new(message: T) -> Request<T> {
        Request {
            metadata: Metadata::new(),
            message,
            extensions: Extensions::new(),
            timeout: None,
            compression: None,
            cancellation: None,
            wait_for_ready: None,
        }
    }

    /// A request from what a server received: its metadata and extensions.
    pub(crate) fn from_parts(metadata: Metadata, extensions: Extensions, message: T) -> Request<T> {
        Request {
            metadata,
            extensions,
            ..Request::new(message)
        }
    }

    /// The request's extensions: on a server, the [`GrpcMethod`],
    /// [`PeerInfo`], [`Transport`](crate::Transport) and [`Deadline`] of the
    /// call, and whatever tower layers and interceptors inserted; on a
    /// client, what interceptors and layers should see.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Mutable access to the extensions.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Server: the method this call is for.
    pub fn method(&self) -> Option<&GrpcMethod> {
        self.extensions.get()
    }

    /// The custom metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Mutable access to the custom metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// Mutable access to the message.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Consumes the request, returning the message.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Splits the request into metadata and message.
    pub fn into_parts(self) -> (Metadata, T) {
        (self.metadata, self.message)
    }

    /// Splits the request into metadata, extensions and message.
    pub fn into_parts_with_extensions(self) -> (Metadata, Extensions, T) {
        (self.metadata, self.extensions, self.message)
    }

    /// Client: a timeout for this call, sent as `grpc-timeout` and enforced
    /// locally (the call fails with DEADLINE_EXCEEDED). Overrides the
    /// client's default timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// Client: the timeout set by [`Request::set_timeout`].
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Client: compress this call's messages with `encoding`, or send them
    /// uncompressed with `None`. Overrides the client's default.
    pub fn set_compression(&mut self, encoding: Option<CompressionEncoding>) {
        self.compression = Some(encoding);
    }

    pub(crate) fn compression_override(&self) -> Option<Option<CompressionEncoding>> {
        self.compression
    }

    /// Client: cancels the call when `token` is cancelled, like cancelling a
    /// context in other gRPC libraries. The stream is reset
    /// (H3_REQUEST_CANCELLED) and the call, or its response stream, ends
    /// with CANCELLED. Dropping the call cancels it too, without a status.
    ///
    /// ```
    /// let token = grpc_h3::CancellationToken::new();
    /// let mut request = grpc_h3::Request::new(());
    /// request.set_cancellation(token.clone());
    /// // ... later, from anywhere:
    /// token.cancel();
    /// ```
    pub fn set_cancellation(&mut self, token: CancellationToken) {
        self.cancellation = Some(token);
    }

    pub(crate) fn cancellation(&self) -> Option<&CancellationToken> {
        self.cancellation.as_ref()
    }

    /// Adds `credentials`' metadata (e.g. a bearer token) to this call,
    /// instead of the channel's call credentials, if any.
    pub fn set_call_credentials(&mut self, credentials: impl crate::client::CallCredentials) {
        self.extensions
            .insert(crate::client::CallCredentialsExt(std::sync::Arc::new(
                credentials,
            )));
    }

    /// Client: whether this call waits for a connection while the channel
    /// is backing off after a failed connection attempt (gRPC's
    /// wait-for-ready), up to the call's deadline, instead of failing at
    /// once with UNAVAILABLE. Overrides the channel's default
    /// ([`ChannelBuilder::wait_for_ready`](crate::client::ChannelBuilder::wait_for_ready)).
    pub fn set_wait_for_ready(&mut self, wait: bool) {
        self.wait_for_ready = Some(wait);
    }

    pub(crate) fn wait_for_ready(&self) -> Option<bool> {
        self.wait_for_ready
    }

    /// Server: when the call's deadline passes (the client's
    /// `grpc-timeout`, capped by the server's). The call is cancelled at
    /// that moment; handlers can use this to budget downstream calls.
    pub fn deadline(&self) -> Option<Instant> {
        self.extensions.get::<Deadline>().map(|d| d.0)
    }

    /// Server: the client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.extensions.get::<PeerInfo>().map(PeerInfo::addr)
    }

    /// Server: the certificate chain the client presented (mutual TLS), leaf
    /// first.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.extensions.get::<PeerInfo>()?.certificates()
    }

    /// Swaps in another message, returning the old one.
    pub(crate) fn swap<U>(self, message: U) -> (T, Request<U>) {
        let Request {
            metadata,
            message: old,
            extensions,
            timeout,
            compression,
            cancellation,
            wait_for_ready,
        } = self;
        let request = Request {
            metadata,
            message,
            extensions,
            timeout,
            compression,
            cancellation,
            wait_for_ready,
        };
        (old, request)
    }

    /// Replaces the message, keeping metadata and options.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        let (message, request) = self.swap(());
        request.swap(f(message)).1
    }
}

/// A response: a message (or a stream of them) with initial metadata
/// (sent in the response headers) and trailing metadata (sent with the
/// final status).
///
/// ```
/// let mut response = grpc_h3::Response::new(42);
/// response.trailers_mut().insert("x-cost", "3").unwrap();
/// assert_eq!(*response.get_ref(), 42);
/// ```
#[derive(Debug)]
pub struct Response<T> {
    metadata: Metadata,
    message: T,
    trailers: Metadata,
    extensions: Extensions,
}

impl<T> Response<T> {
    /// A response with empty metadata.
    pub fn new(message: T) -> Response<T> {
        Response {
            metadata: Metadata::new(),
            message,
            trailers: Metadata::new(),
            extensions: Extensions::new(),
        }
    }

    pub(crate) fn from_parts(metadata: Metadata, message: T, trailers: Metadata) -> Response<T> {
        Response {
            metadata,
            message,
            trailers,
            extensions: Extensions::new(),
        }
    }

    /// The response's extensions: on a client, the
    /// [`Transport`](crate::Transport) the call used and whatever the
    /// transport or layers attached.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Mutable access to the extensions.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Replaces the message, keeping metadata, trailers and extensions.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            metadata: self.metadata,
            message: f(self.message),
            trailers: self.trailers,
            extensions: self.extensions,
        }
    }

    /// Initial metadata (response headers).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Mutable access to the initial metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Trailing metadata. On a client this is filled for unary and
    /// client-streaming calls; for streamed responses read
    /// [`Streaming::trailers`](crate::Streaming::trailers) once the stream ends.
    pub fn trailers(&self) -> &Metadata {
        &self.trailers
    }

    /// Mutable access to the trailing metadata a server sends.
    pub fn trailers_mut(&mut self) -> &mut Metadata {
        &mut self.trailers
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// Mutable access to the message.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Consumes the response, returning the message.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Splits into initial metadata, message and trailing metadata.
    pub fn into_parts(self) -> (Metadata, T, Metadata) {
        (self.metadata, self.message, self.trailers)
    }
}

/// Anything a client method accepts as a request: a message, or a
/// [`Request`] carrying metadata and options with it.
pub trait IntoRequest<T> {
    /// Wraps the value into a request.
    fn into_request(self) -> Request<T>;
}

impl<T> IntoRequest<T> for T {
    fn into_request(self) -> Request<T> {
        Request::new(self)
    }
}

impl<T> IntoRequest<T> for Request<T> {
    fn into_request(self) -> Request<T> {
        self
    }
}

/// Anything a client-streaming or bidirectional method accepts: a stream of
/// messages, or a [`Request`] wrapping one.
pub trait IntoStreamingRequest {
    /// The stream of messages.
    type Stream: futures_core::Stream<Item = Self::Message> + Send + 'static;
    /// The message type.
    type Message;

    /// Wraps the stream into a request.
    fn into_streaming_request(self) -> Request<Self::Stream>;
}

impl<S> IntoStreamingRequest for S
where
    S: futures_core::Stream + Send + 'static,
{
    type Stream = S;
    type Message = S::Item;

    fn into_streaming_request(self) -> Request<S> {
        Request::new(self)
    }
}

impl<S> IntoStreamingRequest for Request<S>
where
    S: futures_core::Stream + Send + 'static,
{
    type Stream = S;
    type Message = S::Item;

    fn into_streaming_request(self) -> Request<S> {
        self
    }
}
