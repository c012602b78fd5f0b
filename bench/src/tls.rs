//! One TLS setup for every stack: rustls on ring, TLS 1.3 only, and a
//! single cipher suite (TLS_AES_128_GCM_SHA256) so the stacks pay the same
//! for encryption. grpc-h3 builds its own configs from the same provider;
//! the quinn configs here are for tonic-h3, which takes a quinn endpoint.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// ring, restricted to TLS_AES_128_GCM_SHA256.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    Arc::new(provider)
}

/// A server config for TCP (ALPN h2).
pub(crate) fn tcp_server(cert_pem: &[u8], key_pem: &[u8]) -> Arc<rustls::ServerConfig> {
    Arc::new(server(cert_pem, key_pem, b"h2"))
}

/// A rustls server config with this identity and ALPN protocol.
fn server(cert_pem: &[u8], key_pem: &[u8], alpn: &[u8]) -> rustls::ServerConfig {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem).expect("key PEM");
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("identity");
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

/// A client config for TCP (ALPN h2) trusting `ca_pem`.
pub(crate) fn tcp_client(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    Arc::new(client(ca_pem, b"h2"))
}

/// A rustls client config trusting `ca_pem`, with this ALPN protocol.
fn client(ca_pem: &[u8], alpn: &[u8]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

/// quinn's transport settings for tonic-h3: quinn's defaults (what a
/// tonic-h3 user gets), with the idle timeout every stack here uses and,
/// when given, the stream limit S6 raises on every stack.
fn quic_transport(max_streams: Option<u32>) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("a small timeout"),
    ));
    if let Some(limit) = max_streams {
        transport.max_concurrent_bidi_streams(limit.into());
    }
    Arc::new(transport)
}

/// The idle timeout of every stack's connections in the bench.
pub(crate) const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A QUIC server config (ALPN h3) for tonic-h3.
pub(crate) fn quic_server(
    cert_pem: &[u8],
    key_pem: &[u8],
    max_streams: Option<u32>,
) -> Result<quinn::ServerConfig, String> {
    let tls = quinn::crypto::rustls::QuicServerConfig::try_from(server(cert_pem, key_pem, b"h3"))
        .map_err(|e| format!("a QUIC server config: {e}"))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(tls));
    config.transport_config(quic_transport(max_streams));
    Ok(config)
}

/// A QUIC client config (ALPN h3) for tonic-h3, trusting `ca_pem`.
pub(crate) fn quic_client(ca_pem: &[u8]) -> Result<quinn::ClientConfig, String> {
    let tls = quinn::crypto::rustls::QuicClientConfig::try_from(client(ca_pem, b"h3"))
        .map_err(|e| format!("a QUIC client config: {e}"))?;
    let mut config = quinn::ClientConfig::new(Arc::new(tls));
    config.transport_config(quic_transport(None));
    Ok(config)
}
