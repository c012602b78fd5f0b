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

use bytes::Bytes;
use grpc_h3_core::Status;
use http_body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};

use super::channel::SendFailure;
use super::connect::{self, Attempt, Conn, Connector, Progress, Target};
use crate::errors::{CancelStream, TransportError};
use crate::{Body, Transport};

/// Opens HTTP/2 connections to one target.
#[derive(Clone)]
pub(crate) struct H2Connector {
    pub(crate) target: Target,
    pub(crate) server_name: String,
    /// `None` for plaintext h2c.
    pub(crate) tls: Option<tokio_rustls::TlsConnector>,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_list_size: u32,
    /// Connect from this local address.
    pub(crate) local_address: Option<std::net::IpAddr>,
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
        let tcp = match self.local_address {
            None => tokio::net::TcpStream::connect(addr).await,
            Some(local) if local.is_ipv4() != addr.is_ipv4() => {
                return Err(format!(
                    "the local address {local} cannot reach {addr} (another address family)"
                ))
            }
            Some(local) => {
                let socket = if local.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(|e| format!("cannot open a TCP socket: {e}"))?;
                socket
                    .bind(SocketAddr::new(local, 0))
                    .map_err(|e| format!("cannot bind TCP to {local}: {e}"))?;
                socket.connect(addr).await
            }
        }
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
    /// HTTP/2 with TLS, or h2c.
    pub(crate) fn transport(&self) -> Transport {
        self.transport
    }

    /// Stops handing this connection to new calls.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Sends `request` on a new stream; resolves with the response head
    /// and what cancels the call when dropped (keep it with the response
    /// body). A request the connection could not take (it closed or got a
    /// GOAWAY first) comes back unsent, for another connection.
    pub(crate) async fn send(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<(http::Response<hyper::body::Incoming>, DropGuard), SendFailure> {
        let mut sender = self.sender.clone();
        if sender.ready().await.is_err() {
            self.retire();
            return Err(SendFailure::Unsent(Box::new(request)));
        }
        // hyper resets a stream when both its halves are dropped, but its
        // request half lives in hyper's task until the request body ends:
        // a caller that gives up on the response (or on the call) would
        // leave the stream open while the body waits. The request body
        // watches for that and fails, which resets the stream with CANCEL.
        let gone = CancellationToken::new();
        let guard = gone.clone().drop_guard();
        let request = request.map(|body| {
            Body::new(RequestBody {
                inner: body,
                gone: Box::pin(gone.cancelled_owned()),
            })
        });
        match sender.try_send_request(request).await {
            Ok(mut response) => {
                response.extensions_mut().insert(self.transport);
                Ok((response, guard))
            }
            Err(mut e) => {
                // Given back unsent: no call to cancel.
                let unsent = e.take_message().inspect(|_| {
                    guard.disarm();
                });
                let error = e.into_error();
                let transport = TransportError::from_error(&error);
                if transport.unprocessed()
                    || transport.status().code() == grpc_h3_core::Code::Unavailable
                {
                    self.retire();
                }
                match unsent {
                    Some(request) => Err(SendFailure::Unsent(Box::new(request))),
                    None => Err(SendFailure::Failed(transport)),
                }
            }
        }
    }
}

/// A request body that fails (so that hyper resets the stream with
/// CANCEL) once the caller has dropped the call.
struct RequestBody {
    inner: Body,
    gone: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = CancelStream;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, CancelStream>>> {
        if self.gone.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Some(Err(CancelStream::new("the call was cancelled"))));
        }
        Pin::new(&mut self.inner).poll_frame(cx).map_err(|status| {
            tracing::debug!(%status, "the request body failed; resetting the stream");
            CancelStream::new("the request body failed")
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
