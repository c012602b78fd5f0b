//! gRPC status codes and the [`Status`] error type.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::metadata::{self, Metadata};
use crate::names;

/// Header carrying the numeric status code.
pub const GRPC_STATUS: &str = "grpc-status";
/// Header carrying the percent-encoded status message.
pub const GRPC_MESSAGE: &str = "grpc-message";
/// Header carrying the binary, serialized `google.rpc.Status` details.
pub const GRPC_STATUS_DETAILS_BIN: &str = "grpc-status-details-bin";

/// Bytes that must be percent-encoded in `grpc-message`: everything outside
/// 0x20..=0x7E (the crate always encodes non-ASCII) plus `%` itself.
const GRPC_MESSAGE_ENCODE: &AsciiSet = &CONTROLS.add(b'%');

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $ctor:ident, $text:literal; )*) => {
        /// The 17 canonical gRPC status codes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Code {
            $( $(#[$doc])* $name = $value, )*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: [Code; 17] = [$(Code::$name,)*];

            /// Maps a number to a code. Unknown numbers become [`Code::Unknown`],
            /// as the gRPC specification requires.
            pub fn from_i32(value: i32) -> Code {
                match value {
                    $( $value => Code::$name, )*
                    _ => Code::Unknown,
                }
            }

            /// A short human-readable description of the code.
            pub fn description(self) -> &'static str {
                match self {
                    $( Code::$name => $text, )*
                }
            }

            /// The `grpc-status` value for this code: a static string, so
            /// writing it allocates nothing.
            fn header_value(self) -> HeaderValue {
                match self {
                    $( Code::$name => HeaderValue::from_static(stringify!($value)), )*
                }
            }
        }

        impl Status {
            $(
                #[doc = concat!("A status with code [`Code::", stringify!($name), "`].")]
                pub fn $ctor(message: impl Into<String>) -> Status {
                    Status::new(Code::$name, message)
                }
            )*
        }
    };
}

codes! {
    /// Not an error; returned on success.
    Ok = 0, ok, "The operation completed successfully";
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1, cancelled, "The operation was cancelled";
    /// Unknown error.
    Unknown = 2, unknown, "Unknown error";
    /// The client specified an invalid argument.
    InvalidArgument = 3, invalid_argument, "Client specified an invalid argument";
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4, deadline_exceeded, "Deadline expired before operation could complete";
    /// Some requested entity was not found.
    NotFound = 5, not_found, "Some requested entity was not found";
    /// Some entity that we attempted to create already exists.
    AlreadyExists = 6, already_exists, "Some entity that we attempted to create already exists";
    /// The caller does not have permission to execute the operation.
    PermissionDenied = 7, permission_denied, "The caller does not have permission to execute the specified operation";
    /// Some resource has been exhausted.
    ResourceExhausted = 8, resource_exhausted, "Some resource has been exhausted";
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9, failed_precondition, "The system is not in a state required for the operation's execution";
    /// The operation was aborted.
    Aborted = 10, aborted, "The operation was aborted";
    /// The operation was attempted past the valid range.
    OutOfRange = 11, out_of_range, "Operation was attempted past the valid range";
    /// The operation is not implemented or not supported.
    Unimplemented = 12, unimplemented, "Operation is not implemented or not supported";
    /// Internal error.
    Internal = 13, internal, "Internal error";
    /// The service is currently unavailable; the call may be retried.
    Unavailable = 14, unavailable, "The service is currently unavailable";
    /// Unrecoverable data loss or corruption.
    DataLoss = 15, data_loss, "Unrecoverable data loss or corruption";
    /// The request lacks valid authentication credentials.
    Unauthenticated = 16, unauthenticated, "The request does not have valid authentication credentials";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The outcome of a gRPC call: a [`Code`], a message, optional binary details
/// and trailing metadata.
///
/// ```
/// use grpc_h3_core::{Code, Status};
/// let status = Status::not_found("user 42 does not exist");
/// assert_eq!(status.code(), Code::NotFound);
/// assert_eq!(status.message(), "user 42 does not exist");
/// ```
#[derive(Clone)]
pub struct Status {
    // Boxed so `Result<T, Status>` stays one pointer wide on hot paths.
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    code: Code,
    message: String,
    details: Bytes,
    metadata: Metadata,
}

impl Status {
    /// A status with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            inner: Box::new(Inner {
                code,
                message: message.into(),
                details: Bytes::new(),
                metadata: Metadata::new(),
            }),
        }
    }

    /// A status with binary details, sent as `grpc-status-details-bin`
    /// (conventionally a serialized `google.rpc.Status`).
    pub fn with_details(code: Code, message: impl Into<String>, details: Bytes) -> Status {
        let mut status = Status::new(code, message);
        status.inner.details = details;
        status
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.inner.code
    }

    /// The status message (already percent-decoded).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Binary details; empty when none were sent.
    pub fn details(&self) -> &[u8] {
        &self.inner.details
    }

    /// Trailing metadata sent along with this status.
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// Mutable access to the trailing metadata sent along with this status.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.inner.metadata
    }

    /// Replaces the trailing metadata and returns the status.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Status {
        self.inner.metadata = metadata;
        self
    }

    /// Writes `grpc-status`, `grpc-message`, details and the user metadata
    /// into a trailer (or Trailers-Only) header map.
    pub fn write_trailers(&self, headers: &mut HeaderMap) {
        headers.reserve(3 + self.inner.metadata.len());
        self.inner.metadata.write_into(headers);
        headers.insert(names::GRPC_STATUS, self.inner.code.header_value());
        if !self.inner.message.is_empty() {
            let encoded = utf8_percent_encode(&self.inner.message, GRPC_MESSAGE_ENCODE).to_string();
            // Every byte is now visible ASCII, so this cannot fail.
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(names::GRPC_MESSAGE, value);
            }
        }
        if !self.inner.details.is_empty() {
            let value = metadata::encode_binary(&self.inner.details);
            headers.insert(names::GRPC_STATUS_DETAILS_BIN, value);
        }
    }

    /// Reads a status from trailers. Returns `None` when there is no
    /// `grpc-status` header at all. An unparsable `grpc-status` gives
    /// [`Code::Unknown`]; a bad `grpc-message` is decoded lossily: reading the
    /// status never fails the call.
    pub fn from_trailers(headers: &HeaderMap) -> Option<Status> {
        let raw = headers.get(names::GRPC_STATUS)?;
        let parsed = std::str::from_utf8(raw.as_bytes())
            .ok()
            .and_then(|s| s.parse::<i32>().ok());
        let (code, mut message) = match parsed {
            Some(value) if (0..=16).contains(&value) => (Code::from_i32(value), String::new()),
            _ => (
                Code::Unknown,
                format!(
                    "invalid grpc-status {:?} in response",
                    String::from_utf8_lossy(raw.as_bytes())
                ),
            ),
        };
        if let Some(encoded) = headers.get(names::GRPC_MESSAGE) {
            let decoded = percent_decode(encoded.as_bytes()).decode_utf8_lossy();
            if message.is_empty() {
                message = decoded.into_owned();
            } else {
                message = format!("{message}: {decoded}");
            }
        }
        let details = headers
            .get(names::GRPC_STATUS_DETAILS_BIN)
            .and_then(|v| metadata::decode_binary(v.as_bytes()).ok())
            .unwrap_or_default();
        Some(Status {
            inner: Box::new(Inner {
                code,
                message,
                details,
                metadata: Metadata::from_headers(headers),
            }),
        })
    }

    /// The status for a response whose HTTP status is not 200, as the gRPC
    /// HTTP mapping prescribes.
    pub fn from_http_status(status: http::StatusCode) -> Status {
        let code = match status.as_u16() {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        };
        Status::new(
            code,
            format!("server answered HTTP status {status} instead of a gRPC response"),
        )
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Status");
        s.field("code", &self.inner.code)
            .field("message", &self.inner.message);
        if !self.inner.details.is_empty() {
            s.field("details", &self.inner.details);
        }
        if !self.inner.metadata.is_empty() {
            s.field("metadata", &self.inner.metadata);
        }
        s.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status: {:?}, message: {:?}",
            self.inner.code, self.inner.message
        )
    }
}

impl std::error::Error for Status {}

impl From<std::io::Error> for Status {
    fn from(err: std::io::Error) -> Status {
        Status::internal(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_written_as_its_number() {
        for code in Code::ALL {
            let mut headers = HeaderMap::new();
            Status::new(code, "").write_trailers(&mut headers);
            assert_eq!(headers[GRPC_STATUS], (code as u8).to_string());
            assert_eq!(Status::from_trailers(&headers).unwrap().code(), code);
        }
    }

    #[test]
    fn every_code_round_trips_through_its_number() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(*code as i32, i as i32);
            assert_eq!(Code::from_i32(i as i32), *code);
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
    }

    #[test]
    fn message_is_percent_encoded_per_spec() {
        let status = Status::internal("50% of ünïcødé\n\u{1F600} ok~");
        let mut headers = HeaderMap::new();
        status.write_trailers(&mut headers);
        let wire = headers.get(GRPC_MESSAGE).unwrap().to_str().unwrap();
        assert_eq!(
            wire,
            "50%25 of %C3%BCn%C3%AFc%C3%B8d%C3%A9%0A%F0%9F%98%80 ok~"
        );
        for b in wire.bytes() {
            assert!((0x20..=0x7e).contains(&b));
        }
        let back = Status::from_trailers(&headers).unwrap();
        assert_eq!(back.code(), Code::Internal);
        assert_eq!(back.message(), status.message());
    }

    #[test]
    fn decoding_a_bad_message_never_fails() {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_STATUS, HeaderValue::from_static("3"));
        headers.insert(
            GRPC_MESSAGE,
            HeaderValue::from_static("bad %zz and %C3 end%"),
        );
        let status = Status::from_trailers(&headers).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "bad %zz and \u{FFFD} end%");
    }

    #[test]
    fn invalid_grpc_status_is_unknown() {
        for raw in ["abc", "17", "-1", "", "99999999999"] {
            let mut headers = HeaderMap::new();
            headers.insert(GRPC_STATUS, HeaderValue::from_str(raw).unwrap());
            let status = Status::from_trailers(&headers).unwrap();
            assert_eq!(status.code(), Code::Unknown, "grpc-status {raw:?}");
        }
        assert!(Status::from_trailers(&HeaderMap::new()).is_none());
    }

    #[test]
    fn details_round_trip_as_unpadded_base64() {
        let status = Status::with_details(Code::NotFound, "gone", Bytes::from_static(b"\x08\x05"));
        let mut headers = HeaderMap::new();
        status.write_trailers(&mut headers);
        assert_eq!(headers.get(GRPC_STATUS_DETAILS_BIN).unwrap(), "CAU");
        let back = Status::from_trailers(&headers).unwrap();
        assert_eq!(back.details(), b"\x08\x05");
    }

    #[test]
    fn http_status_mapping() {
        let cases = [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (302, Code::Unknown),
            (415, Code::Unknown),
        ];
        for (http, code) in cases {
            let status = Status::from_http_status(http::StatusCode::from_u16(http).unwrap());
            assert_eq!(status.code(), code, "HTTP {http}");
        }
    }
}
