//! Messages to and from HTTP bodies: [`Streaming`] decodes a received body,
//! `EncodeBody` frames outgoing messages (and ends a response with its
//! trailers).

pub(crate) mod encode;
mod streaming;

pub(crate) use streaming::cancelled_by_client;
pub use streaming::Streaming;
