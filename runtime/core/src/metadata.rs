//! Custom metadata: the user-visible part of request headers, response
//! headers and trailers.
//!
//! Keys ending in `-bin` carry binary values, base64-encoded on the wire
//! (emitted without padding, accepted with or without). All other keys carry
//! printable ASCII. Keys owned by the protocol (`grpc-*`, pseudo headers and
//! HTTP connection headers) cannot be set.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Decodes standard base64 with or without padding, as gRPC requires.
const DECODE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Header names set by the protocol layer itself, never by users.
const RESERVED: &[&str] = &[
    "te",
    "content-type",
    "content-length",
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Encodes a binary metadata value as unpadded standard base64.
pub(crate) fn encode_binary(value: &[u8]) -> HeaderValue {
    let encoded = STANDARD_NO_PAD.encode(value);
    HeaderValue::from_str(&encoded).expect("base64 output is a valid header value")
}

/// Decodes a binary metadata value, padded or not.
pub(crate) fn decode_binary(value: &[u8]) -> Result<Bytes, base64::DecodeError> {
    DECODE_ANY_PADDING.decode(value).map(Bytes::from)
}

/// Why a metadata key or value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataError {
    /// The key has characters outside `a-z 0-9 - _ .`, or is empty.
    InvalidKey(String),
    /// The key belongs to the protocol (`grpc-*`, `:pseudo`, `te`, ...).
    ReservedKey(String),
    /// An ASCII value was given for a `-bin` key, or a binary value for an
    /// ASCII key.
    WrongKeyKind(String),
    /// An ASCII value contains bytes outside printable ASCII (0x20..=0x7E).
    InvalidValue(String),
    /// A received `-bin` value is not valid base64.
    InvalidBase64(String),
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataError::InvalidKey(k) => write!(
                f,
                "invalid metadata key {k:?}: use a non-empty key made of lowercase a-z, 0-9, '-', '_' and '.'"
            ),
            MetadataError::ReservedKey(k) => write!(
                f,
                "metadata key {k:?} is reserved for the protocol (grpc-*, pseudo and connection headers): pick another key"
            ),
            MetadataError::WrongKeyKind(k) if k.ends_with("-bin") => write!(
                f,
                "metadata key {k:?} ends in -bin and carries binary data: use insert_bin/append_bin"
            ),
            MetadataError::WrongKeyKind(k) => write!(
                f,
                "metadata key {k:?} carries ASCII: binary values need a key ending in -bin"
            ),
            MetadataError::InvalidValue(k) => write!(
                f,
                "metadata value for {k:?} must be printable ASCII (0x20-0x7E): use a -bin key for other bytes"
            ),
            MetadataError::InvalidBase64(k) => {
                write!(f, "metadata value for {k:?} is not valid base64")
            }
        }
    }
}

impl std::error::Error for MetadataError {}

/// A value read from [`Metadata::iter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataValue<'a> {
    /// The value of an ASCII key.
    Ascii(&'a str),
    /// The decoded value of a `-bin` key.
    Binary(Bytes),
}

/// A multimap of custom metadata.
///
/// ```
/// use grpc_h3_core::Metadata;
/// let mut md = Metadata::new();
/// md.insert("authorization", "Bearer secret").unwrap();
/// md.insert_bin("trace-bin", [0u8, 1, 2]).unwrap();
/// assert_eq!(md.get("authorization"), Some("Bearer secret"));
/// assert_eq!(&md.get_bin("trace-bin").unwrap().unwrap()[..], &[0, 1, 2]);
/// assert!(md.insert("grpc-status", "0").is_err());
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Metadata {
    headers: HeaderMap,
}

/// `grpc-` headers that carry application data and travel as metadata:
/// trace context and census tags, which tracing systems propagate; a
/// server's retry pushback (set in a failing status's metadata) and the
/// count of earlier attempts (read by handlers), as gRFC A6 has them.
const GRPC_METADATA: &[&str] = &[
    "grpc-trace-bin",
    "grpc-tags-bin",
    "grpc-retry-pushback-ms",
    "grpc-previous-rpc-attempts",
];

/// Whether a header belongs to the protocol rather than to the
/// application's metadata.
pub fn is_reserved(key: &str) -> bool {
    (key.starts_with("grpc-") && !GRPC_METADATA.contains(&key))
        || key.starts_with(':')
        || RESERVED.contains(&key)
}

fn checked_key(key: &str, binary: bool) -> Result<HeaderName, MetadataError> {
    if is_reserved(key) {
        return Err(MetadataError::ReservedKey(key.to_owned()));
    }
    let valid_chars = key
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'));
    if key.is_empty() || !valid_chars {
        return Err(MetadataError::InvalidKey(key.to_owned()));
    }
    if key.ends_with("-bin") != binary {
        return Err(MetadataError::WrongKeyKind(key.to_owned()));
    }
    HeaderName::from_bytes(key.as_bytes()).map_err(|_| MetadataError::InvalidKey(key.to_owned()))
}

fn checked_ascii_value(key: &str, value: &str) -> Result<HeaderValue, MetadataError> {
    if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(MetadataError::InvalidValue(key.to_owned()));
    }
    HeaderValue::from_str(value).map_err(|_| MetadataError::InvalidValue(key.to_owned()))
}

impl Metadata {
    /// An empty metadata map.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Number of values (a key with two values counts twice).
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether there is no metadata at all.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Sets an ASCII value, replacing any previous values of `key`.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), MetadataError> {
        let name = checked_key(key, false)?;
        let value = checked_ascii_value(key, value)?;
        self.headers.insert(name, value);
        Ok(())
    }

    /// Adds an ASCII value, keeping previous values of `key`.
    pub fn append(&mut self, key: &str, value: &str) -> Result<(), MetadataError> {
        let name = checked_key(key, false)?;
        let value = checked_ascii_value(key, value)?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Sets a binary value for a key ending in `-bin`, replacing previous
    /// values.
    pub fn insert_bin(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<(), MetadataError> {
        let name = checked_key(key, true)?;
        self.headers.insert(name, encode_binary(value.as_ref()));
        Ok(())
    }

    /// Adds a binary value for a key ending in `-bin`, keeping previous values.
    pub fn append_bin(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<(), MetadataError> {
        let name = checked_key(key, true)?;
        self.headers.append(name, encode_binary(value.as_ref()));
        Ok(())
    }

    /// Adds a value written as it travels on the wire, as tools take it
    /// from a user: base64 (padded or not) for a key ending in `-bin`,
    /// decoded; plain ASCII otherwise. Keeps previous values of `key`.
    ///
    /// ```
    /// let mut metadata = grpc_h3_core::Metadata::new();
    /// metadata.append_wire("trace-bin", "AAEC").unwrap();
    /// metadata.append_wire("trace-bin", "AAE=").unwrap();
    /// metadata.append_wire("tenant", "acme").unwrap();
    /// let values: Vec<_> = metadata.get_all_bin("trace-bin").map(Result::unwrap).collect();
    /// assert_eq!(values, [&[0u8, 1, 2][..], &[0, 1][..]]);
    /// ```
    pub fn append_wire(&mut self, key: &str, value: &str) -> Result<(), MetadataError> {
        if key.ends_with("-bin") {
            let bytes = decode_binary(value.as_bytes())
                .map_err(|_| MetadataError::InvalidBase64(key.to_owned()))?;
            self.append_bin(key, bytes)
        } else {
            self.append(key, value)
        }
    }

    /// The first ASCII value of `key`, if present and printable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    /// All ASCII values of `key`.
    pub fn get_all<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
    }

    /// The first decoded value of the `-bin` key `key`.
    pub fn get_bin(&self, key: &str) -> Option<Result<Bytes, MetadataError>> {
        self.get_all_bin(key).next()
    }

    /// All decoded values of the `-bin` key `key`. A header holding several
    /// comma-separated base64 values yields each one.
    pub fn get_all_bin<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Iterator<Item = Result<Bytes, MetadataError>> + 'a {
        self.headers.get_all(key).iter().flat_map(move |v| {
            v.as_bytes().split(|b| *b == b',').map(move |part| {
                decode_binary(part.trim_ascii())
                    .map_err(|_| MetadataError::InvalidBase64(key.to_owned()))
            })
        })
    }

    /// Removes every value of `key`; returns whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        self.headers.remove(key).is_some()
    }

    /// Every key and value, with `-bin` values decoded. Values that cannot be
    /// decoded are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&str, MetadataValue<'_>)> + '_ {
        self.headers.iter().filter_map(|(k, v)| {
            let key = k.as_str();
            let value = if key.ends_with("-bin") {
                MetadataValue::Binary(decode_binary(v.as_bytes()).ok()?)
            } else {
                MetadataValue::Ascii(v.to_str().ok()?)
            };
            Some((key, value))
        })
    }

    /// Takes the custom metadata out of received headers, leaving out every
    /// protocol-owned header.
    pub fn from_headers(headers: &HeaderMap) -> Metadata {
        // Most calls carry no custom metadata: an empty map allocates
        // nothing, so size it only once the first entry turns up.
        let mut out = HeaderMap::new();
        for (name, value) in headers {
            if !is_reserved(name.as_str()) {
                if out.is_empty() {
                    out.reserve(headers.len());
                }
                out.append(name.clone(), value.clone());
            }
        }
        Metadata { headers: out }
    }

    /// Appends this metadata to outgoing headers.
    pub fn write_into(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
    }

    /// Replaces the custom metadata in `headers` with this metadata, leaving
    /// the protocol's headers alone (what an interceptor's changes come
    /// back as).
    pub fn replace_in(&self, headers: &mut HeaderMap) {
        let custom: Vec<HeaderName> = headers
            .keys()
            .filter(|name| !is_reserved(name.as_str()))
            .cloned()
            .collect();
        for name in custom {
            headers.remove(&name);
        }
        self.write_into(headers);
    }

    /// Consumes the metadata into the header map that holds it.
    pub fn into_headers(self) -> HeaderMap {
        self.headers
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.headers.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_are_emitted_unpadded_and_read_either_way() {
        let mut md = Metadata::new();
        md.insert_bin("blob-bin", b"\x01").unwrap();
        assert_eq!(md.headers.get("blob-bin").unwrap(), "AQ");

        let mut headers = HeaderMap::new();
        headers.append("a-bin", HeaderValue::from_static("AQ=="));
        headers.append("a-bin", HeaderValue::from_static("AQI"));
        headers.append("a-bin", HeaderValue::from_static("AQ, AgM="));
        let md = Metadata::from_headers(&headers);
        let values: Vec<_> = md.get_all_bin("a-bin").map(Result::unwrap).collect();
        assert_eq!(values, [&[1][..], &[1, 2], &[1], &[2, 3]]);
    }

    #[test]
    fn invalid_base64_is_an_error_not_a_panic() {
        let mut headers = HeaderMap::new();
        headers.insert("a-bin", HeaderValue::from_static("!!!"));
        let md = Metadata::from_headers(&headers);
        assert!(matches!(
            md.get_bin("a-bin"),
            Some(Err(MetadataError::InvalidBase64(_)))
        ));
    }

    #[test]
    fn reserved_and_invalid_keys_are_refused() {
        let mut md = Metadata::new();
        for key in ["grpc-status", "grpc-timeout", ":path", "te", "content-type"] {
            assert_eq!(
                md.insert(key, "x"),
                Err(MetadataError::ReservedKey(key.into()))
            );
        }
        for key in ["", "Upper", "sp ace", "ü", "new\nline"] {
            assert_eq!(
                md.insert(key, "x"),
                Err(MetadataError::InvalidKey(key.into()))
            );
        }
        assert!(matches!(
            md.insert("x-bin", "x"),
            Err(MetadataError::WrongKeyKind(_))
        ));
        assert!(matches!(
            md.insert_bin("x", b"x"),
            Err(MetadataError::WrongKeyKind(_))
        ));
        assert!(matches!(
            md.insert("x", "tab\there"),
            Err(MetadataError::InvalidValue(_))
        ));
        assert!(matches!(
            md.insert("x", "é"),
            Err(MetadataError::InvalidValue(_))
        ));
        assert!(md.is_empty());
        let err = MetadataError::ReservedKey("grpc-x".into()).to_string();
        assert!(err.contains("pick another key"), "{err}");
    }

    #[test]
    fn from_headers_drops_protocol_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_static("1S"));
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("x-user", HeaderValue::from_static("alice"));
        let md = Metadata::from_headers(&headers);
        assert_eq!(md.len(), 1);
        assert_eq!(md.get("x-user"), Some("alice"));
    }

    #[test]
    fn multiple_values_are_kept_in_order() {
        let mut md = Metadata::new();
        md.append("k", "1").unwrap();
        md.append("k", "2").unwrap();
        assert_eq!(md.get_all("k").collect::<Vec<_>>(), ["1", "2"]);
        md.insert("k", "3").unwrap();
        assert_eq!(md.get_all("k").collect::<Vec<_>>(), ["3"]);
        assert!(md.remove("k"));
        assert!(!md.remove("k"));
    }
}
