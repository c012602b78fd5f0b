//! A delay line between the lab's two namespaces, for real round-trip
//! times without `netem`: each namespace gets a TUN device instead of a
//! veth end, and this process forwards every IP packet from one TUN to the
//! other after a fixed one-way delay. TCP and UDP are delayed alike, the
//! order of packets is kept, and the nftables loss rules on the devices'
//! input still apply.
//!
//! A TUN device is attached by name in the caller's network namespace, so
//! each one is opened from a short-lived thread that has joined the
//! namespace (`setns`); the descriptor keeps working from any thread.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest packet a TUN device hands over (its MTU is 1,500).
const MAX_PACKET: usize = 65_536;
/// How often a blocked reader checks whether the line is shutting down.
const POLL_INTERVAL_MS: i32 = 100;

/// Runs `f` on a thread that has joined network namespace `ns` (one made
/// by `ip netns add`); what it opens there (a socket, a device) stays in
/// that namespace when used from any other thread.
pub(crate) fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, String> {
    let ns_path = format!("/run/netns/{ns}");
    let joined = std::thread::spawn(move || -> io::Result<T> {
        let ns_file = File::open(&ns_path)?;
        // SAFETY: a valid descriptor of a network namespace; setns only
        // moves this thread, which ends when `f` returns.
        if unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        f()
    });
    joined
        .join()
        .map_err(|_| format!("a thread in namespace {ns} panicked"))?
        .map_err(|e| format!("in namespace {ns}: {e}"))
}

/// Opens the TUN device `name` that exists in namespace `ns` (created with
/// `ip -n NS tuntap add dev NAME mode tun`), without packet information
/// headers: each read or write is one IP packet.
pub(crate) fn open_tun(ns: &str, name: &str) -> Result<File, String> {
    let name = name.to_owned();
    in_namespace(ns, move || {
        let tun = File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        // SAFETY: `ifreq` is plain data; zeroed is a valid value.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which lives for
        // the whole call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut request) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(tun)
    })
    .map_err(|e| format!("cannot attach to the TUN device: {e}"))
}

/// Waits until `file` is readable or `POLL_INTERVAL_MS` passed; true if
/// readable.
fn readable(file: &File) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    match unsafe { libc::poll(&mut poll, 1, POLL_INTERVAL_MS) } {
        -1 => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(error)
            }
        }
        0 => Ok(false),
        _ => Ok(poll.revents & libc::POLLIN != 0),
    }
}

/// Two TUN devices joined through this process with a one-way delay in
/// each direction; stops forwarding when dropped.
pub(crate) struct DelayLine {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DelayLine {
    /// Forwards between `a` and `b`, each packet `one_way` late.
    pub(crate) fn start(a: File, b: File, one_way: Duration) -> Result<DelayLine, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let clone = |f: &File| f.try_clone().map_err(|e| format!("TUN descriptor: {e}"));
        let mut threads = Vec::new();
        for (from, to) in [(clone(&a)?, clone(&b)?), (b, a)] {
            let (queue, delayed) = mpsc::channel::<(Instant, Vec<u8>)>();
            let reading = stop.clone();
            threads.push(std::thread::spawn(move || read_into(from, queue, &reading)));
            threads.push(std::thread::spawn(move || {
                write_after(to, delayed, one_way)
            }));
        }
        Ok(DelayLine { stop, threads })
    }
}

/// Reads packets and queues them with their arrival time until `stop`.
fn read_into(mut from: File, queue: mpsc::Sender<(Instant, Vec<u8>)>, stop: &AtomicBool) {
    let mut buffer = vec![0u8; MAX_PACKET];
    while !stop.load(Ordering::Relaxed) {
        match readable(&from) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => return,
        }
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if queue.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
    // Dropping the sender ends the writer.
}

/// Writes each queued packet once it is `delay` old; ends when the reader
/// has gone and the queue is empty.
fn write_after(mut to: File, delayed: mpsc::Receiver<(Instant, Vec<u8>)>, delay: Duration) {
    while let Ok((arrived, packet)) = delayed.recv() {
        let due = arrived + delay;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        // A packet the kernel refuses (the device went down) is lost, as
        // on a wire.
        let _ = to.write(&packet);
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
