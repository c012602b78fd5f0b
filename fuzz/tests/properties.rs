//! The fuzz targets as property tests: each runs on pseudo-random inputs
//! (a fixed seed, so failures reproduce) and on the corpus of structured
//! seeds below, for a bounded number of cases, inside `cargo test`.

/// xorshift64*: enough randomness for input generation, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = (self.next() % (max_len as u64 + 1)) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Runs `target` on `cases` random inputs, each also prefixed by every seed.
fn run(target: fn(&[u8]), cases: usize, seed: u64, seeds: &[&[u8]]) {
    let mut rng = Rng(seed);
    for _ in 0..cases {
        let random = rng.bytes(600);
        target(&random);
        for prefix in seeds {
            let mut input = prefix.to_vec();
            input.extend_from_slice(&random[..random.len().min(64)]);
            target(&input);
        }
    }
}

const CASES: usize = 3_000;

#[test]
fn frame_decoder() {
    // limit, gzip flag, chunk sizes, then well-formed frames.
    let seeds: &[&[u8]] = &[
        &[
            0x10, 0x00, 0, 3, 1, 2, 3, 0, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 0,
        ],
        &[0xff, 0xff, 1, 1, 7, 1, 0, 0, 0, 10, 0x1f, 0x8b],
        &[0, 4, 0, 2, 1, 1, 0, 0, 0, 0, 9],
    ];
    run(grpc_h3_fuzz::frame_decoder, CASES, 1, seeds);
}

#[test]
fn http3_frames() {
    // limit, stream kind, chunk sizes, then frames: HEADERS, empty DATA,
    // DATA, a grease frame, a huge HEADERS, and a control stream.
    let seeds: &[&[u8]] = &[
        &[
            0x00, 0x40, 0, 2, 3, 5, 0x01, 0x02, 0xaa, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x07,
        ],
        &[
            0x00, 0x40, 0, 1, 1, 0x21, 0x03, 1, 2, 3, 0x01, 0x80, 0x10, 0, 0,
        ],
        &[
            0x00, 0x40, 1, 1, 2, 0x00, 0x04, 0x00, 0x07, 0x01, 0x08, 0x21, 0x00,
        ],
        &[0xff, 0xff, 1, 3, 1, 1, 1, 0x02, 0x41, 0x00],
        // Found by libFuzzer: a PUSH_PROMISE on a control stream (the
        // harness, not the guard, had the limit wrong).
        &[
            33, 49, 175, 8, 245, 0, 5, 179, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    ];
    run(grpc_h3_fuzz::http3_frames, CASES, 2, seeds);
}

#[test]
fn grpc_timeout() {
    let seeds: &[&[u8]] = &[b"1H", b"99999999H", b"250m", b"12345678n", b"0S", b"1"];
    run(grpc_h3_fuzz::grpc_timeout, CASES, 3, seeds);
    for value in seeds {
        grpc_h3_fuzz::grpc_timeout(value);
    }
}

#[test]
fn metadata() {
    let seeds: &[&[u8]] = &[
        &[
            3, b'k', b'e', b'y', 4, b'v', b'a', b'l', b'!', 3, b'a', b'b', b'c', 4, b'A', b'A',
            b'=', b'=', 1,
        ],
        &[5, b'x', b'-', b'b', b'i', b'n', 2, 0xff, 0x00],
    ];
    run(grpc_h3_fuzz::metadata, CASES, 4, seeds);
}

#[test]
fn status() {
    let seeds: &[&[u8]] = &[
        &[
            1, b'5', 5, b'%', b'4', b'1', b'%', b'z', 4, b'A', b'A', b'A', b'A', 13, 3, b'x',
        ],
        &[2, b'9', b'9', 0, 0, 2],
    ];
    run(grpc_h3_fuzz::status, CASES, 5, seeds);
}

#[test]
fn heads() {
    let seeds: &[&[u8]] = &[
        &[
            4, b'P', b'O', b'S', b'T', 6, b'/', b'a', b'.', b'B', b'/', b'C', 0x00, 0x64,
        ],
        &[3, b'G', b'E', b'T', 1, b'/', 0x01, 0xf4],
    ];
    run(grpc_h3_fuzz::heads, CASES, 6, seeds);
}
