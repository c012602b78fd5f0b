//! The transport-agnostic core of grpc-h3: everything about gRPC that does
//! no I/O.
//!
//! - [`frame`]: the 5-byte length prefix, with size limits and compression.
//! - [`codec`]: message serialization ([`ProstCodec`]).
//! - [`Status`] and [`Code`], with the `grpc-message` percent-encoding and
//!   the HTTP-status mapping.
//! - [`Metadata`]: ASCII and `-bin` custom metadata.
//! - [`timeout`]: the `grpc-timeout` header.
//! - [`compression`]: `grpc-encoding` negotiation and gzip.
//! - [`protocol`]: building and validating request and response heads.
//!
//! Nothing here knows about QUIC or HTTP/3: transports (the HTTP/3 one in
//! the `grpc-h3` crate, an HTTP/2 one later) move headers and bytes and call
//! into this crate for every protocol decision, so all of it is unit-tested
//! without sockets.

pub mod codec;
pub mod compression;
pub mod frame;
pub mod metadata;
pub mod protocol;
mod status;
pub mod timeout;

pub use codec::{BytesCodec, Codec, ProstCodec};
pub use compression::{CompressionEncoding, EnabledEncodings};
pub use frame::{FrameDecoder, FrameEncoder};
pub use metadata::{Metadata, MetadataError, MetadataValue};
pub use status::{Code, Status, GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS_BIN};
