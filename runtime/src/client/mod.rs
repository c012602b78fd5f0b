//! The client: a [`Channel`] to one server over HTTP/3 or HTTP/2, the
//! [`Grpc`] client that generated clients are made of, and per-client
//! [`CallOptions`].
//!
//! A [`Channel`] is a `tower::Service` over `http::Request`s: layers go
//! between it and the generated client
//! (`GreeterClient::new(ServiceBuilder::new().layer(..).service(channel))`),
//! and tonic-generated clients can use it too.

mod auto;
mod backoff;
mod balance;
mod builder;
mod channel;
mod connect;
mod credentials;
mod early;
mod endpoints;
mod grpc;
mod h2;
mod h3;
mod memory;
mod outbox;
mod pool;
mod resolve;
mod retry;
mod service;
mod silence;

use std::time::Duration;

use grpc_h3_core::frame::{DEFAULT_MAX_DECODING_MESSAGE_SIZE, DEFAULT_MAX_ENCODING_MESSAGE_SIZE};
use grpc_h3_core::{CompressionEncoding, EnabledEncodings};

pub use backoff::BackoffConfig;
pub use balance::LoadBalancing;
pub use builder::ChannelBuilder;
pub use channel::{Channel, ResponseBody, ResponseFuture, WaitForReady};
pub use credentials::{BearerToken, CallCredentials, CallCredentialsExt, CredentialsFuture};
pub use grpc::Grpc;
pub use grpc_h3_core::retry::{Idempotency, RetryPolicy};
pub use grpc_h3_core::service_config::{MethodSelector, ServiceConfig, ServiceConfigError};
pub use resolve::{ResolveFuture, Resolver, SystemResolver};
pub use service::GrpcService;

/// Per-client defaults for calls; generated clients hold one and expose
/// builder methods for it.
#[derive(Clone, Debug)]
pub struct CallOptions {
    /// Encoding for request messages. Default: none (uncompressed).
    pub send_compression: Option<CompressionEncoding>,
    /// Encodings accepted for responses. Default: every one compiled in.
    pub accept_compression: EnabledEncodings,
    /// Largest response message accepted. Default: 4 MiB.
    pub max_decoding_message_size: usize,
    /// Largest request message sent. Default: 4 GiB - 1.
    pub max_encoding_message_size: usize,
    /// Timeout for calls that set none themselves. Default: none.
    pub timeout: Option<Duration>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            send_compression: None,
            accept_compression: EnabledEncodings::all(),
            max_decoding_message_size: DEFAULT_MAX_DECODING_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_ENCODING_MESSAGE_SIZE,
            timeout: None,
        }
    }
}
