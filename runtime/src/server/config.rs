//! [`ServerBuilder`]: every server setting, with its default.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use grpc_h3_core::frame::{DEFAULT_MAX_DECODING_MESSAGE_SIZE, DEFAULT_MAX_ENCODING_MESSAGE_SIZE};
use grpc_h3_core::{CompressionEncoding, EnabledEncodings};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{BoundServer, NamedService, Service, Shared};
use crate::tls::{self, ClientAuth, DevCertificate, Identity};
use crate::Error;

/// Settings that apply to every call of a server.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) max_decoding_message_size: usize,
    pub(crate) max_encoding_message_size: usize,
    pub(crate) accept_compression: EnabledEncodings,
    pub(crate) send_compression: EnabledEncodings,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) idle_timeout: Duration,
    pub(crate) keep_alive_interval: Option<Duration>,
    pub(crate) grace_period: Duration,
    pub(crate) max_header_list_size: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_decoding_message_size: DEFAULT_MAX_DECODING_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_ENCODING_MESSAGE_SIZE,
            accept_compression: EnabledEncodings::all(),
            send_compression: EnabledEncodings::default(),
            max_concurrent_streams: 256,
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: None,
            grace_period: Duration::from_secs(10),
            max_header_list_size: 16 * 1024,
        }
    }
}

/// Configures a server. Every setting has a default; only a TLS identity
/// and at least one service are needed.
#[derive(Clone, Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    identity: Option<Identity>,
    dev_certificate: bool,
    client_ca: Vec<Vec<u8>>,
    client_auth: Option<ClientAuth>,
    crypto_provider: Option<Arc<rustls::crypto::CryptoProvider>>,
    services: HashMap<&'static str, Arc<dyn Service>>,
}

impl ServerBuilder {
    /// The server's certificate chain (leaf first) and private key, in PEM.
    /// Required unless [`ServerBuilder::dev_certificate`] is used.
    #[must_use]
    pub fn tls_identity(mut self, cert_pem: impl AsRef<[u8]>, key_pem: impl AsRef<[u8]>) -> Self {
        self.identity = Some(Identity::from_pem(cert_pem, key_pem));
        self
    }

    /// Uses a freshly generated self-signed certificate for `localhost`,
    /// `127.0.0.1` and `::1`; read it back with
    /// [`BoundServer::dev_certificate_pem`] to trust it in clients. For
    /// development and tests only. Default: off.
    #[must_use]
    pub fn dev_certificate(mut self) -> Self {
        self.dev_certificate = true;
        self
    }

    /// Verifies client certificates against the CA certificates in this
    /// PEM (mutual TLS). Default: clients are not asked for certificates.
    #[must_use]
    pub fn client_ca_certificate(mut self, pem: impl AsRef<[u8]>, auth: ClientAuth) -> Self {
        self.client_ca.push(pem.as_ref().to_vec());
        self.client_auth = Some(auth);
        self
    }

    /// Uses this rustls cryptography provider, e.g. to restrict cipher
    /// suites or to use a FIPS-validated provider. Default: ring with every
    /// TLS 1.3 suite.
    #[must_use]
    pub fn crypto_provider(mut self, provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        self.crypto_provider = Some(provider);
        self
    }

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
    /// allowed stream, about 70 bytes each per connection (20,000 streams
    /// cost 1.4 MiB per connection), so raise it only as far as needed.
    /// Default: 256.
    #[must_use]
    pub fn max_concurrent_streams(mut self, limit: u32) -> Self {
        self.config.max_concurrent_streams = limit;
        self
    }

    /// Closes a connection idle for this long (QUIC idle timeout; the lower
    /// of the two peers' values applies). Default: 30 s.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sends QUIC keep-alive (PING) frames this often, so idle connections
    /// stay open. HTTP/3 has no PING of its own. Default: off.
    #[must_use]
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.config.keep_alive_interval = Some(interval);
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
    /// SETTINGS_MAX_FIELD_SECTION_SIZE); larger ones are answered with HTTP
    /// 431. Default: 16 KiB.
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u64) -> Self {
        self.config.max_header_list_size = bytes;
        self
    }

    /// Adds a service, routed by its [`NamedService::NAME`]. A second
    /// service with the same name replaces the first.
    #[must_use]
    pub fn add_service<S: Service + NamedService>(mut self, service: S) -> Self {
        self.services.insert(S::NAME, Arc::new(service));
        self
    }

    fn quic_config(&self) -> Result<(quinn::ServerConfig, Option<String>), Error> {
        let (identity, dev_pem) = match (&self.identity, self.dev_certificate) {
            (Some(identity), _) => (identity.clone(), None),
            (None, true) => {
                let dev = DevCertificate::localhost()?;
                (dev.identity(), Some(dev.cert_pem().to_owned()))
            }
            (None, false) => {
                return Err(Error::config(
                    "no TLS identity: call `.tls_identity(cert_pem, key_pem)` or `.dev_certificate()` on the server builder",
                ))
            }
        };
        let client_ca = self
            .client_auth
            .map(|auth| (self.client_ca.as_slice(), auth));
        let provider = self
            .crypto_provider
            .clone()
            .unwrap_or_else(tls::default_provider);
        let tls = tls::server_config(&identity, client_ca, provider)?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| Error::tls(format!("TLS configuration unusable for QUIC: {e}")))?;
        let mut quic = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = crate::transport::transport_config(
            self.config.idle_timeout,
            self.config.keep_alive_interval,
        )?;
        transport.max_concurrent_bidi_streams(self.config.max_concurrent_streams.into());
        quic.transport_config(Arc::new(transport));
        Ok((quic, dev_pem))
    }

    /// Binds the UDP socket (port 0 picks a free port). Must run inside a
    /// tokio runtime.
    pub fn bind(self, addr: SocketAddr) -> Result<BoundServer, Error> {
        if self.services.is_empty() {
            return Err(Error::config(
                "no services: call `.add_service(..)` before binding",
            ));
        }
        let (quic, dev_certificate_pem) = self.quic_config()?;
        let endpoint = quinn::Endpoint::server(quic, addr)
            .map_err(|e| Error::io(&format!("binding UDP {addr}"), e))?;
        let shared = Arc::new(Shared {
            config: self.config,
            services: self.services,
            live_calls: AtomicUsize::new(0),
            running_calls: AtomicUsize::new(0),
            calls_drained: Notify::new(),
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
        });
        Ok(BoundServer {
            endpoint,
            shared,
            dev_certificate_pem,
        })
    }

    /// Binds `addr` and serves until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> Result<(), Error> {
        self.bind(addr)?.serve().await
    }

    /// Binds `addr` and serves until `signal` completes, then shuts down
    /// gracefully (see [`BoundServer::serve_with_shutdown`]).
    pub async fn serve_with_shutdown(
        self,
        addr: SocketAddr,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        self.bind(addr)?.serve_with_shutdown(signal).await
    }
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
