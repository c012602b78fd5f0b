//! A hand-written `test.Echo` service (what generated code will look like)
//! and helpers to run it on loopback with a dev certificate.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_h3::client::ChannelBuilder;
use grpc_h3::client::Grpc;
use grpc_h3::codegen::{self, BoxFuture, NamedService, ProstCodec, ServiceSettings};
use grpc_h3::server::{Listen, Server, ServerBuilder, ServerHandle};
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Body, CallOptions, Channel, Code, Request, Response, Status, Streaming, Transport};
use http::uri::PathAndQuery;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub payload: Vec<u8>,
        #[prost(uint32, tag = "2")]
        pub sleep_ms: u32,
        #[prost(int32, tag = "3")]
        pub status_code: i32,
        #[prost(string, tag = "4")]
        pub status_message: String,
        #[prost(uint32, tag = "5")]
        pub response_count: u32,
        #[prost(uint32, tag = "6")]
        pub response_size: u32,
        #[prost(bool, tag = "7")]
        pub panic: bool,
        #[prost(bool, tag = "8")]
        pub report_peer: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoResponse {
        #[prost(bytes = "vec", tag = "1")]
        pub payload: Vec<u8>,
        #[prost(uint32, tag = "2")]
        pub index: u32,
        #[prost(uint64, tag = "3")]
        pub total: u64,
    }
}

use pb::{EchoRequest, EchoResponse};

/// Counts handlers as they run, finish, or are dropped before finishing.
#[derive(Default)]
pub struct HandlerStats {
    pub running: AtomicUsize,
    pub completed: AtomicUsize,
    pub dropped: AtomicUsize,
    pub changed: Notify,
}

impl HandlerStats {
    /// Waits (bounded) until `check` holds.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&HandlerStats) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let changed = self.changed.notified();
                if check(self) {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "timed out waiting for {what}: running={} completed={} dropped={}",
            self.running.load(Ordering::SeqCst),
            self.completed.load(Ordering::SeqCst),
            self.dropped.load(Ordering::SeqCst)
        );
    }
}

struct HandlerGuard {
    stats: Arc<HandlerStats>,
    done: bool,
}

impl HandlerGuard {
    fn new(stats: &Arc<HandlerStats>) -> HandlerGuard {
        stats.running.fetch_add(1, Ordering::SeqCst);
        stats.changed.notify_waiters();
        HandlerGuard {
            stats: stats.clone(),
            done: false,
        }
    }
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        let counter = if self.done {
            &self.stats.completed
        } else {
            &self.stats.dropped
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.stats.running.fetch_sub(1, Ordering::SeqCst);
        self.stats.changed.notify_waiters();
    }
}

#[derive(Clone, Default)]
pub struct EchoService {
    pub stats: Arc<HandlerStats>,
}

impl NamedService for EchoService {
    const NAME: &'static str = "test.Echo";
}

type Codec = ProstCodec<EchoResponse, EchoRequest>;

impl tower_service::Service<http::Request<Body>> for EchoService {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, std::convert::Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let stats = self.stats.clone();
        let settings = ServiceSettings::default();
        Box::pin(async move {
            match request.uri().path() {
                "/test.Echo/Unary" => {
                    codegen::unary(request, &settings, Codec::default(), move |req| {
                        unary(stats, req)
                    })
                    .await
                }
                "/test.Echo/ServerStream" => {
                    codegen::server_streaming(request, &settings, Codec::default(), move |req| {
                        server_stream(stats, req)
                    })
                    .await
                }
                "/test.Echo/ClientStream" => {
                    codegen::client_streaming(request, &settings, Codec::default(), move |req| {
                        client_stream(stats, req)
                    })
                    .await
                }
                "/test.Echo/Bidi" => {
                    codegen::streaming(request, &settings, Codec::default(), move |req| {
                        bidi(stats, req)
                    })
                    .await
                }
                _ => Ok(codegen::unimplemented(&request)),
            }
        })
    }
}

/// Copies `x-echo-initial` into the response headers and
/// `x-echo-trailing-bin` into the trailers.
fn echo_metadata<T>(request: &grpc_h3::Metadata, response: &mut Response<T>) {
    if let Some(value) = request.get("x-echo-initial") {
        response
            .metadata_mut()
            .insert("x-echo-initial", value)
            .unwrap();
    }
    if let Some(Ok(value)) = request.get_bin("x-echo-trailing-bin") {
        response
            .trailers_mut()
            .insert_bin("x-echo-trailing-bin", value)
            .unwrap();
    }
}

fn requested_status(msg: &EchoRequest, metadata: &grpc_h3::Metadata) -> Option<Status> {
    if msg.status_code == 0 {
        return None;
    }
    let mut status = Status::new(Code::from_i32(msg.status_code), msg.status_message.clone());
    if let Some(Ok(value)) = metadata.get_bin("x-echo-trailing-bin") {
        status
            .metadata_mut()
            .insert_bin("x-echo-trailing-bin", value)
            .unwrap();
    }
    Some(status)
}

async fn unary(
    stats: Arc<HandlerStats>,
    req: Request<EchoRequest>,
) -> Result<Response<EchoResponse>, Status> {
    let mut guard = HandlerGuard::new(&stats);
    let msg = req.get_ref();
    if msg.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(msg.sleep_ms.into())).await;
    }
    assert!(!msg.panic, "the client asked this handler to panic");
    if let Some(status) = requested_status(msg, req.metadata()) {
        guard.done = true;
        return Err(status);
    }
    let payload = if msg.report_peer {
        format!(
            "addr={} certs={} deadline={} transport={} method={}",
            req.remote_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            req.peer_certificates().map_or(0, |c| c.len()),
            req.deadline().is_some(),
            req.extensions()
                .get::<Transport>()
                .map_or("none", |t| t.as_str()),
            req.method().map_or("none", |m| m.method()),
        )
        .into_bytes()
    } else if msg.response_size > 0 {
        vec![b'r'; msg.response_size as usize]
    } else {
        msg.payload.clone()
    };
    let mut response = Response::new(EchoResponse {
        payload,
        index: 0,
        total: 0,
    });
    echo_metadata(req.metadata(), &mut response);
    guard.done = true;
    Ok(response)
}

type ResponseStream =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<EchoResponse, Status>> + Send>>;

/// A response stream that yields one message, then panics.
struct PanicsAfterFirst(Option<EchoResponse>);

impl futures_core::Stream for PanicsAfterFirst {
    type Item = Result<EchoResponse, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.0.take() {
            Some(first) => std::task::Poll::Ready(Some(Ok(first))),
            None => panic!("the client asked this response stream to panic"),
        }
    }
}

async fn server_stream(
    stats: Arc<HandlerStats>,
    req: Request<EchoRequest>,
) -> Result<Response<ResponseStream>, Status> {
    let msg = req.get_ref().clone();
    if msg.panic {
        let first = EchoResponse {
            payload: b"first".to_vec(),
            index: 0,
            total: 0,
        };
        return Ok(Response::new(Box::pin(PanicsAfterFirst(Some(first)))));
    }
    let (tx, rx) = mpsc::channel(4);
    let status = requested_status(&msg, req.metadata());
    let guard = HandlerGuard::new(&stats);
    tokio::spawn(async move {
        let mut guard = guard;
        for index in 0..msg.response_count {
            if index > 0 && msg.sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(msg.sleep_ms.into())).await;
            }
            let payload = vec![b's'; msg.response_size as usize];
            let item = EchoResponse {
                payload,
                index,
                total: 0,
            };
            if tx.send(Ok(item)).await.is_err() {
                return; // the call is gone: the guard counts a drop
            }
        }
        if let Some(status) = status {
            let _ = tx.send(Err(status)).await;
        }
        guard.done = true;
    });
    let mut response: Response<ResponseStream> = Response::new(Box::pin(ReceiverStream::new(rx)));
    echo_metadata(req.metadata(), &mut response);
    Ok(response)
}

async fn client_stream(
    stats: Arc<HandlerStats>,
    req: Request<Streaming<EchoRequest>>,
) -> Result<Response<EchoResponse>, Status> {
    let mut guard = HandlerGuard::new(&stats);
    let (metadata, mut stream) = req.into_parts();
    let (mut count, mut total) = (0u32, 0u64);
    while let Some(msg) = stream.message().await? {
        count += 1;
        total += msg.payload.len() as u64;
        if let Some(status) = requested_status(&msg, &metadata) {
            guard.done = true;
            return Err(status);
        }
    }
    let mut response = Response::new(EchoResponse {
        payload: Vec::new(),
        index: count,
        total,
    });
    echo_metadata(&metadata, &mut response);
    guard.done = true;
    Ok(response)
}

async fn bidi(
    stats: Arc<HandlerStats>,
    req: Request<Streaming<EchoRequest>>,
) -> Result<Response<ResponseStream>, Status> {
    let (tx, rx) = mpsc::channel(4);
    let (metadata, mut stream) = req.into_parts();
    let guard = HandlerGuard::new(&stats);
    let mut response_metadata = Response::new(());
    echo_metadata(&metadata, &mut response_metadata);
    tokio::spawn(async move {
        let mut guard = guard;
        let mut index = 0;
        loop {
            let item = match stream.message().await {
                Ok(Some(msg)) => {
                    if let Some(status) = requested_status(&msg, &metadata) {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                    index += 1;
                    Ok(EchoResponse {
                        payload: msg.payload,
                        index,
                        total: 0,
                    })
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
        guard.done = true;
    });
    let (initial, (), trailing) = response_metadata.into_parts();
    let mut response: Response<ResponseStream> = Response::new(Box::pin(ReceiverStream::new(rx)));
    *response.metadata_mut() = initial;
    *response.trailers_mut() = trailing;
    Ok(response)
}

/// Runs a test body once per transport, as `NAME::http3`, `NAME::http2`
/// and `NAME::h2c` (or only the TLS ones with `tls` first). The body gets
/// the transport as `$t`.
#[macro_export]
macro_rules! on_every_transport {
    (tls async fn $name:ident($t:ident: Transport) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($t: grpc_h3::Transport) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http3() {
                run(grpc_h3::Transport::Http3).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http2() {
                run(grpc_h3::Transport::Http2).await
            }
        }
    };
    (async fn $name:ident($t:ident: Transport) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($t: grpc_h3::Transport) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http3() {
                run(grpc_h3::Transport::Http3).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http2() {
                run(grpc_h3::Transport::Http2).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn h2c() {
                run(grpc_h3::Transport::H2c).await
            }
        }
    };
}

/// A running test server.
pub struct TestServer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub cert: DevCertificate,
    pub stats: Arc<HandlerStats>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), grpc_h3::Error>>,
}

/// A server for HTTP/3 (and HTTP/2 on the same port) whose channels use
/// HTTP/3.
pub async fn start(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> TestServer {
    start_on(Transport::Http3, configure).await
}

/// A server whose channels use `transport`: HTTP/3 and HTTP/2 with TLS on
/// one port, or h2c alone.
pub async fn start_on(
    transport: Transport,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> TestServer {
    start_at_on(
        transport,
        "127.0.0.1:0".parse().unwrap(),
        DevCertificate::localhost().unwrap(),
        configure,
    )
    .await
}

pub async fn start_at(
    addr: SocketAddr,
    cert: DevCertificate,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> TestServer {
    start_at_on(Transport::Http3, addr, cert, configure).await
}

pub async fn start_at_on(
    transport: Transport,
    addr: SocketAddr,
    cert: DevCertificate,
    configure: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> TestServer {
    let service = EchoService::default();
    let stats = service.stats.clone();
    let mut builder = Server::builder()
        .tls_identity(cert.cert_pem(), cert.key_pem())
        .add_service(service);
    if transport == Transport::H2c {
        builder = builder.listen(Listen::H2c);
    }
    let builder = configure(builder);
    // Rebinding a port right after a shutdown in the same process can race
    // the old endpoint releasing its socket: retry briefly.
    let mut attempts = 0;
    let bound = loop {
        match builder.clone().bind(addr) {
            Ok(bound) => break bound,
            Err(_) if attempts < 50 && addr.port() != 0 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("binding {addr}: {e}"),
        }
    };
    let addr = bound.local_addr().unwrap();
    let handle = bound.handle();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve_with_shutdown(async {
        let _ = rx.await;
    }));
    TestServer {
        transport,
        addr,
        handle,
        cert,
        stats,
        shutdown: Some(tx),
        task,
    }
}

impl TestServer {
    pub fn tls(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(self.cert.cert_pem())
    }

    pub fn channel(&self) -> Channel {
        self.channel_with(self.tls())
    }

    pub fn channel_with(&self, tls: ClientTlsConfig) -> Channel {
        self.channel_builder().tls_config(tls).build().unwrap()
    }

    /// A builder for a channel to this server on its transport.
    pub fn channel_builder(&self) -> ChannelBuilder {
        let port = self.addr.port();
        match self.transport {
            Transport::H2c => Channel::builder(format!("http://127.0.0.1:{port}")),
            transport => Channel::builder(format!("https://127.0.0.1:{port}"))
                .tls_config(self.tls())
                .transport(transport),
        }
    }

    /// Starts graceful shutdown and waits for it to complete.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("shutdown finished in time")
            .unwrap()
            .unwrap();
    }

    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn wait_stopped(self) {
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("shutdown finished in time")
            .unwrap()
            .unwrap();
    }

    /// Waits (bounded) until the server has no live call.
    pub async fn wait_no_live_calls(&self) {
        for _ in 0..200 {
            if self.handle.live_calls() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server still has {} live calls", self.handle.live_calls());
    }
}

/// The client side of `test.Echo`, as a generated client would be.
#[derive(Clone)]
pub struct EchoClient {
    pub channel: Channel,
    pub options: CallOptions,
}

impl EchoClient {
    pub fn new(channel: Channel) -> EchoClient {
        EchoClient {
            channel,
            options: CallOptions::default(),
        }
    }

    fn grpc(&self) -> Grpc<Channel> {
        Grpc::with_options(self.channel.clone(), self.options.clone())
    }

    pub async fn unary(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<EchoResponse>, Status> {
        self.call_path("/test.Echo/Unary", request).await
    }

    pub async fn call_path(
        &self,
        path: &str,
        request: Request<EchoRequest>,
    ) -> Result<Response<EchoResponse>, Status> {
        let path: PathAndQuery = path.parse().expect("a valid path");
        self.grpc()
            .unary(request, path, ProstCodec::default())
            .await
    }

    pub async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Streaming<EchoResponse>>, Status> {
        self.grpc()
            .server_streaming(
                request,
                PathAndQuery::from_static("/test.Echo/ServerStream"),
                ProstCodec::default(),
            )
            .await
    }

    pub async fn client_stream<S>(
        &self,
        request: Request<S>,
    ) -> Result<Response<EchoResponse>, Status>
    where
        S: futures_core::Stream<Item = EchoRequest> + Send + 'static,
    {
        self.grpc()
            .client_streaming(
                request,
                PathAndQuery::from_static("/test.Echo/ClientStream"),
                ProstCodec::default(),
            )
            .await
    }

    pub async fn bidi<S>(
        &self,
        request: Request<S>,
    ) -> Result<Response<Streaming<EchoResponse>>, Status>
    where
        S: futures_core::Stream<Item = EchoRequest> + Send + 'static,
    {
        self.grpc()
            .streaming(
                request,
                PathAndQuery::from_static("/test.Echo/Bidi"),
                ProstCodec::default(),
            )
            .await
    }
}

pub fn payload(len: usize) -> EchoRequest {
    EchoRequest {
        payload: vec![b'p'; len],
        ..Default::default()
    }
}

/// A client CA and a client certificate it signed, for mutual TLS.
pub fn client_ca_and_identity() -> (String, grpc_h3::tls::Identity) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "grpc-h3 test client CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params = CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "test client");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    (
        ca_cert.pem(),
        grpc_h3::tls::Identity::from_pem(leaf.pem(), leaf_key.serialize_pem()),
    )
}

/// A plain h3 connection (no grpc-h3 client involved), for sending what
/// our client never would.
pub struct RawClient {
    pub sender: h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>,
    pub authority: String,
    _endpoint: quinn::Endpoint,
}

pub async fn raw_client(server: &TestServer) -> RawClient {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server.cert.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(server.addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    RawClient {
        sender,
        authority: format!("127.0.0.1:{}", server.addr.port()),
        _endpoint: endpoint,
    }
}

impl RawClient {
    /// A request with gRPC headers for `path`, plus `extra` headers.
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

/// Frames `message` with the 5-byte gRPC prefix.
pub fn grpc_frame(message: &impl prost::Message) -> bytes::Bytes {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out.into()
}
