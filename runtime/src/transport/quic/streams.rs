//! Stream halves of the adapter: quinn streams as h3 sees them, with the
//! frame guard on every receive side.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use quinn::VarInt;

use super::{
    handoff, read_error, stream_id, write_error, Backlog, ConnState, StopGuard, TransportCounters,
};
use crate::transport::frame_guard::{Dropped, FrameGuard, FrameTooLarge};

/// H3_REQUEST_CANCELLED, for request streams abandoned before their end.
pub(crate) const REQUEST_CANCELLED: u64 = 0x10c;
/// H3_EXCESSIVE_LOAD, for frames over the guard's limits.
pub(crate) const EXCESSIVE_LOAD: u64 = 0x107;
/// H3_REQUEST_REJECTED: not processed, the client may retry elsewhere.
pub(crate) const REQUEST_REJECTED: u64 = 0x10b;

/// Chunks read in one poll before yielding to other tasks (a peer sending
/// a large frame the guard drops must not monopolise the thread).
const READS_PER_POLL: usize = 32;

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

/// The code a request stream's halves are reset with if dropped
/// unfinished: H3_REQUEST_CANCELLED, unless the receive side refused a frame
/// (then H3_EXCESSIVE_LOAD on both halves).
#[derive(Clone, Debug)]
pub(crate) struct AbortCode(Arc<AtomicU64>);

impl AbortCode {
    pub(crate) fn new() -> AbortCode {
        AbortCode(Arc::new(AtomicU64::new(REQUEST_CANCELLED)))
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, code: u64) {
        self.0.store(code, Ordering::Release)
    }
}

/// The sending half of a stream.
///
/// Each frame h3 hands over (a frame header and its payload, as separate
/// pieces) goes to quinn as one contiguous chunk, or, for a large payload
/// its writer offered, as the copied header and the payload itself (see
/// [`handoff`](super::handoff)). quinn keeps every write as a segment
/// until the peer acknowledges it, and finds the bytes for each packet by
/// walking its segments from the oldest unacknowledged one; writing
/// header and payload apart doubled that walk and the allocations behind
/// it (quinn copies each slice it is given into a fresh buffer).
pub(crate) struct SendStream<B: Buf> {
    stream: quinn::SendStream,
    /// The frame being written, as chunks for quinn, minus what quinn has
    /// taken.
    parts: [Bytes; 2],
    /// Where frames handed over without a copy are counted.
    counters: Option<Arc<TransportCounters>>,
    /// h3's payload type: frames arrive as `WriteBuf<B>`.
    _payload: std::marker::PhantomData<fn(B)>,
    /// Request streams reset when dropped unfinished; control streams live
    /// as long as the connection and are left alone.
    reset_on_drop: Option<AbortCode>,
    _stop_guard: Option<StopGuard>,
}

impl<B: Buf> SendStream<B> {
    pub(super) fn new(stream: quinn::SendStream, stop_guard: Option<StopGuard>) -> SendStream<B> {
        SendStream {
            stream,
            parts: [Bytes::new(), Bytes::new()],
            counters: None,
            _payload: std::marker::PhantomData,
            reset_on_drop: None,
            _stop_guard: stop_guard,
        }
    }

    pub(super) fn request(
        stream: quinn::SendStream,
        stop_guard: Option<StopGuard>,
        abort: AbortCode,
        counters: Arc<TransportCounters>,
    ) -> SendStream<B> {
        let mut send = SendStream::new(stream, stop_guard);
        send.reset_on_drop = Some(abort);
        send.counters = Some(counters);
        send
    }

    /// Whether a frame is still being written.
    fn writing(&self) -> bool {
        self.parts.iter().any(|part| !part.is_empty())
    }
}

impl<B: Buf> Drop for SendStream<B> {
    fn drop(&mut self) {
        if let Some(abort) = &self.reset_on_drop {
            // Fails harmlessly if the stream was finished or reset already.
            let _ = self.stream.reset(varint(abort.get()));
        }
    }
}

impl<B: Buf> quic::SendStream<B> for SendStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        while self.writing() {
            // quinn advances the chunks past what it took; the rest waits.
            let written = {
                let write = self.stream.write_chunks(&mut self.parts);
                std::pin::pin!(write).poll(cx)
            };
            ready!(written).map_err(write_error)?;
        }
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing() {
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "send_data called before the previous write completed".into(),
                ),
            });
        }
        let (parts, handed_over) = handoff::chunks(data.into());
        if handed_over {
            if let Some(counters) = &self.counters {
                counters.frames_handed_over.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.parts = parts;
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.reset_on_drop = None;
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        self.reset_on_drop = None;
        let _ = self.stream.reset(varint(reset_code));
    }

    fn send_id(&self) -> StreamId {
        stream_id(self.stream.id())
    }
}

/// What the receive side does when its guard refuses a frame.
enum OnRefusal {
    /// A request stream: stop it, and reset the send half when it drops,
    /// with H3_EXCESSIVE_LOAD.
    ResetStream(AbortCode),
    /// A control stream: close the whole connection.
    CloseConnection(quinn::Connection),
}

/// The receiving half of a stream, reading whole chunks without copying
/// and passing them through the frame guard.
pub(crate) struct RecvStream {
    stream: quinn::RecvStream,
    id: StreamId,
    guard: FrameGuard,
    /// What the guard let through, not yet handed to h3.
    ready: VecDeque<Bytes>,
    conn_state: Arc<ConnState>,
    on_refusal: OnRefusal,
    /// Request streams stop the peer with H3_REQUEST_CANCELLED when dropped
    /// unread (quinn alone would send code 0, which HTTP/3 does not define).
    stop_on_drop: bool,
    ended: bool,
    /// Server request streams: when the request's HEADERS must have
    /// arrived.
    head_deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    /// Request streams: the DATA payload h3 holds; no reading from quinn
    /// while it is full.
    backlog: Option<Arc<Backlog>>,
}

/// A request whose HEADERS frame did not arrive within the header-read
/// timeout; the stream is refused with H3_REQUEST_REJECTED.
#[derive(Debug)]
pub(crate) struct HeaderReadTimeout(pub(crate) Duration);

impl std::fmt::Display for HeaderReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request headers did not arrive within {:?}; the stream was refused",
            self.0
        )
    }
}

impl std::error::Error for HeaderReadTimeout {}

impl RecvStream {
    /// A unidirectional stream; a control stream breaking the guard's
    /// limits closes `conn`.
    pub(super) fn unidirectional(
        stream: quinn::RecvStream,
        conn: quinn::Connection,
        conn_state: Arc<ConnState>,
    ) -> RecvStream {
        RecvStream {
            id: stream_id(stream.id()),
            stream,
            guard: FrameGuard::unidirectional_stream(),
            ready: VecDeque::new(),
            conn_state,
            on_refusal: OnRefusal::CloseConnection(conn),
            stop_on_drop: false,
            ended: false,
            head_deadline: None,
            backlog: None,
        }
    }

    pub(super) fn request(
        stream: quinn::RecvStream,
        conn_state: Arc<ConnState>,
        abort: AbortCode,
    ) -> RecvStream {
        let id = stream_id(stream.id());
        let backlog = conn_state.backlogs.register(id.into_inner());
        RecvStream {
            id,
            stream,
            guard: FrameGuard::request_stream(conn_state.max_header_list_size),
            ready: VecDeque::new(),
            conn_state,
            on_refusal: OnRefusal::ResetStream(abort),
            stop_on_drop: true,
            ended: false,
            head_deadline: None,
            backlog: Some(backlog),
        }
    }

    /// Refuses the request (H3_REQUEST_REJECTED) unless its HEADERS frame
    /// has arrived within `timeout`.
    pub(super) fn with_header_timeout(mut self, timeout: Duration) -> RecvStream {
        self.head_deadline = Some((Box::pin(tokio::time::sleep(timeout)), timeout));
        self
    }

    /// Polls the header-read deadline; an error once it passed.
    fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Result<(), StreamErrorIncoming> {
        let Some((deadline, timeout)) = &mut self.head_deadline else {
            return Ok(());
        };
        if self.guard.first_frame_complete() {
            self.head_deadline = None;
            return Ok(());
        }
        if deadline.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        let timeout = *timeout;
        self.head_deadline = None;
        self.conn_state
            .counters
            .header_timeouts
            .fetch_add(1, Ordering::Relaxed);
        if let OnRefusal::ResetStream(abort) = &self.on_refusal {
            abort.set(REQUEST_REJECTED);
        }
        self.stop_on_drop = false;
        let _ = self.stream.stop(varint(REQUEST_REJECTED));
        self.ended = true;
        Err(StreamErrorIncoming::Unknown(Box::new(HeaderReadTimeout(
            timeout,
        ))))
    }

    fn refuse(&mut self, refused: FrameTooLarge) -> StreamErrorIncoming {
        self.conn_state
            .counters
            .refused_frames
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %refused, "refusing an HTTP/3 frame");
        match &self.on_refusal {
            OnRefusal::ResetStream(abort) => {
                abort.set(EXCESSIVE_LOAD);
                self.stop_on_drop = false;
                let _ = self.stream.stop(varint(EXCESSIVE_LOAD));
            }
            OnRefusal::CloseConnection(conn) => {
                conn.close(varint(EXCESSIVE_LOAD), refused.to_string().as_bytes());
            }
        }
        self.ended = true;
        StreamErrorIncoming::Unknown(Box::new(refused))
    }
}

impl RecvStream {
    fn record(&self, dropped: Dropped) {
        if let Some(backlog) = &self.backlog {
            backlog.handed_to_h3(dropped.data_payload);
        }
        let counters = &self.conn_state.counters;
        if dropped.unknown_frame_bytes > 0 {
            counters
                .unknown_frame_bytes
                .fetch_add(dropped.unknown_frame_bytes, Ordering::Relaxed);
        }
        if dropped.empty_data_frames > 0 {
            counters
                .empty_data_frames
                .fetch_add(dropped.empty_data_frames, Ordering::Relaxed);
        }
        if let (Some(id), OnRefusal::CloseConnection(_)) = (dropped.goaway, &self.on_refusal) {
            // Only the control stream carries GOAWAY (h3 refuses it
            // anywhere else); ids never grow, so the minimum is kept.
            self.conn_state.peer_goaway.fetch_min(id, Ordering::AcqRel);
        }
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if let Some(backlog) = &self.backlog {
            self.conn_state
                .backlogs
                .forget(self.id.into_inner(), backlog);
        }
        if self.stop_on_drop {
            // Fails harmlessly once everything was read or it was stopped.
            let _ = self.stream.stop(varint(REQUEST_CANCELLED));
        }
    }
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        self.poll_head_deadline(cx)?;
        for _ in 0..READS_PER_POLL {
            if let Some(chunk) = self.ready.pop_front() {
                return Poll::Ready(Ok(Some(chunk)));
            }
            if self.ended {
                return Poll::Ready(Ok(None));
            }
            if self.backlog.as_ref().is_some_and(|b| b.full()) {
                // h3 holds enough DATA to serve the application; it polls
                // again as the application reads. The wake-up only makes a
                // miscount cost a spin rather than a hang.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // `read_chunk` is cancel-safe and its waker registration
            // outlives the future, so a fresh future per poll keeps the
            // stream in our hands (for `stop_sending`) without boxing.
            let read = self.stream.read_chunk(usize::MAX, true);
            let chunk = ready!(std::pin::pin!(read).poll(cx)).map_err(read_error)?;
            match chunk {
                None => {
                    self.ended = true;
                    self.guard.finish(&mut self.ready);
                }
                Some(chunk) => match self.guard.push(chunk.bytes, &mut self.ready) {
                    Ok(dropped) => self.record(dropped),
                    Err(refused) => return Poll::Ready(Err(self.refuse(refused))),
                },
            }
        }
        // Everything read so far was dropped: let other tasks run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.stop_on_drop = false;
        let _ = self.stream.stop(varint(error_code));
    }

    fn recv_id(&self) -> StreamId {
        self.id
    }
}

/// Both halves of a request stream.
pub(crate) struct BidiStream<B: Buf> {
    pub(super) send: SendStream<B>,
    pub(super) recv: RecvStream,
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
