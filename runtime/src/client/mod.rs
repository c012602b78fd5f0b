//! The client: a [`Channel`] to one server, and per-client [`CallOptions`].

mod attempt;
mod backoff;
mod call;
mod connect;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use grpc_h3_core::frame::{DEFAULT_MAX_DECODING_MESSAGE_SIZE, DEFAULT_MAX_ENCODING_MESSAGE_SIZE};
use grpc_h3_core::{CompressionEncoding, EnabledEncodings};

use crate::tls::ClientTlsConfig;
use crate::transport::{self, Side, MAX_HEADER_LIST_SIZE_CEILING};
use crate::Error;
pub use backoff::BackoffConfig;
use connect::Connector;
use pool::Pool;

/// A channel to one server: cheap to clone, all clones share one QUIC
/// connection that multiplexes every call. It connects on the first call,
/// and reconnects on the next call after the connection is lost or the
/// server sent GOAWAY.
///
/// Connecting tries every address the host resolves to, IPv6 and IPv4
/// interleaved as Happy Eyeballs does (a new attempt every 250 ms until one
/// answers). Calls arriving meanwhile wait for that one attempt. If it
/// fails, calls fail at once with UNAVAILABLE (saying what was tried) until
/// the next attempt is due, following gRPC's connection backoff (1 s, then
/// ×1.6 up to 2 minutes, ±20 %); a call that asked to
/// [wait for ready](crate::Request::set_wait_for_ready) waits instead, up to
/// its deadline.
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
    wait_for_ready: bool,
}

impl Channel {
    /// Starts configuring a channel to `uri` (`https://host:port`; the port
    /// defaults to 443).
    pub fn builder(uri: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder {
            uri: uri.into(),
            tls: None,
            connect_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(10),
            keep_alive_interval: None,
            max_header_list_size: 16 * 1024,
            backoff: BackoffConfig::default(),
            wait_for_ready: false,
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

/// Configures a [`Channel`]; every setting has a default, documented on its
/// method.
///
/// ```
/// use std::time::Duration;
/// use grpc_h3::{tls::ClientTlsConfig, Channel};
/// let channel = Channel::builder("https://api.example.com")
///     .tls_config(ClientTlsConfig::new().with_system_roots())
///     .connect_timeout(Duration::from_secs(5))
///     .idle_timeout(Duration::from_secs(30))
///     .wait_for_ready(true)
///     .build();
/// # let _ = channel;
/// ```
#[derive(Debug)]
pub struct ChannelBuilder {
    uri: String,
    tls: Option<ClientTlsConfig>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    keep_alive_interval: Option<Option<Duration>>,
    max_header_list_size: u64,
    backoff: BackoffConfig,
    wait_for_ready: bool,
}

impl ChannelBuilder {
    /// How to verify the server (and present a client certificate).
    /// Default: trust the system's root certificates.
    #[must_use]
    pub fn tls_config(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long one connection attempt (name resolution, every address,
    /// handshake) may take before it fails with UNAVAILABLE. Default: 20 s,
    /// gRPC's minimum connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Declares the server gone after this long without hearing from it
    /// (QUIC idle timeout; the lower of the two peers' values applies).
    /// Keep-alive PINGs make a live server answer, so a server that was
    /// killed or unplugged without closing is detected after this long (plus
    /// at most one keep-alive interval: QUIC restarts the timer when it
    /// sends a PING), and its calls fail with UNAVAILABLE. Default: 10 s.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sends QUIC keep-alives (PING) this often, so calls that stay quiet
    /// longer than the idle timeout keep their connection (HTTP/3 has no
    /// PING frame) and a dead server is noticed. `None` turns them off.
    /// Must be shorter than the idle timeout. Default: a third of the idle
    /// timeout.
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive_interval = Some(interval);
        self
    }

    /// Largest response header block accepted (counted as QPACK does);
    /// values above 768 KiB are lowered to 768 KiB. Default: 16 KiB.
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u64) -> Self {
        self.max_header_list_size = bytes.min(MAX_HEADER_LIST_SIZE_CEILING);
        self
    }

    /// Delays between failed connection attempts. Default: gRPC's (1 s,
    /// ×1.6, ±20 %, at most 120 s).
    #[must_use]
    pub fn connection_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Makes calls wait for a connection while the channel is backing off
    /// after a failed attempt, instead of failing at once with UNAVAILABLE
    /// (gRPC's wait-for-ready; a call's own setting wins). Default: off.
    #[must_use]
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = wait;
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
        let keep_alive =
            transport::keep_alive_interval(self.keep_alive_interval, self.idle_timeout, "channel")?;
        let transport = transport::transport_config(Side::Client, self.idle_timeout, keep_alive)?;
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
            pool: Arc::new(Pool::new(connector, self.backoff)),
            wait_for_ready: self.wait_for_ready,
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
