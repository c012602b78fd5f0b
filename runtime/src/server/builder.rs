//! [`ServerBuilder`]: identity, services, layers, transports, binding.
//! Limits and timeouts are set by the methods in `config.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    route, BoundServer, GrpcRoute, NamedService, RouteService, Routes, ServerConfig, Shared,
};
use crate::body::BoxError;
#[cfg(feature = "dev-certificate")]
use crate::tls::DevCertificate;
use crate::tls::{self, ClientAuth, Identity};
use crate::transport::{self, CongestionControl, Side};
use crate::{Body, Error};

/// Which transports a server listens on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Listen {
    /// HTTP/3 on UDP and HTTP/2 with TLS on TCP, on the same port; HTTP/2
    /// responses advertise HTTP/3 with `alt-svc`.
    #[default]
    Http3AndHttp2,
    /// HTTP/3 only.
    Http3Only,
    /// HTTP/2 with TLS only.
    Http2Only,
    /// Plaintext HTTP/2 (h2c) only: for local use behind a proxy that
    /// terminates TLS. Needs no TLS identity.
    H2c,
}

impl Listen {
    fn http3(self) -> bool {
        matches!(self, Listen::Http3AndHttp2 | Listen::Http3Only)
    }

    fn tcp(self) -> bool {
        !matches!(self, Listen::Http3Only)
    }
}

type Layering = Arc<dyn Fn(RouteService) -> RouteService + Send + Sync>;

/// What `prepare` works out before sockets are set up.
struct Ready {
    keep_alive: Option<std::time::Duration>,
    tls: Option<rustls::ServerConfig>,
    dev_certificate_pem: Option<String>,
}

/// A stream of user-given byte streams as the server's incoming
/// connections.
struct MapIncoming<IO>(
    std::pin::Pin<Box<dyn futures_core::Stream<Item = std::io::Result<IO>> + Send>>,
);

impl<IO> futures_core::Stream for MapIncoming<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    type Item = std::io::Result<(Box<dyn super::h2::Io>, Option<SocketAddr>)>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx).map(|next| {
            next.map(|accepted| accepted.map(|io| (Box::new(io) as Box<dyn super::h2::Io>, None)))
        })
    }
}

/// Configures a server. Every setting has a default; only a TLS identity
/// and at least one service are needed.
///
/// ```no_run
/// # async fn run(service: impl grpc_h3::server::GrpcRoute + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
/// use std::time::Duration;
/// use grpc_h3::server::Server;
///
/// let server = Server::builder()
///     .dev_certificate()                        // or .tls_identity_files(cert, key)
///     .timeout(Duration::from_secs(30))         // no call runs longer
///     .max_connections(1_000)
///     .add_service(service)
///     .bind("127.0.0.1:50051".parse().unwrap())?; // UDP and TCP 50051
/// println!("listening on {}", server.local_addr()?);
/// server.serve().await
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ServerBuilder {
    pub(super) config: ServerConfig,
    identity: Option<Identity>,
    identity_files: Option<(PathBuf, PathBuf)>,
    #[cfg(feature = "dev-certificate")]
    dev_certificate: bool,
    client_ca: Vec<Vec<u8>>,
    pub(super) client_auth: Option<ClientAuth>,
    crypto_provider: Option<Arc<rustls::crypto::CryptoProvider>>,
    pub(super) rustls_config: Option<Arc<rustls::ServerConfig>>,
    quic_transport: Option<Arc<quinn::TransportConfig>>,
    congestion: CongestionControl,
    listen: Listen,
    advertise_http3: Option<bool>,
    services: HashMap<String, RouteService>,
    layers: Vec<Layering>,
}

impl ServerBuilder {
    /// The server's certificate chain (leaf first) and private key, in PEM.
    /// Required unless another identity option is used.
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
    #[cfg(feature = "dev-certificate")]
    pub fn dev_certificate(mut self) -> Self {
        self.dev_certificate = true;
        self
    }

    /// Uses this rustls configuration (certificate resolver for SNI or
    /// rotation, client verifier, versions...) for both transports instead
    /// of building one from the options above; grpc-h3 only sets each
    /// transport's ALPN protocol. It must support TLS 1.3 for HTTP/3.
    /// Default: built from the identity options.
    #[must_use]
    pub fn rustls_config(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.rustls_config = Some(config);
        self
    }

    /// Uses this QUIC transport configuration instead of grpc-h3's
    /// (windows, keep-alive, idle timeout, congestion control: see
    /// `transport_config` for what the default sets). Default: derived from
    /// the limits set on this builder.
    #[must_use]
    pub fn quic_transport_config(mut self, config: Arc<quinn::TransportConfig>) -> Self {
        self.quic_transport = Some(config);
        self
    }

    /// The congestion controller of HTTP/3 connections (ignored with
    /// [`quic_transport_config`](Self::quic_transport_config)). Default:
    /// [`CongestionControl::Cubic`].
    #[must_use]
    pub fn congestion_control(mut self, controller: CongestionControl) -> Self {
        self.congestion = controller;
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

    /// Which transports to listen on. Default: HTTP/3 on UDP and HTTP/2
    /// with TLS on TCP, same port.
    #[must_use]
    pub fn listen(mut self, listen: Listen) -> Self {
        self.listen = listen;
        self
    }

    /// Whether HTTP/2 responses carry `alt-svc: h3=":PORT"; ma=86400` so
    /// clients can discover HTTP/3. Default: on whenever HTTP/3 is served.
    #[must_use]
    pub fn advertise_http3(mut self, advertise: bool) -> Self {
        self.advertise_http3 = Some(advertise);
        self
    }

    /// Adds a service (a generated `XServer`, possibly behind an
    /// interceptor), routed by its [`NamedService::NAME`]. A second service
    /// with the same name replaces the first.
    #[must_use]
    pub fn add_service<S: GrpcRoute + NamedService>(self, service: S) -> Self {
        let mut this = self.add_routed_service(S::NAME, service);
        this.config
            .early_data
            .set_service(S::NAME, S::REPLAY_SAFE_METHODS);
        this
    }

    /// Adds any tower service over gRPC `http` requests under the service
    /// name `name` (e.g. `helloworld.Greeter`): a tonic-generated server,
    /// a hand-written router, a service behind its own layers. Its errors
    /// become Trailers-Only responses with the status they map to.
    #[must_use]
    pub fn add_routed_service<S, ResBody>(mut self, name: impl Into<String>, service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<ResBody>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let name = name.into();
        self.config.early_data.set_service(&name, &[]);
        self.services.insert(name, route(service));
        self
    }

    /// Adds a tonic-generated server (`GreeterServer::new(MyGreeter)` from
    /// `tonic-build` or `tonic-prost-build`), routed by tonic's
    /// `NamedService::NAME`: tonic services run unchanged over HTTP/3 and
    /// HTTP/2. (Without the `tonic` feature,
    /// [`add_routed_service`](Self::add_routed_service) does the same with
    /// the name spelled out.)
    #[cfg(feature = "tonic")]
    #[must_use]
    pub fn add_tonic_service<S, ResBody>(self, service: S) -> Self
    where
        S: tonic::server::NamedService
            + Service<http::Request<Body>, Response = http::Response<ResBody>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        self.add_routed_service(S::NAME, service)
    }

    /// Wraps every call in a tower [`Layer`]: tracing
    /// (`tower_http::trace::TraceLayer::new_for_grpc()`), concurrency
    /// limits, authentication... Layers see the `http::Request` with its
    /// extensions ([`GrpcMethod`](crate::GrpcMethod),
    /// [`PeerInfo`](crate::PeerInfo), [`Transport`](crate::Transport)). The
    /// first layer added is the outermost. A layer's errors become
    /// Trailers-Only responses.
    #[must_use]
    pub fn layer<L, ResBody>(mut self, layer: L) -> Self
    where
        L: Layer<RouteService> + Send + Sync + 'static,
        L::Service: Service<http::Request<Body>, Response = http::Response<ResBody>>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<http::Request<Body>>>::Future: Send + 'static,
        <L::Service as Service<http::Request<Body>>>::Error: Into<BoxError>,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        self.layers
            .push(Arc::new(move |inner| route(layer.layer(inner))));
        self
    }

    /// The TLS configuration, unless the server speaks only h2c.
    fn tls(&self) -> Result<(Option<rustls::ServerConfig>, Option<String>), Error> {
        if let Some(config) = &self.rustls_config {
            return Ok((Some((**config).clone()), None));
        }
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
            #[cfg(feature = "dev-certificate")]
            (None, None) if self.dev_certificate => {
                let dev = DevCertificate::for_this_user()?;
                (dev.identity(), Some(dev.cert_pem().to_owned()))
            }
            (None, None) if self.listen == Listen::H2c => return Ok((None, None)),
            (None, None) => {
                return Err(Error::config(
                    "no TLS identity: call `.tls_identity(cert_pem, key_pem)`, `.tls_identity_files(cert, key)` \\
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
        let mut config = tls::server_config(&identity, client_ca, provider)?;
        config.session_storage =
            super::early_data::TicketStore::new(self.config.early_data.ticket_lifetime);
        Ok((Some(config), dev_pem))
    }

    fn quic_config(
        &self,
        tls: &rustls::ServerConfig,
        keep_alive: Option<std::time::Duration>,
    ) -> Result<quinn::ServerConfig, Error> {
        let mut h3_tls = (*tls::with_alpn(tls, tls::ALPN_H3)).clone();
        if self.rustls_config.is_none() {
            // QUIC allows no other early-data limit than none or all.
            h3_tls.max_early_data_size = if self.accepts_early_data(tls) {
                u32::MAX
            } else {
                0
            };
        }
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(h3_tls)
            .map_err(|e| Error::tls(format!("TLS configuration unusable for QUIC: {e}")))?;
        let mut quic = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let transport = match &self.quic_transport {
            Some(transport) => transport.clone(),
            None => Arc::new(transport::transport_config(
                Side::Server {
                    max_concurrent_streams: self
                        .config
                        .max_concurrent_streams
                        .min(transport::INITIAL_STREAM_CREDIT),
                },
                self.config.idle_timeout,
                keep_alive,
                self.congestion,
            )?),
        };
        quic.transport_config(transport);
        Ok(quic)
    }

    /// Binds the sockets: UDP for HTTP/3 and TCP for HTTP/2 on the same
    /// port (port 0 picks one free on both). Must run inside a tokio
    /// runtime.
    pub fn bind(self, addr: SocketAddr) -> Result<BoundServer, Error> {
        let ready = self.prepare()?;
        let (endpoint, tcp, local_addr) =
            self.bind_sockets(addr, ready.tls.as_ref(), ready.keep_alive)?;
        self.assemble(ready, endpoint, tcp, None, local_addr)
    }

    /// Serves on sockets made elsewhere (socket activation, a chosen
    /// interface, special socket options): `udp` for HTTP/3, `tcp` for
    /// HTTP/2 (TLS, or h2c with [`Listen::H2c`]); either may be `None`.
    /// The [`listen`](Self::listen) setting does not apply: the sockets
    /// given decide. The UDP socket's buffers are enlarged as for
    /// [`bind`](Self::bind). Must run inside a tokio runtime.
    pub fn from_sockets(
        self,
        udp: Option<std::net::UdpSocket>,
        tcp: Option<std::net::TcpListener>,
    ) -> Result<BoundServer, Error> {
        let ready = self.prepare()?;
        let endpoint = match udp {
            None => None,
            Some(socket) => {
                let tls = ready.tls.as_ref().ok_or_else(|| {
                    Error::config("HTTP/3 needs a TLS identity; h2c serves TCP only")
                })?;
                let quic = self.quic_config(tls, ready.keep_alive)?;
                transport::size_buffers(&socket, self.config.udp_buffers())
                    .map_err(|e| Error::io("sizing the UDP socket's buffers", e))?;
                Some(
                    transport::endpoint(socket, Some(quic))
                        .map_err(|e| Error::io("starting QUIC on the given UDP socket", e))?,
                )
            }
        };
        let tcp = match tcp {
            None => None,
            Some(listener) => {
                listener
                    .set_nonblocking(true)
                    .map_err(|e| Error::io("setting up the given TCP listener", e))?;
                Some(
                    tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| Error::io("setting up the given TCP listener", e))?,
                )
            }
        };
        let local_addr = match (&endpoint, &tcp) {
            (Some(endpoint), _) => endpoint.local_addr(),
            (None, Some(tcp)) => tcp.local_addr(),
            (None, None) => {
                return Err(Error::config(
                    "from_sockets: give a UDP socket, a TCP listener, or both",
                ))
            }
        }
        .map_err(|e| Error::io("reading the bound address", e))?;
        self.assemble(ready, endpoint, tcp, None, local_addr)
    }

    /// Serves HTTP/2 on each byte stream `incoming` yields (Unix sockets,
    /// in-memory pipes, connections accepted elsewhere), with TLS unless
    /// the builder [listens](Self::listen) for h2c, until `signal`
    /// completes; then drains as [`BoundServer::serve_with_shutdown`]
    /// does. Handlers see the peer address `0.0.0.0:0`: a stream has none.
    ///
    /// ```no_run
    /// # async fn run(service: impl grpc_h3::server::GrpcRoute + grpc_h3::server::NamedService) -> Result<(), grpc_h3::Error> {
    /// use grpc_h3::server::{Listen, Server};
    /// let listener = tokio::net::UnixListener::bind("/tmp/grpc.sock").unwrap();
    /// let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    /// Server::builder()
    ///     .listen(Listen::H2c)
    ///     .add_service(service)
    ///     .serve_with_incoming(incoming, std::future::pending())
    ///     .await
    /// # }
    /// ```
    pub async fn serve_with_incoming<I, IO>(
        self,
        incoming: I,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error>
    where
        I: futures_core::Stream<Item = std::io::Result<IO>> + Send + 'static,
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let ready = self.prepare()?;
        let incoming: super::Incoming = Box::pin(MapIncoming(Box::pin(incoming)));
        let local_addr = SocketAddr::from(([0, 0, 0, 0], 0));
        self.assemble(ready, None, None, Some(incoming), local_addr)?
            .serve_with_shutdown(signal)
            .await
    }

    /// What every way of serving needs first: services, keep-alive, TLS.
    fn prepare(&self) -> Result<Ready, Error> {
        if self.services.is_empty() {
            return Err(Error::config(
                "no services: call `.add_service(..)` before binding",
            ));
        }
        let keep_alive = transport::keep_alive_interval(
            self.config.keep_alive_interval,
            self.config.idle_timeout,
            "server",
        )?;
        let (tls, dev_certificate_pem) = self.tls()?;
        Ok(Ready {
            keep_alive,
            tls,
            dev_certificate_pem,
        })
    }

    /// The server, on the transports given.
    fn assemble(
        self,
        ready: Ready,
        endpoint: Option<quinn::Endpoint>,
        tcp: Option<tokio::net::TcpListener>,
        incoming: Option<super::Incoming>,
        local_addr: SocketAddr,
    ) -> Result<BoundServer, Error> {
        let serves_h2 = tcp.is_some() || incoming.is_some();
        let accepts_early_data = ready
            .tls
            .as_ref()
            .is_some_and(|tls| self.accepts_early_data(tls));
        let routes = Routes::new(self.services);
        let service = if self.layers.is_empty() {
            super::router::Front::Routes(routes)
        } else {
            let mut service: RouteService = route(routes);
            for layer in self.layers.iter().rev() {
                service = layer(service);
            }
            super::router::Front::Layered(service)
        };
        let mut config = self.config;
        config.ramp_stream_credit = self.quic_transport.is_none();
        config.early_data.accepted = accepts_early_data;
        let mut shared = Shared::new(config, service, ready.keep_alive);
        if serves_h2 && self.listen != Listen::H2c {
            let tls = ready.tls.as_ref().ok_or_else(|| {
                Error::config("HTTP/2 with TLS needs a TLS identity, or `.listen(Listen::H2c)`")
            })?;
            shared.h2_tls = Some(tokio_rustls::TlsAcceptor::from(tls::with_alpn(
                tls,
                tls::ALPN_H2,
            )));
        }
        if endpoint.is_some() && tcp.is_some() && self.advertise_http3.unwrap_or(true) {
            shared.alt_svc = Some(super::h2::alt_svc_for(local_addr.port()));
        }
        Ok(BoundServer {
            endpoint,
            tcp,
            incoming,
            local_addr,
            shared: Arc::new(shared),
            dev_certificate_pem: ready.dev_certificate_pem,
        })
    }

    /// The UDP endpoint and TCP listener for `addr`, on one port number.
    fn bind_sockets(
        &self,
        addr: SocketAddr,
        tls: Option<&rustls::ServerConfig>,
        keep_alive: Option<std::time::Duration>,
    ) -> Result<
        (
            Option<quinn::Endpoint>,
            Option<tokio::net::TcpListener>,
            SocketAddr,
        ),
        Error,
    > {
        let tcp_listener = |addr: SocketAddr| -> std::io::Result<tokio::net::TcpListener> {
            let std_listener = std::net::TcpListener::bind(addr)?;
            std_listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(std_listener)
        };
        if !self.listen.http3() {
            let listener =
                tcp_listener(addr).map_err(|e| Error::io(&format!("binding TCP {addr}"), e))?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::io("reading the bound address", e))?;
            return Ok((None, Some(listener), local));
        }
        let quic = self.quic_config(tls.expect("TLS for HTTP/3"), keep_alive)?;
        // Port 0: the UDP port picked may be taken on TCP; try a few.
        let mut attempts = 0;
        loop {
            let socket = transport::udp_socket(addr, self.config.udp_buffers())
                .map_err(|e| Error::io(&format!("binding UDP {addr}"), e))?;
            let local = socket
                .local_addr()
                .map_err(|e| Error::io("reading the bound address", e))?;
            let tcp = if self.listen.tcp() {
                match tcp_listener(local) {
                    Ok(listener) => Some(listener),
                    Err(_) if addr.port() == 0 && attempts < 20 => {
                        attempts += 1;
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::io(
                            &format!("binding TCP {local} (the HTTP/2 side of the same port)"),
                            e,
                        ))
                    }
                }
            } else {
                None
            };
            let endpoint = transport::endpoint(socket, Some(quic))
                .map_err(|e| Error::io(&format!("starting QUIC on UDP {local}"), e))?;
            return Ok((Some(endpoint), tcp, local));
        }
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
            .field("listen", &self.listen)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}
