//! The client: a [`Channel`] to one server, and per-client [`CallOptions`].

mod call;
mod connection;

use std::sync::Arc;
use std::time::Duration;

use grpc_h3_core::frame::{DEFAULT_MAX_DECODING_MESSAGE_SIZE, DEFAULT_MAX_ENCODING_MESSAGE_SIZE};
use grpc_h3_core::{CompressionEncoding, EnabledEncodings};

use crate::tls::ClientTlsConfig;
use crate::Error;
use connection::{Connector, Pool};

/// A channel to one server: cheap to clone, all clones share one QUIC
/// connection that multiplexes every call. It connects on the first call,
/// and reconnects on the next call after the connection is lost or the
/// server sent GOAWAY.
///
/// ```no_run
/// # fn f(ca_pem: &str) -> Result<(), grpc_h3::Error> {
/// use grpc_h3::{tls::ClientTlsConfig, Channel};
/// let channel = Channel::builder("https://localhost:50051")
///     .tls_config(ClientTlsConfig::new().ca_certificate(ca_pem))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channel {
    pool: Arc<Pool>,
}

impl Channel {
    /// Starts configuring a channel to `uri` (`https://host:port`; the port
    /// defaults to 443).
    pub fn builder(uri: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder {
            uri: uri.into(),
            tls: None,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: None,
            max_header_list_size: 16 * 1024,
        }
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("authority", &self.pool.authority())
            .finish()
    }
}

/// Configures a [`Channel`].
#[derive(Debug)]
pub struct ChannelBuilder {
    uri: String,
    tls: Option<ClientTlsConfig>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    keep_alive_interval: Option<Duration>,
    max_header_list_size: u64,
}

impl ChannelBuilder {
    /// How to verify the server (and present a client certificate).
    /// Default: trust the system's root certificates.
    #[must_use]
    pub fn tls_config(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long a connection attempt may take before calls fail with
    /// UNAVAILABLE. Default: 10 s.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Closes the connection after this long without traffic (QUIC idle
    /// timeout); the next call reconnects. Default: 30 s.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sends QUIC keep-alives this often so an idle connection stays open
    /// (HTTP/3 has no PING frame). Default: off.
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = Some(interval);
        self
    }

    /// Largest response header block accepted. Default: 16 KiB.
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u64) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// Builds the channel. Nothing is connected until the first call.
    pub fn build(self) -> Result<Channel, Error> {
        let uri: http::Uri = self.uri.parse().map_err(|e| {
            Error::config(format!(
                "invalid channel URI {:?}: {e}; expected https://host:port",
                self.uri
            ))
        })?;
        if uri.scheme_str().is_some_and(|s| s != "https") {
            return Err(Error::config(format!(
                "channel URI {:?}: HTTP/3 always uses TLS, so the scheme must be https",
                self.uri
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| Error::config(format!("channel URI {:?} has no host", self.uri)))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let tls_config = self
            .tls
            .unwrap_or_else(|| ClientTlsConfig::new().with_system_roots());
        let server_name = tls_config
            .server_name_override()
            .unwrap_or(&host)
            .to_owned();
        let tls = tls_config.build()?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::tls(format!("TLS configuration unusable for QUIC: {e}")))?;
        let mut quic_config = quinn::ClientConfig::new(Arc::new(crypto));
        let transport =
            crate::transport::transport_config(self.idle_timeout, self.keep_alive_interval)?;
        quic_config.transport_config(Arc::new(transport));
        let connector = Connector {
            host,
            port,
            server_name,
            quic_config,
            connect_timeout: self.connect_timeout,
            max_header_list_size: self.max_header_list_size,
        };
        Ok(Channel {
            pool: Arc::new(Pool::new(connector)),
        })
    }
}

/// Per-client defaults for calls; generated clients hold one and expose
/// builder methods for it.
#[derive(Clone, Debug)]
pub struct CallOptions {
    /// Encoding for request messages. Default: none (uncompressed).
    pub send_compression: Option<CompressionEncoding>,
    /// Encodings accepted for responses. Default: every one compiled in.
    pub accept_compression: EnabledEncodings,
    /// Largest response message accepted. Default: 4 MiB.
    pub max_decoding_message_size: usize,
    /// Largest request message sent. Default: 4 GiB - 1.
    pub max_encoding_message_size: usize,
    /// Timeout for calls that set none themselves. Default: none.
    pub timeout: Option<Duration>,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            send_compression: None,
            accept_compression: EnabledEncodings::all(),
            max_decoding_message_size: DEFAULT_MAX_DECODING_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_ENCODING_MESSAGE_SIZE,
            timeout: None,
        }
    }
}
