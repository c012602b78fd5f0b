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
    Ok(transport)
}
