//! The gRPC header names as [`HeaderName`]s.
//!
//! A lookup or insert keyed by `&str` parses and lowercases the name on
//! every call, and an insert copies a non-standard name into a fresh
//! allocation; these constants are built once, at compile time, so the
//! per-call work is the hash alone. The `&str` constants elsewhere in this
//! crate ([`crate::GRPC_STATUS`] and friends) name the same headers.
//!
//! ```
//! use grpc_h3_core::names;
//! let mut trailers = http::HeaderMap::new();
//! trailers.insert(names::GRPC_STATUS, http::HeaderValue::from_static("0"));
//! assert_eq!(trailers[grpc_h3_core::GRPC_STATUS], "0");
//! ```

use http::HeaderName;

/// `grpc-status`: the call's status code, in trailers.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static(crate::status::GRPC_STATUS);
/// `grpc-message`: the percent-encoded status message, in trailers.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static(crate::status::GRPC_MESSAGE);
/// `grpc-status-details-bin`: the rich error details, in trailers.
pub const GRPC_STATUS_DETAILS_BIN: HeaderName =
    HeaderName::from_static(crate::status::GRPC_STATUS_DETAILS_BIN);
/// `grpc-encoding`: the compression of the messages in this direction.
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static(crate::compression::GRPC_ENCODING);
/// `grpc-accept-encoding`: the compressions the sender can decode.
pub const GRPC_ACCEPT_ENCODING: HeaderName =
    HeaderName::from_static(crate::compression::GRPC_ACCEPT_ENCODING);
/// `grpc-timeout`: the call's deadline, relative to when it was sent.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static(crate::timeout::GRPC_TIMEOUT);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_is_its_str_constant() {
        for (name, text) in [
            (GRPC_STATUS, crate::GRPC_STATUS),
            (GRPC_MESSAGE, crate::GRPC_MESSAGE),
            (GRPC_STATUS_DETAILS_BIN, crate::GRPC_STATUS_DETAILS_BIN),
            (GRPC_ENCODING, crate::compression::GRPC_ENCODING),
            (
                GRPC_ACCEPT_ENCODING,
                crate::compression::GRPC_ACCEPT_ENCODING,
            ),
            (GRPC_TIMEOUT, crate::timeout::GRPC_TIMEOUT),
        ] {
            assert_eq!(name.as_str(), text);
        }
    }
}
