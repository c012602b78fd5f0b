//! Shared by the conformance suites: a running interop server, and raw h3
//! endpoints (built on h3 + h3-quinn, not on grpc-h3) that send what grpc-h3
//! never would.

#![allow(dead_code, unreachable_pub)]

pub mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grpc_h3::server::{ServerBuilder, ServerHandle};
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{CancellationToken, Channel};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Frames raw bytes as one gRPC message.
pub fn frame(flag: u8, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(flag);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out.into()
}

/// An interop server running in this test.
pub struct Running {
    pub addr: SocketAddr,
    pub cert: DevCertificate,
    pub handle: ServerHandle,
    pub probe: Arc<grpc_h3_tests::server::HandlerProbe>,
    stop: CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), grpc_h3::Error>>,
}

pub fn start_server(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Running {
    let cert = DevCertificate::localhost().unwrap();
    let service = grpc_h3_tests::server::TestService::default();
    let probe = service.probe.clone();
    let builder = configure(
        grpc_h3_tests::server::builder_with(service).tls_identity(cert.cert_pem(), cert.key_pem()),
    );
    let server = builder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(server.serve_with_shutdown(stop.clone().cancelled_owned()));
    Running {
        addr,
        cert,
        handle,
        probe,
        stop,
        serving,
    }
}

impl Running {
    pub fn channel(&self) -> Channel {
        Channel::builder(format!("https://127.0.0.1:{}", self.addr.port()))
            .tls_config(ClientTlsConfig::new().ca_certificate(self.cert.cert_pem()))
            .build()
            .unwrap()
    }

    /// Waits (bounded) until no call is live: nothing leaked.
    pub async fn assert_no_live_calls(&self) {
        for _ in 0..400 {
            if self.handle.live_calls() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} calls still live: leaked", self.handle.live_calls());
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.serving.await.unwrap().unwrap();
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    /// Waits (bounded) until `check` holds for the server's stats.
    pub async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&grpc_h3::server::ServerStats) -> bool,
    ) {
        for _ in 0..400 {
            if check(&self.handle.stats()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for {what}: {:?}", self.handle.stats());
    }
}

/// A bare QUIC connection to `addr` with ALPN h3 (no HTTP/3 on top), for
/// sending raw HTTP/3 bytes.
pub async fn raw_quic(addr: SocketAddr, cert_pem: &str) -> (quinn::Endpoint, quinn::Connection) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
    (endpoint, conn)
}

/// A raw h3 client connection.
pub struct RawClient {
    pub sender: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    pub conn: quinn::Connection,
    authority: String,
    _endpoint: quinn::Endpoint,
}

pub async fn raw_client(server: &Running) -> RawClient {
    let (endpoint, conn) = raw_quic(server.addr, server.cert.cert_pem()).await;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    RawClient {
        sender,
        conn,
        authority: format!("127.0.0.1:{}", server.addr.port()),
        _endpoint: endpoint,
    }
}

impl RawClient {
    /// A gRPC-looking request for `path`, plus `extra` headers.
    pub fn request(&self, path: &str, extra: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder()
            .method("POST")
            .uri(format!("https://{}{}", self.authority, path))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in extra {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap()
    }
}

/// A server identity for raw servers, and the PEM to trust it.
pub fn raw_server_tls() -> (rustls::ServerConfig, String) {
    let cert = DevCertificate::localhost().unwrap();
    let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem().as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem().as_bytes()).unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    (tls, cert.cert_pem().to_owned())
}
