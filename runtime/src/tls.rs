//! TLS for QUIC: server identity, client CA (mutual TLS), client trust roots
//! and development certificates. TLS 1.3 only (QUIC requires it), ALPN `h3`.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;

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

/// A self-signed certificate for development and tests, made with rcgen.
///
/// Never used unless asked for: a server needs an explicit
/// `.dev_certificate(..)` and a client has to trust it explicitly.
///
/// ```
/// let cert = grpc_h3::tls::DevCertificate::generate(&["localhost"]).unwrap();
/// assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
#[derive(Clone)]
pub struct DevCertificate {
    cert_pem: String,
    key_pem: String,
}

impl DevCertificate {
    /// A certificate valid for `names` (DNS names or IP addresses).
    pub fn generate(names: &[&str]) -> Result<DevCertificate, Error> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| Error::tls(format!("generating a development certificate: {e}")))?;
        Ok(DevCertificate {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        })
    }

    /// A certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn localhost() -> Result<DevCertificate, Error> {
        DevCertificate::generate(&["localhost", "127.0.0.1", "::1"])
    }

    /// The certificate, PEM. Clients trust it with
    /// `ClientTlsConfig::ca_certificate`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate and key as an [`Identity`].
    pub fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

impl fmt::Debug for DevCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DevCertificate { .. }")
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

/// Builds the rustls server configuration for QUIC.
pub(crate) fn server_config(
    identity: &Identity,
    client_ca: Option<(&[Vec<u8>], ClientAuth)>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ServerConfig, Error> {
    let (chain, key) = identity.parse()?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
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
    config.alpn_protocols = vec![ALPN_H3.to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// How a client authenticates servers, and itself.
///
/// ```
/// use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
/// let cert = DevCertificate::localhost().unwrap();
/// let tls = ClientTlsConfig::new().ca_certificate(cert.cert_pem());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientTlsConfig {
    ca_pems: Vec<Vec<u8>>,
    system_roots: bool,
    identity: Option<Identity>,
    server_name: Option<String>,
    skip_verification: bool,
    provider: Option<Arc<CryptoProvider>>,
}

impl ClientTlsConfig {
    /// No trust roots yet: add some with [`ClientTlsConfig::ca_certificate`]
    /// or [`ClientTlsConfig::with_system_roots`].
    pub fn new() -> ClientTlsConfig {
        ClientTlsConfig::default()
    }

    /// Trusts the CA (or self-signed) certificates in this PEM text.
    /// Default: none.
    #[must_use]
    pub fn ca_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.ca_pems.push(pem.as_ref().to_vec());
        self
    }

    /// Also trusts the operating system's root certificates. Default: off.
    #[must_use]
    pub fn with_system_roots(mut self) -> Self {
        self.system_roots = true;
        self
    }

    /// Presents this identity to servers that ask for one (mutual TLS).
    /// Default: none.
    #[must_use]
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Verifies the server certificate against this name instead of the
    /// host in the channel's address. Default: the address's host.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Accepts any server certificate. For local development only: it
    /// removes all protection against impersonation. Default: off.
    #[must_use]
    pub fn dangerous_skip_server_verification_for_development(mut self) -> Self {
        self.skip_verification = true;
        self
    }

    /// Uses this rustls cryptography provider, e.g. to restrict cipher
    /// suites or to use a FIPS-validated provider. Default: ring with every
    /// TLS 1.3 suite.
    #[must_use]
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    pub(crate) fn server_name_override(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    pub(crate) fn build(&self) -> Result<rustls::ClientConfig, Error> {
        let provider = self.provider.clone().unwrap_or_else(default_provider);
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::tls(e.to_string()))?;
        let builder = if self.skip_verification {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerification(provider)))
        } else {
            let mut roots = root_store(&self.ca_pems, "CA certificate")?;
            if self.system_roots {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
            if roots.is_empty() {
                return Err(Error::tls(
                    "no trust roots: call `.ca_certificate(pem)` or `.with_system_roots()` on the ClientTlsConfig",
                ));
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let (chain, key) = identity.parse()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::tls(format!("client identity: {e}")))?
            }
        };
        config.alpn_protocols = vec![ALPN_H3.to_vec()];
        Ok(config)
    }
}

#[derive(Debug)]
struct SkipVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
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
        let err = ClientTlsConfig::new().build().unwrap_err();
        assert!(err.to_string().contains("ca_certificate"), "{err}");
    }

    #[test]
    fn system_roots_are_loaded_when_the_os_has_them() {
        let native = rustls_native_certs::load_native_certs();
        let result = ClientTlsConfig::new().with_system_roots().build();
        if native.certs.is_empty() {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("no trust roots"), "{err}");
        } else {
            result.expect("the OS root store is usable");
        }
    }

    #[test]
    fn dev_certificate_builds_both_sides() {
        let cert = DevCertificate::localhost().unwrap();
        let server = server_config(
            &cert.identity(),
            Some((&[cert.cert_pem().as_bytes().to_vec()], ClientAuth::Required)),
            default_provider(),
        )
        .unwrap();
        assert_eq!(server.alpn_protocols, [b"h3".to_vec()]);
        ClientTlsConfig::new()
            .ca_certificate(cert.cert_pem())
            .identity(cert.identity())
            .build()
            .unwrap();
    }
}
