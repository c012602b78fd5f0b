//! The server's HTTP/3 side: QUIC connections (handshake, GOAWAY, idle
//! close, the early-reset budget) and their request streams (each an
//! `http::Request` for the server's service, its `http::Response` written
//! back, with gRFC G2's deadline and cancellation semantics).

mod connection;
mod stream;

pub(crate) use connection::serve;
