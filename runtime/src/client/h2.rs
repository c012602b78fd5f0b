//! The channel's HTTP/2 side, on hyper: TCP connections raced across the
//! target's addresses like QUIC ones, TLS with ALPN `h2` (or plaintext h2c
//! for `http://` URIs), HTTP/2 keep-alive PINGs, and each call as an h2
//! stream.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_h3_core::Status;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::channel::SendFailure;
use super::connect::{self, Attempt, Conn, Connector, Progress, Target};
use crate::errors::TransportError;
use crate::{Body, Transport};

/// Opens HTTP/2 connections to one target.
pub(crate) struct H2Connector {
    pub(crate) target: Target,
    pub(crate) server_name: String,
    /// `None` for plaintext h2c.
    pub(crate) tls: Option<tokio_rustls::TlsConnector>,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_list_size: u32,
}

/// One live HTTP/2 connection.
pub(crate) struct H2Connection {
    sender: hyper::client::conn::http2::SendRequest<Body>,
    remote: SocketAddr,
    transport: Transport,
    retired: AtomicBool,
    driver_done: Arc<AtomicBool>,
}

impl Conn for H2Connection {
    fn usable(&self) -> bool {
        !self.retired.load(Ordering::Acquire)
            && !self.driver_done.load(Ordering::Acquire)
            && !self.sender.is_closed()
    }

    fn remote_address(&self) -> SocketAddr {
        self.remote
    }
}

impl Connector for H2Connector {
    type Conn = H2Connection;

    fn connect(
        self: Arc<Self>,
        progress: Arc<Progress>,
    ) -> Pin<Box<dyn Future<Output = Result<H2Connection, Status>> + Send>> {
        Box::pin(async move {
            let this = self.clone();
            connect::connect(
                &self.target,
                &progress,
                move |addr| -> Attempt<H2Connection> { Box::pin(this.clone().connect_to(addr)) },
            )
            .await
        })
    }

    fn silence(&self) -> &'static str {
        "no TCP answer"
    }

    fn authority(&self) -> String {
        self.target.authority()
    }
}

/// A TCP stream, with TLS or without.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

impl H2Connector {
    /// Opens a TCP connection to `addr`, TLS on it unless h2c, and HTTP/2.
    async fn connect_to(self: Arc<Self>, addr: SocketAddr) -> Result<H2Connection, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP connect failed: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (io, transport): (Box<dyn Io>, Transport) = match &self.tls {
            None => (Box::new(tcp), Transport::H2c),
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(self.server_name.clone())
                    .map_err(|e| format!("invalid TLS server name {:?}: {e}", self.server_name))?;
                let tls = connector.connect(name, tcp).await.map_err(|e| {
                    let text = e.to_string();
                    match crate::tls::verify::explanation(&text) {
                        Some(explained) => format!("TLS: {explained}"),
                        None => format!("TLS handshake failed: {text}"),
                    }
                })?;
                if tls.get_ref().1.alpn_protocol() != Some(crate::tls::ALPN_H2) {
                    return Err(
                        "the server does not speak HTTP/2 over TLS (it did not agree to ALPN h2)"
                            .to_owned(),
                    );
                }
                (Box::new(tls), Transport::Http2)
            }
        };
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(2 << 20)
            .initial_connection_window_size(16 << 20)
            .max_header_list_size(self.max_header_list_size)
            .keep_alive_interval(self.keep_alive)
            .keep_alive_timeout(self.idle_timeout)
            .keep_alive_while_idle(true);
        let (sender, connection) = builder
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/2 setup failed: {e}"))?;
        let driver_done = Arc::new(AtomicBool::new(false));
        let done = driver_done.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP/2 connection ended");
            }
            done.store(true, Ordering::Release);
        });
        Ok(H2Connection {
            sender,
            remote: addr,
            transport,
            retired: AtomicBool::new(false),
            driver_done,
        })
    }
}

impl H2Connection {
    /// Stops handing this connection to new calls.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Sends `request` on a new stream; resolves with the response head.
    /// A request the connection could not take (it closed or got a GOAWAY
    /// first) comes back unsent, for another connection.
    pub(crate) async fn send(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, SendFailure> {
        let mut sender = self.sender.clone();
        if sender.ready().await.is_err() {
            self.retire();
            return Err(SendFailure::Unsent(request));
        }
        match sender.try_send_request(request).await {
            Ok(mut response) => {
                response.extensions_mut().insert(self.transport);
                Ok(response)
            }
            Err(mut e) => {
                let unsent = e.take_message();
                let error = e.into_error();
                let transport = TransportError::from_error(&error);
                if transport.unprocessed()
                    || transport.status().code() == grpc_h3_core::Code::Unavailable
                {
                    self.retire();
                }
                match unsent {
                    Some(request) => Err(SendFailure::Unsent(request)),
                    None => Err(SendFailure::Failed(transport)),
                }
            }
        }
    }
}
