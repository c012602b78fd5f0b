//! Large DATA payloads go to quinn without a copy.
//!
//! h3 frames a payload by wrapping it, with the frame header, in a
//! `WriteBuf` that shows the adapter only bytes, never the `Bytes` they
//! live in; quinn, for its part, keeps `Bytes` it is given without copying
//! (`write_chunks`), but copies slices. So the writer of a large payload
//! *offers* its `Bytes` for the duration of the one synchronous poll in
//! which h3 passes the frame to the adapter ([`with_payload_offered`]),
//! and the adapter takes the offer only if the frame's payload is the
//! very same memory (same address, same length): the frame header is
//! copied, the payload is handed over. Anything else (a frame that is not
//! the offered payload, a small payload, a header frame) is gathered into
//! one chunk by one copy, as before.
//!
//! The offer is a thread-local set and cleared around a single poll, so it
//! never outlives the poll nor reaches another task.

use std::cell::RefCell;
use std::future::Future;

use bytes::{Buf, Bytes, BytesMut};
use h3::quic::WriteBuf;

/// Payloads from this size on are offered: below it, one copy into a
/// single chunk costs less than quinn's keeping header and payload as two
/// segments (it walks its segments for every packet it builds).
pub(crate) const HANDOFF_MIN_BYTES: usize = 16 * 1024;

/// The longest DATA frame header: a type and a length, as varints.
const MAX_FRAME_HEADER: usize = 16;

thread_local! {
    static OFFERED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `send` (an h3 `send_data` future for `payload`), offering
/// `payload` to the adapter while h3 frames it, if it is large enough to
/// be worth handing over.
pub(crate) async fn with_payload_offered<F: Future>(payload: &Bytes, send: F) -> F::Output {
    let mut offer = (payload.len() >= HANDOFF_MIN_BYTES).then(|| payload.clone());
    let mut send = std::pin::pin!(send);
    std::future::poll_fn(|cx| match offer.take() {
        Some(payload) => {
            OFFERED.with(|slot| *slot.borrow_mut() = Some(payload));
            let polled = send.as_mut().poll(cx);
            OFFERED.with(|slot| slot.borrow_mut().take());
            polled
        }
        None => send.as_mut().poll(cx),
    })
    .await
}

/// A frame as the chunks quinn is given: the offered payload without a
/// copy behind its copied header when `data` carries it; otherwise the
/// whole frame gathered into the first chunk, the second empty.
pub(super) fn chunks<B: Buf>(mut data: WriteBuf<B>) -> ([Bytes; 2], bool) {
    let offered = OFFERED.with(|slot| {
        let mut slot = slot.borrow_mut();
        let header_len = data.remaining().checked_sub(slot.as_ref()?.len())?;
        (1..=MAX_FRAME_HEADER)
            .contains(&header_len)
            .then(|| (slot.take(), header_len))
    });
    if let Some((Some(payload), header_len)) = offered {
        let mut header = BytesMut::with_capacity(data.remaining());
        copy(&mut data, &mut header, header_len);
        let rest = data.chunk();
        if rest.as_ptr() == payload.as_ptr() && rest.len() == payload.len() {
            return ([header.freeze(), payload], true);
        }
        // Same length, other memory: not the offered payload after all.
        let remaining = data.remaining();
        copy(&mut data, &mut header, remaining);
        return ([header.freeze(), Bytes::new()], false);
    }
    let mut gathered = BytesMut::with_capacity(data.remaining());
    let remaining = data.remaining();
    copy(&mut data, &mut gathered, remaining);
    ([gathered.freeze(), Bytes::new()], false)
}

/// Moves `len` bytes from the front of `data` to the end of `into`.
fn copy(data: &mut impl Buf, into: &mut BytesMut, len: usize) {
    let mut left = len;
    while left > 0 {
        let chunk = data.chunk();
        let n = chunk.len().min(left);
        into.extend_from_slice(&chunk[..n]);
        data.advance(n);
        left -= n;
    }
}
