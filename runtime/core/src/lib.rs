//! The transport-agnostic core of grpc-h3: everything about gRPC that does
//! no I/O.
//!
//! - [`frame`]: the 5-byte length prefix, with size limits and compression.
//! - [`codec`]: message serialization ([`ProstCodec`]).
//! - [`Status`] and [`Code`], with the `grpc-message` percent-encoding and
//!   the HTTP-status mapping.
//! - [`Metadata`]: ASCII and `-bin` custom metadata.
//! - [`timeout`]: the `grpc-timeout` header.
//! - [`compression`]: `grpc-encoding` negotiation, gzip and zstd.
//! - [`protocol`]: building and validating request and response heads.
//! - [`names`]: the gRPC header names, ready for lookups and inserts.
//!
//! Nothing here knows about QUIC or HTTP/3: transports (the HTTP/3 one in
//! the `grpc-h3` crate, an HTTP/2 one later) move headers and bytes and call
//! into this crate for every protocol decision, so all of it is unit-tested
//! without sockets.
//!
//! # Quick start
//!
//! A message on the wire and back, and the status a server ends a call with:
//!
//! ```
//! use bytes::Bytes;
//! use grpc_h3_core::{BytesCodec, FrameDecoder, FrameEncoder, Status};
//!
//! let mut encoder = FrameEncoder::new(None, 4 << 20);
//! let frame = encoder.encode(&mut BytesCodec, Bytes::from_static(b"hello")).unwrap();
//! assert_eq!(&frame[..5], &[0, 0, 0, 0, 5]); // uncompressed, 5 bytes
//!
//! let mut decoder = FrameDecoder::new(None, 4 << 20);
//! decoder.push(frame);
//! assert_eq!(decoder.next_message().unwrap().unwrap(), "hello");
//!
//! let mut trailers = http::HeaderMap::new();
//! Status::not_found("no such user ✓").write_trailers(&mut trailers);
//! assert_eq!(trailers["grpc-status"], "5");
//! assert_eq!(trailers["grpc-message"], "no such user %E2%9C%93");
//! ```

pub mod alt_svc;
pub mod call;
pub mod codec;
pub mod compression;
pub mod frame;
pub mod metadata;
pub mod names;
pub mod protocol;
pub mod retry;
pub mod service_config;
mod status;
pub mod timeout;

pub use codec::{BytesCodec, Codec, ProstCodec};
pub use compression::{CompressionEncoding, EnabledEncodings};
pub use frame::{FrameDecoder, FrameEncoder};
pub use metadata::{Metadata, MetadataError, MetadataValue};
pub use status::{Code, Status, GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS_BIN};
