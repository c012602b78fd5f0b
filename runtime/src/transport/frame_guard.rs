//! A sans-IO guard over the HTTP/3 frame layer, between quinn and h3.
//!
//! h3 0.0.8 buffers every frame other than DATA whole before it looks at
//! its size (hyperium/h3#294), so one stream could make us hold any amount
//! of memory with a HEADERS frame declaring hundreds of MiB, or with a frame
//! of an unknown type, while quinn keeps granting flow-control credit
//! because h3 keeps reading. It also takes a zero-length DATA frame for the
//! end of the body. The guard reads the frame headers as bytes pass by and:
//!
//! - refuses a HEADERS or PUSH_PROMISE frame declaring more than the header
//!   limit, and a control frame declaring more than [`CONTROL_FRAME_LIMIT`],
//!   before any of its payload is read;
//! - drops frames of unknown and reserved types (RFC 9114 §7.2.8) without
//!   buffering their payload;
//! - drops zero-length DATA frames, which carry nothing;
//! - passes everything else through as slices of the received chunks (no
//!   copies, except a frame header split across two chunks).
//!
//! What h3 would need upstream for this module to go away: check a frame's
//! declared length against a limit before waiting for its payload (the
//! SETTINGS_MAX_FIELD_SECTION_SIZE for HEADERS, a small constant for control
//! frames), skip unknown frames as they arrive instead of after buffering
//! them, and keep reading after an empty DATA frame.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;

/// The largest control frame (SETTINGS, GOAWAY, CANCEL_PUSH, MAX_PUSH_ID,
/// and the reserved HTTP/2 types, which h3 refuses anyway) accepted. h3 reads
/// at most a few dozen bytes of any of them.
pub(crate) const CONTROL_FRAME_LIMIT: u64 = 1024;

/// Slack over the header-list limit for a HEADERS frame: QPACK's encoded
/// size is below the decoded size it limits (which counts 32 bytes per
/// field), apart from a few bytes of prefix.
const HEADER_FRAME_SLACK: u64 = 1024;

const DATA: u64 = 0x0;
const HEADERS: u64 = 0x1;
const CANCEL_PUSH: u64 = 0x3;
const SETTINGS: u64 = 0x4;
const PUSH_PROMISE: u64 = 0x5;
const GOAWAY: u64 = 0x7;
const MAX_PUSH_ID: u64 = 0xd;
/// HTTP/2 frame types with no HTTP/3 meaning: PRIORITY, PING, WINDOW_UPDATE,
/// CONTINUATION. h3 answers them with H3_FRAME_UNEXPECTED.
const HTTP2_ONLY: [u64; 4] = [0x2, 0x6, 0x8, 0x9];

/// Unidirectional stream type of the control stream.
const CONTROL_STREAM: u64 = 0x0;

/// A frame the guard refused; the stream (or, on a control stream, the
/// connection) is closed with H3_EXCESSIVE_LOAD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FrameTooLarge {
    /// The frame type.
    pub(crate) frame_type: u64,
    /// The length the frame declared.
    pub(crate) declared: u64,
    /// The most accepted for this type.
    pub(crate) limit: u64,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.frame_type {
            HEADERS => "HEADERS",
            PUSH_PROMISE => "PUSH_PROMISE",
            SETTINGS => "SETTINGS",
            GOAWAY => "GOAWAY",
            CANCEL_PUSH => "CANCEL_PUSH",
            MAX_PUSH_ID => "MAX_PUSH_ID",
            _ => "reserved HTTP/2",
        };
        write!(
            f,
            "HTTP/3 {name} frame (type {:#x}) declares {} bytes, over the limit of {} bytes",
            self.frame_type, self.declared, self.limit
        )
    }
}

impl std::error::Error for FrameTooLarge {}

/// What the guard did with one chunk, for the counters, and what it saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Bytes of unknown or reserved frames dropped (headers included).
    pub(crate) unknown_frame_bytes: u64,
    /// Zero-length DATA frames dropped.
    pub(crate) empty_data_frames: u64,
    /// The id in a GOAWAY frame that passed (control streams only).
    pub(crate) goaway: Option<u64>,
    /// DATA payload bytes passed through.
    pub(crate) data_payload: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A unidirectional stream before its type.
    StreamType,
    /// Passing through a stream that is not framed (QPACK streams, push
    /// streams, unknown types: h3 deals with them).
    Opaque,
    /// Reading a frame header.
    FrameHeader,
    /// Passing this many more payload bytes through.
    Pass(u64),
    /// Passing a GOAWAY frame's payload through, this many bytes more,
    /// while reading the id it carries.
    Goaway(u64),
    /// Dropping this many more payload bytes.
    Skip(u64),
}

/// The guard for one receive stream.
#[derive(Debug)]
pub(crate) struct FrameGuard {
    header_limit: u64,
    state: State,
    /// The bytes of a frame header (or stream type) seen so far; at most two
    /// varints of 8 bytes.
    partial: [u8; 16],
    partial_len: usize,
    /// Whether the first known frame (a request's HEADERS) has passed
    /// whole.
    first_frame_done: bool,
    /// Whether the frame being passed through is a DATA frame.
    passing_data: bool,
    /// The payload of a GOAWAY frame read so far (one varint).
    goaway: [u8; 8],
    goaway_len: usize,
}

/// The most a frame of `frame_type` may declare; `None` for frames that are
/// dropped unread.
fn limit_for(header_limit: u64, frame_type: u64) -> Option<u64> {
    match frame_type {
        HEADERS | PUSH_PROMISE => Some(header_limit),
        CANCEL_PUSH | SETTINGS | GOAWAY | MAX_PUSH_ID => Some(CONTROL_FRAME_LIMIT),
        t if HTTP2_ONLY.contains(&t) => Some(CONTROL_FRAME_LIMIT),
        _ => None,
    }
}

/// Length of the QUIC variable-length integer starting with `first`.
fn varint_len(first: u8) -> usize {
    1 << (first >> 6)
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = varint_len(first);
    if bytes.len() < len {
        return None;
    }
    let mut value = u64::from(first & 0x3f);
    for byte in &bytes[1..len] {
        value = (value << 8) | u64::from(*byte);
    }
    Some((value, len))
}

impl FrameGuard {
    /// A guard for a request stream (either side), refusing HEADERS frames
    /// larger than `max_header_list_size` allows.
    pub(crate) fn request_stream(max_header_list_size: u64) -> FrameGuard {
        FrameGuard {
            header_limit: max_header_list_size.saturating_add(HEADER_FRAME_SLACK),
            state: State::FrameHeader,
            partial: [0; 16],
            partial_len: 0,
            first_frame_done: false,
            passing_data: false,
            goaway: [0; 8],
            goaway_len: 0,
        }
    }

    /// A guard for a unidirectional stream: the control stream is framed
    /// and guarded, other stream types pass through.
    pub(crate) fn unidirectional_stream() -> FrameGuard {
        FrameGuard {
            state: State::StreamType,
            ..FrameGuard::request_stream(0)
        }
    }

    fn limit_for(&self, frame_type: u64) -> Option<u64> {
        limit_for(self.header_limit, frame_type)
    }

    /// Whether the stream's first frame that is not dropped (on a request
    /// stream, the HEADERS) has passed whole.
    pub(crate) fn first_frame_complete(&self) -> bool {
        self.first_frame_done
    }

    /// Bytes the guard holds back (a partial frame header); at most 16.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.partial_len
    }

    /// Filters one received chunk, appending what h3 should see to `out`.
    pub(crate) fn push(
        &mut self,
        chunk: Bytes,
        out: &mut VecDeque<Bytes>,
    ) -> Result<Dropped, FrameTooLarge> {
        let mut dropped = Dropped::default();
        // `start..pos` is the run of `chunk` to pass through unchanged.
        let mut start = 0;
        let mut pos = 0;
        let flush = |out: &mut VecDeque<Bytes>, from: usize, to: usize| {
            if to > from {
                out.push_back(chunk.slice(from..to));
            }
        };
        while pos < chunk.len() {
            match self.state {
                State::Opaque => {
                    pos = chunk.len();
                }
                State::Pass(remaining) => {
                    let take = remaining.min((chunk.len() - pos) as u64);
                    pos += take as usize;
                    if self.passing_data {
                        dropped.data_payload += take;
                    }
                    self.state = match remaining - take {
                        0 => {
                            self.first_frame_done = true;
                            State::FrameHeader
                        }
                        rest => State::Pass(rest),
                    };
                }
                State::Goaway(remaining) => {
                    let take = remaining.min((chunk.len() - pos) as u64) as usize;
                    for byte in &chunk[pos..pos + take] {
                        if self.goaway_len < self.goaway.len() {
                            self.goaway[self.goaway_len] = *byte;
                            self.goaway_len += 1;
                        }
                    }
                    pos += take;
                    if remaining == take as u64 {
                        dropped.goaway = read_varint(&self.goaway[..self.goaway_len]).map(|v| v.0);
                        self.goaway_len = 0;
                        self.state = State::FrameHeader;
                    } else {
                        self.state = State::Goaway(remaining - take as u64);
                    }
                }
                State::Skip(remaining) => {
                    let take = remaining.min((chunk.len() - pos) as u64);
                    flush(out, start, pos);
                    pos += take as usize;
                    start = pos;
                    dropped.unknown_frame_bytes += take;
                    self.state = match remaining - take {
                        0 => State::FrameHeader,
                        rest => State::Skip(rest),
                    };
                }
                State::StreamType | State::FrameHeader => {
                    // Header bytes are held back until the frame is judged.
                    // When the header started in an earlier chunk, the held
                    // bytes are released as a copy; otherwise as a slice.
                    let held_before = self.partial_len;
                    let needed = if self.state == State::StreamType {
                        1
                    } else {
                        2
                    };
                    let mut parsed = None;
                    while pos < chunk.len() && self.partial_len < self.partial.len() {
                        self.partial[self.partial_len] = chunk[pos];
                        self.partial_len += 1;
                        pos += 1;
                        if let Some(values) = self.parse_partial(needed) {
                            parsed = Some(values);
                            break;
                        }
                    }
                    let Some((first, second)) = parsed else {
                        // The chunk ended inside the header: keep it.
                        flush(out, start, pos - (self.partial_len - held_before));
                        return Ok(dropped);
                    };
                    let header_in_chunk = self.partial_len - held_before;
                    let header_start = pos - header_in_chunk;
                    let header_len = self.partial_len;
                    self.partial_len = 0;
                    let pass_header = if self.state == State::StreamType {
                        self.state = if first == CONTROL_STREAM {
                            State::FrameHeader
                        } else {
                            State::Opaque
                        };
                        true
                    } else {
                        self.judge(first, second, header_len, &mut dropped)?
                    };
                    if pass_header {
                        if held_before > 0 {
                            flush(out, start, header_start);
                            out.push_back(Bytes::copy_from_slice(&self.partial[..header_len]));
                            start = pos;
                        }
                    } else {
                        flush(out, start, header_start);
                        start = pos;
                    }
                }
            }
        }
        flush(out, start, pos);
        Ok(dropped)
    }

    /// Parses the held header: the stream type, or the frame type and
    /// length, once complete.
    fn parse_partial(&self, needed: usize) -> Option<(u64, u64)> {
        let bytes = &self.partial[..self.partial_len];
        let (first, used) = read_varint(bytes)?;
        if needed == 1 {
            return (used == bytes.len()).then_some((first, 0));
        }
        let (second, used2) = read_varint(&bytes[used..])?;
        (used + used2 == bytes.len()).then_some((first, second))
    }

    /// Decides what happens to a frame of `frame_type` declaring `len`
    /// bytes; returns whether its header is passed on.
    fn judge(
        &mut self,
        frame_type: u64,
        len: u64,
        header_len: usize,
        dropped: &mut Dropped,
    ) -> Result<bool, FrameTooLarge> {
        self.passing_data = frame_type == DATA;
        if frame_type == DATA {
            if len == 0 {
                dropped.empty_data_frames += 1;
                self.state = State::FrameHeader;
                return Ok(false);
            }
            self.state = State::Pass(len);
            return Ok(true);
        }
        match self.limit_for(frame_type) {
            Some(limit) if len > limit => Err(FrameTooLarge {
                frame_type,
                declared: len,
                limit,
            }),
            Some(_) => {
                self.state = if len == 0 {
                    self.first_frame_done = true;
                    State::FrameHeader
                } else if frame_type == GOAWAY {
                    State::Goaway(len)
                } else {
                    State::Pass(len)
                };
                Ok(true)
            }
            None => {
                dropped.unknown_frame_bytes += header_len as u64;
                self.state = if len == 0 {
                    State::FrameHeader
                } else {
                    State::Skip(len)
                };
                Ok(false)
            }
        }
    }

    /// At the end of the stream: a frame header cut short is released so
    /// that h3 reports the truncated frame.
    pub(crate) fn finish(&mut self, out: &mut VecDeque<Bytes>) {
        if self.partial_len > 0 {
            out.push_back(Bytes::copy_from_slice(&self.partial[..self.partial_len]));
            self.partial_len = 0;
        }
    }
}

/// What a guard fed `input` in one piece lets through, computed frame by
/// frame without the streaming state machine: the reference the fuzz
/// targets hold the guard to.
pub(crate) fn reference(
    input: &[u8],
    max_header_list_size: u64,
    unidirectional: bool,
) -> Result<Vec<u8>, FrameTooLarge> {
    let header_limit = max_header_list_size.saturating_add(HEADER_FRAME_SLACK);
    let mut out = Vec::new();
    let mut pos = 0;
    if unidirectional {
        let Some((stream_type, len)) = read_varint(input) else {
            return Ok(input.to_vec());
        };
        out.extend_from_slice(&input[..len]);
        pos = len;
        if stream_type != CONTROL_STREAM {
            out.extend_from_slice(&input[pos..]);
            return Ok(out);
        }
    }
    while pos < input.len() {
        let header = read_varint(&input[pos..]).and_then(|(frame_type, a)| {
            read_varint(&input[pos + a..]).map(|(len, b)| (frame_type, len, a + b))
        });
        let Some((frame_type, len, header_len)) = header else {
            out.extend_from_slice(&input[pos..]); // released at the end
            break;
        };
        let payload_end = (pos + header_len).saturating_add(len.min(usize::MAX as u64) as usize);
        let end = payload_end.min(input.len());
        let keep = match frame_type {
            DATA => len > 0,
            _ => match limit_for(header_limit, frame_type) {
                Some(limit) if len > limit => {
                    return Err(FrameTooLarge {
                        frame_type,
                        declared: len,
                        limit,
                    })
                }
                Some(_) => true,
                None => false,
            },
        };
        if keep {
            out.extend_from_slice(&input[pos..end]);
        }
        pos = end;
    }
    Ok(out)
}

/// Feeds `input` to a guard in chunks of the given sizes (cycled) and
/// checks the result against [`reference`]; panics on any difference.
pub(crate) fn check_chunked(
    input: &[u8],
    chunk_sizes: &[usize],
    max_header_list_size: u64,
    unidirectional: bool,
) {
    let mut guard = if unidirectional {
        FrameGuard::unidirectional_stream()
    } else {
        FrameGuard::request_stream(max_header_list_size)
    };
    let mut out = VecDeque::new();
    let mut pos = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    let mut result = Ok(());
    while pos < input.len() {
        let size = sizes.next().copied().unwrap_or(input.len()).max(1);
        let end = (pos + size).min(input.len());
        if let Err(e) = guard.push(Bytes::copy_from_slice(&input[pos..end]), &mut out) {
            result = Err(e);
            break;
        }
        assert!(guard.partial_len <= 16, "the guard held more than a header");
        pos = end;
    }
    if result.is_ok() {
        guard.finish(&mut out);
    }
    let passed: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
    // A unidirectional stream carries no header blocks: its guard allows
    // HEADERS no more than the slack.
    let header_limit = if unidirectional {
        0
    } else {
        max_header_list_size
    };
    match (reference(input, header_limit, unidirectional), result) {
        (Ok(expected), Ok(())) => assert_eq!(passed, expected, "chunked output differs"),
        (Err(expected), Err(got)) => assert_eq!(got, expected, "a different refusal"),
        (expected, got) => panic!("reference {expected:?}, guard {got:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(value: u64) -> Vec<u8> {
        match value {
            0..=63 => vec![value as u8],
            64..=16383 => (value as u16 | 0x4000).to_be_bytes().to_vec(),
            16384..=1_073_741_823 => (value as u32 | 0x8000_0000).to_be_bytes().to_vec(),
            _ => (value | 0xc000_0000_0000_0000).to_be_bytes().to_vec(),
        }
    }

    fn frame(frame_type: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = varint(frame_type);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    /// Feeds `wire` in chunks of `size` bytes; returns what passed and the
    /// totals dropped.
    fn run(
        guard: &mut FrameGuard,
        wire: &[u8],
        size: usize,
    ) -> Result<(Vec<u8>, Dropped), FrameTooLarge> {
        let mut out = VecDeque::new();
        let mut total = Dropped::default();
        for chunk in wire.chunks(size.max(1)) {
            let dropped = guard.push(Bytes::copy_from_slice(chunk), &mut out)?;
            total.unknown_frame_bytes += dropped.unknown_frame_bytes;
            total.empty_data_frames += dropped.empty_data_frames;
            total.goaway = dropped.goaway.or(total.goaway);
        }
        guard.finish(&mut out);
        Ok((out.into_iter().flat_map(|b| b.to_vec()).collect(), total))
    }

    #[test]
    fn known_frames_pass_unchanged_at_every_split() {
        let mut wire = frame(HEADERS, b"qpack block");
        wire.extend(frame(DATA, &[7; 300]));
        wire.extend(frame(HEADERS, b"trailers"));
        for size in [1, 2, 3, 5, 64, 1000] {
            let mut guard = FrameGuard::request_stream(16 * 1024);
            let (passed, dropped) = run(&mut guard, &wire, size).unwrap();
            assert_eq!(passed, wire, "chunk size {size}");
            assert_eq!(dropped, Dropped::default());
        }
    }

    #[test]
    fn empty_data_and_unknown_frames_are_dropped() {
        let mut wire = frame(HEADERS, b"h");
        wire.extend(frame(DATA, b""));
        wire.extend(frame(0x21, &[1; 100])); // reserved (grease) type
        wire.extend(frame(DATA, b"msg"));
        wire.extend(frame(DATA, b""));
        wire.extend(frame(0x41, b"webtransport is not negotiated"));
        wire.extend(frame(0xabcdef, b""));
        let mut expected = frame(HEADERS, b"h");
        expected.extend(frame(DATA, b"msg"));
        for size in [1, 4, 7, 4096] {
            let mut guard = FrameGuard::request_stream(16 * 1024);
            let (passed, dropped) = run(&mut guard, &wire, size).unwrap();
            assert_eq!(passed, expected, "chunk size {size}");
            assert_eq!(dropped.empty_data_frames, 2);
            // 0x21: 1 + 2 + 100; 0x41: 2 + 1 + 30; 0xabcdef: 4 + 1.
            assert_eq!(dropped.unknown_frame_bytes, 103 + 33 + 5);
        }
    }

    #[test]
    fn only_data_payload_that_passes_is_counted_at_every_split() {
        // What a legal peer may interleave with its messages: HEADERS,
        // empty DATA frames, grease and unknown frames, trailers.
        let mut wire = frame(HEADERS, b"qpack block");
        wire.extend(frame(DATA, &[1; 300]));
        wire.extend(frame(DATA, b""));
        wire.extend(frame(0x21, &[2; 100]));
        wire.extend(frame(DATA, b"msg"));
        wire.extend(frame(0xabcdef, b""));
        wire.extend(frame(DATA, &[3; 70]));
        wire.extend(frame(HEADERS, b"trailers"));
        for size in [1, 2, 3, 5, 64, 4096] {
            let mut guard = FrameGuard::request_stream(16 * 1024);
            let mut out = VecDeque::new();
            let counted: u64 = wire
                .chunks(size)
                .map(|chunk| {
                    guard
                        .push(Bytes::copy_from_slice(chunk), &mut out)
                        .unwrap()
                        .data_payload
                })
                .sum();
            assert_eq!(counted, 300 + 3 + 70, "chunk size {size}");
        }
    }

    #[test]
    fn oversized_headers_are_refused_before_their_payload() {
        let mut guard = FrameGuard::request_stream(16 * 1024);
        let mut wire = varint(HEADERS);
        wire.extend(varint(512 << 20));
        let mut out = VecDeque::new();
        let err = guard
            .push(Bytes::copy_from_slice(&wire), &mut out)
            .unwrap_err();
        assert_eq!(err.declared, 512 << 20);
        assert_eq!(err.limit, 16 * 1024 + HEADER_FRAME_SLACK);
        assert!(out.is_empty());
        assert!(err.to_string().contains("HEADERS"), "{err}");
    }

    #[test]
    fn large_unknown_frames_hold_nothing() {
        let mut guard = FrameGuard::request_stream(16 * 1024);
        let mut out = VecDeque::new();
        let mut header = varint(0x21);
        header.extend(varint(128 << 20));
        guard.push(Bytes::from(header), &mut out).unwrap();
        let block = Bytes::from(vec![0u8; 1 << 20]);
        for _ in 0..128 {
            let dropped = guard.push(block.clone(), &mut out).unwrap();
            assert_eq!(dropped.unknown_frame_bytes, 1 << 20);
            assert!(out.is_empty());
            assert_eq!(guard.held(), 0);
        }
        guard
            .push(Bytes::from(frame(DATA, b"after")), &mut out)
            .unwrap();
        assert_eq!(out.pop_front().unwrap(), Bytes::from(frame(DATA, b"after")));
    }

    #[test]
    fn control_streams_are_guarded_other_streams_are_not() {
        let mut control = varint(CONTROL_STREAM);
        control.extend(frame(SETTINGS, &[1, 2, 3, 4]));
        control.extend(frame(0x21, b"grease"));
        control.extend(frame(GOAWAY, &varint(400)));
        let mut expected = varint(CONTROL_STREAM);
        expected.extend(frame(SETTINGS, &[1, 2, 3, 4]));
        expected.extend(frame(GOAWAY, &varint(400)));
        for size in [1, 3, 100] {
            let mut guard = FrameGuard::unidirectional_stream();
            let (passed, dropped) = run(&mut guard, &control, size).unwrap();
            assert_eq!(passed, expected);
            assert_eq!(dropped.goaway, Some(400), "the GOAWAY id is read");
        }

        let mut big = varint(CONTROL_STREAM);
        big.extend(varint(SETTINGS));
        big.extend(varint(1 << 30));
        let mut guard = FrameGuard::unidirectional_stream();
        assert_eq!(
            run(&mut guard, &big, 2).unwrap_err().frame_type,
            SETTINGS,
            "a huge SETTINGS frame is refused"
        );

        // A QPACK encoder stream (type 2) is not framed: untouched.
        let mut qpack = varint(0x2);
        qpack.extend([0x3f, 0xe1, 0x1f, 0x00, 0x00]);
        let mut guard = FrameGuard::unidirectional_stream();
        assert_eq!(run(&mut guard, &qpack, 1).unwrap().0, qpack);
    }

    #[test]
    fn the_first_frame_is_complete_once_its_payload_passed() {
        let wire = frame(HEADERS, b"qpack");
        let mut guard = FrameGuard::request_stream(1024);
        let mut out = VecDeque::new();
        guard
            .push(Bytes::from(frame(0x21, b"grease first")), &mut out)
            .unwrap();
        guard
            .push(Bytes::copy_from_slice(&wire[..4]), &mut out)
            .unwrap();
        assert!(!guard.first_frame_complete());
        guard
            .push(Bytes::copy_from_slice(&wire[4..]), &mut out)
            .unwrap();
        assert!(guard.first_frame_complete());
    }

    #[test]
    fn a_truncated_header_is_released_at_the_end() {
        let mut guard = FrameGuard::request_stream(1024);
        let wire = [0x40]; // the first byte of a two-byte varint
        let (passed, _) = run(&mut guard, &wire, 1).unwrap();
        assert_eq!(passed, wire);
    }

    #[test]
    fn a_split_header_passes_as_a_copy_around_slices() {
        let mut guard = FrameGuard::request_stream(1024);
        let mut out = VecDeque::new();
        let data = frame(DATA, &[9; 70]); // two-byte length varint
        guard
            .push(Bytes::copy_from_slice(&data[..2]), &mut out)
            .unwrap();
        assert!(out.is_empty(), "an incomplete header is held");
        guard
            .push(Bytes::copy_from_slice(&data[2..]), &mut out)
            .unwrap();
        let passed: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(passed, data);
    }
}
