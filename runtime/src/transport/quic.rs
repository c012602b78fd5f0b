//! The QUIC layer under h3: h3's `quic` traits implemented on quinn.
//!
//! h3-quinn does the same job but hides the quinn streams, and with them
//! `quinn::SendStream::stopped`. A server needs that to notice a client that
//! cancels a call after its request is complete (a unary call): the request
//! side is finished, so only the STOP_SENDING on the response side says the
//! client is gone. [`StopSignals`] hands that notification to the call.
//!
//! It also closes the FIN-on-drop trap at its root: quinn finishes a send
//! stream that is dropped, so a request or response abandoned halfway (by a
//! cancelled call, or by h3 itself when a stream fails before its headers)
//! would look complete to the peer. Request-stream halves dropped before
//! they finished are therefore reset, and receive halves stopped, with
//! H3_REQUEST_CANCELLED.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use quinn::VarInt;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + Sync>>;
type BiResult = Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>;
type UniResult = Result<quinn::SendStream, quinn::ConnectionError>;

/// H3_REQUEST_CANCELLED, for request streams abandoned before their end.
const REQUEST_CANCELLED: VarInt = VarInt::from_u32(0x10c);
type RecvResult = Result<quinn::RecvStream, quinn::ConnectionError>;

/// How a response stream's life ended, as quinn reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// We finished and the peer acknowledged every byte.
    Acknowledged,
    /// The peer sent STOP_SENDING, or the connection was lost.
    Stopped,
}

/// For each response stream, a future telling how it ended, keyed by
/// stream id. An entry lives as long as its send stream.
#[derive(Clone, Default)]
pub(crate) struct StopSignals {
    map: Arc<Mutex<HashMap<u64, BoxFuture<StreamEnd>>>>,
}

impl StopSignals {
    /// Takes the signal for stream `id`.
    pub(crate) fn take(&self, id: u64) -> Option<BoxFuture<StreamEnd>> {
        self.map.lock().expect("stop signal lock").remove(&id)
    }

    fn register(&self, stream: &quinn::SendStream) -> StopGuard {
        let stopped = stream.stopped();
        let id = VarInt::from(stream.id()).into_inner();
        self.map.lock().expect("stop signal lock").insert(
            id,
            Box::pin(async move {
                match stopped.await {
                    Ok(None) => StreamEnd::Acknowledged,
                    _ => StreamEnd::Stopped,
                }
            }),
        );
        StopGuard {
            signals: self.clone(),
            id,
        }
    }
}

struct StopGuard {
    signals: StopSignals,
    id: u64,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.signals.take(self.id);
    }
}

fn connection_error(e: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: close.error_code.into_inner(),
            }
        }
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn write_error(e: quinn::WriteError) -> StreamErrorIncoming {
    match e {
        quinn::WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(e) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn read_error(e: quinn::ReadError) -> StreamErrorIncoming {
    match e {
        quinn::ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::ReadError::ConnectionLost(e) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn stream_id(id: quinn::StreamId) -> StreamId {
    StreamId::try_from(u64::from(VarInt::from(id))).expect("quinn stream ids are valid varints")
}

/// A quinn connection as h3 sees it.
pub(crate) struct Connection {
    opener: Opener,
    accepting_bi: Option<BoxFuture<BiResult>>,
    accepting_uni: Option<BoxFuture<RecvResult>>,
    stop_signals: Option<StopSignals>,
}

impl Connection {
    /// Wraps a client connection.
    pub(crate) fn client(conn: quinn::Connection) -> Connection {
        Connection {
            opener: Opener::new(conn),
            accepting_bi: None,
            accepting_uni: None,
            stop_signals: None,
        }
    }

    /// Wraps a server connection whose accepted streams report STOP_SENDING
    /// through `signals`.
    pub(crate) fn server(conn: quinn::Connection, signals: StopSignals) -> Connection {
        Connection {
            stop_signals: Some(signals),
            ..Connection::client(conn)
        }
    }
}

impl<B: Buf> quic::Connection<B> for Connection {
    type RecvStream = RecvStream;
    type OpenStreams = Opener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RecvStream, ConnectionErrorIncoming>> {
        let conn = &self.opener.conn;
        let fut = self.accepting_uni.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_uni().await })
        });
        let result = ready!(fut.as_mut().poll(cx));
        self.accepting_uni = None;
        Poll::Ready(result.map(RecvStream::new).map_err(connection_error))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, ConnectionErrorIncoming>> {
        let conn = &self.opener.conn;
        let fut = self.accepting_bi.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_bi().await })
        });
        let result = ready!(fut.as_mut().poll(cx));
        self.accepting_bi = None;
        let (send, recv) = result.map_err(connection_error)?;
        let guard = self.stop_signals.as_ref().map(|s| s.register(&send));
        Poll::Ready(Ok(BidiStream {
            send: SendStream::request(send, guard),
            recv: RecvStream::request(recv),
        }))
    }

    fn opener(&self) -> Opener {
        Opener::new(self.opener.conn.clone())
    }
}

impl<B: Buf> quic::OpenStreams<B> for Connection {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        self.opener.poll_open_bidi(cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        self.opener.poll_open_send(cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        <Opener as quic::OpenStreams<B>>::close(&mut self.opener, code, reason)
    }
}

/// Opens streams on a connection (h3 keeps one per request sender).
pub(crate) struct Opener {
    conn: quinn::Connection,
    opening_bi: Option<BoxFuture<BiResult>>,
    opening_uni: Option<BoxFuture<UniResult>>,
}

impl Opener {
    fn new(conn: quinn::Connection) -> Opener {
        Opener {
            conn,
            opening_bi: None,
            opening_uni: None,
        }
    }
}

impl Clone for Opener {
    fn clone(&self) -> Opener {
        Opener::new(self.conn.clone())
    }
}

impl<B: Buf> quic::OpenStreams<B> for Opener {
    type BidiStream = BidiStream<B>;
    type SendStream = SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let fut = self.opening_bi.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.open_bi().await })
        });
        let result = ready!(fut.as_mut().poll(cx));
        self.opening_bi = None;
        let (send, recv) = result.map_err(|e| StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        })?;
        Poll::Ready(Ok(BidiStream {
            send: SendStream::request(send, None),
            recv: RecvStream::request(recv),
        }))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<SendStream<B>, StreamErrorIncoming>> {
        let conn = &self.conn;
        let fut = self.opening_uni.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.open_uni().await })
        });
        let result = ready!(fut.as_mut().poll(cx));
        self.opening_uni = None;
        let send = result.map_err(|e| StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: connection_error(e),
        })?;
        Poll::Ready(Ok(SendStream::new(send, None)))
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        let code = VarInt::from_u64(code.value()).unwrap_or(VarInt::MAX);
        self.conn.close(code, reason);
    }
}

/// The sending half of a stream.
pub(crate) struct SendStream<B: Buf> {
    stream: quinn::SendStream,
    writing: Option<WriteBuf<B>>,
    /// Request streams reset when dropped unfinished; control streams live
    /// as long as the connection and are left alone.
    reset_on_drop: bool,
    _stop_guard: Option<StopGuard>,
}

impl<B: Buf> SendStream<B> {
    fn new(stream: quinn::SendStream, stop_guard: Option<StopGuard>) -> SendStream<B> {
        SendStream {
            stream,
            writing: None,
            reset_on_drop: false,
            _stop_guard: stop_guard,
        }
    }

    fn request(stream: quinn::SendStream, stop_guard: Option<StopGuard>) -> SendStream<B> {
        let mut send = SendStream::new(stream, stop_guard);
        send.reset_on_drop = true;
        send
    }
}

impl<B: Buf> Drop for SendStream<B> {
    fn drop(&mut self) {
        if self.reset_on_drop {
            // Fails harmlessly if the stream was finished or reset already.
            let _ = self.stream.reset(REQUEST_CANCELLED);
        }
    }
}

impl<B: Buf> quic::SendStream<B> for SendStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(data) = &mut self.writing {
            while data.has_remaining() {
                let written = ready!(Pin::new(&mut self.stream).poll_write(cx, data.chunk()))
                    .map_err(write_error)?;
                data.advance(written);
            }
        }
        self.writing = None;
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "send_data called before the previous write completed".into(),
                ),
            });
        }
        self.writing = Some(data.into());
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.reset_on_drop = false;
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        self.reset_on_drop = false;
        let _ = self
            .stream
            .reset(VarInt::from_u64(reset_code).unwrap_or(VarInt::MAX));
    }

    fn send_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}

/// The receiving half of a stream, reading whole chunks without copying.
pub(crate) struct RecvStream {
    stream: quinn::RecvStream,
    id: StreamId,
    /// Request streams stop the peer with H3_REQUEST_CANCELLED when dropped
    /// unread (quinn alone would send code 0, which HTTP/3 does not define).
    stop_on_drop: bool,
}

impl RecvStream {
    fn new(stream: quinn::RecvStream) -> RecvStream {
        RecvStream {
            id: stream_id(stream.id()),
            stream,
            stop_on_drop: false,
        }
    }

    fn request(stream: quinn::RecvStream) -> RecvStream {
        let mut recv = RecvStream::new(stream);
        recv.stop_on_drop = true;
        recv
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if self.stop_on_drop {
            // Fails harmlessly once everything was read or it was stopped.
            let _ = self.stream.stop(REQUEST_CANCELLED);
        }
    }
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        // `read_chunk` is cancel-safe and its waker registration outlives
        // the future, so a fresh future per poll keeps the stream in our
        // hands (for `stop_sending`) without boxing anything.
        let read = self.stream.read_chunk(usize::MAX, true);
        let chunk = ready!(std::pin::pin!(read).poll(cx));
        Poll::Ready(chunk.map(|c| c.map(|c| c.bytes)).map_err(read_error))
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.stop_on_drop = false;
        let _ = self
            .stream
            .stop(VarInt::from_u64(error_code).unwrap_or(VarInt::MAX));
    }

    fn recv_id(&self) -> StreamId {
        self.id
    }
}

/// Both halves of a request stream.
pub(crate) struct BidiStream<B: Buf> {
    send: SendStream<B>,
    recv: RecvStream,
}

impl<B: Buf> quic::BidiStream<B> for BidiStream<B> {
    type SendStream = SendStream<B>;
    type RecvStream = RecvStream;

    fn split(self) -> (SendStream<B>, RecvStream) {
        (self.send, self.recv)
    }
}

impl<B: Buf> quic::SendStream<B> for BidiStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code)
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

impl<B: Buf> quic::RecvStream for BidiStream<B> {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code)
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}
