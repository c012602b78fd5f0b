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

mod client;
#[cfg(feature = "dev-certificate")]
mod dev;
pub(crate) mod inspect;
pub(crate) mod resume;
pub(crate) mod verify;

pub use client::ClientTlsConfig;
#[cfg(feature = "dev-certificate")]
pub use dev::{DevCertificate, DEV_CERTIFICATE_DIR_ENV};

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
