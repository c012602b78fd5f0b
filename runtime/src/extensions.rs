//! What travels with a call in `http::Extensions`, on both transports:
//! the method called, the peer, the transport, and the server's deadline.
//! Handlers read them from [`Request::extensions`](crate::Request::extensions),
//! tower layers from the `http::Request`.

use std::net::SocketAddr;
use std::sync::Arc;

use grpc_h3_core::protocol::MethodPath;
use rustls::pki_types::CertificateDer;

/// The method a call is for, e.g. `helloworld.Greeter` / `SayHello`.
///
/// ```
/// let method = grpc_h3::GrpcMethod::from_path("/helloworld.Greeter/SayHello").unwrap();
/// assert_eq!(method.service(), "helloworld.Greeter");
/// assert_eq!(method.method(), "SayHello");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcMethod {
    path: MethodPath,
}

impl GrpcMethod {
    /// The method of a `:path` of the form `/package.Service/Method`.
    pub fn from_path(path: &str) -> Option<GrpcMethod> {
        MethodPath::parse(path).map(|path| GrpcMethod { path })
    }

    /// The method of a path the server has already parsed.
    pub(crate) fn from_parsed(path: MethodPath) -> GrpcMethod {
        GrpcMethod { path }
    }

    /// The fully qualified service name.
    pub fn service(&self) -> &str {
        self.path.service()
    }

    /// The method name.
    pub fn method(&self) -> &str {
        self.path.method()
    }

    /// The whole path, `/service/method`.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }
}

/// Who is on the other end of a call, as a server sees it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub(crate) addr: SocketAddr,
    pub(crate) certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl PeerInfo {
    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate chain the peer presented (mutual TLS), leaf first.
    pub fn certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.certificates.as_deref().map(Vec::as_slice)
    }
}

/// The HTTP version a call travelled over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// HTTP/3 over QUIC.
    Http3,
    /// HTTP/2 over TLS.
    Http2,
    /// HTTP/2 without TLS (h2c).
    H2c,
}

impl Transport {
    /// `h3`, `h2` or `h2c`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http3 => "h3",
            Transport::Http2 => "h2",
            Transport::H2c => "h2c",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a server call must be over: the earlier of the client's
/// `grpc-timeout` and the server's cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub std::time::Instant);
