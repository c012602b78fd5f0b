//! The fuzz targets of grpc-h3: every parser that reads bytes a peer
//! controls. Each target takes raw fuzzer input, must never panic, and
//! checks properties that hold for every input (chunking never changes a
//! result, encodings round-trip, limits are never exceeded).
//!
//! They run two ways:
//! - under libFuzzer, coverage-guided, on stable Rust:
//!   `cargo fuzz run -s none --features libfuzzer <target>` from `fuzz/`'s
//!   parent directory (see `fuzz/README.md`);
//! - as property tests in `cargo test`, on pseudo-random inputs
//!   (`tests/properties.rs`), so CI exercises them.

use arbitrary::Unstructured;
use bytes::Bytes;
use grpc_h3_core::compression::CompressionEncoding;
use grpc_h3_core::frame::FrameDecoder;
use grpc_h3_core::protocol;
use grpc_h3_core::timeout::{encode_timeout, parse_timeout};
use grpc_h3_core::{Code, EnabledEncodings, Metadata, Status};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// Up to eight chunk sizes (1..=`max`) taken from the front of the input.
fn chunk_sizes(u: &mut Unstructured<'_>, max: usize) -> Vec<usize> {
    let count = u.int_in_range(1..=8).unwrap_or(1);
    (0..count)
        .map(|_| u.int_in_range(1..=max).unwrap_or(1))
        .collect()
}

/// Up to `max` bytes from the input, length first.
fn slice<'a>(u: &mut Unstructured<'a>, max: usize) -> &'a [u8] {
    let len = u.int_in_range(0..=max).unwrap_or(0);
    u.bytes(len).unwrap_or_default()
}

/// What decoding a whole stream gives: its messages, then how it ended.
type Decoded = (Vec<Bytes>, Result<(), (Code, String)>);

fn decode(
    input: &[u8],
    sizes: &[usize],
    encoding: Option<CompressionEncoding>,
    limit: usize,
) -> Decoded {
    let mut decoder = FrameDecoder::new(encoding, limit);
    let mut messages = Vec::new();
    let mut pos = 0;
    let mut sizes = sizes.iter().cycle();
    while pos < input.len() {
        let end = (pos + sizes.next().copied().unwrap_or(input.len())).min(input.len());
        decoder.push(&input[pos..end]);
        pos = end;
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    assert!(message.len() <= limit, "a message over the limit");
                    messages.push(message);
                }
                Ok(None) => break,
                Err(status) => return (messages, Err((status.code(), status.message().into()))),
            }
        }
    }
    let end = decoder
        .finish()
        .map_err(|s| (s.code(), s.message().to_owned()));
    (messages, end)
}

/// The gRPC message framing (5-byte prefix, compressed flag, limits,
/// gzip): the same messages and the same outcome whatever the chunking.
pub fn frame_decoder(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let limit = u.int_in_range(0..=64 * 1024).unwrap_or(1024);
    let gzip = u.arbitrary::<bool>().unwrap_or(false);
    let sizes = chunk_sizes(&mut u, 64);
    let input = u.take_rest();
    let encoding = gzip.then_some(CompressionEncoding::Gzip);
    let whole = decode(input, &[input.len().max(1)], encoding, limit);
    let chunked = decode(input, &sizes, encoding, limit);
    assert_eq!(whole, chunked, "chunking changed the result");
}

/// The HTTP/3 frame guard under h3 (request streams and unidirectional
/// streams): what it lets through, or refuses, matches a frame-by-frame
/// reference whatever the chunking, and it never holds more than a frame
/// header.
pub fn http3_frames(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let limit = u.int_in_range(0..=4096).unwrap_or(1024);
    let unidirectional = u.arbitrary::<bool>().unwrap_or(false);
    let sizes = chunk_sizes(&mut u, 64);
    grpc_h3::fuzzing::frame_guard(u.take_rest(), &sizes, limit, unidirectional);
}

/// `grpc-timeout`: parsing never panics, and what it accepts re-encodes
/// within eight digits without ever shortening the deadline.
pub fn grpc_timeout(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(timeout) = parse_timeout(&text) {
        let encoded = encode_timeout(timeout);
        assert!(encoded.len() <= 9, "{encoded}");
        let back = parse_timeout(&encoded).expect("our own encoding parses");
        assert!(
            back >= timeout,
            "{text} -> {encoded} shortened the deadline"
        );
    }
}

/// Header fields from the input: names and values each prefixed by a
/// length byte; invalid ones are skipped.
fn headers(u: &mut Unstructured<'_>) -> HeaderMap {
    let mut map = HeaderMap::new();
    while !u.is_empty() {
        let name = slice(u, 24);
        let value = slice(u, 48);
        let bin = u.arbitrary::<bool>().unwrap_or(false);
        let mut name = name.to_vec();
        if bin {
            name.extend_from_slice(b"-bin");
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Custom metadata from received headers (ASCII and `-bin`, padded or
/// not): never panics, survives a round trip through headers, and the
/// insert API refuses what it cannot carry instead of panicking.
pub fn metadata(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let key = String::from_utf8_lossy(slice(&mut u, 16)).into_owned();
    let value = slice(&mut u, 32).to_vec();
    let mut inserted = Metadata::new();
    if inserted.insert_bin(&key, &value).is_ok() {
        assert_eq!(
            inserted.get_bin(&key).map(|r| r.map(|b| b.to_vec())),
            Some(Ok(value.clone()))
        );
    }
    if let Ok(text) = std::str::from_utf8(&value) {
        if inserted.insert(&key, text).is_ok() {
            assert_eq!(inserted.get(&key), Some(text));
        }
    }

    let received = Metadata::from_headers(&headers(&mut u));
    for (key, _) in received.iter() {
        if key.ends_with("-bin") {
            let _ = received.get_bin(key);
        }
    }
    let again = Metadata::from_headers(&received.clone().into_headers());
    let entries = |m: &Metadata| {
        m.iter()
            .map(|(k, v)| (k.to_owned(), format!("{v:?}")))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        entries(&received),
        entries(&again),
        "a header round trip changed metadata"
    );
}

/// `grpc-status`, percent-encoded `grpc-message` and
/// `grpc-status-details-bin` in trailers: any bytes read without a panic,
/// and any status we write reads back the same.
pub fn status(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut trailers = HeaderMap::new();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        if let Ok(value) = HeaderValue::from_bytes(slice(&mut u, 64)) {
            trailers.insert(name, value);
        }
    }
    let _ = Status::from_trailers(&trailers);
    let _ = protocol::parse_trailers(Some(&trailers));

    let code = Code::from_i32(u.int_in_range(0..=16).unwrap_or(2));
    let message = String::from_utf8_lossy(slice(&mut u, 64)).into_owned();
    let details = Bytes::copy_from_slice(u.take_rest());
    let status = Status::with_details(code, message.clone(), details.clone());
    let mut written = HeaderMap::new();
    status.write_trailers(&mut written);
    let read = Status::from_trailers(&written).expect("our own trailers parse");
    assert_eq!(read.code(), code);
    assert_eq!(read.message(), message, "grpc-message did not round-trip");
    assert_eq!(read.details(), &details[..]);
}

/// Request and response heads: validation and classification never panic,
/// whatever the method, path, status and headers.
pub fn heads(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let method = Method::from_bytes(slice(&mut u, 8)).unwrap_or(Method::POST);
    let path = String::from_utf8_lossy(slice(&mut u, 32)).into_owned();
    let status =
        StatusCode::from_u16(u.int_in_range(100..=999).unwrap_or(200)).unwrap_or(StatusCode::OK);
    let headers = headers(&mut u);
    if let Ok(head) = protocol::parse_request(&method, &path, &headers, EnabledEncodings::all()) {
        assert_eq!(head.path.as_str(), path);
    }
    let _ = protocol::parse_response(status, &headers, EnabledEncodings::all());
}
