//! Transport failures as gRPC statuses: HTTP/3 codes as gRFC G2 maps them,
//! HTTP/2 RST_STREAM reasons as PROTOCOL-HTTP2 does, and whether a failed
//! request was processed at all (if not, it may be retried).

use std::fmt;

use grpc_h3_core::{Code, Status};

use crate::body::BoxError;

/// A call's failure in a transport, with what a retry needs to know.
///
/// Transports (grpc-h3's HTTP/3 and HTTP/2 channels) return it from their
/// `tower::Service` and their response bodies. Its [`source`] chain holds
/// an `h2::Error` with the equivalent HTTP/2 reason, so code that maps
/// errors the HTTP/2 way (hyper resetting a stream it proxies) reads the
/// same outcome from it. With the `tonic` feature the chain starts with a
/// `tonic::Status` carrying the code, message and metadata, which is where
/// tonic-generated clients look: they report the call's real status.
///
/// [`source`]: std::error::Error::source
pub struct TransportError {
    // Boxed: errors travel in `Result`s on every call's path.
    inner: Box<Inner>,
}

struct Inner {
    status: Status,
    unprocessed: bool,
    #[cfg(not(feature = "tonic"))]
    h2: h2::Error,
    #[cfg(feature = "tonic")]
    tonic: tonic::Status,
}

#[cfg(feature = "tonic")]
fn tonic_status(status: &Status, h2: h2::Reason) -> tonic::Status {
    let mut metadata = http::HeaderMap::new();
    status.metadata().write_into(&mut metadata);
    let mut tonic = tonic::Status::with_metadata(
        tonic::Code::from_i32(status.code() as i32),
        status.message(),
        tonic::metadata::MetadataMap::from_headers(metadata),
    );
    tonic.set_source(std::sync::Arc::new(h2::Error::from(h2)));
    tonic
}

impl TransportError {
    /// A failure with this status; `unprocessed` if the server certainly
    /// did not process the request (H3_REQUEST_REJECTED, REFUSED_STREAM, a
    /// stream at or past a GOAWAY, or a request that never left).
    pub fn new(status: Status, unprocessed: bool) -> TransportError {
        let reason = match status.code() {
            _ if unprocessed => h2::Reason::REFUSED_STREAM,
            Code::Cancelled | Code::DeadlineExceeded => h2::Reason::CANCEL,
            Code::ResourceExhausted => h2::Reason::ENHANCE_YOUR_CALM,
            Code::PermissionDenied => h2::Reason::INADEQUATE_SECURITY,
            Code::Unavailable => h2::Reason::REFUSED_STREAM,
            _ => h2::Reason::INTERNAL_ERROR,
        };
        TransportError {
            inner: Box::new(Inner {
                #[cfg(feature = "tonic")]
                tonic: tonic_status(&status, reason),
                status,
                unprocessed,
                #[cfg(not(feature = "tonic"))]
                h2: h2::Error::from(reason),
            }),
        }
    }

    /// The status the call fails with.
    pub fn status(&self) -> &Status {
        &self.inner.status
    }

    /// Whether the server certainly did not process the request.
    pub fn unprocessed(&self) -> bool {
        self.inner.unprocessed
    }

    /// The status the call fails with.
    pub fn into_status(self) -> Status {
        self.inner.status
    }

    /// The transport error for any error a transport or body reported.
    pub(crate) fn from_error(error: &(dyn std::error::Error + 'static)) -> TransportError {
        if let Some(transport) = find::<TransportError>(error) {
            return TransportError::new(
                transport.inner.status.clone(),
                transport.inner.unprocessed,
            );
        }
        TransportError::new(status_of(error), is_unprocessed(error))
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportError")
            .field("status", &self.inner.status)
            .field("unprocessed", &self.inner.unprocessed)
            .finish()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.inner.status.code(),
            self.inner.status.message()
        )
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        #[cfg(feature = "tonic")]
        return Some(&self.inner.tonic);
        #[cfg(not(feature = "tonic"))]
        Some(&self.inner.h2)
    }
}

impl From<TransportError> for Status {
    fn from(error: TransportError) -> Status {
        error.inner.status
    }
}

/// Why our side ended an HTTP/2 stream early (a deadline, a cancelled call,
/// a drain that gave up). Its source is an `h2::Error` with reason CANCEL,
/// and hyper resets a stream with the reason it finds in the error of a
/// failing service or body: so the peer gets RST_STREAM(CANCEL), as
/// PROTOCOL-HTTP2 asks for cancellation and deadlines.
#[derive(Debug)]
pub(crate) struct CancelStream {
    why: &'static str,
    cancel: h2::Error,
}

impl CancelStream {
    pub(crate) fn new(why: &'static str) -> CancelStream {
        CancelStream {
            why,
            cancel: h2::Error::from(h2::Reason::CANCEL),
        }
    }
}

impl fmt::Display for CancelStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why)
    }
}

impl std::error::Error for CancelStream {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cancel)
    }
}

/// The status for an HTTP/2 RST_STREAM (or GOAWAY) reason, as
/// PROTOCOL-HTTP2.md maps them.
pub(crate) fn status_for_h2_reason(reason: h2::Reason, context: &str) -> Status {
    let message = format!("{context}: {reason:?}");
    match reason {
        h2::Reason::REFUSED_STREAM => Status::unavailable(message),
        h2::Reason::CANCEL => Status::cancelled(message),
        h2::Reason::ENHANCE_YOUR_CALM => Status::resource_exhausted(message),
        h2::Reason::INADEQUATE_SECURITY => Status::permission_denied(message),
        _ => Status::internal(message),
    }
}

fn status_for_h2(error: &h2::Error) -> Status {
    if error.is_io() {
        return Status::unavailable(format!("connection lost: {error}"));
    }
    if error.is_go_away() && error.is_remote() {
        return Status::unavailable(format!(
            "the server is going away (GOAWAY) and did not process the request: {error}"
        ));
    }
    match error.reason() {
        Some(reason) if error.is_remote() => status_for_h2_reason(reason, "stream reset by peer"),
        Some(reason) => status_for_h2_reason(reason, "stream reset"),
        None => Status::internal(format!("HTTP/2 error: {error}")),
    }
}

/// Finds an error of type `T` in `error`'s source chain.
fn find<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The status a failed call ends with, for any error a service or body
/// reports: a [`Status`] or [`TransportError`] as it is, hyper and h2
/// errors by their HTTP/2 reason, I/O errors as UNAVAILABLE, anything else
/// UNKNOWN.
///
/// ```
/// use grpc_h3::{status_from_error, Code, Status};
/// let status = status_from_error(Box::new(Status::not_found("x")));
/// assert_eq!(status.code(), Code::NotFound);
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
/// assert_eq!(status_from_error(Box::new(io)).code(), Code::Unavailable);
/// ```
pub fn status_from_error(error: BoxError) -> Status {
    match error.downcast::<Status>() {
        Ok(status) => *status,
        Err(error) => status_of(&*error),
    }
}

/// [`status_from_error`] for a borrowed error.
pub(crate) fn status_of(error: &(dyn std::error::Error + 'static)) -> Status {
    if let Some(status) = error.downcast_ref::<Status>() {
        return status.clone();
    }
    if let Some(transport) = find::<TransportError>(error) {
        return transport.inner.status.clone();
    }
    #[cfg(feature = "tonic")]
    if let Some(tonic) = find::<tonic::Status>(error) {
        let mut status = Status::new(Code::from_i32(tonic.code() as i32), tonic.message());
        *status.metadata_mut() =
            grpc_h3_core::Metadata::from_headers(&tonic.metadata().clone().into_headers());
        return status;
    }
    if let Some(h2) = find::<h2::Error>(error) {
        return status_for_h2(h2);
    }
    if let Some(hyper) = find::<hyper::Error>(error) {
        if hyper.is_canceled() || hyper.is_closed() {
            return Status::unavailable(format!("connection lost: {hyper}"));
        }
        if hyper.is_timeout() {
            return Status::deadline_exceeded(format!("{hyper}"));
        }
    }
    if find::<std::io::Error>(error).is_some() {
        return Status::unavailable(format!("connection lost: {error}"));
    }
    Status::unknown(format!("{error}"))
}

/// Whether `error` says the server certainly did not process the request,
/// so that sending it again is safe whatever the method.
pub(crate) fn is_unprocessed(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(transport) = find::<TransportError>(error) {
        return transport.inner.unprocessed;
    }
    if let Some(h2) = find::<h2::Error>(error) {
        return h2.reason() == Some(h2::Reason::REFUSED_STREAM) && h2.is_remote()
            || h2.is_go_away() && h2.is_remote();
    }
    // hyper gives the request back unsent when its connection closed first.
    find::<hyper::Error>(error).is_some_and(hyper::Error::is_canceled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_reasons_map_as_protocol_http2_says() {
        let cases = [
            (h2::Reason::REFUSED_STREAM, Code::Unavailable),
            (h2::Reason::CANCEL, Code::Cancelled),
            (h2::Reason::ENHANCE_YOUR_CALM, Code::ResourceExhausted),
            (h2::Reason::INADEQUATE_SECURITY, Code::PermissionDenied),
            (h2::Reason::NO_ERROR, Code::Internal),
            (h2::Reason::PROTOCOL_ERROR, Code::Internal),
            (h2::Reason::INTERNAL_ERROR, Code::Internal),
            (h2::Reason::FLOW_CONTROL_ERROR, Code::Internal),
        ];
        for (reason, code) in cases {
            assert_eq!(status_for_h2_reason(reason, "x").code(), code, "{reason:?}");
        }
    }

    #[test]
    fn transport_errors_show_their_h2_equivalent_to_http2_code() {
        let error = TransportError::new(Status::cancelled("gone"), false);
        let h2 = find::<h2::Error>(std::error::Error::source(&error).unwrap()).unwrap();
        assert_eq!(h2.reason(), Some(h2::Reason::CANCEL));
        let rejected = TransportError::new(Status::unavailable("not processed"), true);
        assert!(is_unprocessed(&rejected));
        assert!(!is_unprocessed(&error));
        assert_eq!(
            status_from_error(Box::new(rejected)).code(),
            Code::Unavailable
        );
    }
}
