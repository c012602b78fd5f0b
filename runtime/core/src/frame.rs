//! Length-prefixed message framing: a flag byte (1 = compressed), a
//! big-endian `u32` length, then the message. Sans-IO: the encoder writes into
//! a buffer and the decoder is fed whatever chunks the transport receives.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::Codec;
use crate::compression::{self, CompressionEncoding};
use crate::Status;

/// Size of the prefix in front of every message.
pub const HEADER_LEN: usize = 5;

/// Default limit on a received message: 4 MiB.
pub const DEFAULT_MAX_DECODING_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Default limit on a sent message: the largest a frame can describe.
pub const DEFAULT_MAX_ENCODING_MESSAGE_SIZE: usize = u32::MAX as usize;

pub(crate) fn too_large(what: &str, len: u64, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "{what} of {len} bytes exceeds the limit of {limit} bytes; raise it with max_decoding_message_size / max_encoding_message_size"
    ))
}

/// Room reserved when an appending encoder runs out: small messages share
/// one allocation across frames.
const APPEND_RESERVE: usize = 8 * 1024;
/// Below this much room, an appending encoder reserves more before it
/// encodes (a message that does not fit grows the buffer itself).
const APPEND_ROOM: usize = 512;

/// Turns messages into frames.
#[derive(Debug)]
pub struct FrameEncoder {
    compression: Option<CompressionEncoding>,
    max_message_size: usize,
    buf: BytesMut,
    scratch: BytesMut,
}

impl FrameEncoder {
    /// An encoder compressing with `compression` (if any) and refusing
    /// messages larger than `max_message_size` with RESOURCE_EXHAUSTED.
    pub fn new(compression: Option<CompressionEncoding>, max_message_size: usize) -> FrameEncoder {
        FrameEncoder {
            compression,
            max_message_size: max_message_size.min(DEFAULT_MAX_ENCODING_MESSAGE_SIZE),
            buf: BytesMut::new(),
            scratch: BytesMut::new(),
        }
    }

    /// The encoding applied to every message.
    pub fn compression(&self) -> Option<CompressionEncoding> {
        self.compression
    }

    /// Encodes one message into a complete frame.
    pub fn encode<C: Codec>(&mut self, codec: &mut C, item: C::Encode) -> Result<Bytes, Status> {
        self.append_frame(codec, item)?;
        Ok(self.take())
    }

    /// Encodes one message as a frame after the ones already buffered, so
    /// that several small messages leave as one piece of memory (see
    /// [`take`](Self::take)). On error nothing is added.
    pub fn append<C: Codec>(&mut self, codec: &mut C, item: C::Encode) -> Result<(), Status> {
        if self.buf.capacity() - self.buf.len() < APPEND_ROOM {
            // Frames taken earlier are slices of one allocation: the next
            // ones go into what is left of it, and a new one (or the old
            // one, once everything taken from it has been sent) comes only
            // when it runs out.
            self.buf.reserve(APPEND_RESERVE);
        }
        self.append_frame(codec, item)
    }

    fn append_frame<C: Codec>(&mut self, codec: &mut C, item: C::Encode) -> Result<(), Status> {
        let start = self.buf.len();
        self.buf.reserve(HEADER_LEN);
        self.buf.put_bytes(0, HEADER_LEN);
        let compression = self.compression.filter(|_| codec.compress(&item));
        let encoded = match compression {
            None => codec.encode(item, &mut self.buf).map(|()| 0),
            Some(encoding) => {
                self.scratch.clear();
                codec
                    .encode(item, &mut self.scratch)
                    .and_then(|()| compression::compress(encoding, &self.scratch, &mut self.buf))
                    .map(|()| 1)
            }
        };
        let flag = match encoded {
            Ok(flag) => flag,
            Err(status) => {
                self.buf.truncate(start);
                return Err(status);
            }
        };
        let len = self.buf.len() - start - HEADER_LEN;
        if len > self.max_message_size {
            self.buf.truncate(start);
            return Err(too_large("message", len as u64, self.max_message_size));
        }
        self.buf[start] = flag;
        self.buf[start + 1..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    /// Bytes of the frames appended and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The frames appended since the last call, as one buffer.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

/// Turns a received byte stream back into messages.
///
/// ```
/// use grpc_h3_core::frame::FrameDecoder;
/// let mut decoder = FrameDecoder::new(None, 1024);
/// decoder.push(&[0, 0, 0, 0, 3, b'a'][..]);
/// assert!(decoder.next_message().unwrap().is_none());
/// decoder.push(&b"bc"[..]);
/// assert_eq!(&decoder.next_message().unwrap().unwrap()[..], b"abc");
/// assert!(decoder.finish().is_ok());
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    pending: Option<(bool, usize)>,
    last_compressed: bool,
    encoding: Option<CompressionEncoding>,
    max_message_size: usize,
}

impl FrameDecoder {
    /// A decoder for a stream whose `grpc-encoding` was `encoding`, refusing
    /// messages larger than `max_message_size`.
    pub fn new(encoding: Option<CompressionEncoding>, max_message_size: usize) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            pending: None,
            last_compressed: false,
            encoding,
            max_message_size,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, mut data: impl Buf) {
        while data.has_remaining() {
            let chunk = data.chunk();
            self.buf.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }

    /// Whether the last message returned had the compressed flag set.
    pub fn last_message_compressed(&self) -> bool {
        self.last_compressed
    }

    /// Bytes buffered but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, decompressed, or `None` if more bytes are
    /// needed. A length above the limit is refused as soon as its prefix
    /// arrives, before the body is buffered.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        let (compressed, len) = match self.pending {
            Some(header) => header,
            None => {
                if self.buf.len() < HEADER_LEN {
                    return Ok(None);
                }
                let flag = self.buf[0];
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                let compressed = match flag {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(Status::internal(format!(
                            "invalid message flag {other:#04x}: only 0 (uncompressed) and 1 (compressed) are defined"
                        )))
                    }
                };
                if compressed && self.encoding.is_none() {
                    return Err(Status::internal(
                        "received a compressed message but the stream has no grpc-encoding",
                    ));
                }
                if len as usize > self.max_message_size {
                    return Err(too_large("message", len.into(), self.max_message_size));
                }
                self.buf.advance(HEADER_LEN);
                let header = (compressed, len as usize);
                self.pending = Some(header);
                header
            }
        };
        if self.buf.len() < len {
            self.buf.reserve(len - self.buf.len());
            return Ok(None);
        }
        self.pending = None;
        self.last_compressed = compressed;
        let payload = self.buf.split_to(len).freeze();
        match (compressed, self.encoding) {
            (true, Some(encoding)) => {
                let mut out = BytesMut::new();
                compression::decompress(encoding, &payload, &mut out, self.max_message_size)?;
                Ok(Some(out.freeze()))
            }
            _ => Ok(Some(payload)),
        }
    }

    /// Called at the end of the stream: leftover bytes mean the peer sent a
    /// truncated message, which is INTERNAL.
    pub fn finish(&self) -> Result<(), Status> {
        if self.pending.is_some() || !self.buf.is_empty() {
            // A body is pending (its header consumed), or the buffer holds
            // a header that was not read yet, or only part of one.
            let missing = match self.pending {
                Some((_, len)) => len.saturating_sub(self.buf.len()),
                None if self.buf.len() >= HEADER_LEN => {
                    let len =
                        u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                    (len as usize).saturating_sub(self.buf.len() - HEADER_LEN)
                }
                None => HEADER_LEN - self.buf.len(),
            };
            return Err(Status::internal(format!(
                "stream ended in the middle of a message ({missing} bytes missing)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::BytesCodec;
    use crate::Code;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut enc = FrameEncoder::new(None, usize::MAX);
        enc.encode(&mut BytesCodec, Bytes::copy_from_slice(payload))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn messages_split_across_and_merged_within_chunks() {
        let mut wire = frame(b"first");
        wire.extend(frame(b""));
        wire.extend(frame(&[7u8; 300]));
        // Feed one byte at a time, then everything at once.
        let mut dec = FrameDecoder::new(None, 1024);
        let mut got = Vec::new();
        for b in &wire {
            dec.push(&[*b][..]);
            while let Some(m) = dec.next_message().unwrap() {
                got.push(m);
            }
        }
        dec.finish().unwrap();
        assert_eq!(got, [&b"first"[..], b"", &[7u8; 300][..]]);

        let mut dec = FrameDecoder::new(None, 1024);
        dec.push(&wire[..]);
        assert_eq!(&dec.next_message().unwrap().unwrap()[..], b"first");
        assert_eq!(dec.next_message().unwrap().unwrap().len(), 0);
        assert_eq!(dec.next_message().unwrap().unwrap().len(), 300);
        assert!(dec.next_message().unwrap().is_none());
    }

    #[test]
    fn header_layout() {
        assert_eq!(frame(b"ab"), [0, 0, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn oversize_prefix_is_refused_before_buffering() {
        let mut dec = FrameDecoder::new(None, 4 << 20);
        dec.push(&[0, 0xff, 0xff, 0xff, 0xff][..]);
        let err = dec.next_message().unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(err.message().contains("4294967295"), "{}", err.message());
    }

    #[test]
    fn oversize_encode_is_resource_exhausted() {
        let mut enc = FrameEncoder::new(None, 3);
        let err = enc
            .encode(&mut BytesCodec, Bytes::from_static(b"abcd"))
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        // The encoder stays usable.
        assert_eq!(
            enc.encode(&mut BytesCodec, Bytes::from_static(b"abc"))
                .unwrap()
                .len(),
            8
        );
    }

    #[test]
    fn appended_frames_are_taken_together_and_a_refused_one_leaves_no_trace() {
        let mut enc = FrameEncoder::new(None, 4);
        enc.append(&mut BytesCodec, Bytes::from_static(b"ab"))
            .unwrap();
        let refused = enc.append(&mut BytesCodec, Bytes::from_static(b"abcde"));
        assert_eq!(refused.unwrap_err().code(), Code::ResourceExhausted);
        enc.append(&mut BytesCodec, Bytes::from_static(b""))
            .unwrap();
        assert_eq!(enc.buffered(), 7 + 5);
        let mut wire = frame(b"ab");
        wire.extend(frame(b""));
        assert_eq!(&enc.take()[..], &wire[..]);
        assert_eq!(enc.buffered(), 0);
        assert_eq!(
            &enc.encode(&mut BytesCodec, Bytes::from_static(b"x"))
                .unwrap()[..],
            &frame(b"x")[..]
        );
    }

    #[test]
    fn small_frames_taken_one_by_one_are_slices_of_one_allocation() {
        let mut enc = FrameEncoder::new(None, 1024);
        enc.append(&mut BytesCodec, Bytes::from_static(b"first"))
            .unwrap();
        let first = enc.take();
        enc.append(&mut BytesCodec, Bytes::from_static(b"second"))
            .unwrap();
        let second = enc.take();
        assert_eq!(&second[..], &frame(b"second")[..]);
        // Carved from the same allocation, right after the first frame.
        assert_eq!(second.as_ptr(), first[first.len()..].as_ptr());
    }

    #[test]
    fn truncated_stream_is_internal() {
        for cut in [1, 4, 5, 8] {
            let wire = frame(b"hello");
            let mut dec = FrameDecoder::new(None, 1024);
            dec.push(&wire[..cut]);
            assert!(dec.next_message().unwrap().is_none());
            assert_eq!(
                dec.finish().unwrap_err().code(),
                Code::Internal,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn truncation_after_many_body_bytes_reports_what_is_missing() {
        // The header is consumed and six or more body bytes are buffered:
        // computing the missing count must not underflow.
        let wire = frame(&[1; 100]);
        let mut dec = FrameDecoder::new(None, 1024);
        dec.push(&wire[..5 + 60]);
        assert!(dec.next_message().unwrap().is_none());
        let err = dec.finish().unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(
            err.message().contains("40 bytes missing"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn compressed_flag_without_encoding_is_internal() {
        let mut dec = FrameDecoder::new(None, 1024);
        dec.push(&[1, 0, 0, 0, 1, 0][..]);
        let err = dec.next_message().unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(err.message().contains("grpc-encoding"));
    }

    #[test]
    fn unknown_flag_is_internal() {
        let mut dec = FrameDecoder::new(None, 1024);
        dec.push(&[2, 0, 0, 0, 0][..]);
        assert_eq!(dec.next_message().unwrap_err().code(), Code::Internal);
    }

    /// Compresses only messages longer than 3 bytes.
    struct Picky;

    impl Codec for Picky {
        type Encode = Bytes;
        type Decode = Bytes;
        fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Status> {
            dst.extend_from_slice(&item);
            Ok(())
        }
        fn decode(&mut self, src: Bytes) -> Result<Bytes, Status> {
            Ok(src)
        }
        fn compress(&mut self, item: &Bytes) -> bool {
            item.len() > 3
        }
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn compression_can_be_switched_per_message() {
        let gzip = Some(CompressionEncoding::Gzip);
        let mut enc = FrameEncoder::new(gzip, usize::MAX);
        let small = enc.encode(&mut Picky, Bytes::from_static(b"abc")).unwrap();
        let large = enc
            .encode(&mut Picky, Bytes::from_static(b"abcdefgh"))
            .unwrap();
        assert_eq!((small[0], large[0]), (0, 1));
        let mut dec = FrameDecoder::new(gzip, 100);
        dec.push(small);
        dec.push(large);
        assert_eq!(&dec.next_message().unwrap().unwrap()[..], b"abc");
        assert!(!dec.last_message_compressed());
        assert_eq!(&dec.next_message().unwrap().unwrap()[..], b"abcdefgh");
        assert!(dec.last_message_compressed());
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn compressed_round_trip_and_limits() {
        let gzip = Some(CompressionEncoding::Gzip);
        let payload = Bytes::from(vec![b'z'; 10_000]);
        let mut enc = FrameEncoder::new(gzip, usize::MAX);
        let wire = enc.encode(&mut BytesCodec, payload.clone()).unwrap();
        assert_eq!(wire[0], 1);
        assert!(wire.len() < 1_000);

        let mut dec = FrameDecoder::new(gzip, 10_000);
        dec.push(wire.clone());
        assert_eq!(dec.next_message().unwrap().unwrap(), payload);

        let mut dec = FrameDecoder::new(gzip, 9_999);
        dec.push(wire);
        assert_eq!(
            dec.next_message().unwrap_err().code(),
            Code::ResourceExhausted
        );
    }
}
