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
//!
//! Every receive side runs through the [frame guard](super::frame_guard),
//! which bounds what h3 buffers and drops frames h3 mishandles, and request
//! streams stop reading while h3 holds a [backlog](backlog) of DATA.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Buf;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId};
use quinn::VarInt;

mod backlog;
#[cfg(all(test, feature = "dev-certificate"))]
mod backlog_tests;
mod handoff;
mod streams;

pub(crate) use backlog::{Backlog, Backlogs};
pub(crate) use handoff::send_offering;
use streams::AbortCode;
pub(crate) use streams::{BidiStream, RecvStream, SendStream};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + Sync>>;
type BiResult = Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>;
type UniResult = Result<quinn::SendStream, quinn::ConnectionError>;

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
#[derive(Clone)]
pub(crate) struct StopSignals {
    map: Arc<Mutex<HashMap<u64, BoxFuture<StreamEnd>>>>,
    /// Entries across every connection sharing this gauge.
    registered: Arc<AtomicUsize>,
}

impl StopSignals {
    /// An empty set counting its entries in `registered`.
    pub(crate) fn new(registered: Arc<AtomicUsize>) -> StopSignals {
        StopSignals {
            map: Arc::default(),
            registered,
        }
    }

    /// Takes the signal for stream `id`.
    pub(crate) fn take(&self, id: u64) -> Option<BoxFuture<StreamEnd>> {
        let taken = self.map.lock().expect("stop signal lock").remove(&id);
        if taken.is_some() {
            self.registered.fetch_sub(1, Ordering::AcqRel);
        }
        taken
    }

    fn register(&self, stream: &quinn::SendStream) -> StopGuard {
        let stopped = stream.stopped();
        let id = VarInt::from(stream.id()).into_inner();
        let previous = self.map.lock().expect("stop signal lock").insert(
            id,
            Box::pin(async move {
                match stopped.await {
                    Ok(None) => StreamEnd::Acknowledged,
                    _ => StreamEnd::Stopped,
                }
            }),
        );
        if previous.is_none() {
            self.registered.fetch_add(1, Ordering::AcqRel);
        }
        StopGuard {
            signals: self.clone(),
            id,
        }
    }
}

pub(crate) struct StopGuard {
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
        quinn::WriteError::ZeroRttRejected => zero_rtt_rejected(),
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
        quinn::ReadError::ZeroRttRejected => zero_rtt_rejected(),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

/// A stream sent in 0-RTT early data that the server rejected: the server
/// never saw it, which is what H3_REQUEST_REJECTED says (the client may
/// send it again).
fn zero_rtt_rejected() -> StreamErrorIncoming {
    StreamErrorIncoming::StreamTerminated {
        error_code: streams::REQUEST_REJECTED,
    }
}

fn stream_id(id: quinn::StreamId) -> StreamId {
    StreamId::try_from(u64::from(VarInt::from(id))).expect("quinn stream ids are valid varints")
}

/// What the receive sides of one endpoint have dropped or refused.
#[derive(Debug, Default)]
pub(crate) struct TransportCounters {
    /// Request streams refused because their HEADERS did not arrive within
    /// the header-read timeout.
    pub(crate) header_timeouts: AtomicU64,
    /// Request streams refused at or past the GOAWAY boundary.
    pub(crate) refused_after_goaway: AtomicU64,
    /// Bytes of unknown or reserved frames dropped unread.
    pub(crate) unknown_frame_bytes: AtomicU64,
    /// Zero-length DATA frames dropped.
    pub(crate) empty_data_frames: AtomicU64,
    /// Frames refused for declaring more than their limit.
    pub(crate) refused_frames: AtomicU64,
    /// DATA frames whose payload went to quinn without a copy.
    pub(crate) frames_handed_over: AtomicU64,
}

/// How a server treats the request streams it accepts.
#[derive(Clone)]
pub(crate) struct ServerStreams {
    /// Where each stream's STOP_SENDING is reported.
    pub(crate) signals: StopSignals,
    /// A stream whose HEADERS have not arrived by then is refused.
    pub(crate) header_read_timeout: Duration,
    /// The first stream id not processed (what our GOAWAY announces);
    /// `u64::MAX` until then. Streams from it on are refused with
    /// H3_REQUEST_REJECTED before h3 sees them.
    pub(crate) refuse_from: Arc<AtomicU64>,
}

/// A quinn connection as h3 sees it.
pub(crate) struct Connection {
    opener: Opener,
    accepting_bi: Option<BoxFuture<BiResult>>,
    accepting_uni: Option<BoxFuture<RecvResult>>,
    server: Option<ServerStreams>,
}

impl Connection {
    /// Wraps a client connection.
    pub(crate) fn client(conn: quinn::Connection, state: Arc<ConnState>) -> Connection {
        Connection {
            opener: Opener::new(conn, state),
            accepting_bi: None,
            accepting_uni: None,
            server: None,
        }
    }

    /// Wraps a server connection whose request streams follow `streams`.
    pub(crate) fn server(
        conn: quinn::Connection,
        state: Arc<ConnState>,
        streams: ServerStreams,
    ) -> Connection {
        Connection {
            server: Some(streams),
            ..Connection::client(conn, state)
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
        let stream = result.map_err(connection_error)?;
        Poll::Ready(Ok(RecvStream::unidirectional(
            stream,
            self.opener.conn.clone(),
            self.opener.state.clone(),
        )))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream<B>, ConnectionErrorIncoming>> {
        loop {
            let conn = &self.opener.conn;
            let fut = self.accepting_bi.get_or_insert_with(|| {
                let conn = conn.clone();
                Box::pin(async move { conn.accept_bi().await })
            });
            let result = ready!(fut.as_mut().poll(cx));
            self.accepting_bi = None;
            let (mut send, mut recv) = result.map_err(connection_error)?;
            let Some(server) = &self.server else {
                // A client: HTTP/3 servers never open request streams, and
                // the transport configuration allows them none.
                return Poll::Ready(Ok(self.opener.request_stream(send, recv, None)));
            };
            let id = VarInt::from(send.id()).into_inner();
            if id >= server.refuse_from.load(Ordering::Acquire) {
                let rejected = VarInt::from_u64(streams::REQUEST_REJECTED).expect("valid code");
                let _ = send.reset(rejected);
                let _ = recv.stop(rejected);
                self.opener
                    .state
                    .counters
                    .refused_after_goaway
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let guard = server.signals.register(&send);
            let mut stream = self.opener.request_stream(send, recv, Some(guard));
            stream.recv = stream.recv.with_header_timeout(server.header_read_timeout);
            return Poll::Ready(Ok(stream));
        }
    }

    fn opener(&self) -> Opener {
        self.opener.clone()
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

/// What the streams of one connection share.
pub(crate) struct ConnState {
    pub(crate) max_header_list_size: u64,
    pub(crate) counters: Arc<TransportCounters>,
    /// The stream id in the peer's last GOAWAY; `u64::MAX` before any.
    /// Requests from this id on were not processed.
    pub(crate) peer_goaway: AtomicU64,
    /// Each request stream's count of DATA payload h3 holds.
    pub(crate) backlogs: Backlogs,
}

impl ConnState {
    /// State for a connection whose HEADERS frames may be as large as
    /// `max_header_list_size` allows.
    pub(crate) fn new(max_header_list_size: u64, counters: Arc<TransportCounters>) -> ConnState {
        ConnState {
            max_header_list_size,
            counters,
            peer_goaway: AtomicU64::new(u64::MAX),
            backlogs: Backlogs::default(),
        }
    }

    /// Whether the peer has announced that request stream `id` (and every
    /// later one) was not processed.
    pub(crate) fn unprocessed(&self, id: u64) -> bool {
        id >= self.peer_goaway.load(Ordering::Acquire)
    }

    /// The handshake of a connection that sent 0-RTT calls failed: none of
    /// them counts as processed (all are replay-safe), and the connection
    /// takes no more, as after a GOAWAY for stream 0.
    pub(crate) fn abandon_early_data(&self) {
        self.peer_goaway.store(0, Ordering::Release);
    }

    /// Whether the peer sent GOAWAY.
    pub(crate) fn going_away(&self) -> bool {
        self.peer_goaway.load(Ordering::Acquire) != u64::MAX
    }
}

/// Opens streams on a connection (h3 keeps one per request sender).
pub(crate) struct Opener {
    conn: quinn::Connection,
    state: Arc<ConnState>,
    opening_bi: Option<BoxFuture<BiResult>>,
    opening_uni: Option<BoxFuture<UniResult>>,
}

impl Opener {
    fn new(conn: quinn::Connection, state: Arc<ConnState>) -> Opener {
        Opener {
            conn,
            state,
            opening_bi: None,
            opening_uni: None,
        }
    }

    fn request_stream<B: Buf>(
        &self,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        stop_guard: Option<StopGuard>,
    ) -> BidiStream<B> {
        let abort = AbortCode::new();
        BidiStream {
            send: SendStream::request(send, stop_guard, abort.clone(), self.state.counters.clone()),
            recv: RecvStream::request(recv, self.state.clone(), abort),
        }
    }
}

impl Clone for Opener {
    fn clone(&self) -> Opener {
        Opener::new(self.conn.clone(), self.state.clone())
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
        Poll::Ready(Ok(self.request_stream(send, recv, None)))
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
