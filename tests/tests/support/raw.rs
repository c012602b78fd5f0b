//! Byte-level HTTP/3 over quinn, for sending what no HTTP/3 library would:
//! frames of any type and size, empty DATA frames, partial headers. Header
//! blocks use QPACK literals only (no table, no Huffman), which every
//! decoder must accept.

use std::sync::Arc;

use grpc_h3::tls::DevCertificate;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub const DATA: u64 = 0x0;
pub const HEADERS: u64 = 0x1;
pub const SETTINGS: u64 = 0x4;
pub const GOAWAY: u64 = 0x7;
pub const REQUEST_REJECTED: u32 = 0x10b;
pub const REQUEST_CANCELLED: u32 = 0x10c;
pub const EXCESSIVE_LOAD: u32 = 0x107;

/// A QUIC variable-length integer.
pub fn varint(value: u64) -> Vec<u8> {
    match value {
        0..=63 => vec![value as u8],
        64..=16383 => (value as u16 | 0x4000).to_be_bytes().to_vec(),
        16384..=1_073_741_823 => (value as u32 | 0x8000_0000).to_be_bytes().to_vec(),
        _ => (value | 0xc000_0000_0000_0000).to_be_bytes().to_vec(),
    }
}

/// An HTTP/3 frame.
pub fn frame(frame_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(frame_type);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

/// An HPACK/QPACK prefixed integer with an `n`-bit prefix under `flags`.
fn prefixed_int(out: &mut Vec<u8>, n: u32, flags: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A QPACK field section of literal fields with literal names.
pub fn qpack(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![0x00, 0x00]; // Required Insert Count 0, Base 0
    for (name, value) in fields {
        prefixed_int(&mut out, 3, 0b0010_0000, name.len());
        out.extend_from_slice(name.as_bytes());
        prefixed_int(&mut out, 7, 0, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The HEADERS frame of a gRPC request for `path`.
pub fn request_headers(path: &str) -> Vec<u8> {
    frame(
        HEADERS,
        &qpack(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]),
    )
}

/// A DATA frame carrying one uncompressed gRPC message.
pub fn data_message(message: &[u8]) -> Vec<u8> {
    frame(DATA, &super::frame(0, message))
}

/// Everything a peer sent on a stream: its frames up to the FIN, or the
/// code it reset the stream with.
pub async fn read_frames(recv: &mut quinn::RecvStream) -> Result<Vec<(u64, Vec<u8>)>, u32> {
    let mut bytes = Vec::new();
    loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk.bytes),
            Ok(None) => break,
            Err(quinn::ReadError::Reset(code)) => return Err(code.into_inner() as u32),
            Err(other) => panic!("reading a raw stream failed: {other}"),
        }
    }
    Ok(parse_frames(&bytes))
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let first = bytes[*pos];
    let len = 1 << (first >> 6);
    let mut value = u64::from(first & 0x3f);
    for byte in &bytes[*pos + 1..*pos + len] {
        value = (value << 8) | u64::from(*byte);
    }
    *pos += len;
    value
}

/// The value of a varint at the start of `bytes`.
pub fn parse_varint(bytes: &[u8]) -> u64 {
    read_varint(bytes, &mut 0)
}

/// The complete frames at the start of `bytes` (a partial one at the end is
/// left out).
pub fn parse_frames_partial(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut pos = 0;
    let complete = |pos: usize| pos < bytes.len() && pos + (1 << (bytes[pos] >> 6)) <= bytes.len();
    while complete(pos) {
        let mut at = pos;
        let frame_type = read_varint(bytes, &mut at);
        if !complete(at) {
            break;
        }
        let len = read_varint(bytes, &mut at) as usize;
        if at + len > bytes.len() {
            break;
        }
        frames.push((frame_type, bytes[at..at + len].to_vec()));
        pos = at + len;
    }
    frames
}

/// Splits a received byte string into frames.
pub fn parse_frames(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let frame_type = read_varint(bytes, &mut pos);
        let len = read_varint(bytes, &mut pos) as usize;
        frames.push((frame_type, bytes[pos..pos + len].to_vec()));
        pos += len;
    }
    frames
}

/// The gRPC messages in the DATA frames of `frames`.
pub fn messages(frames: &[(u64, Vec<u8>)]) -> Vec<Vec<u8>> {
    let body: Vec<u8> = frames
        .iter()
        .filter(|(t, _)| *t == DATA)
        .flat_map(|(_, p)| p.clone())
        .collect();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 5 <= body.len() {
        let len = u32::from_be_bytes(body[pos + 1..pos + 5].try_into().unwrap()) as usize;
        out.push(body[pos + 5..pos + 5 + len].to_vec());
        pos += 5 + len;
    }
    out
}

/// A server that speaks HTTP/3 a byte at a time: it sets up the control
/// stream and leaves every request stream to the test.
pub struct RawServer {
    pub endpoint: quinn::Endpoint,
    pub cert_pem: String,
}

/// One connection to a [`RawServer`].
pub struct RawConnection {
    pub conn: quinn::Connection,
    pub control: quinn::SendStream,
}

impl RawServer {
    pub fn bind() -> RawServer {
        let cert = DevCertificate::localhost().unwrap();
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem().as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem().as_bytes()).unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        RawServer {
            endpoint,
            cert_pem: cert.cert_pem().to_owned(),
        }
    }

    pub fn port(&self) -> u16 {
        self.endpoint.local_addr().unwrap().port()
    }

    /// Accepts a connection: sends an empty SETTINGS on a control stream
    /// and reads (and ignores) the client's unidirectional streams.
    pub async fn accept(&self) -> RawConnection {
        let conn = self.endpoint.accept().await.unwrap().await.unwrap();
        let mut control = conn.open_uni().await.unwrap();
        let mut setup = varint(0x00);
        setup.extend(frame(SETTINGS, &[]));
        control.write_all(&setup).await.unwrap();
        let drain = conn.clone();
        tokio::spawn(async move {
            while let Ok(mut uni) = drain.accept_uni().await {
                tokio::spawn(async move {
                    while let Ok(Some(_)) = uni.read_chunk(usize::MAX, true).await {}
                });
            }
        });
        RawConnection { conn, control }
    }
}

impl RawConnection {
    /// The next request stream, after reading its request through the FIN.
    pub async fn next_request(
        &self,
    ) -> (quinn::SendStream, quinn::RecvStream, Vec<(u64, Vec<u8>)>) {
        let (send, mut recv) = self.conn.accept_bi().await.unwrap();
        let frames = read_frames(&mut recv).await.unwrap_or_default();
        (send, recv, frames)
    }

    /// Sends a GOAWAY announcing `id` as the first unprocessed stream.
    pub async fn goaway(&mut self, id: u64) {
        self.control
            .write_all(&frame(GOAWAY, &varint(id)))
            .await
            .unwrap();
    }
}

/// The HEADERS of a gRPC response with messages.
pub fn response_headers() -> Vec<u8> {
    frame(
        HEADERS,
        &qpack(&[(":status", "200"), ("content-type", "application/grpc")]),
    )
}

/// The trailers ending a response with `grpc-status` `code`.
pub fn response_trailers(code: &str) -> Vec<u8> {
    frame(HEADERS, &qpack(&[("grpc-status", code)]))
}

/// Writes `bytes` and the FIN.
pub async fn write_and_finish(send: &mut quinn::SendStream, bytes: &[u8]) {
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    let _ = send.stopped().await;
}
