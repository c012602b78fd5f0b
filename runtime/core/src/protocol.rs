//! Request and response heads: building the headers a call sends and
//! validating the ones it receives. Works on `http` types only, so every
//! transport (HTTP/3 now, HTTP/2 later) shares it.

use std::time::Duration;

use http::header::{CONTENT_TYPE, TE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::compression::{self, CompressionEncoding, EnabledEncodings};
use crate::timeout;
use crate::{names, Metadata, Status};

/// The content type gRPC requests and responses carry.
pub const CONTENT_TYPE_GRPC: &str = "application/grpc";

const USER_AGENT_VALUE: &str = concat!("grpc-rust-h3/", env!("CARGO_PKG_VERSION"));

/// A parsed `:path` of the form `/package.Service/Method`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodPath {
    path: String,
    split: usize,
}

impl MethodPath {
    /// Parses a path; `None` unless it is `/service/method` with both parts
    /// non-empty.
    pub fn parse(path: &str) -> Option<MethodPath> {
        let rest = path.strip_prefix('/')?;
        let (service, method) = rest.split_once('/')?;
        if service.is_empty() || method.is_empty() || method.contains('/') {
            return None;
        }
        Some(MethodPath {
            path: path.to_owned(),
            split: service.len() + 1,
        })
    }

    /// The fully qualified service name, e.g. `helloworld.Greeter`.
    pub fn service(&self) -> &str {
        &self.path[1..self.split]
    }

    /// The method name, e.g. `SayHello`.
    pub fn method(&self) -> &str {
        &self.path[self.split + 1..]
    }

    /// The whole path.
    pub fn as_str(&self) -> &str {
        &self.path
    }
}

/// Everything a server learns from a valid request's headers.
#[derive(Debug)]
pub struct RequestHead {
    /// The method called.
    pub path: MethodPath,
    /// Custom metadata sent by the client.
    pub metadata: Metadata,
    /// The client's `grpc-timeout`, if any.
    pub timeout: Option<Duration>,
    /// The encoding of the request messages.
    pub encoding: Option<CompressionEncoding>,
    /// Encodings the client can decompress.
    pub accept_encodings: EnabledEncodings,
}

/// What a server must know of a request before routing it: the method and
/// the deadline the client set. See [`check_request`].
#[derive(Debug)]
pub struct RequestCheck {
    /// The method called.
    pub path: MethodPath,
    /// The client's `grpc-timeout`, if any.
    pub timeout: Option<Duration>,
}

/// Why a request was refused before reaching a handler.
#[derive(Debug)]
pub enum Rejection {
    /// Not a gRPC request at all: answer with this plain HTTP status.
    Http(StatusCode, String),
    /// A gRPC request that fails: answer Trailers-Only with this status.
    Grpc(Status),
}

fn is_grpc_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.map(HeaderValue::as_bytes) else {
        return false;
    };
    match value.strip_prefix(CONTENT_TYPE_GRPC.as_bytes()) {
        Some(rest) => rest.is_empty() || rest[0] == b'+' || rest[0] == b';',
        None => false,
    }
}

/// Validates a request head as a server receives it.
///
/// The checks, in order: method `POST` (else HTTP 405); `content-type`
/// `application/grpc[+proto|;...]` (else HTTP 415); a `/service/method` path
/// (else UNIMPLEMENTED); a well-formed `grpc-timeout` (else INTERNAL, as
/// grpc-go answers); a supported `grpc-encoding` (else UNIMPLEMENTED). `te`
/// is not required: it exists to detect HTTP/1 proxies, which HTTP/3 cannot
/// cross.
pub fn parse_request(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    accepted: EnabledEncodings,
) -> Result<RequestHead, Rejection> {
    let RequestCheck { path, timeout } = check_request(method, path, headers, accepted)?;
    let encoding = compression::parse_encoding(headers.get(names::GRPC_ENCODING), accepted)
        .map_err(Rejection::Grpc)?;
    Ok(RequestHead {
        path,
        metadata: Metadata::from_headers(headers),
        timeout,
        encoding,
        accept_encodings: EnabledEncodings::from_header(headers.get(names::GRPC_ACCEPT_ENCODING)),
    })
}

/// The checks of [`parse_request`] without copying the metadata out: what
/// a server front does before routing, leaving the rest to the service.
pub fn check_request(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    accepted: EnabledEncodings,
) -> Result<RequestCheck, Rejection> {
    if method != Method::POST {
        return Err(Rejection::Http(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("gRPC requires POST, got {method}"),
        ));
    }
    if !is_grpc_content_type(headers.get(CONTENT_TYPE)) {
        return Err(Rejection::Http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gRPC requires content-type application/grpc".to_owned(),
        ));
    }
    let path = MethodPath::parse(path).ok_or_else(|| {
        Rejection::Grpc(Status::unimplemented(format!(
            "malformed method path {path:?}: expected /package.Service/Method"
        )))
    })?;
    let timeout = match headers.get(names::GRPC_TIMEOUT) {
        None => None,
        Some(value) => {
            let text = String::from_utf8_lossy(value.as_bytes());
            let parsed = timeout::parse_timeout(&text)
                .map_err(|e| Rejection::Grpc(Status::internal(e.to_string())))?;
            Some(parsed)
        }
    };
    compression::parse_encoding(headers.get(names::GRPC_ENCODING), accepted)
        .map_err(Rejection::Grpc)?;
    Ok(RequestCheck { path, timeout })
}

/// Adds `grpc-encoding` (when compressing) and `grpc-accept-encoding`.
fn insert_encodings(
    headers: &mut HeaderMap,
    encoding: Option<CompressionEncoding>,
    accept: EnabledEncodings,
) {
    if let Some(encoding) = encoding {
        headers.insert(
            names::GRPC_ENCODING,
            HeaderValue::from_static(encoding.as_str()),
        );
    }
    if let Some(value) = accept.header_value() {
        headers.insert(names::GRPC_ACCEPT_ENCODING, value);
    }
}

/// Builds the headers of an outgoing request (everything but the pseudo
/// headers, which the transport sets from the path).
pub fn request_headers(
    metadata: &Metadata,
    timeout: Option<Duration>,
    encoding: Option<CompressionEncoding>,
    accept: EnabledEncodings,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6 + metadata.len());
    metadata.write_into(&mut headers);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_GRPC));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    }
    if let Some(timeout) = timeout {
        let value = timeout::encode_timeout(timeout);
        headers.insert(
            names::GRPC_TIMEOUT,
            HeaderValue::from_str(&value).expect("ASCII"),
        );
    }
    insert_encodings(&mut headers, encoding, accept);
    headers
}

/// Builds the headers of a response that will carry messages.
pub fn response_headers(
    metadata: &Metadata,
    encoding: Option<CompressionEncoding>,
    accept: EnabledEncodings,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3 + metadata.len());
    metadata.write_into(&mut headers);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_GRPC));
    insert_encodings(&mut headers, encoding, accept);
    headers
}

/// Builds a Trailers-Only response: the status in the only HEADERS frame.
pub fn trailers_only(status: &Status, accept: EnabledEncodings) -> HeaderMap {
    let mut headers = response_headers(&Metadata::new(), None, accept);
    status.write_trailers(&mut headers);
    headers
}

/// Builds the trailers ending a response.
pub fn trailers(status: &Status) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2 + status.metadata().len());
    status.write_trailers(&mut headers);
    headers
}

/// What a client learns from a response's first HEADERS frame.
#[derive(Debug)]
pub enum ResponseHead {
    /// Messages follow, encoded with `encoding`.
    Headers {
        /// Initial metadata.
        metadata: Metadata,
        /// The encoding of the response messages.
        encoding: Option<CompressionEncoding>,
    },
    /// A Trailers-Only response: the call is over with this status (which
    /// may be OK).
    TrailersOnly(Status),
}

/// Classifies a response's first HEADERS frame. A non-200 status maps
/// through the HTTP-to-gRPC table; a 200 without a gRPC content type is
/// UNKNOWN; a `grpc-encoding` we can't decode is INTERNAL.
pub fn parse_response(
    status: StatusCode,
    headers: &HeaderMap,
    accepted: EnabledEncodings,
) -> Result<ResponseHead, Status> {
    if status != StatusCode::OK {
        return Err(Status::from_http_status(status));
    }
    if let Some(status) = Status::from_trailers(headers) {
        return Ok(ResponseHead::TrailersOnly(status));
    }
    if !is_grpc_content_type(headers.get(CONTENT_TYPE)) {
        return Err(Status::unknown(format!(
            "response content-type {:?} is not application/grpc",
            headers.get(CONTENT_TYPE)
        )));
    }
    let encoding = compression::parse_encoding(headers.get(names::GRPC_ENCODING), accepted)
        .map_err(|e| {
            Status::internal(format!(
                "server compressed with an encoding this client did not offer: {}",
                e.message()
            ))
        })?;
    Ok(ResponseHead::Headers {
        metadata: Metadata::from_headers(headers),
        encoding,
    })
}

/// Reads the status from a response's trailers; missing trailers or a
/// missing `grpc-status` is an INTERNAL error, as the specification requires.
pub fn parse_trailers(trailers: Option<&HeaderMap>) -> Status {
    match trailers.and_then(Status::from_trailers) {
        Some(status) => status,
        None => Status::internal("response ended without grpc-status in its trailers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    fn grpc_headers() -> HeaderMap {
        request_headers(&Metadata::new(), None, None, EnabledEncodings::default())
    }

    #[test]
    fn method_paths() {
        let p = MethodPath::parse("/helloworld.Greeter/SayHello").unwrap();
        assert_eq!(
            (p.service(), p.method()),
            ("helloworld.Greeter", "SayHello")
        );
        for bad in ["", "/", "//", "/a", "/a/", "//b", "a/b", "/a/b/c"] {
            assert!(MethodPath::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn valid_request_round_trips() {
        let mut md = Metadata::new();
        md.insert("x-user", "alice").unwrap();
        let headers = request_headers(
            &md,
            Some(Duration::from_millis(1500)),
            None,
            EnabledEncodings::all(),
        );
        assert_eq!(headers.get(TE).unwrap(), "trailers");
        let head =
            parse_request(&Method::POST, "/a.B/C", &headers, EnabledEncodings::all()).unwrap();
        assert_eq!(head.path.method(), "C");
        assert_eq!(head.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(head.metadata.get("x-user"), Some("alice"));
        assert_eq!(head.metadata.get("user-agent"), Some(USER_AGENT_VALUE));
        assert_eq!(head.accept_encodings, EnabledEncodings::all());
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;charset=x",
        ] {
            assert!(
                is_grpc_content_type(Some(&HeaderValue::from_static(ok))),
                "{ok}"
            );
        }
        for bad in ["application/json", "application/grpcx", "text/plain", ""] {
            assert!(
                !is_grpc_content_type(Some(&HeaderValue::from_static(bad))),
                "{bad}"
            );
        }
        assert!(!is_grpc_content_type(None));
    }

    #[test]
    fn rejections() {
        let all = EnabledEncodings::all();
        let h = grpc_headers();
        match parse_request(&Method::GET, "/a.B/C", &h, all) {
            Err(Rejection::Http(s, _)) => assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED),
            other => panic!("{other:?}"),
        }
        let mut json = h.clone();
        json.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match parse_request(&Method::POST, "/a.B/C", &json, all) {
            Err(Rejection::Http(s, _)) => assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE),
            other => panic!("{other:?}"),
        }
        let grpc_code = |path: &str, headers: &HeaderMap| match parse_request(
            &Method::POST,
            path,
            headers,
            all,
        ) {
            Err(Rejection::Grpc(s)) => s.code(),
            other => panic!("{other:?}"),
        };
        assert_eq!(grpc_code("/nope", &h), Code::Unimplemented);
        let mut bad_timeout = h.clone();
        bad_timeout.insert(names::GRPC_TIMEOUT, HeaderValue::from_static("soon"));
        assert_eq!(grpc_code("/a.B/C", &bad_timeout), Code::Internal);
        let mut bad_encoding = h.clone();
        bad_encoding.insert(names::GRPC_ENCODING, HeaderValue::from_static("lz4"));
        assert_eq!(grpc_code("/a.B/C", &bad_encoding), Code::Unimplemented);
        let mut no_te = h.clone();
        no_te.remove(TE);
        assert!(parse_request(&Method::POST, "/a.B/C", &no_te, all).is_ok());
    }

    #[test]
    fn response_classification() {
        let all = EnabledEncodings::all();
        let err =
            parse_response(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), all).unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);

        let headers = response_headers(&Metadata::new(), None, all);
        assert!(matches!(
            parse_response(StatusCode::OK, &headers, all),
            Ok(ResponseHead::Headers { encoding: None, .. })
        ));

        let only = trailers_only(&Status::not_found("x"), all);
        match parse_response(StatusCode::OK, &only, all) {
            Ok(ResponseHead::TrailersOnly(s)) => assert_eq!(s.code(), Code::NotFound),
            other => panic!("{other:?}"),
        }

        let html = {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
            h
        };
        assert_eq!(
            parse_response(StatusCode::OK, &html, all)
                .unwrap_err()
                .code(),
            Code::Unknown
        );

        assert_eq!(parse_trailers(None).code(), Code::Internal);
        assert_eq!(
            parse_trailers(Some(&HeaderMap::new())).code(),
            Code::Internal
        );
        assert_eq!(
            parse_trailers(Some(&trailers(&Status::ok("")))).code(),
            Code::Ok
        );
    }
}
