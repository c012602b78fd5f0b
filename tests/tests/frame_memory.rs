//! What a large frame of an unknown type costs the server: its bytes are
//! dropped as they arrive, so the memory held stays far below the frame's
//! size. Measured with a counting allocator (this test binary's only test,
//! so nothing else allocates meanwhile).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use grpc_h3_tests::pb::SimpleRequest;
use prost::Message;
use support::raw::{self, data_message, read_frames, request_headers, varint};
use support::{raw_quic, start_server};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FRAME: usize = 128 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_128_mib_unknown_frame_is_dropped_as_it_arrives() {
    let server = start_server(|b| b);
    let (_endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&request_headers("/grpc.testing.TestService/UnaryCall"))
        .await
        .unwrap();
    let mut header = varint(0x21); // a reserved type
    header.extend(varint(FRAME as u64));
    send.write_all(&header).await.unwrap();

    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let block = vec![0u8; 1 << 20];
    for _ in 0..FRAME >> 20 {
        send.write_all(&block).await.unwrap();
    }
    let request = SimpleRequest {
        response_size: 3,
        ..Default::default()
    };
    raw::write_and_finish(&mut send, &data_message(&request.encode_to_vec())).await;
    let frames = read_frames(&mut recv).await.expect("answered, not reset");
    let held = PEAK.load(Ordering::Relaxed) - before;

    assert_eq!(raw::messages(&frames).len(), 1, "the call succeeded");
    let stats = server.handle.stats();
    assert_eq!(
        stats.unknown_frame_bytes,
        FRAME as u64 + 5,
        "type and length included"
    );
    // Both QUIC stacks buffer within their flow-control windows (16 MiB
    // per connection on the server, quinn's 10 MB send window on the raw
    // client): a frame buffered whole would add 128 MiB on top.
    assert!(
        held < 24 << 20,
        "{} MiB held while a 128 MiB frame passed",
        held >> 20
    );
    eprintln!("peak extra memory while 128 MiB passed: {} KiB", held >> 10);
    server.stop().await;
}
