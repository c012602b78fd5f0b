//! Large DATA payloads go to quinn without a copy.
//!
//! h3 frames a payload by wrapping it, with the frame header, in a
//! `WriteBuf` that shows the adapter only bytes, never the `Bytes` they
//! live in; quinn, for its part, keeps `Bytes` it is given without copying
//! (`write_chunks`), but copies slices. So the writer of a large payload
//! *offers* its `Bytes` for the duration of the one synchronous poll in
//! which h3 passes the frame to the adapter ([`send_offering`]),
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

/// Payloads from this size on are offered: below it, one copy into a
/// single chunk costs less than quinn's keeping header and payload as two
/// segments (it walks its segments for every packet it builds).
const HANDOFF_MIN_BYTES: usize = 16 * 1024;

/// The longest DATA frame header: a type and a length, as varints.
const MAX_FRAME_HEADER: usize = 16;

thread_local! {
    static OFFERED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Sends `payload` with `send` (h3's `send_data`), offering it to the
/// adapter while h3 frames it if it is large enough to be worth handing
/// over. Smaller payloads are sent as they are, with nothing added.
pub(crate) async fn send_offering<S, F>(payload: Bytes, send: S) -> F::Output
where
    S: FnOnce(Bytes) -> F,
    F: Future,
{
    if payload.len() < HANDOFF_MIN_BYTES {
        return send(payload).await;
    }
    let mut offer = Some(payload.clone());
    let mut send = std::pin::pin!(send(payload));
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

/// A frame (h3's `WriteBuf`) as the chunks quinn is given: the offered payload without a
/// copy behind its copied header when `data` carries it; otherwise the
/// whole frame gathered into the first chunk, the second empty.
pub(super) fn chunks(mut data: impl Buf) -> ([Bytes; 2], bool) {
    let offered = OFFERED.with(|slot| {
        let mut slot = slot.borrow_mut();
        let header_len = data.remaining().checked_sub(slot.as_ref()?.len())?;
        if !(1..=MAX_FRAME_HEADER).contains(&header_len) {
            return None;
        }
        Some((slot.take()?, header_len))
    });
    let mut gathered = BytesMut::new();
    if let Some((payload, header_len)) = offered {
        gathered.reserve(header_len);
        copy(&mut data, &mut gathered, header_len);
        let rest = data.chunk();
        if rest.as_ptr() == payload.as_ptr() && rest.len() == payload.len() {
            return ([gathered.freeze(), payload], true);
        }
        // Same length, other memory: not the offered payload after all;
        // the rest is gathered behind the header.
    }
    let remaining = data.remaining();
    gathered.reserve(remaining);
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = &[0x00, 0x80, 0x00, 0x40, 0x00];

    fn offering<T>(payload: &Bytes, f: impl FnOnce() -> T) -> T {
        OFFERED.with(|slot| *slot.borrow_mut() = Some(payload.clone()));
        let out = f();
        OFFERED.with(|slot| slot.borrow_mut().take());
        out
    }

    fn joined(parts: &[Bytes; 2]) -> Vec<u8> {
        [&parts[0][..], &parts[1][..]].concat()
    }

    #[test]
    fn the_offered_payload_is_handed_over_behind_a_copied_header() {
        let payload = Bytes::from(vec![7u8; 20_000]);
        let frame = Bytes::from_static(HEADER).chain(payload.clone());
        let (parts, handed_over) = offering(&payload, || chunks(frame));
        assert!(handed_over);
        assert_eq!(&parts[0][..], HEADER);
        assert_eq!(parts[1].as_ptr(), payload.as_ptr());
    }

    #[test]
    fn other_memory_of_the_same_length_is_gathered_whole() {
        let offered = Bytes::from(vec![7u8; 20_000]);
        let other = Bytes::from(vec![9u8; 20_000]);
        let frame = Bytes::from_static(HEADER).chain(other.clone());
        let (parts, handed_over) = offering(&offered, || chunks(frame));
        assert!(!handed_over);
        assert!(parts[1].is_empty());
        assert_eq!(joined(&parts), [HEADER, &other[..]].concat());
    }

    /// Polls `send_offering` to its end, recording at each poll of the
    /// sending future whether an offer was out.
    fn offers_seen(payload_len: usize) -> Vec<bool> {
        let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
        let record = seen.clone();
        let send = move |_payload: Bytes| {
            std::future::poll_fn(move |cx| {
                let mut seen = record.borrow_mut();
                seen.push(OFFERED.with(|slot| slot.borrow().is_some()));
                if seen.len() < 3 {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
        };
        {
            let payload = Bytes::from(vec![1u8; payload_len]);
            let mut sending = std::pin::pin!(send_offering(payload, send));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            while sending.as_mut().poll(&mut cx).is_pending() {
                assert!(
                    OFFERED.with(|slot| slot.borrow().is_none()),
                    "offer left out"
                );
            }
        }
        assert!(
            OFFERED.with(|slot| slot.borrow().is_none()),
            "offer left out"
        );
        let seen = seen.borrow().clone();
        seen
    }

    #[test]
    fn an_offer_is_out_for_the_first_poll_only_and_only_when_large() {
        assert_eq!(offers_seen(HANDOFF_MIN_BYTES), [true, false, false]);
        assert_eq!(offers_seen(HANDOFF_MIN_BYTES - 1), [false, false, false]);
    }

    #[test]
    fn without_an_offer_a_frame_is_one_gathered_chunk() {
        let payload = Bytes::from(vec![7u8; 100]);
        let frame = Bytes::from_static(HEADER).chain(payload.clone());
        let (parts, handed_over) = chunks(frame);
        assert!(!handed_over);
        assert!(parts[1].is_empty());
        assert_eq!(joined(&parts), [HEADER, &payload[..]].concat());
        // A frame whose length does not fit the offer leaves it alone.
        let offered = Bytes::from(vec![7u8; 20_000]);
        let short = Bytes::from_static(HEADER);
        let (parts, _) = offering(&offered, || {
            let out = chunks(short);
            assert!(OFFERED.with(|slot| slot.borrow().is_some()));
            out
        });
        assert_eq!(&parts[0][..], HEADER);
    }
}
