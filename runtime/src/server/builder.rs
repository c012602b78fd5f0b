//! [`ServerBuilder`]: identity, services, and binding. Limits and timeouts
//! are set by the methods in `config.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{BoundServer, NamedService, ServerConfig, Service, Shared};
use crate::tls::{self, ClientAuth, DevCertificate, Identity};
use crate::transport::{self, Side};
use crate::Error;

/// Configures a server. Every setting has a default; only a TLS identity
/// and at least one service are needed.
///
/// ```no_run
/// # async fn run(service: impl grpc_h3::server::Service + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
/// use std::time::Duration;
/// use grpc_h3::server::Server;
///
/// let server = Server::builder()
///     .dev_certificate()                        // or .tls_identity(cert_pem, key_pem)
///     .timeout(Duration::from_secs(30))         // no call runs longer
///     .max_connections(1_000)
///     .add_service(service)
///     .bind("127.0.0.1:50051".parse().unwrap())?;
/// println!("listening on {}", server.local_addr()?);
/// server.serve().await
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ServerBuilder {
    pub(super) config: ServerConfig,
    identity: Option<Identity>,
    identity_files: Option<(PathBuf, PathBuf)>,
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

    /// The server's certificate chain and key from PEM files, read when the
    /// server is bound (errors name the file). Default: none.
    #[must_use]
    pub fn tls_identity_files(
        mut self,
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Self {
        self.identity_files = Some((cert_path.into(), key_path.into()));
        self
    }

    /// Uses the current user's development certificate, a self-signed leaf
    /// for `localhost`, `127.0.0.1` and `::1` made on first use and kept in
    /// a directory only that user can read
    /// ([`DevCertificate::user_path`]). A client of the same user trusts
    /// it with [`ClientTlsConfig::trust_dev_certificate`](crate::tls::ClientTlsConfig::trust_dev_certificate),
    /// in any process; [`BoundServer::dev_certificate_pem`] returns it too.
    /// For development and tests only. Default: off.
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

    /// Adds a service, routed by its [`NamedService::NAME`]. A second
    /// service with the same name replaces the first.
    #[must_use]
    pub fn add_service<S: Service + NamedService>(mut self, service: S) -> Self {
        self.services.insert(S::NAME, Arc::new(service));
        self
    }

    fn quic_config(&self) -> Result<(quinn::ServerConfig, Option<String>), Error> {
        let (identity, dev_pem) = match (&self.identity, &self.identity_files) {
            (Some(identity), _) => (identity.clone(), None),
            (None, Some((cert, key))) => {
                let read = |path: &PathBuf, what: &str| {
                    std::fs::read(path).map_err(|e| {
                        Error::tls(format!("reading the {what} file {}: {e}", path.display()))
                    })
                };
                let identity =
                    Identity::from_pem(read(cert, "certificate")?, read(key, "private key")?);
                (identity, None)
            }
            (None, None) if self.dev_certificate => {
                let dev = DevCertificate::for_this_user()?;
                (dev.identity(), Some(dev.cert_pem().to_owned()))
            }
            (None, None) => {
                return Err(Error::config(
                    "no TLS identity: call `.tls_identity(cert_pem, key_pem)`, `.tls_identity_files(cert, key)` \
                     or `.dev_certificate()` on the server builder",
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
        let keep_alive = transport::keep_alive_interval(
            self.config.keep_alive_interval,
            self.config.idle_timeout,
            "server",
        )?;
        let transport = transport::transport_config(
            Side::Server {
                max_concurrent_streams: self.config.max_concurrent_streams,
            },
            self.config.idle_timeout,
            keep_alive,
        )?;
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
        let endpoint = transport::udp_socket(addr, self.config.udp_buffer_bytes)
            .and_then(|socket| transport::endpoint(socket, Some(quic)))
            .map_err(|e| Error::io(&format!("binding UDP {addr}"), e))?;
        Ok(BoundServer {
            endpoint,
            shared: Arc::new(Shared::new(self.config, self.services)),
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
