//! [`Channel`]: a `tower::Service` that sends gRPC `http` requests to one
//! server over HTTP/3 or HTTP/2, connecting lazily and reconnecting after
//! loss, and [`ResponseBody`], the body of what comes back.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use grpc_h3_core::timeout::parse_timeout;
use grpc_h3_core::Status;
use http_body::{Frame, SizeHint};
use tokio::time::Instant;
use tower_service::Service;

use super::auto::Picked;
use super::endpoints::{Balance, Pools};
use super::h2::H2Connection;
use super::h3::H3Connection;
use super::retry::{Attempts, Replay};
use crate::body::BoxError;
use crate::errors::TransportError;
use crate::transport::h3_body::H3ResponseBody;
use crate::Body;

/// Why a connection did not take a request.
pub(crate) enum SendFailure {
    /// The connection was already closing or lost: the request never left
    /// and is given back, for another connection.
    Unsent(Box<http::Request<Body>>),
    /// The call failed on this connection.
    Failed(TransportError),
}

/// How many connections a request may be offered to when each turns out
/// to be closing before the request leaves.
const SEND_ATTEMPTS: usize = 3;

/// Asks the channel to wait for a connection while it is backing off after
/// a failed attempt, instead of failing at once with UNAVAILABLE (gRPC's
/// wait-for-ready), up to the call's deadline. Put it in a request's
/// extensions; [`Request::set_wait_for_ready`](crate::Request::set_wait_for_ready)
/// does it for generated clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitForReady(pub bool);

/// Lets a caller see what the channel is doing about its connection while
/// a call waits for one, so that a deadline that fires meanwhile says
/// where the connection stood.
#[derive(Clone, Default)]
pub(crate) struct ConnectWatch(Arc<Mutex<Option<Describe>>>);

/// Says where a connection attempt stands.
type Describe = Arc<dyn Fn() -> String + Send + Sync>;

impl ConnectWatch {
    fn waiting(&self, describe: Describe) {
        *self.0.lock().expect("watch lock") = Some(describe);
    }

    fn connected(&self) {
        *self.0.lock().expect("watch lock") = None;
    }

    /// Where the connection stands, if the call is still waiting for one.
    pub(crate) fn describe(&self) -> Option<String> {
        let describe = self.0.lock().expect("watch lock").clone();
        describe.map(|describe| describe())
    }
}

/// The message of a call whose deadline passed while it waited for a
/// connection.
pub(crate) fn deadline_before_connection(timeout: std::time::Duration, where_: &str) -> Status {
    Status::deadline_exceeded(format!(
        "deadline exceeded ({timeout:?}) before a connection was ready; {where_}"
    ))
}

pub(crate) struct Inner {
    pub(crate) pools: Balance,
    pub(crate) scheme: http::uri::Scheme,
    pub(crate) authority: http::uri::Authority,
    pub(crate) wait_for_ready: bool,
    pub(crate) credentials: Option<Arc<dyn super::CallCredentials>>,
    pub(crate) credentials_over_plaintext: bool,
    pub(crate) retries: Option<super::retry::Retries>,
}

/// A channel to one server: cheap to clone, all clones share one
/// connection that multiplexes every call. It connects on the first call,
/// and reconnects on the next call after the connection is lost or the
/// server sent GOAWAY.
///
/// With an `https://` URI it chooses its transport by itself: HTTP/3 where
/// it works, HTTP/2 over TLS where it does not. QUIC starts first; TCP
/// joins after [`race_delay`](super::ChannelBuilder::race_delay) (300 ms)
/// or as soon as QUIC fails, and the first to connect carries the calls.
/// When HTTP/2 wins, the process remembers HTTP/3 as broken for that
/// address (5 minutes, doubling on repeats), and `alt-svc` headers from
/// the server say where HTTP/3 is. [`Channel::current_transport`] and each
/// response's [`Transport`](crate::Transport) extension say which one is in
/// use. [`ChannelBuilder::transport`](super::ChannelBuilder::transport)
/// fixes one instead; an `http://` URI is plaintext HTTP/2 (h2c).
///
/// Connecting tries every address the host resolves to, IPv6 and IPv4
/// interleaved as Happy Eyeballs does (a new attempt every 250 ms until one
/// answers). Calls arriving meanwhile wait for that one attempt. If it
/// fails, calls fail at once with UNAVAILABLE (saying what was tried) until
/// the next attempt is due, following gRPC's connection backoff (1 s, then
/// ×1.6 up to 2 minutes, ±20 %); a call that asked to
/// [wait for ready](crate::Request::set_wait_for_ready) waits instead, up to
/// its deadline.
///
/// A `Channel` is a `tower::Service` over `http::Request`s of any body, so
/// generated clients (grpc-h3's and tonic's), tower layers and hand-written
/// code all use it the same way. It fills in the URI's scheme and
/// authority when the request has only a path, bounds the wait for a
/// connection and for the response headers by the request's
/// `grpc-timeout`, and fails with a [`TransportError`] whose status is the
/// call's.
///
/// ```no_run
/// # fn f(ca_pem: &str) -> Result<(), grpc_h3::Error> {
/// use grpc_h3::{tls::ClientTlsConfig, Channel};
/// let channel = Channel::builder("https://localhost:50051")
///     .tls_config(ClientTlsConfig::new().ca_certificate(ca_pem))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channel {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("authority", &self.inner.pools.authority())
            .field(
                "transport",
                &match &self.inner.pools {
                    Balance::One(Pools::Http3(_)) => "h3",
                    Balance::One(Pools::Http2(_)) => "h2",
                    Balance::One(Pools::Auto(_)) => "automatic",
                    Balance::RoundRobin(_) => "round robin",
                },
            )
            .finish()
    }
}

impl Channel {
    /// The transport new calls go out on now, if the channel has a usable
    /// connection (`None` before the first call and while reconnecting).
    /// An automatic channel (the default for `https://`) moves between
    /// HTTP/3 and HTTP/2 as they work; each response also says which one
    /// carried it (a [`Transport`](crate::Transport) in its extensions).
    pub fn current_transport(&self) -> Option<crate::Transport> {
        self.inner.pools.current_transport()
    }

    /// Where HTTP/3 connections go (`host:port`): the server's own
    /// address, or the alternative its `alt-svc` header named. For
    /// diagnostics; `None` on a channel that never uses HTTP/3.
    pub fn http3_authority(&self) -> Option<String> {
        match &self.inner.pools {
            Balance::One(Pools::Http3(pool)) => Some(pool.authority()),
            Balance::One(Pools::Http2(_)) => None,
            Balance::One(Pools::Auto(auto)) => Some(auto.h3_pool().authority()),
            Balance::RoundRobin(balancer) => Some(balancer.authority()),
        }
    }

    /// The addresses a round-robin channel balances over now (empty before
    /// its first call resolves them, and for a pick-first channel).
    pub fn balanced_addresses(&self) -> Vec<std::net::SocketAddr> {
        match &self.inner.pools {
            Balance::RoundRobin(balancer) => balancer.addresses(),
            Balance::One(_) => Vec::new(),
        }
    }
}

/// The body of a response a [`Channel`] received; dropping it before its
/// end cancels the call (RESET_STREAM and STOP_SENDING with
/// H3_REQUEST_CANCELLED, or RST_STREAM CANCEL).
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Http3(Box<H3ResponseBody>),
    Http2 {
        body: hyper::body::Incoming,
        // The connection stays referenced while its response is read.
        _conn: Arc<H2Connection>,
        // Dropped with the body, it cancels the call (see `H2Connection::send`).
        _cancel: tokio_util::sync::DropGuard,
    },
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Http3(body) => body.fmt(f),
            Kind::Http2 { body, .. } => body.fmt(f),
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        match &mut self.kind {
            Kind::Http3(body) => Pin::new(&mut **body).poll_frame(cx),
            Kind::Http2 { body, .. } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| TransportError::from_error(&e)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Http3(body) => body.is_end_stream(),
            Kind::Http2 { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Http3(body) => body.size_hint(),
            Kind::Http2 { body, .. } => body.size_hint(),
        }
    }
}

/// The future of one call on a [`Channel`]: its response head.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, TransportError>> + Send>>;

impl<B> Service<http::Request<B>> for Channel
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody>;
    type Error = TransportError;
    type Future = ResponseFuture;

    /// Always ready: the connection is made (or awaited) per call.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> ResponseFuture {
        let inner = self.inner.clone();
        Box::pin(inner.send(request.map(Body::new)))
    }
}

impl Inner {
    /// The request's URI with this channel's scheme and authority when it
    /// has only a path.
    fn absolute(&self, request: &mut http::Request<Body>) -> Result<(), TransportError> {
        if request.uri().scheme().is_some() {
            return Ok(());
        }
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let uri = http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| {
                TransportError::new(Status::internal(format!("invalid request URI: {e}")), false)
            })?;
        *request.uri_mut() = uri;
        Ok(())
    }

    /// Makes the request ready to go: an absolute URI, and the call
    /// credentials' metadata.
    pub(crate) async fn prepare(
        &self,
        request: &mut http::Request<Body>,
    ) -> Result<(), TransportError> {
        self.absolute(request)?;
        if self.credentials.is_some()
            || request
                .extensions()
                .get::<super::CallCredentialsExt>()
                .is_some()
        {
            super::credentials::apply(
                self.credentials.as_ref(),
                self.credentials_over_plaintext,
                request,
            )
            .await
            .map_err(|status| TransportError::new(status, false))?;
        }
        Ok(())
    }

    async fn send(
        self: Arc<Self>,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, TransportError> {
        let replay = request.extensions_mut().remove::<Replay>();
        self.prepare(&mut request).await?;
        let timeout = request
            .headers()
            .get(grpc_h3_core::names::GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_timeout(v).ok());
        let deadline = timeout.map(|t| Instant::now() + t);
        let wait_for_ready = request
            .extensions()
            .get::<WaitForReady>()
            .map_or(self.wait_for_ready, |w| w.0);
        // Only a call with a deadline needs to say where the connection
        // stood when it passed.
        let watch = match request.extensions().get::<ConnectWatch>() {
            Some(watch) => Some(watch.clone()),
            None => deadline.map(|_| ConnectWatch::default()),
        };
        let call = async {
            match replay {
                None => {
                    self.send_once(request, wait_for_ready, watch.as_ref())
                        .await
                }
                Some(replay) => {
                    let attempts = Attempts {
                        inner: &self,
                        replay,
                        deadline,
                        wait_for_ready,
                        watch: watch.as_ref(),
                    };
                    attempts.run(request).await
                }
            }
        };
        // Pinned here: wrapping the (large) future by value would copy it.
        let call = std::pin::pin!(call);
        let Some(deadline) = deadline else {
            return call.await;
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => {
                let status = match watch.as_ref().and_then(ConnectWatch::describe) {
                    Some(where_) => {
                        deadline_before_connection(timeout.unwrap_or_default(), &where_)
                    }
                    None => Status::deadline_exceeded(
                        "deadline exceeded while waiting for the response headers",
                    ),
                };
                Err(TransportError::new(status, false))
            }
        }
    }

    /// One attempt: a connection (waiting for one if need be), and the
    /// request sent on it; offered to another connection when the first
    /// turns out to be closing before the request left.
    pub(crate) async fn send_once(
        self: &Arc<Self>,
        mut request: http::Request<Body>,
        wait_for_ready: bool,
        watch: Option<&ConnectWatch>,
    ) -> Result<http::Response<ResponseBody>, TransportError> {
        for _ in 0..SEND_ATTEMPTS {
            if let Some(watch) = watch {
                let this = self.clone();
                watch.waiting(Arc::new(move || this.pools.describe()));
            }
            let (picked, learn_alt_svc) = self
                .pools
                .pick(wait_for_ready)
                .await
                .map_err(no_connection)?;
            if let Some(watch) = watch {
                watch.connected();
            }
            let sent = match picked {
                Picked::Http3(conn) => send_http3(conn, request).await,
                Picked::Http2(conn) => {
                    let sent = send_http2(conn, request).await;
                    if let (Ok(response), Some(auto)) = (&sent, learn_alt_svc) {
                        auto.learn_alt_svc(response.headers());
                    }
                    sent
                }
            };
            match sent {
                Ok(response) => return Ok(response),
                Err(SendFailure::Failed(error)) => return Err(error),
                Err(SendFailure::Unsent(unsent)) => request = *unsent,
            }
        }
        Err(TransportError::new(
            Status::unavailable(format!(
                "{} connections to {} closed before the request could be sent",
                SEND_ATTEMPTS,
                self.pools.authority()
            )),
            true,
        ))
    }
}

async fn send_http3(
    conn: Arc<H3Connection>,
    request: http::Request<Body>,
) -> Result<http::Response<ResponseBody>, SendFailure> {
    // Boxed: h3's request future is several KiB; inline, it would make
    // every call's future (HTTP/2 ones too) that much larger, and each
    // level of the call copies its callee's future whole when it starts it.
    Box::pin(conn.send(request)).await.map(|r| {
        r.map(|b| ResponseBody {
            kind: Kind::Http3(Box::new(b)),
        })
    })
}

async fn send_http2(
    conn: Arc<H2Connection>,
    request: http::Request<Body>,
) -> Result<http::Response<ResponseBody>, SendFailure> {
    let keep = conn.clone();
    // Boxed, as in `send_http3`.
    Box::pin(conn.send(request))
        .await
        .map(|(response, cancel)| {
            response.map(|body| ResponseBody {
                kind: Kind::Http2 {
                    body,
                    _conn: keep,
                    _cancel: cancel,
                },
            })
        })
}

/// A call that got no connection: UNAVAILABLE, and never sent.
fn no_connection(status: Status) -> TransportError {
    TransportError::new(status, false)
}
