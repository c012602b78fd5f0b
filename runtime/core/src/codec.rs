//! Serialization of messages: the [`Codec`] trait and its prost and raw-bytes
//! implementations.

use std::fmt;
use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};

use crate::Status;

/// Encodes outgoing messages and decodes incoming ones.
///
/// A client uses a codec whose `Encode` is the request and `Decode` the
/// response; a server the other way round.
pub trait Codec: Send + 'static {
    /// The type sent.
    type Encode: Send + 'static;
    /// The type received.
    type Decode: Send + 'static;

    /// Serializes `item`, appending to `dst`.
    fn encode(&mut self, item: Self::Encode, dst: &mut BytesMut) -> Result<(), Status>;

    /// Deserializes one whole message.
    fn decode(&mut self, src: Bytes) -> Result<Self::Decode, Status>;

    /// Whether `item` is compressed when the call has a compression
    /// encoding: a per-message switch, like grpc-java's
    /// `setMessageCompression`. Default: every message is.
    fn compress(&mut self, item: &Self::Encode) -> bool {
        let _ = item;
        true
    }
}

/// The protobuf codec, backed by prost.
pub struct ProstCodec<E, D> {
    _types: PhantomData<fn(E) -> D>,
}

impl<E, D> ProstCodec<E, D> {
    /// A new codec.
    pub fn new() -> Self {
        ProstCodec {
            _types: PhantomData,
        }
    }
}

impl<E, D> Default for ProstCodec<E, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, D> Clone for ProstCodec<E, D> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<E, D> fmt::Debug for ProstCodec<E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProstCodec")
    }
}

impl<E, D> Codec for ProstCodec<E, D>
where
    E: prost::Message + Send + 'static,
    D: prost::Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;

    fn encode(&mut self, item: E, dst: &mut BytesMut) -> Result<(), Status> {
        // One allocation of the right size: growing by doubling would copy
        // a large message several times over.
        dst.reserve(item.encoded_len());
        item.encode(dst)
            .map_err(|e| Status::internal(format!("failed to encode protobuf message: {e}")))
    }

    fn decode(&mut self, src: Bytes) -> Result<D, Status> {
        D::decode(src)
            .map_err(|e| Status::internal(format!("failed to decode protobuf message: {e}")))
    }
}

/// A codec passing raw message bytes through untouched (for proxies and
/// tools that don't know the message types).
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Status> {
        dst.extend_from_slice(&item);
        Ok(())
    }

    fn decode(&mut self, src: Bytes) -> Result<Bytes, Status> {
        Ok(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Pair {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(int32, tag = "2")]
        value: i32,
    }

    #[test]
    fn prost_round_trip() {
        let mut codec = ProstCodec::<Pair, Pair>::new();
        let mut buf = BytesMut::new();
        let msg = Pair {
            name: "x".into(),
            value: 7,
        };
        codec.encode(msg.clone(), &mut buf).unwrap();
        assert_eq!(codec.decode(buf.freeze()).unwrap(), msg);
    }

    #[test]
    fn invalid_protobuf_is_internal() {
        let mut codec = ProstCodec::<Pair, Pair>::new();
        let err = codec.decode(Bytes::from_static(b"\x0a\xff")).unwrap_err();
        assert_eq!(err.code(), Code::Internal);
    }
}
