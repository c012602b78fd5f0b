//! The receiving side of a call as a state machine without I/O: body
//! chunks and trailers go in, messages and the call's final status come
//! out. Transports and the runtime feed it whatever their HTTP stack
//! delivers; every rule about what may arrive when lives here and is tested
//! without sockets.
//!
//! On a client it enforces: a Trailers-Only response is over at once (an OK
//! one is an empty stream); messages are followed by trailers carrying
//! `grpc-status`; a body that ends without them is INTERNAL; a cancellation
//! that arrives after the call's deadline is DEADLINE_EXCEEDED (gRFC G2). On
//! a server: the request's messages, then its end.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::compression::{CompressionEncoding, EnabledEncodings};
use crate::frame::FrameDecoder;
use crate::protocol::{self, ResponseHead};
use crate::{Code, Metadata, Status};

/// A cancellation (a reset with H3_REQUEST_CANCELLED or RST_STREAM CANCEL)
/// that arrives once the call's own deadline has passed is the deadline:
/// the server runs the same deadline and may reset first. gRFC G2 says the
/// client reports DEADLINE_EXCEEDED then.
///
/// ```
/// use grpc_h3_core::{call::blame_deadline, Code, Status};
/// let reset = Status::cancelled("stream reset by peer");
/// assert_eq!(blame_deadline(reset.clone(), true).code(), Code::DeadlineExceeded);
/// assert_eq!(blame_deadline(reset, false).code(), Code::Cancelled);
/// ```
pub fn blame_deadline(status: Status, deadline_passed: bool) -> Status {
    if deadline_passed && status.code() == Code::Cancelled {
        Status::deadline_exceeded(format!("deadline exceeded ({})", status.message()))
    } else {
        status
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading messages.
    Messages,
    /// Over: every message was returned and the outcome is known.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// The incoming half of one call.
///
/// ```
/// use bytes::Bytes;
/// use grpc_h3_core::call::Incoming;
/// use grpc_h3_core::{protocol, Code, EnabledEncodings, Metadata, Status};
///
/// let head = protocol::response_headers(&Metadata::new(), None, EnabledEncodings::all());
/// let (_metadata, mut incoming) =
///     Incoming::client(http::StatusCode::OK, &head, EnabledEncodings::all(), 1024).unwrap();
/// incoming.data(Bytes::from_static(&[0, 0, 0, 0, 2, b'h', b'i']));
/// assert_eq!(incoming.message().unwrap().unwrap(), "hi");
/// assert!(incoming.message().unwrap().is_none());
/// let trailers = protocol::trailers(&Status::ok(""));
/// assert!(incoming.end(Some(&trailers)).is_ok());
/// assert!(incoming.is_done());
/// ```
#[derive(Debug)]
pub struct Incoming {
    role: Role,
    decoder: FrameDecoder,
    state: State,
    trailers: Option<Metadata>,
}

impl Incoming {
    /// A server reading a request whose messages are encoded with
    /// `encoding`, refusing any larger than `max_message_size`.
    pub fn server(encoding: Option<CompressionEncoding>, max_message_size: usize) -> Incoming {
        Incoming {
            role: Role::Server,
            decoder: FrameDecoder::new(encoding, max_message_size),
            state: State::Messages,
            trailers: None,
        }
    }

    /// A client that received the response head `status` and `headers`:
    /// its initial metadata and the incoming side, or the call's failure
    /// (a Trailers-Only error, a non-200 status, a head that is not gRPC).
    /// A Trailers-Only OK is a finished, empty stream.
    pub fn client(
        status: StatusCode,
        headers: &HeaderMap,
        accepted: EnabledEncodings,
        max_message_size: usize,
    ) -> Result<(Metadata, Incoming), Status> {
        match protocol::parse_response(status, headers, accepted)? {
            ResponseHead::TrailersOnly(status) if status.code() == Code::Ok => Ok((
                Metadata::new(),
                Incoming {
                    role: Role::Client,
                    decoder: FrameDecoder::new(None, 0),
                    state: State::Done,
                    trailers: Some(status.metadata().clone()),
                },
            )),
            ResponseHead::TrailersOnly(status) => Err(status),
            ResponseHead::Headers { metadata, encoding } => Ok((
                metadata,
                Incoming {
                    role: Role::Client,
                    decoder: FrameDecoder::new(encoding, max_message_size),
                    state: State::Messages,
                    trailers: None,
                },
            )),
        }
    }

    /// Body bytes, as they arrive (empty chunks are fine).
    pub fn data(&mut self, chunk: Bytes) {
        if self.state == State::Messages && !chunk.is_empty() {
            self.decoder.push(chunk);
        }
    }

    /// The next whole message, decompressed; `None` until more bytes
    /// arrive (or once the call is over).
    pub fn message(&mut self) -> Result<Option<Bytes>, Status> {
        if self.state == State::Done {
            return Ok(None);
        }
        self.decoder.next_message()
    }

    /// Whether the last message returned was compressed.
    pub fn last_message_compressed(&self) -> bool {
        self.decoder.last_message_compressed()
    }

    /// Bytes received and not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// The body ended, with these trailers: checks that no message was cut
    /// short, and on a client reads the call's status from the trailers
    /// (missing ones are INTERNAL). `Ok` on a clean end; the trailing
    /// metadata is then in [`Incoming::trailers`]. Call after
    /// [`Incoming::message`] has returned every whole message.
    pub fn end(&mut self, trailers: Option<&HeaderMap>) -> Result<(), Status> {
        if self.state == State::Done {
            return Ok(());
        }
        self.state = State::Done;
        self.decoder.finish()?;
        if self.role == Role::Server {
            return Ok(());
        }
        let status = protocol::parse_trailers(trailers);
        if status.code() != Code::Ok {
            return Err(status);
        }
        self.trailers = Some(status.metadata().clone());
        Ok(())
    }

    /// Whether the call's incoming side is over.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailing metadata, once a client's stream ended with OK.
    pub fn trailers(&self) -> Option<&Metadata> {
        self.trailers.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{response_headers, trailers, trailers_only};

    const ALL: fn() -> EnabledEncodings = EnabledEncodings::all;

    fn client() -> Incoming {
        let head = response_headers(&Metadata::new(), None, ALL());
        Incoming::client(StatusCode::OK, &head, ALL(), 1024)
            .unwrap()
            .1
    }

    #[test]
    fn trailers_only_ok_is_an_empty_finished_stream() {
        let mut status = Status::ok("");
        status.metadata_mut().insert("x-a", "1").unwrap();
        let head = trailers_only(&status, ALL());
        let (_, mut incoming) = Incoming::client(StatusCode::OK, &head, ALL(), 1024).unwrap();
        assert!(incoming.is_done());
        assert!(incoming.message().unwrap().is_none());
        assert_eq!(incoming.trailers().unwrap().get("x-a"), Some("1"));
    }

    #[test]
    fn trailers_only_errors_and_http_statuses_fail_the_call() {
        let head = trailers_only(&Status::not_found("gone"), ALL());
        let err = Incoming::client(StatusCode::OK, &head, ALL(), 1024).unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let err =
            Incoming::client(StatusCode::BAD_GATEWAY, &HeaderMap::new(), ALL(), 1024).unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
    }

    #[test]
    fn messages_then_trailers_and_the_status_they_carry() {
        let mut incoming = client();
        incoming.data(Bytes::from_static(&[0, 0, 0, 0, 1]));
        assert!(incoming.message().unwrap().is_none(), "half a message");
        incoming.data(Bytes::new());
        incoming.data(Bytes::from_static(b"x"));
        assert_eq!(incoming.message().unwrap().unwrap(), "x");
        let err = incoming
            .end(Some(&trailers(&Status::unavailable("try later"))))
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        assert!(incoming.is_done());
        assert!(incoming.end(None).is_ok(), "ending twice is harmless");
    }

    #[test]
    fn a_body_without_trailers_or_with_a_cut_message_is_internal() {
        let mut incoming = client();
        assert_eq!(incoming.end(None).unwrap_err().code(), Code::Internal);
        let mut incoming = client();
        incoming.data(Bytes::from_static(&[0, 0, 0, 0, 9, 1, 2]));
        let err = incoming.end(Some(&trailers(&Status::ok("")))).unwrap_err();
        assert!(err.message().contains("7 bytes missing"), "{err:?}");
    }

    #[test]
    fn a_server_reads_messages_to_the_end_of_the_request() {
        let mut incoming = Incoming::server(None, 1024);
        incoming.data(Bytes::from_static(&[0, 0, 0, 0, 0]));
        assert_eq!(incoming.message().unwrap().unwrap().len(), 0);
        assert!(incoming.end(None).is_ok(), "no trailers needed");
    }

    #[test]
    fn cancellation_after_the_deadline_is_the_deadline() {
        let cancelled = Status::cancelled("reset");
        assert_eq!(
            blame_deadline(cancelled.clone(), true).code(),
            Code::DeadlineExceeded
        );
        assert_eq!(blame_deadline(cancelled, false).code(), Code::Cancelled);
        assert_eq!(
            blame_deadline(Status::unavailable("x"), true).code(),
            Code::Unavailable
        );
    }
}
