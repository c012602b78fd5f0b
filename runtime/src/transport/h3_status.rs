//! HTTP/3 error codes to gRPC statuses, as gRFC G2 specifies.

use grpc_h3_core::Status;
use h3::error::{Code, ConnectionError, StreamError};

use super::frame_guard::FrameTooLarge;

/// H3_REQUEST_CANCELLED: what a cancelled call resets its stream with.
pub(crate) const CANCELLED: Code = Code::H3_REQUEST_CANCELLED;

/// Maps the code of a RESET_STREAM (or STOP_SENDING) received from the peer.
pub(crate) fn status_for_reset(code: u64) -> Status {
    let name = Code::from(code);
    let message = format!("stream reset by peer with {name}");
    if code == Code::H3_REQUEST_REJECTED.value() {
        Status::unavailable(message)
    } else if code == Code::H3_REQUEST_CANCELLED.value() {
        Status::cancelled(message)
    } else if code == Code::H3_EXCESSIVE_LOAD.value() {
        Status::resource_exhausted(message)
    } else {
        // H3_NO_ERROR and everything else.
        Status::internal(message)
    }
}

/// A lost connection is UNAVAILABLE: the call may be retried elsewhere.
pub(crate) fn status_for_connection(err: &ConnectionError) -> Status {
    match err {
        ConnectionError::Timeout { .. } => Status::unavailable(
            "connection lost: the peer stopped answering (nothing heard within the idle timeout); \
             it may have crashed, or the network path is down",
        ),
        other => Status::unavailable(format!("connection lost: {other}")),
    }
}

/// Maps any error an h3 stream operation returns.
pub(crate) fn status_for_stream(err: StreamError) -> Status {
    match err {
        StreamError::RemoteTerminate { code, .. } => status_for_reset(code.value()),
        StreamError::ConnectionError { 0: e, .. } => status_for_connection(&e),
        StreamError::RemoteClosing { .. } => {
            Status::unavailable("server is shutting down (GOAWAY); retry on a new connection")
        }
        StreamError::HeaderTooBig {
            actual_size,
            max_size,
            ..
        } => Status::resource_exhausted(format!(
            "header block of {actual_size} bytes exceeds the peer's limit of {max_size} bytes"
        )),
        StreamError::StreamError { code, reason, .. } => {
            let mut status = status_for_reset(code.value());
            if status.code() != grpc_h3_core::Code::Cancelled {
                status = Status::new(status.code(), format!("{}: {reason}", status.message()));
            }
            status
        }
        StreamError::Undefined { 0: e, .. } => {
            if let Some(refused) = e.downcast_ref::<FrameTooLarge>() {
                Status::resource_exhausted(format!(
                    "{refused}; the stream was reset with H3_EXCESSIVE_LOAD"
                ))
            } else {
                Status::internal(format!("HTTP/3 error: {e}"))
            }
        }
        other => Status::internal(format!("HTTP/3 error: {other}")),
    }
}

/// Whether a send failed only because the peer stopped reading with
/// H3_NO_ERROR (it has its answer): not an error for the call.
pub(crate) fn is_graceful_stop(err: &StreamError) -> bool {
    matches!(err, StreamError::RemoteTerminate { code, .. } if *code == Code::H3_NO_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use grpc_h3_core::Code as GrpcCode;

    #[test]
    fn g2_reset_mapping() {
        let cases = [
            (Code::H3_NO_ERROR, GrpcCode::Internal),
            (Code::H3_REQUEST_REJECTED, GrpcCode::Unavailable),
            (Code::H3_REQUEST_CANCELLED, GrpcCode::Cancelled),
            (Code::H3_EXCESSIVE_LOAD, GrpcCode::ResourceExhausted),
            (Code::H3_INTERNAL_ERROR, GrpcCode::Internal),
            (Code::H3_MESSAGE_ERROR, GrpcCode::Internal),
            (Code::H3_REQUEST_INCOMPLETE, GrpcCode::Internal),
        ];
        for (h3, grpc) in cases {
            assert_eq!(status_for_reset(h3.value()).code(), grpc, "{h3}");
        }
        assert_eq!(status_for_reset(0xdead).code(), GrpcCode::Internal);
    }
}
