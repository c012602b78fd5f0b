//! Server limits and timeouts: [`ServerConfig`] and the [`ServerBuilder`]
//! methods that set them, each with its default.

use std::time::Duration;

use grpc_h3_core::frame::{DEFAULT_MAX_DECODING_MESSAGE_SIZE, DEFAULT_MAX_ENCODING_MESSAGE_SIZE};
use grpc_h3_core::{CompressionEncoding, EnabledEncodings};

use super::ServerBuilder;
use crate::transport::MAX_HEADER_LIST_SIZE_CEILING;

/// Settings that apply to every connection and call of a server.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) max_decoding_message_size: usize,
    pub(crate) max_encoding_message_size: usize,
    pub(crate) accept_compression: EnabledEncodings,
    pub(crate) send_compression: EnabledEncodings,
    pub(crate) max_concurrent_streams: u32,
    /// Whether HTTP/3 connections start with less stream credit than
    /// `max_concurrent_streams` and grow it with use (our own QUIC
    /// transport config only; a user's is left as it is).
    pub(crate) ramp_stream_credit: bool,
    pub(crate) idle_timeout: Duration,
    /// `None`: a third of the idle timeout; `Some(None)`: off.
    pub(crate) keep_alive_interval: Option<Option<Duration>>,
    pub(crate) grace_period: Duration,
    pub(crate) max_header_list_size: u64,
    pub(crate) header_read_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) retry_above_handshakes: usize,
    pub(crate) early_reset_limit: (u32, Duration),
    pub(crate) max_connection_idle: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) lazy_response_headers: bool,
    pub(crate) udp_buffer_bytes: usize,
    /// The send buffer when set apart from `udp_buffer_bytes`.
    pub(crate) udp_send_buffer_bytes: Option<usize>,
    pub(crate) drain_hooks: DrainHooks,
    pub(crate) drain_notice: Duration,
    pub(crate) early_data: super::early_data::EarlyDataConfig,
}

/// What runs when graceful shutdown begins, before any GOAWAY.
#[derive(Clone, Default)]
pub(crate) struct DrainHooks(pub(crate) Vec<std::sync::Arc<dyn Fn() + Send + Sync>>);

impl std::fmt::Debug for DrainHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} drain hooks", self.0.len())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_decoding_message_size: DEFAULT_MAX_DECODING_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_ENCODING_MESSAGE_SIZE,
            accept_compression: EnabledEncodings::all(),
            send_compression: EnabledEncodings::default(),
            max_concurrent_streams: 256,
            ramp_stream_credit: true,
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: None,
            grace_period: Duration::from_secs(10),
            max_header_list_size: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            retry_above_handshakes: 100,
            early_reset_limit: (200, Duration::from_secs(10)),
            max_connection_idle: Some(Duration::from_secs(600)),
            timeout: None,
            lazy_response_headers: false,
            udp_buffer_bytes: crate::transport::UDP_BUFFER_BYTES,
            udp_send_buffer_bytes: None,
            drain_hooks: DrainHooks::default(),
            drain_notice: Duration::ZERO,
            early_data: Default::default(),
        }
    }
}

impl ServerConfig {
    /// The UDP socket buffers to ask for.
    pub(crate) fn udp_buffers(&self) -> crate::transport::UdpBuffers {
        crate::transport::UdpBuffers {
            recv: self.udp_buffer_bytes,
            send: self.udp_send_buffer_bytes.unwrap_or(self.udp_buffer_bytes),
        }
    }
}

impl ServerBuilder {
    /// Largest request message accepted, after decompression; larger ones
    /// fail with RESOURCE_EXHAUSTED. Default: 4 MiB.
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.config.max_decoding_message_size = limit;
        self
    }

    /// Largest response message sent; larger ones fail the call with
    /// RESOURCE_EXHAUSTED. Default: 4 GiB - 1 (what a frame can carry).
    #[must_use]
    pub fn max_encoding_message_size(mut self, limit: usize) -> Self {
        self.config.max_encoding_message_size = limit;
        self
    }

    /// Decompresses requests sent with `encoding`. Default: every encoding
    /// compiled in (gzip with the default `gzip` feature).
    #[must_use]
    pub fn accept_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.config.accept_compression.enable(encoding);
        self
    }

    /// Accepts only uncompressed requests: compressed ones fail with
    /// UNIMPLEMENTED. Default: every compiled-in encoding is accepted.
    #[must_use]
    pub fn accept_no_compression(mut self) -> Self {
        self.config.accept_compression = EnabledEncodings::default();
        self
    }

    /// Compresses responses with `encoding` when the client accepts it.
    /// Default: responses are not compressed.
    #[must_use]
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.config.send_compression.enable(encoding);
        self
    }

    /// How many calls one client connection may have open at once; further
    /// calls wait for a slot on the client. quinn reserves state for every
    /// stream it allows, about 80 bytes each per connection, so an HTTP/3
    /// connection starts with credit for 32 streams and doubles it, up to
    /// this limit, whenever half of it is in use: idle connections stay
    /// small, and a client opening many calls at once waits about one
    /// round trip per doubling. Default: 256.
    #[must_use]
    pub fn max_concurrent_streams(mut self, limit: u32) -> Self {
        self.config.max_concurrent_streams = limit;
        self
    }

    /// Closes a connection from which nothing was heard for this long (QUIC
    /// idle timeout; the lower of the two peers' values applies). With
    /// keep-alive on (the default) a live client is never idle, so this is
    /// the time after which a client that vanished without closing is
    /// declared gone. Default: 30 s.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sends QUIC keep-alive (PING) frames this often, so calls that stay
    /// quiet for longer than the idle timeout (long polls, watch streams)
    /// keep their connection; HTTP/3 has no PING of its own. `None` turns
    /// keep-alive off. Must be shorter than the idle timeout (checked by
    /// [`ServerBuilder::bind`]). Default: a third of the idle timeout.
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.keep_alive_interval = Some(interval);
        self
    }

    /// Runs `hook` when graceful shutdown begins, before anything else:
    /// e.g. the health service's
    /// `HealthReporter::set_all_not_serving`, so that load balancers stop
    /// sending new calls before the GOAWAY. Hooks run in the order added.
    /// Default: none.
    #[must_use]
    pub fn on_drain(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.config.drain_hooks.0.push(std::sync::Arc::new(hook));
        self
    }

    /// How long the server goes on serving normally after the drain hooks
    /// ran and before the GOAWAY, so that load balancers watching health
    /// have time to move traffic away. Default: 0 (GOAWAY at once).
    #[must_use]
    pub fn drain_notice(mut self, notice: Duration) -> Self {
        self.config.drain_notice = notice;
        self
    }

    /// How long graceful shutdown waits for calls in flight before it resets
    /// them. Default: 10 s.
    #[must_use]
    pub fn grace_period(mut self, period: Duration) -> Self {
        self.config.grace_period = period;
        self
    }

    /// Largest request header block accepted (HTTP/3
    /// SETTINGS_MAX_FIELD_SECTION_SIZE, counted as QPACK does: name, value
    /// and 32 bytes per field). A larger block gets HTTP 431; a HEADERS
    /// frame declaring more than this plus 1 KiB is refused with
    /// H3_EXCESSIVE_LOAD before any of it is buffered. Values above 768 KiB
    /// are lowered to 768 KiB, the most h3 handles safely. Default: 16 KiB.
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u64) -> Self {
        self.config.max_header_list_size = bytes.min(MAX_HEADER_LIST_SIZE_CEILING);
        self
    }

    /// How long a new request stream may take to deliver its HEADERS; a
    /// slower one is refused with H3_REQUEST_REJECTED and its state freed,
    /// so clients cannot hold server memory with half-sent headers.
    /// Default: 10 s.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = timeout;
        self
    }

    /// How long a QUIC handshake (and the HTTP/3 setup after it) may take
    /// before the connection is dropped. Default: 10 s.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Most client connections open at once, handshakes included; further
    /// connection attempts are refused (QUIC CONNECTION_REFUSED) until some
    /// close. Default: 10,000.
    #[must_use]
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.config.max_connections = limit;
        self
    }

    /// Above this many handshakes in progress, a client whose address is
    /// not yet validated must first prove it (QUIC Retry, one extra round
    /// trip), so a flood of spoofed Initial packets cannot make the server
    /// do handshake work. `0` validates every client. Default: 100.
    #[must_use]
    pub fn retry_above_handshakes(mut self, in_progress: usize) -> Self {
        self.config.retry_above_handshakes = in_progress;
        self
    }

    /// At most `count` streams per connection, replenished over `per`, may
    /// be cancelled by the client before the server answered them. Past
    /// that the connection is closed with H3_EXCESSIVE_LOAD: the HTTP/3
    /// form of the HTTP/2 "rapid reset" attack (CVE-2023-44487), where a
    /// client makes the server start work it abandons at once. Default:
    /// 200 per 10 s.
    #[must_use]
    pub fn early_reset_limit(mut self, count: u32, per: Duration) -> Self {
        self.config.early_reset_limit = (count, per);
        self
    }

    /// Closes connections that have had no call open for this long (GOAWAY
    /// first); keep-alive holds idle connections open otherwise. `None`
    /// keeps them until the client closes them. Default: 10 minutes.
    #[must_use]
    pub fn max_connection_idle(mut self, idle: Option<Duration>) -> Self {
        self.config.max_connection_idle = idle;
        self
    }

    /// Caps every call's deadline: a call runs until the earlier of its
    /// client's `grpc-timeout` and this, so a call without a deadline cannot
    /// run forever. Handlers see the effective deadline in
    /// [`Request::deadline`](crate::Request::deadline). Default: no cap
    /// (watch streams may run as long as their clients want).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// Size of the UDP socket's receive and send buffers (the send buffer
    /// unless [`udp_send_buffer_size`](Self::udp_send_buffer_size) sets
    /// it apart). Under load a QUIC server receives many thousands of
    /// packets between two reads of its socket; what does not fit is
    /// dropped by the kernel and must be sent again. The kernel may grant
    /// less (on Linux at most `net.core.rmem_max`; a warning is logged when
    /// it grants under 1 MiB). Default: 8 MiB.
    #[must_use]
    pub fn udp_buffer_size(mut self, bytes: usize) -> Self {
        self.config.udp_buffer_bytes = bytes;
        self
    }

    /// Size of the UDP socket's send buffer alone. A datagram waiting in a
    /// queue on the server's own host (a traffic shaper on its interface, a
    /// slow virtual NIC) still counts against this buffer, so a large one
    /// lets QUIC fill that whole queue and calls wait behind it; the
    /// kernel's default (about 208 KiB on Linux, `106_496` asked) keeps
    /// that queue as short as TCP keeps it. On fast paths without such a
    /// queue the large buffer streams faster. The kernel may grant less
    /// (on Linux at most `net.core.wmem_max`). Default: as
    /// [`udp_buffer_size`](Self::udp_buffer_size).
    ///
    /// ```
    /// use grpc_h3::server::Server;
    ///
    /// // Behind a shaper on this host: keep the default receive buffer,
    /// // the kernel's usual send buffer.
    /// let builder = Server::builder().udp_send_buffer_size(106_496);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn udp_send_buffer_size(mut self, bytes: usize) -> Self {
        self.config.udp_send_buffer_bytes = Some(bytes);
        self
    }

    /// Sends response headers together with the first response message
    /// instead of as soon as the handler returns; a call that ends before
    /// any message is then answered Trailers-Only. Both are legal and
    /// clients must accept either (grpc-go defers its headers like this).
    /// Default: off (headers are sent at once).
    #[must_use]
    pub fn lazy_response_headers(mut self, lazy: bool) -> Self {
        self.config.lazy_response_headers = lazy;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::UdpBuffers;

    #[test]
    fn the_send_buffer_follows_the_shared_size_unless_set_apart() {
        assert_eq!(ServerConfig::default().udp_buffers(), UdpBuffers::DEFAULT);
        let both = ServerBuilder::default().udp_buffer_size(1 << 20);
        assert_eq!(both.config.udp_buffers().send, 1 << 20);
        // Either order.
        for apart in [
            ServerBuilder::default()
                .udp_buffer_size(1 << 20)
                .udp_send_buffer_size(106_496),
            ServerBuilder::default()
                .udp_send_buffer_size(106_496)
                .udp_buffer_size(1 << 20),
        ] {
            assert_eq!(
                apart.config.udp_buffers(),
                UdpBuffers {
                    recv: 1 << 20,
                    send: 106_496
                }
            );
        }
    }
}
