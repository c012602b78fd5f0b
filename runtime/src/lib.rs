//! gRPC over HTTP/3 for Rust, on quinn, h3, tokio and prost, with HTTP/2
//! (hyper) beside it.
//!
//! - [`server::Server`] serves generated services (and any `tower::Service`
//!   over gRPC `http` requests, tonic's included) over HTTP/3 and HTTP/2 on
//!   one port.
//! - [`Channel`] calls them over HTTP/3 or HTTP/2: unary, server streaming,
//!   client streaming and bidirectional streaming, with deadlines,
//!   cancellation, metadata and compression. It is a `tower::Service`, so
//!   layers fit between it and a generated client.
//! - Both sides are made of `http` + `http-body` + `tower` parts: requests
//!   carry their [`GrpcMethod`], [`PeerInfo`], [`Transport`] and
//!   [`Deadline`] in their extensions, and [interceptors](Interceptor) and
//!   tower layers see them.
//! - [`tls`] sets up trust: CA roots, system roots, pinned certificates,
//!   and a per-user development certificate.
//!
//! # Quick start
//!
//! Generate a service with `grpc-h3-build` in `build.rs`
//! (`grpc_h3_build::compile_protos(&["helloworld.proto"], &["."])`),
//! include it with [`include_proto!`], implement its trait, then serve it
//! and call it (the repository's README has the whole project):
//!
//! ```no_run
//! # use grpc_h3::server::{GrpcRoute, NamedService};
//! # async fn quick_start(greeter: impl GrpcRoute + NamedService) -> Result<(), Box<dyn std::error::Error>> {
//! use grpc_h3::server::Server;
//! use grpc_h3::tls::ClientTlsConfig;
//! use grpc_h3::Channel;
//!
//! // `greeter` is the generated `GreeterServer::new(MyGreeter)`.
//! let server = Server::builder()
//!     .dev_certificate()
//!     .add_service(greeter)
//!     .bind("127.0.0.1:50051".parse()?)?;
//! tokio::spawn(server.serve());
//!
//! let channel = Channel::builder("https://localhost:50051")
//!     .tls_config(ClientTlsConfig::new().trust_dev_certificate())
//!     .build()?;
//! // let reply = GreeterClient::new(channel).say_hello(request).await?;
//! # let _ = channel; Ok(()) }
//! ```
//!
//! The protocol logic (framing, status, metadata, timeouts, compression,
//! limits) lives in the I/O-free [`grpc_h3_core`] crate, re-exported here;
//! this crate adds the transports (HTTP/3 on quinn + h3, HTTP/2 on hyper),
//! TLS and the call machinery.

mod body;
pub mod client;
mod error;
mod errors;
mod extensions;
mod interceptor;
mod message;
mod messages;
pub mod server;
pub mod tls;
mod transport;

pub use body::{Body, BoxError};
pub use client::{CallOptions, Channel};
pub use error::{Error, ErrorKind};
pub use errors::{status_from_error, TransportError};
pub use extensions::{Deadline, GrpcMethod, PeerInfo, Transport};
pub use grpc_h3_core::{
    codec, compression, metadata, Code, CompressionEncoding, Metadata, MetadataError, Status,
};
pub use interceptor::{AsyncInterceptedService, AsyncInterceptor, InterceptedService, Interceptor};
pub use message::{IntoRequest, IntoStreamingRequest, Request, Response};
pub use messages::Streaming;
pub use tokio_util::sync::CancellationToken;
pub use transport::CongestionControl;

/// Includes the code generated for a protobuf package by
/// `grpc_h3_build` in `build.rs`.
///
/// ```ignore
/// pub mod helloworld {
///     grpc_h3::include_proto!("helloworld");
/// }
/// ```
#[macro_export]
macro_rules! include_proto {
    ($package:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
    };
}

/// Entry points for the fuzz targets in the repository's `fuzz/` crate.
/// Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// Feeds `input` to an HTTP/3 frame guard in chunks of `chunk_sizes`
    /// (cycled) and checks what it lets through against a frame-by-frame
    /// reference; panics on any difference.
    pub fn frame_guard(
        input: &[u8],
        chunk_sizes: &[usize],
        max_header_list_size: u64,
        unidirectional: bool,
    ) {
        crate::transport::frame_guard::check_chunked(
            input,
            chunk_sizes,
            max_header_list_size,
            unidirectional,
        )
    }
}

/// What generated code uses: the only module it imports from this crate.
/// Not a stable API for hand-written code.
#[doc(hidden)]
pub mod codegen {
    pub use crate::client::{CallOptions, Channel, Grpc, GrpcService, Idempotency};
    pub use crate::server::{
        client_streaming, server_streaming, streaming, unary, unimplemented, NamedService,
        ServiceSettings,
    };
    pub use crate::{
        Body, BoxError, CompressionEncoding, InterceptedService, Interceptor, IntoRequest,
        IntoStreamingRequest, Request, Response, Status, Streaming,
    };
    pub use bytes::Bytes;
    pub use futures_core::Stream;
    pub use grpc_h3_core::ProstCodec;
    pub use http;
    pub use http_body;
    pub use std::convert::Infallible;
    pub use std::future::Future;
    pub use std::pin::Pin;
    pub use std::sync::Arc;
    pub use std::task::{Context, Poll};
    pub use std::time::Duration;
    pub use tower_service::Service;

    /// A boxed, sendable future: what generated services return.
    pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
}
