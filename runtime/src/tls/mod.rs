//! TLS for QUIC: server identity, client CA (mutual TLS), client trust
//! (CA roots, system roots, pinned certificates) and development
//! certificates. TLS 1.3 only (QUIC requires it), ALPN `h3`.
//!
//! Certificate problems come with what to do about them: a client that
//! does not trust a server's certificate says which option trusts it, a CA
//! certificate used as a server certificate names the two fixes (re-issue
//! it as a leaf, or pin it), and a server warns at start-up when its own
//! certificate is one clients will refuse.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use crate::Error;

#[cfg(feature = "dev-certificate")]
mod dev;
pub(crate) mod inspect;
pub(crate) mod resume;
pub(crate) mod verify;

#[cfg(feature = "dev-certificate")]
pub use dev::{DevCertificate, DEV_CERTIFICATE_DIR_ENV};
use verify::{Explaining, Pin, Pinned, SkipVerification};

pub(crate) const ALPN_H3: &[u8] = b"h3";

/// The default cryptography: rustls on ring, every TLS 1.3 suite.
pub(crate) fn default_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::tls(format!("{what}: invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::tls(format!(
            "{what}: no CERTIFICATE block found; pass PEM text starting with -----BEGIN CERTIFICATE-----"
        )));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        Error::tls(format!(
            "private key: {e}; pass a PEM PKCS#8, PKCS#1 or SEC1 private key"
        ))
    })
}

fn root_store(pems: &[Vec<u8>], what: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for pem in pems {
        for cert in parse_certs(pem, what)? {
            roots
                .add(cert)
                .map_err(|e| Error::tls(format!("{what}: unusable certificate: {e}")))?;
        }
    }
    Ok(roots)
}

/// A certificate chain and its private key, in PEM.
#[derive(Clone)]
pub struct Identity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl Identity {
    /// An identity from a PEM certificate chain (leaf first) and a PEM key.
    pub fn from_pem(cert_pem: impl AsRef<[u8]>, key_pem: impl AsRef<[u8]>) -> Identity {
        Identity {
            cert_pem: cert_pem.as_ref().to_vec(),
            key_pem: key_pem.as_ref().to_vec(),
        }
    }

    fn parse(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
        Ok((
            parse_certs(&self.cert_pem, "certificate chain")?,
            parse_key(&self.key_pem)?,
        ))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity { .. }")
    }
}

/// Whether a server asks clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients must present a certificate signed by the client CA.
    Required,
    /// Clients may present one; if they do, it must verify.
    Optional,
}

/// TLS 1.3 and 1.2 (HTTP/2 clients may still speak only 1.2; QUIC always
/// uses 1.3).
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The ALPN protocol id of HTTP/2.
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// `config` for one transport: the same trust and identity, that
/// transport's ALPN protocol.
pub(crate) fn with_alpn(config: &rustls::ServerConfig, alpn: &[u8]) -> Arc<rustls::ServerConfig> {
    let mut config = config.clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Builds the rustls server configuration both transports start from
/// (each sets its own ALPN protocol with [`with_alpn`]).
pub(crate) fn server_config(
    identity: &Identity,
    client_ca: Option<(&[Vec<u8>], ClientAuth)>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, Error> {
    let (chain, key) = identity.parse()?;
    if let Some(leaf) = chain.first() {
        inspect::warn_about(leaf);
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| Error::tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some((pems, mode)) => {
            let roots = Arc::new(root_store(pems, "client CA")?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match mode {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| Error::tls(format!("client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        Error::tls(format!(
            "certificate and key do not form a usable identity: {e}"
        ))
    })?;
    config.max_early_data_size = 0;
    Ok(config)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "dev-certificate")]
    fn bad_pem_gives_actionable_errors() {
        let err = server_config(
            &Identity::from_pem("nope", "nope"),
            None,
            default_provider(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
        let cert = DevCertificate::localhost().unwrap();
        let err = server_config(
            &Identity::from_pem(cert.cert_pem(), "nope"),
            None,
            default_provider(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        let err = ClientTlsConfig::new().build(true).unwrap_err();
        assert!(err.to_string().contains("ca_certificate"), "{err}");
        let err = ClientTlsConfig::new()
            .ca_certificate_file("/nonexistent/ca.pem")
            .build(true)
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let err = ClientTlsConfig::new()
            .pin_sha256("abc")
            .build(true)
            .unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }

    #[test]
    fn system_roots_are_loaded_when_the_os_has_them() {
        let native = rustls_native_certs::load_native_certs();
        let result = ClientTlsConfig::new().with_system_roots().build(true);
        if native.certs.is_empty() {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("no trust"), "{err}");
        } else {
            result.expect("the OS root store is usable");
        }
    }

    #[test]
    #[cfg(feature = "dev-certificate")]
    fn dev_certificate_builds_both_sides() {
        let cert = DevCertificate::localhost().unwrap();
        let server = server_config(
            &cert.identity(),
            Some((&[cert.cert_pem().as_bytes().to_vec()], ClientAuth::Required)),
            default_provider(),
        )
        .unwrap();
        assert_eq!(with_alpn(&server, ALPN_H3).alpn_protocols, [b"h3".to_vec()]);
        ClientTlsConfig::new()
            .ca_certificate(cert.cert_pem())
            .identity(cert.identity())
            .build(true)
            .unwrap();
    }

    #[test]
    #[cfg(feature = "dev-certificate")]
    fn clones_share_sessions_until_one_changes_its_trust() {
        let cert = DevCertificate::localhost().unwrap();
        let config = ClientTlsConfig::new().ca_certificate(cert.cert_pem());
        let clone = config.clone();
        assert!(Arc::ptr_eq(&config.sessions(), &clone.sessions()));
        let stricter = clone.clone().pin_certificate(cert.cert_pem());
        assert!(!Arc::ptr_eq(&config.sessions(), &stricter.sessions()));
        let other_identity = clone.identity(cert.identity());
        assert!(!Arc::ptr_eq(&config.sessions(), &other_identity.sessions()));
        let built = config.build(true).unwrap();
        assert!(built.enable_early_data);
        assert!(!config.build(false).unwrap().enable_early_data);
    }
}
