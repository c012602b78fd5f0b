//! The channel's HTTP/3 side: QUIC connections (one shared UDP endpoint per
//! thread), and each call as an h3 request stream whose request body a task
//! writes while the response comes back as an `http_body` body.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use grpc_h3_core::Status;
use h3::error::{Code, StreamError};
use http_body::Body as _;

use super::channel::SendFailure;
use super::connect::{self, Attempt, Conn, Connector, Progress, Target};
use super::early::{self, EarlyPhase, Watch};
use super::silence::Silence;
use crate::errors::TransportError;
use crate::tls::resume::SessionMemory;
use crate::transport::h3_body::{self, H3ResponseBody, RequestSender, SendError};
use crate::transport::quic::{self, ConnState, TransportCounters};
use crate::{Body, Transport};

pub(crate) type Sender = h3::client::SendRequest<quic::Opener, Bytes>;

thread_local! {
    static ENDPOINTS: std::cell::RefCell<[Option<quinn::Endpoint>; 2]> =
        const { std::cell::RefCell::new([None, None]) };
}

/// A client UDP endpoint for `bind`'s address family, shared by the
/// connections opened from this thread: quinn multiplexes any number of
/// connections over one endpoint, so a new connection pays for no socket,
/// buffers or driver task of its own. Its socket buffers are as large as
/// the kernel allows, up to 8 MiB (see `transport::UDP_BUFFER_BYTES`).
/// The cache is per thread because an endpoint's driver lives on the
/// runtime that created it, and a worker thread belongs to one runtime;
/// `fresh` replaces an endpoint whose runtime has shut down.
fn shared_endpoint(bind: SocketAddr, fresh: bool) -> std::io::Result<quinn::Endpoint> {
    ENDPOINTS.with(|endpoints| {
        let mut endpoints = endpoints.borrow_mut();
        let slot = &mut endpoints[usize::from(bind.is_ipv6())];
        match slot {
            Some(endpoint) if !fresh => Ok(endpoint.clone()),
            _ => {
                let socket =
                    crate::transport::udp_socket(bind, crate::transport::UdpBuffers::DEFAULT)?;
                let endpoint = crate::transport::endpoint(socket, None)?;
                *slot = Some(endpoint.clone());
                Ok(endpoint)
            }
        }
    })
}

/// Opens HTTP/3 connections to one target.
pub(crate) struct H3Connector {
    pub(crate) target: Target,
    pub(crate) server_name: String,
    pub(crate) quic_config: quinn::ClientConfig,
    pub(crate) max_header_list_size: u64,
    /// The user's own endpoint, instead of the shared ones.
    pub(crate) endpoint: Option<quinn::Endpoint>,
    /// Connect from this local address: an endpoint of this channel's own,
    /// made on first use.
    pub(crate) local_address: Option<std::net::IpAddr>,
    pub(crate) local_endpoint: std::sync::Mutex<Option<quinn::Endpoint>>,
    pub(crate) counters: Arc<TransportCounters>,
    /// Whether resumed connections send replay-safe calls in 0-RTT.
    pub(crate) early_data: bool,
    /// Addresses known to answer (0-RTT goes only to those).
    pub(crate) sessions: Arc<SessionMemory>,
}

/// One live HTTP/3 connection. Calls hold a clone of `sender`, which keeps
/// the connection open until they finish even after the channel replaced
/// it.
pub(crate) struct H3Connection {
    sender: Sender,
    state: Arc<ConnState>,
    quic: quinn::Connection,
    retired: Arc<AtomicBool>,
    driver_done: Arc<AtomicBool>,
    /// Set while a 0-RTT handshake is under way.
    early: Option<EarlyPhase>,
    /// Where addresses that answered are remembered.
    sessions: Arc<SessionMemory>,
    /// Evidence that the peer stopped answering (see [`Silence`]).
    silence: Silence,
    // The socket must outlive the connection.
    _endpoint: quinn::Endpoint,
}

/// Armed while a call waits for its response headers: a call dropped then
/// is evidence about the peer's liveness (see [`Silence`]).
struct AwaitingHeaders<'a> {
    conn: &'a H3Connection,
    sent_at: tokio::time::Instant,
    armed: bool,
}

impl Drop for AwaitingHeaders<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let quic = &self.conn.quic;
        let silent = self.conn.silence.abandoned(
            self.sent_at,
            tokio::time::Instant::now(),
            quic.rtt(),
            || quic.stats().udp_rx.datagrams,
        );
        if silent {
            tracing::debug!(peer = %quic.remote_address(), "the peer acknowledges nothing; closing the connection");
            // Not trusted with 0-RTT again until it answers a handshake.
            self.conn.sessions.forget(quic.remote_address());
            self.conn.retire();
            quic.close(quinn::VarInt::from_u32(0x100), b"peer silent");
        }
    }
}

impl Conn for H3Connection {
    fn usable(&self) -> bool {
        if self.state.going_away() {
            // A server that sent GOAWAY may be gone by the next connection:
            // that one makes a full handshake.
            self.sessions.forget(self.quic.remote_address());
            return false;
        }
        !self.retired.load(Ordering::Acquire)
            && !self.driver_done.load(Ordering::Acquire)
            && self.quic.close_reason().is_none()
    }

    fn remote_address(&self) -> SocketAddr {
        self.quic.remote_address()
    }
}

impl Connector for H3Connector {
    type Conn = H3Connection;

    fn connect(
        self: Arc<Self>,
        progress: Arc<Progress>,
    ) -> Pin<Box<dyn Future<Output = Result<H3Connection, Status>> + Send>> {
        Box::pin(async move {
            let this = self.clone();
            connect::connect(
                &self.target,
                &progress,
                move |addr| -> Attempt<H3Connection> { Box::pin(this.clone().connect_to(addr)) },
            )
            .await
        })
    }

    fn silence(&self) -> &'static str {
        "no QUIC answer"
    }

    fn authority(&self) -> String {
        self.target.authority()
    }
}

impl H3Connector {
    /// The same connector aimed at another host and port (an Alt-Svc
    /// alternative); the server name it verifies stays the origin's.
    pub(crate) fn retarget(&self, host: String, port: u16) -> H3Connector {
        self.with_target(self.target.moved_to(host, port))
    }

    /// A connector like this one, to `target`.
    pub(crate) fn with_target(&self, target: Target) -> H3Connector {
        H3Connector {
            target,
            server_name: self.server_name.clone(),
            quic_config: self.quic_config.clone(),
            max_header_list_size: self.max_header_list_size,
            endpoint: self.endpoint.clone(),
            local_address: self.local_address,
            local_endpoint: std::sync::Mutex::default(),
            counters: self.counters.clone(),
            early_data: self.early_data,
            sessions: self.sessions.clone(),
        }
    }

    /// The endpoint bound to the configured local address, made on first
    /// use (and again if its runtime has gone).
    fn local_endpoint(
        &self,
        local: std::net::IpAddr,
        remote: SocketAddr,
    ) -> Result<quinn::Endpoint, String> {
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(format!(
                "the local address {local} cannot reach {remote} (another address family)"
            ));
        }
        let mut cached = self.local_endpoint.lock().expect("endpoint lock");
        if let Some(endpoint) = cached.as_ref() {
            return Ok(endpoint.clone());
        }
        let bind = SocketAddr::new(local, 0);
        let socket = crate::transport::udp_socket(bind, crate::transport::UdpBuffers::DEFAULT)
            .map_err(|e| format!("cannot open a UDP socket on {bind}: {e}"))?;
        let endpoint = crate::transport::endpoint(socket, None)
            .map_err(|e| format!("cannot start QUIC on {bind}: {e}"))?;
        *cached = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Opens a QUIC connection to `addr` and sets HTTP/3 up on it.
    async fn connect_to(self: Arc<Self>, addr: SocketAddr) -> Result<H3Connection, String> {
        let bind: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let open = |fresh| {
            let endpoint = match (&self.endpoint, self.local_address) {
                (Some(endpoint), _) => endpoint.clone(),
                (None, Some(local)) => self.local_endpoint(local, addr)?,
                (None, None) => shared_endpoint(bind, fresh)
                    .map_err(|e| format!("cannot open a UDP socket on {bind}: {e}"))?,
            };
            let connecting =
                endpoint.connect_with(self.quic_config.clone(), addr, &self.server_name);
            Ok::<_, String>((endpoint, connecting))
        };
        let (endpoint, connecting) = match open(false)? {
            // The cached endpoint's runtime is gone: make a new one.
            (_, Err(quinn::ConnectError::EndpointStopping))
                if self.endpoint.is_none() && self.local_address.is_none() =>
            {
                open(true)?
            }
            opened => opened,
        };
        let connecting = connecting.map_err(|e| format!("cannot connect: {e}"))?;
        let handshake_failed = |e: quinn::ConnectionError| {
            let text = e.to_string();
            match crate::tls::verify::explanation(&text) {
                Some(explained) => format!("TLS: {explained}"),
                None => format!("QUIC handshake failed: {text}"),
            }
        };
        // 0-RTT: a resumed session, to an address that has answered
        // before; the connection is usable at once for replay-safe calls.
        let (quic_conn, completed) = if self.early_data && self.sessions.has_answered(addr) {
            match connecting.into_0rtt() {
                Ok((conn, completed)) => (conn, Some(completed)),
                Err(connecting) => (connecting.await.map_err(handshake_failed)?, None),
            }
        } else {
            (connecting.await.map_err(handshake_failed)?, None)
        };
        if completed.is_none() {
            self.sessions.answered_at(addr);
        }
        let state = Arc::new(ConnState::new(
            self.max_header_list_size,
            self.counters.clone(),
        ));
        let (mut driver, sender) = h3::client::builder()
            .max_field_section_size(self.max_header_list_size)
            .build(quic::Connection::client(quic_conn.clone(), state.clone()))
            .await
            .map_err(|e| format!("HTTP/3 setup failed: {e}"))?;
        let retired = Arc::new(AtomicBool::new(false));
        let early = completed.map(|completed| {
            Watch {
                completed,
                quic: quic_conn.clone(),
                state: state.clone(),
                retired: retired.clone(),
                sessions: self.sessions.clone(),
                addr,
                timeout: self.target.connect_timeout,
            }
            .spawn()
        });
        let driver_done = Arc::new(AtomicBool::new(false));
        let done = driver_done.clone();
        let (watched, sessions) = (quic_conn.clone(), self.sessions.clone());
        tokio::spawn(async move {
            let err = poll_fn(|cx| driver.poll_close(cx)).await;
            tracing::debug!(error = %err, "HTTP/3 connection ended");
            if !matches!(
                watched.close_reason(),
                Some(quinn::ConnectionError::LocallyClosed)
            ) {
                // The peer closed, went away or went silent: no 0-RTT to it
                // until it answers a handshake again.
                sessions.forget(watched.remote_address());
            }
            done.store(true, Ordering::Release);
        });
        Ok(H3Connection {
            sender,
            state,
            quic: quic_conn,
            retired,
            driver_done,
            early,
            sessions: self.sessions.clone(),
            silence: Silence::default(),
            _endpoint: endpoint,
        })
    }
}

/// Aborts the request-sending task when dropped (its send half then
/// resets the stream).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes a request body on the stream until its end (FIN); a failing body
/// resets the stream, a server that stops reading ends the sending.
async fn send_body(mut send: RequestSender, mut body: Body) {
    loop {
        let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let sent = match frame {
            None => {
                let _ = send.finish().await;
                return;
            }
            // Dropping `send` resets the stream: the caller reports why.
            Some(Err(_)) => return,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => send.send(data).await,
                // Trailers in a request: gRPC has none.
                Err(_) => continue,
            },
        };
        match sent {
            Ok(()) => {}
            Err(SendError::Stopped) => return,
            Err(SendError::Failed(status)) => {
                tracing::debug!(%status, "sending the request failed");
                return;
            }
        }
    }
}

/// How far [`write_ready`] got.
enum Written {
    /// The body ended (or failed, or the server stopped it): nothing more
    /// to send.
    Ended,
    /// The body has more to come.
    Pending,
}

/// Writes the frames `body` has ready without waiting for more, and the
/// end of the request if the body ended.
async fn write_ready(send: &mut RequestSender, body: &mut Body) -> Written {
    loop {
        let frame = std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => None,
                Poll::Ready(frame) => Some(frame),
            })
        })
        .await;
        let sent = match frame {
            None => return Written::Pending,
            Some(None) => {
                let _ = send.finish().await;
                return Written::Ended;
            }
            // Dropping the sender resets the stream: the caller reports why.
            Some(Some(Err(_))) => return Written::Ended,
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => send.send(data).await,
                Err(_) => continue,
            },
        };
        if sent.is_err() {
            return Written::Ended;
        }
    }
}

impl H3Connection {
    /// Stops handing this connection to new calls (after a connection-level
    /// failure); calls in flight keep it alive until they end.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Sends `request` on a new stream; resolves with the response head,
    /// its body streaming. A request the connection could not take (it was
    /// going away or lost) comes back unsent, for another connection.
    pub(crate) async fn send(
        self: Arc<Self>,
        request: http::Request<Body>,
    ) -> Result<http::Response<H3ResponseBody>, SendFailure> {
        if let Some(early) = &self.early {
            if early.pending() && !early::replay_safe(&request) {
                // Not safe to replay: not in early data.
                early.finished().await;
                if !self.usable() {
                    return Err(SendFailure::Unsent(Box::new(request)));
                }
            }
        }
        let (parts, body) = request.into_parts();
        let mut head = http::Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.headers_mut() = parts.headers.clone();
        let mut sender = self.sender.clone();
        let sent_early = self.early.as_ref().is_some_and(EarlyPhase::pending);
        let stream = match sender.send_request(head).await {
            Ok(stream) => stream,
            Err(e @ (StreamError::RemoteClosing { .. } | StreamError::ConnectionError { .. })) => {
                tracing::debug!(error = %e, "connection unusable; the request was not sent");
                self.retire();
                return Err(SendFailure::Unsent(Box::new(http::Request::from_parts(
                    parts, body,
                ))));
            }
            // Refused before it could be sent: early data the server
            // rejected (quinn reports it as the stream is opened).
            Err(StreamError::RemoteTerminate { code, .. }) if code == Code::H3_REQUEST_REJECTED => {
                tracing::debug!("the request was refused as it was opened; sending it elsewhere");
                self.retire();
                if sent_early {
                    self.sessions.forget(self.quic.remote_address());
                }
                return Err(SendFailure::Unsent(Box::new(http::Request::from_parts(
                    parts, body,
                ))));
            }
            // A problem with this request alone (e.g. headers over the
            // peer's limit): the connection stays.
            Err(e) => {
                return Err(SendFailure::Failed(TransportError::new(
                    crate::transport::h3_status::status_for_stream(e),
                    false,
                )))
            }
        };
        let id = stream.id().into_inner();
        let (send, mut recv) = stream.split();
        // What the body has ready now is written at once; a body that has
        // ended with it (a unary request) costs nothing more. A body still
        // producing is written while the response head is awaited, and
        // moves to a task of its own if the head arrives first.
        let mut send = RequestSender::new(send);
        let mut body = body;
        let mut sending: Option<Pin<Box<dyn Future<Output = ()> + Send>>> =
            match write_ready(&mut send, &mut body).await {
                Written::Ended => {
                    // Finished, or dropped before finishing: reset (the
                    // body failed or the server stopped reading).
                    drop(send);
                    None
                }
                Written::Pending => Some(Box::pin(send_body(send, body))),
            };
        let mut awaiting = AwaitingHeaders {
            conn: &self,
            sent_at: tokio::time::Instant::now(),
            armed: true,
        };
        let head = {
            let response = recv.recv_response();
            tokio::pin!(response);
            loop {
                tokio::select! {
                    biased;
                    () = async { sending.as_mut().expect("still sending").await }, if sending.is_some() => {
                        sending = None;
                    }
                    head = &mut response => break head,
                }
            }
        };
        awaiting.armed = false;
        drop(awaiting);
        let task = sending.map(|rest| AbortOnDrop(tokio::spawn(rest)));
        let head = match head {
            Ok(head) => head,
            Err(e) => {
                let error = h3_body::transport_error(e, &self.state, id);
                if error.unprocessed() || error.status().code() == grpc_h3_core::Code::Unavailable {
                    self.retire();
                }
                if sent_early && error.unprocessed() {
                    // Early data refused (a restarted server, stale tickets):
                    // the retry, about to connect, makes a full handshake.
                    self.sessions.forget(self.quic.remote_address());
                }
                return Err(SendFailure::Failed(error));
            }
        };
        let (mut parts, ()) = head.into_parts();
        parts.extensions.insert(Transport::Http3);
        let keep = Box::new((sender, task, self.clone()));
        let body = H3ResponseBody::new(recv, self.state.clone(), id, keep);
        Ok(http::Response::from_parts(parts, body))
    }
}
