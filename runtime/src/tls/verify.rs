//! Server certificate verification on the client: the WebPKI verifier with
//! errors that say what to do, certificate pinning, and the development
//! escape hatch.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// A certificate error explained: what went wrong and what to do. Its
/// Debug form is the plain message too, because rustls shows
/// `CertificateError::Other` through Debug (see [`explanation`]).
pub(crate) struct Explained(pub(crate) String);

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Our explanation inside a handshake error's text, if there is one:
/// rustls writes it as `invalid peer certificate: Other(OtherError(..))`.
pub(crate) fn explanation(handshake_error: &str) -> Option<&str> {
    let start = handshake_error.find("Other(OtherError(")? + "Other(OtherError(".len();
    let rest = &handshake_error[start..];
    Some(rest.strip_suffix("))").unwrap_or(rest))
}

impl std::error::Error for Explained {}

fn explained(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Explained(message),
    ))))
}

/// The SHA-256 fingerprint of a certificate, as `openssl x509 -fingerprint
/// -sha256` prints it.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `localhost` for rustls's `DnsName("localhost")`, and so on.
fn plain_names(presented: &[String]) -> String {
    presented
        .iter()
        .map(|name| match (name.find('('), name.rfind(')')) {
            (Some(open), Some(close)) if open < close => {
                name[open + 1..close].trim_matches('"').to_owned()
            }
            _ => name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Turns a certificate error into one naming the fix; other errors pass.
fn explain(error: rustls::Error, server_name: &ServerName<'_>) -> rustls::Error {
    let rustls::Error::InvalidCertificate(cert_error) = &error else {
        return error;
    };
    let name = server_name.to_str();
    let message = match cert_error {
        CertificateError::UnknownIssuer => "the server's certificate was not issued by a CA \
             this client trusts (UnknownIssuer); trust its CA with \
             ClientTlsConfig::ca_certificate(pem), trust a server started with .dev_certificate() \
             with ClientTlsConfig::trust_dev_certificate(), or trust exactly this certificate \
             with ClientTlsConfig::pin_certificate(pem)"
            .to_owned(),
        CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => format!(
                "the server's certificate is a CA certificate (basicConstraints CA:TRUE), which TLS \
                 refuses as a server certificate (CaUsedAsEndEntity); re-issue it as a leaf, e.g. \
                 `openssl req -x509 ... -addext basicConstraints=critical,CA:FALSE -addext \
                 subjectAltName=DNS:{name}`, or trust exactly this certificate with \
                 ClientTlsConfig::pin_certificate(pem)"
            ),
            _ => return error,
        },
        CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => {
            format!(
                "the server's certificate names no host (no subjectAltName; TLS ignores the \
                 subject's CN), so it cannot be valid for {name}; re-issue it with \
                 `-addext subjectAltName=DNS:{name}`, or trust exactly this certificate with \
                 ClientTlsConfig::pin_certificate(pem)"
            )
        }
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "the server's certificate is valid for {} but not for {name}; connect to one of \
             those names, or set the name to check with ClientTlsConfig::server_name(..)",
            plain_names(presented)
        ),
        CertificateError::BadSignature => "the server's certificate names a trusted certificate \
             as its issuer, but was not signed by it (BadSignature): most likely the server and \
             this client use two different certificates with the same name (for example two \
             development certificates made separately); trust the certificate the server uses"
            .to_owned(),
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "the server's certificate expired {} days ago; the server needs a renewed certificate",
            UnixTime::now()
                .as_secs()
                .saturating_sub(not_after.as_secs())
                / 86_400
        ),
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid until {} seconds from now; check the clocks \
             of both machines",
            not_before.as_secs().saturating_sub(UnixTime::now().as_secs())
        ),
        _ => return error,
    };
    explained(message)
}

/// The WebPKI verifier, with errors that say what to do.
#[derive(Debug)]
pub(crate) struct Explaining(pub(crate) Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for Explaining {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| explain(e, server_name))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A certificate trusted by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pin {
    /// This exact certificate (DER).
    Certificate(Vec<u8>),
    /// Any certificate with this SHA-256 fingerprint.
    Sha256([u8; 32]),
}

impl Pin {
    fn matches(&self, der: &[u8]) -> bool {
        match self {
            Pin::Certificate(pinned) => pinned == der,
            Pin::Sha256(pinned) => {
                ring::digest::digest(&ring::digest::SHA256, der).as_ref() == pinned.as_slice()
            }
        }
    }

    /// Parses a SHA-256 fingerprint in hex, with or without colons, as
    /// `openssl x509 -fingerprint -sha256` prints it (its `sha256
    /// Fingerprint=` prefix included).
    pub(crate) fn parse_sha256(text: &str) -> Option<Pin> {
        let text = text.rsplit('=').next().unwrap_or(text);
        let hex: String = text
            .chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .collect();
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Pin::Sha256(bytes))
    }
}

/// Trusts the pinned certificates only, whatever their extensions (a
/// self-signed CA:TRUE certificate included); still checks the server name
/// against a pinned certificate's names unless told not to.
#[derive(Debug)]
pub(crate) struct Pinned {
    pub(crate) pins: Vec<Pin>,
    pub(crate) check_name: bool,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.pins.iter().any(|pin| pin.matches(end_entity)) {
            return Err(explained(format!(
                "the server's certificate (SHA-256 {}) is not the pinned one; pin the certificate the \
                 server uses now, or check that this is the server you meant",
                fingerprint(end_entity)
            )));
        }
        if self.check_name {
            let cert = webpki::EndEntityCert::try_from(end_entity)
                .map_err(|e| explained(format!("the pinned certificate cannot be parsed: {e}")))?;
            match cert.verify_is_valid_for_subject_name(server_name) {
                Ok(()) => {}
                // A certificate with no names at all has nothing to check:
                // the pin alone identifies the server.
                Err(webpki::Error::CertNotValidForName(context))
                    if context.presented.is_empty() => {}
                Err(webpki::Error::CertNotValidForName(context)) => {
                    return Err(explained(format!(
                        "the pinned certificate is valid for {} but not for {}; connect to one of \
                         those names, set ClientTlsConfig::server_name(..), or turn the check off \
                         with ClientTlsConfig::check_pinned_server_name(false)",
                        plain_names(&context.presented),
                        server_name.to_str()
                    )))
                }
                Err(e) => return Err(explained(format!("checking the server name: {e}"))),
            }
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Accepts any certificate (development only), still checking that the
/// server holds the key of the certificate it shows.
#[derive(Debug)]
pub(crate) struct SkipVerification(pub(crate) Arc<CryptoProvider>);

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
    fn explanations_are_found_in_handshake_errors() {
        let error = explained("do this".to_owned());
        let text = format!("the cryptographic handshake failed: error 42: {error}");
        assert_eq!(explanation(&text), Some("do this"));
        assert_eq!(explanation("error 40: something else"), None);
    }

    #[test]
    fn fingerprints_parse_as_openssl_prints_them() {
        let der = b"not really a certificate";
        let printed = fingerprint(der);
        assert_eq!(printed.len(), 95);
        let pin = Pin::parse_sha256(&format!("sha256 Fingerprint={printed}")).unwrap();
        assert!(pin.matches(der));
        let bare = printed.replace(':', "").to_lowercase();
        assert_eq!(Pin::parse_sha256(&bare), Some(pin));
        assert_eq!(Pin::parse_sha256("AB:CD"), None);
        assert_eq!(Pin::parse_sha256(&"zz".repeat(32)), None);
    }
}
