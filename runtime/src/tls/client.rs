//! The client side of TLS: [`ClientTlsConfig`], what a channel trusts and
//! presents, built once into the rustls configuration its channels share.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;

#[cfg(feature = "dev-certificate")]
use super::dev;
use super::verify::{Explaining, Pin, Pinned, SkipVerification};
use super::{
    default_provider, parse_certs, resume, root_store, Identity, ALPN_H2, ALPN_H3, VERSIONS,
};
use crate::Error;

/// How a client authenticates servers, and itself.
///
/// Trust comes from CA certificates ([`ca_certificate`](Self::ca_certificate)),
/// the operating system's roots ([`with_system_roots`](Self::with_system_roots)),
/// the current user's development certificate
/// ([`trust_dev_certificate`](Self::trust_dev_certificate)), or pinned
/// certificates ([`pin_certificate`](Self::pin_certificate),
/// [`pin_sha256`](Self::pin_sha256)); when any certificate is pinned, only
/// pinned certificates are trusted.
///
/// ```
/// use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
/// let cert = DevCertificate::localhost().unwrap();
/// // Trust a CA (here, a self-signed leaf acting as its own CA):
/// let tls = ClientTlsConfig::new().ca_certificate(cert.cert_pem());
/// // Or trust exactly one certificate, whatever its extensions:
/// let pinned = ClientTlsConfig::new().pin_certificate(cert.cert_pem());
/// ```
#[derive(Clone, Debug)]
pub struct ClientTlsConfig {
    ca_pems: Vec<Vec<u8>>,
    ca_files: Vec<std::path::PathBuf>,
    system_roots: bool,
    #[cfg(feature = "dev-certificate")]
    dev_certificate: bool,
    pin_pems: Vec<Vec<u8>>,
    pin_fingerprints: Vec<String>,
    check_pinned_name: bool,
    identity: Option<Identity>,
    server_name: Option<String>,
    skip_verification: bool,
    provider: Option<Arc<CryptoProvider>>,
    /// Session tickets (and addresses that answered), shared by clones
    /// until one changes what it trusts or presents.
    sessions: Arc<resume::SessionMemory>,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        ClientTlsConfig {
            ca_pems: Vec::new(),
            ca_files: Vec::new(),
            system_roots: false,
            #[cfg(feature = "dev-certificate")]
            dev_certificate: false,
            pin_pems: Vec::new(),
            pin_fingerprints: Vec::new(),
            check_pinned_name: true,
            identity: None,
            server_name: None,
            skip_verification: false,
            provider: None,
            sessions: resume::SessionMemory::new(),
        }
    }
}

impl ClientTlsConfig {
    /// No trust yet: add some with the methods below.
    pub fn new() -> ClientTlsConfig {
        ClientTlsConfig::default()
    }

    /// Trusts the CA certificates in this PEM text (a self-signed leaf
    /// certificate works too, as its own CA). Default: none.
    #[must_use]
    pub fn ca_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.ca_pems.push(pem.as_ref().to_vec());
        self
    }

    /// Trusts the CA certificates in this PEM file, read when the first
    /// channel is built from this configuration or a clone of it (errors
    /// name the file). Default: none.
    #[must_use]
    pub fn ca_certificate_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.ca_files.push(path.into());
        self
    }

    /// Also trusts the operating system's root certificates. Default: off.
    #[must_use]
    pub fn with_system_roots(mut self) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.system_roots = true;
        self
    }

    /// Trusts the current user's development certificate: the one a
    /// server started by the same user with
    /// [`ServerBuilder::dev_certificate`](crate::server::ServerBuilder::dev_certificate)
    /// uses (see [`DevCertificate::for_this_user`]). For local development:
    /// it names `localhost`, `127.0.0.1` and `::1` only. Default: off.
    #[must_use]
    #[cfg(feature = "dev-certificate")]
    pub fn trust_dev_certificate(mut self) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.dev_certificate = true;
        self
    }

    /// Trusts exactly the certificate in this PEM text (its first
    /// certificate), whatever its extensions: a self-signed certificate
    /// made with CA:TRUE, as most tutorials make them, is accepted. The
    /// server name is still checked against the names the certificate
    /// carries (see [`check_pinned_server_name`](Self::check_pinned_server_name));
    /// one that carries none is identified by the pin alone. Once any
    /// certificate is pinned, nothing else is trusted. Default: none.
    #[must_use]
    pub fn pin_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.pin_pems.push(pem.as_ref().to_vec());
        self
    }

    /// Trusts exactly the certificate with this SHA-256 fingerprint, in hex
    /// with or without colons, as `openssl x509 -noout -fingerprint -sha256
    /// -in cert.pem` prints it. Otherwise as
    /// [`pin_certificate`](Self::pin_certificate). Default: none.
    #[must_use]
    pub fn pin_sha256(mut self, fingerprint: impl Into<String>) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.pin_fingerprints.push(fingerprint.into());
        self
    }

    /// Whether a pinned certificate must also name the server (`true`), or
    /// the pin alone decides (`false`). Default: true.
    #[must_use]
    pub fn check_pinned_server_name(mut self, check: bool) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.check_pinned_name = check;
        self
    }

    /// Presents this identity to servers that ask for one (mutual TLS).
    /// Default: none.
    #[must_use]
    pub fn identity(mut self, identity: Identity) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.identity = Some(identity);
        self
    }

    /// Verifies the server certificate against this name instead of the
    /// host in the channel's address. Default: the address's host.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.server_name = Some(name.into());
        self
    }

    /// Accepts any server certificate. For local development only: it
    /// removes all protection against impersonation. Default: off.
    #[must_use]
    pub fn dangerous_skip_server_verification_for_development(mut self) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.skip_verification = true;
        self
    }

    /// Uses this rustls cryptography provider, e.g. to restrict cipher
    /// suites or to use a FIPS-validated provider. Default: ring with every
    /// TLS 1.3 suite.
    #[must_use]
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.sessions = resume::SessionMemory::new();
        self.provider = Some(provider);
        self
    }

    /// What channels built from this configuration remember between
    /// connections.
    pub(crate) fn sessions(&self) -> Arc<resume::SessionMemory> {
        self.sessions.clone()
    }

    pub(crate) fn server_name_override(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    fn pins(&self) -> Result<Vec<Pin>, Error> {
        let mut pins = Vec::new();
        for pem in &self.pin_pems {
            let cert = parse_certs(pem, "pinned certificate")?.swap_remove(0);
            pins.push(Pin::Certificate(cert.to_vec()));
        }
        for text in &self.pin_fingerprints {
            pins.push(Pin::parse_sha256(text).ok_or_else(|| {
                Error::tls(format!(
                    "pinned fingerprint {text:?} is not a SHA-256 fingerprint: expected 64 hex digits,                      with or without colons, as `openssl x509 -noout -fingerprint -sha256 -in cert.pem` prints"
                ))
            })?);
        }
        Ok(pins)
    }

    fn roots(&self) -> Result<RootCertStore, Error> {
        let mut pems = self.ca_pems.clone();
        for path in &self.ca_files {
            pems.push(std::fs::read(path).map_err(|e| {
                Error::tls(format!(
                    "reading CA certificate file {}: {e}",
                    path.display()
                ))
            })?);
        }
        #[cfg(feature = "dev-certificate")]
        if self.dev_certificate {
            pems.push(dev::user_certificate_pem()?.into_bytes());
        }
        let mut roots = root_store(&pems, "CA certificate")?;
        if self.system_roots {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        Ok(roots)
    }

    /// The rustls configuration for HTTP/3 (TLS 1.3, ALPN `h3`), sending
    /// early data on resumed sessions if `early_data`.
    pub(crate) fn build(&self, early_data: bool) -> Result<rustls::ClientConfig, Error> {
        let mut config = self.base()?;
        config.alpn_protocols = vec![ALPN_H3.to_vec()];
        config.enable_early_data = early_data;
        Ok(config)
    }

    /// The rustls configuration for HTTP/2 (TLS 1.3 or 1.2, ALPN `h2`).
    pub(crate) fn build_h2(&self) -> Result<rustls::ClientConfig, Error> {
        let mut config = self.base()?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(config)
    }

    /// The configuration every channel built from this one (or a clone)
    /// starts from, built once: rustls resumes a session only with the
    /// same certificate verifier and client identity objects that made it,
    /// so channels must share them to share tickets. (QUIC uses TLS 1.3
    /// whatever else the configuration allows.)
    fn base(&self) -> Result<rustls::ClientConfig, Error> {
        let mut built = self.sessions.base.lock().expect("base config lock");
        if let Some(config) = built.as_ref() {
            return Ok(config.clone());
        }
        let config = self.build_for(VERSIONS)?;
        *built = Some(config.clone());
        Ok(config)
    }

    fn build_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<rustls::ClientConfig, Error> {
        let provider = self.provider.clone().unwrap_or_else(default_provider);
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| Error::tls(e.to_string()))?;
        let pins = self.pins()?;
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if self
            .skip_verification
        {
            Arc::new(SkipVerification(provider))
        } else if !pins.is_empty() {
            Arc::new(Pinned {
                pins,
                check_name: self.check_pinned_name,
                provider,
            })
        } else {
            let roots = self.roots()?;
            if roots.is_empty() {
                return Err(Error::tls(
                        "no trust: call `.ca_certificate(pem)`, `.with_system_roots()`, `.trust_dev_certificate()` \
                         or `.pin_certificate(pem)` on the ClientTlsConfig",
                    ));
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::tls(format!("trust roots: {e}")))?;
            Arc::new(Explaining(webpki))
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let (chain, key) = identity.parse()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::tls(format!("client identity: {e}")))?
            }
        };
        config.resumption = self.sessions.resumption.clone();
        Ok(config)
    }
}
