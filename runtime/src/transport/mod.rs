//! The HTTP/3 transport: thin adapters between h3/quinn and the
//! transport-agnostic core.

use std::time::Duration;

pub(crate) mod frame_guard;
pub(crate) mod h3_body;
pub(crate) mod h3_status;
pub(crate) mod quic;

/// The largest header list (SETTINGS_MAX_FIELD_SECTION_SIZE) either side
/// accepts, whatever is configured: 768 KiB. h3 0.0.8 sizes an
/// `http::HeaderMap` by the number of fields in a block, and `HeaderMap`
/// panics above 24,576 distinct fields; QPACK counts at least 32 bytes per
/// field, so a block within this limit can never hold that many.
pub(crate) const MAX_HEADER_LIST_SIZE_CEILING: u64 = 24_576 * 32;

/// Unidirectional streams a peer may open: HTTP/3 needs three (control and
/// the two QPACK streams); the rest is room for reserved (grease) streams,
/// which are read no further than their type.
const MAX_UNI_STREAMS: u32 = 16;

/// The request streams a new HTTP/3 connection may open at first; the
/// server raises it with use (see `server::h3::connection::StreamCredit`).
pub(crate) const INITIAL_STREAM_CREDIT: u32 = 32;

/// The UDP socket buffers grpc-h3 asks for, each way: 8 MiB. The kernel's
/// usual default (about 200 KiB) overflows at a few thousand packets in
/// flight, and a QUIC endpoint under load then loses packets before QUIC
/// sees them; the kernel lowers the request to its maximum
/// (`net.core.rmem_max` / `wmem_max` on Linux).
pub(crate) const UDP_BUFFER_BYTES: usize = 8 << 20;

/// The socket buffer sizes asked of the kernel for a QUIC endpoint's UDP
/// socket (best effort: the kernel may grant less).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UdpBuffers {
    /// Receive buffer, bytes.
    pub(crate) recv: usize,
    /// Send buffer, bytes.
    pub(crate) send: usize,
}

impl UdpBuffers {
    /// [`UDP_BUFFER_BYTES`] each way.
    pub(crate) const DEFAULT: UdpBuffers = UdpBuffers {
        recv: UDP_BUFFER_BYTES,
        send: UDP_BUFFER_BYTES,
    };
}

/// Binds a UDP socket for a QUIC endpoint, with socket buffers of up to
/// `buffers`.
pub(crate) fn udp_socket(
    addr: std::net::SocketAddr,
    buffers: UdpBuffers,
) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    size_buffers(&socket, buffers)?;
    Ok(socket)
}

/// Asks the kernel for `buffers` on `socket`, warning if it grants much
/// less receive buffer than asked.
pub(crate) fn size_buffers(
    socket: &std::net::UdpSocket,
    buffers: UdpBuffers,
) -> std::io::Result<()> {
    let state = quinn_udp::UdpSocketState::new(socket.into())?;
    let _ = state.set_recv_buffer_size(socket.into(), buffers.recv);
    let _ = state.set_send_buffer_size(socket.into(), buffers.send);
    let granted = state.recv_buffer_size(socket.into()).unwrap_or(0);
    if granted < buffers.recv.min(1 << 20) {
        tracing::warn!(
            requested = buffers.recv,
            granted,
            "the kernel granted a small UDP receive buffer; under load packets will be dropped \
             before QUIC sees them (raise net.core.rmem_max)"
        );
    }
    Ok(())
}

/// A QUIC endpoint on `socket`, driven by tokio.
pub(crate) fn endpoint(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        std::sync::Arc::new(quinn::TokioRuntime),
    )
}

/// The congestion controller of QUIC connections: how fast a connection
/// sends, and how it reacts to loss.
///
/// ```
/// use grpc_h3::{server::Server, CongestionControl};
///
/// let builder = Server::builder().congestion_control(CongestionControl::Bbr);
/// # let _ = builder;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CongestionControl {
    /// CUBIC (RFC 9438), what Linux TCP uses: the window shrinks by 30 %
    /// on each loss event. The default.
    #[default]
    Cubic,
    /// BBR, quinn's implementation (which quinn marks experimental): sends
    /// at the bottleneck bandwidth and round trip it measures, and does not
    /// read random loss as congestion, so a lossy path keeps its rate.
    Bbr,
    /// NewReno (RFC 9002's reference controller): halves the window on
    /// each loss event.
    NewReno,
}

impl CongestionControl {
    fn factory(self) -> std::sync::Arc<dyn quinn::congestion::ControllerFactory + Send + Sync> {
        use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
        match self {
            CongestionControl::Cubic => std::sync::Arc::new(CubicConfig::default()),
            CongestionControl::Bbr => std::sync::Arc::new(BbrConfig::default()),
            CongestionControl::NewReno => std::sync::Arc::new(NewRenoConfig::default()),
        }
    }
}

/// Which side a transport configuration is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side {
    /// A client: the server may open no request streams.
    Client,
    /// A server allowing this many concurrent request streams per
    /// connection.
    Server { max_concurrent_streams: u32 },
}

/// The keep-alive interval in effect: `configured` if set (`Some(None)`
/// turns it off), else a third of the idle timeout. Keep-alive must be
/// shorter than the idle timeout, or it cannot keep anything alive.
pub(crate) fn keep_alive_interval(
    configured: Option<Option<Duration>>,
    idle_timeout: Duration,
    what: &str,
) -> Result<Option<Duration>, crate::Error> {
    let interval = configured.unwrap_or(Some(idle_timeout / 3));
    match interval {
        Some(interval) if interval.is_zero() || interval >= idle_timeout => {
            Err(crate::Error::config(format!(
                "{what}: keep_alive_interval ({interval:?}) must be above zero and shorter than idle_timeout ({idle_timeout:?}); \
                 leave it unset for a third of the idle timeout, or pass None to turn keep-alive off"
            )))
        }
        other => Ok(other),
    }
}

/// QUIC transport settings.
///
/// Flow-control windows: 2 MiB per stream lets one call move a 1 MiB message
/// without stalling on window updates; 16 MiB per connection caps what one
/// peer can make us buffer across all its streams. (quinn's defaults are
/// 1.25 MB per stream and no connection limit.)
///
/// Keep-alive: HTTP/3 has no PING frame, so liveness is QUIC's. With
/// keep-alive PINGs every `keep_alive` a quiet call (a long poll, a watch
/// stream with nothing to say) keeps its connection, and the idle timeout
/// becomes the time after which a peer that stopped answering (killed,
/// unplugged) is declared gone.
///
/// ACK delay: through the ACK-frequency extension each side asks its peer
/// to acknowledge within 5 ms instead of QUIC's default 25 ms. The probe
/// timeout that recovers a lost tail packet (the last packet of a response)
/// includes that delay, so on fast links it drops from ~27 ms to a few ms.
/// ACKs still go out every second packet; only tails are acknowledged
/// sooner.
///
/// Neither side accepts datagrams (HTTP/3 datagrams are not used), and a
/// client accepts no request streams from the server (HTTP/3 forbids them).
pub(crate) fn transport_config(
    side: Side,
    idle_timeout: Duration,
    keep_alive: Option<Duration>,
    congestion: CongestionControl,
) -> Result<quinn::TransportConfig, crate::Error> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .congestion_controller_factory(congestion.factory())
        .stream_receive_window(quinn::VarInt::from_u32(2 << 20))
        .receive_window(quinn::VarInt::from_u32(16 << 20))
        .send_window(16 << 20)
        .max_idle_timeout(Some(idle_timeout.try_into().map_err(|_| {
            crate::Error::config(format!(
                "idle_timeout {idle_timeout:?} is too large for QUIC (at most 2^62 ms)"
            ))
        })?))
        .keep_alive_interval(keep_alive)
        .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .datagram_receive_buffer_size(None);
    let bidi = match side {
        Side::Client => 0,
        Side::Server {
            max_concurrent_streams,
        } => max_concurrent_streams,
    };
    transport.max_concurrent_bidi_streams(bidi.into());
    let mut ack_frequency = quinn::AckFrequencyConfig::default();
    ack_frequency.max_ack_delay(Some(Duration::from_millis(5)));
    transport.ack_frequency_config(Some(ack_frequency));
    Ok(transport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_congestion_choice_builds_its_controller() {
        use quinn::congestion::{Bbr, Cubic, NewReno};
        let build = |choice: CongestionControl| {
            choice
                .factory()
                .build(std::time::Instant::now(), 1200)
                .into_any()
        };
        assert!(build(CongestionControl::default()).is::<Cubic>());
        assert!(build(CongestionControl::Cubic).is::<Cubic>());
        assert!(build(CongestionControl::Bbr).is::<Bbr>());
        assert!(build(CongestionControl::NewReno).is::<NewReno>());
    }

    #[test]
    fn keep_alive_defaults_to_a_third_of_the_idle_timeout() {
        let idle = Duration::from_secs(30);
        assert_eq!(
            keep_alive_interval(None, idle, "x").unwrap(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(keep_alive_interval(Some(None), idle, "x").unwrap(), None);
        let explicit = Some(Some(Duration::from_secs(5)));
        assert_eq!(
            keep_alive_interval(explicit, idle, "x").unwrap(),
            Some(Duration::from_secs(5))
        );
        for bad in [Duration::ZERO, idle, idle * 2] {
            let err = keep_alive_interval(Some(Some(bad)), idle, "server").unwrap_err();
            assert!(
                err.to_string().contains("shorter than idle_timeout"),
                "{err}"
            );
        }
    }

    #[test]
    fn udp_sockets_get_the_largest_buffers_the_kernel_allows() {
        let socket = udp_socket("127.0.0.1:0".parse().unwrap(), UdpBuffers::DEFAULT).unwrap();
        let state = quinn_udp::UdpSocketState::new((&socket).into()).unwrap();
        let granted = state.recv_buffer_size((&socket).into()).unwrap();
        // Linux caps a request at net.core.rmem_max (and reports twice the
        // value it keeps for bookkeeping); elsewhere, expect the request.
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(UDP_BUFFER_BYTES);
        assert!(
            granted >= UDP_BUFFER_BYTES.min(cap),
            "granted {granted}, asked {UDP_BUFFER_BYTES}, kernel cap {cap}"
        );
    }

    #[test]
    fn the_send_buffer_can_be_sized_apart_from_the_receive_buffer() {
        let small_send = UdpBuffers {
            recv: UDP_BUFFER_BYTES,
            send: 106_496,
        };
        let socket = udp_socket("127.0.0.1:0".parse().unwrap(), small_send).unwrap();
        let state = quinn_udp::UdpSocketState::new((&socket).into()).unwrap();
        let send = state.send_buffer_size((&socket).into()).unwrap();
        let recv = state.recv_buffer_size((&socket).into()).unwrap();
        // Linux keeps twice the value asked for (bookkeeping).
        assert!(
            (106_496..=2 * 106_496).contains(&send),
            "send buffer {send}"
        );
        assert!(recv > send, "receive {recv}, send {send}");
    }

    #[test]
    fn the_header_ceiling_keeps_h3_below_the_header_map_limit() {
        // The most fields a block within the ceiling can hold (32 bytes of
        // QPACK overhead per field, empty names impossible)...
        let max_fields = MAX_HEADER_LIST_SIZE_CEILING / 32;
        // ...fit a HeaderMap without panicking.
        let map = http::HeaderMap::<()>::try_with_capacity(max_fields as usize);
        assert!(map.is_ok());
    }
}
