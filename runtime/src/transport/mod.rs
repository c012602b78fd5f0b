//! The HTTP/3 transport: thin adapters between h3/quinn and the
//! transport-agnostic core.

pub(crate) mod h3_body;
pub(crate) mod h3_status;
pub(crate) mod quic;

/// QUIC transport settings both sides share.
///
/// Flow-control windows: 2 MiB per stream lets one call move a 1 MiB message
/// without stalling on window updates; 16 MiB per connection caps what one
/// peer can make us buffer across all its streams. (quinn's defaults are
/// 1.25 MB per stream and no connection limit.)
///
/// ACK delay: through the ACK-frequency extension each side asks its peer
/// to acknowledge within 5 ms instead of QUIC's default 25 ms. The probe
/// timeout that recovers a lost tail packet (the last packet of a response)
/// includes that delay, so on fast links it drops from ~27 ms to a few ms.
/// ACKs still go out every second packet; only tails are acknowledged
/// sooner.
pub(crate) fn transport_config(
    idle_timeout: std::time::Duration,
    keep_alive: Option<std::time::Duration>,
) -> Result<quinn::TransportConfig, crate::Error> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window(quinn::VarInt::from_u32(2 << 20))
        .receive_window(quinn::VarInt::from_u32(16 << 20))
        .send_window(16 << 20)
        .max_idle_timeout(Some(idle_timeout.try_into().map_err(|_| {
            crate::Error::config("idle_timeout is too large for QUIC")
        })?))
        .keep_alive_interval(keep_alive);
    let mut ack_frequency = quinn::AckFrequencyConfig::default();
    ack_frequency.max_ack_delay(Some(std::time::Duration::from_millis(5)));
    transport.ack_frequency_config(Some(ack_frequency));
    Ok(transport)
}
