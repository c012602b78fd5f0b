//! [`ChannelBuilder`]: where a [`Channel`] connects, over which transport,
//! how it trusts the server, and its timeouts.

use std::sync::Arc;
use std::time::Duration;

use super::auto::Auto;
use super::backoff::BackoffConfig;
use super::balance::{parse_place, LoadBalancing, RoundRobin};
use super::channel::{Channel, Inner};
use super::connect::Target;
use super::endpoints::{Balance, Pools};
use super::h2::H2Connector;
use super::h3::H3Connector;
use super::pool::Pool;
use super::resolve::SharedResolver;
use super::ServiceConfig;
use crate::tls::ClientTlsConfig;
use crate::transport::{self, CongestionControl, Side, MAX_HEADER_LIST_SIZE_CEILING};
use crate::{Error, Transport};

/// Configures a [`Channel`]; every setting has a default, documented on its
/// method.
///
/// ```
/// use std::time::Duration;
/// use grpc_h3::{tls::ClientTlsConfig, Channel};
/// let channel = Channel::builder("https://api.example.com")
///     .tls_config(ClientTlsConfig::new().with_system_roots())
///     .connect_timeout(Duration::from_secs(5))
///     .idle_timeout(Duration::from_secs(30))
///     .wait_for_ready(true)
///     .build();
/// # let _ = channel;
/// ```
#[derive(Debug)]
#[must_use]
pub struct ChannelBuilder {
    uri: String,
    transport: Option<Transport>,
    tls: Option<ClientTlsConfig>,
    rustls_config: Option<Arc<rustls::ClientConfig>>,
    endpoint: Option<quinn::Endpoint>,
    local_address: Option<std::net::IpAddr>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    keep_alive_interval: Option<Option<Duration>>,
    congestion: CongestionControl,
    early_data: bool,
    max_header_list_size: u64,
    backoff: BackoffConfig,
    wait_for_ready: bool,
    race_delay: Duration,
    broken_quic_period: Duration,
    credentials: Option<super::CallCredentialsExt>,
    credentials_over_plaintext: bool,
    load_balancing: LoadBalancing,
    endpoints: Vec<String>,
    resolver: SharedResolver,
    resolve_interval: Duration,
    service_config: Option<ServiceConfig>,
}

impl Channel {
    /// Starts configuring a channel to `uri`: `https://host:port` (the port
    /// defaults to 443) for HTTP/3 or HTTP/2 over TLS, chosen
    /// automatically unless [`ChannelBuilder::transport`] fixes one;
    /// `http://host:port` for plaintext HTTP/2 (h2c; the port defaults to
    /// 80).
    pub fn builder(uri: impl Into<String>) -> ChannelBuilder {
        ChannelBuilder {
            uri: uri.into(),
            transport: None,
            tls: None,
            rustls_config: None,
            endpoint: None,
            local_address: None,
            connect_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(10),
            keep_alive_interval: None,
            congestion: CongestionControl::default(),
            early_data: true,
            max_header_list_size: 16 * 1024,
            backoff: BackoffConfig::default(),
            wait_for_ready: false,
            race_delay: super::auto::DEFAULT_RACE_DELAY,
            broken_quic_period: super::auto::DEFAULT_BROKEN_PERIOD,
            credentials: None,
            credentials_over_plaintext: false,
            load_balancing: LoadBalancing::PickFirst,
            endpoints: Vec::new(),
            resolver: SharedResolver::default(),
            resolve_interval: DEFAULT_RESOLVE_INTERVAL,
            service_config: None,
        }
    }
}

/// How often a round-robin channel resolves its target again, by default.
const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

impl ChannelBuilder {
    /// Retry policies per method or service, and retry throttling
    /// (gRFC A6), built in code or read with [`ServiceConfig::from_json`].
    /// A policy retries only methods whose proto marks them idempotent
    /// (`option idempotency_level = IDEMPOTENT` or `NO_SIDE_EFFECTS`)
    /// unless it says [`RetryPolicy::retry_non_idempotent`](super::RetryPolicy::retry_non_idempotent).
    /// A call stops being retryable once response headers arrive, or once
    /// a streaming call has sent more than 64 KiB. Default: none (only
    /// calls the server never processed are sent again, once, for every
    /// method).
    ///
    /// ```
    /// use std::time::Duration;
    /// use grpc_h3::client::{MethodSelector, RetryPolicy, ServiceConfig};
    /// use grpc_h3::{Channel, Code};
    /// let config = ServiceConfig::new()
    ///     .retry_policy(
    ///         MethodSelector::Service("routeguide.RouteGuide".into()),
    ///         RetryPolicy::new(3)
    ///             .initial_backoff(Duration::from_millis(50))
    ///             .retryable_codes([Code::Unavailable]),
    ///     )
    ///     .retry_throttling(10, 0.1);
    /// let channel = Channel::builder("https://api.example.com")
    ///     .service_config(config)
    ///     .build();
    /// # let _ = channel;
    /// ```
    pub fn service_config(mut self, config: ServiceConfig) -> Self {
        self.service_config = Some(config);
        self
    }

    /// How calls spread over the target's addresses:
    /// [`LoadBalancing::PickFirst`] (one connection, to the first address
    /// that answers) or [`LoadBalancing::RoundRobin`] (a connection to
    /// every address, calls in rotation over those that are up). Each
    /// address gets the transport choice of
    /// [`ChannelBuilder::transport`]. Default: pick first.
    ///
    /// ```
    /// use grpc_h3::{client::LoadBalancing, Channel};
    /// let channel = Channel::builder("https://api.internal:50051")
    ///     .endpoints(["10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"])
    ///     .load_balancing(LoadBalancing::RoundRobin)
    ///     .build();
    /// # let _ = channel;
    /// ```
    pub fn load_balancing(mut self, policy: LoadBalancing) -> Self {
        self.load_balancing = policy;
        self
    }

    /// Connects to these places (`host:port`, `host` with the URI's port,
    /// or IP literals; each resolved) instead of resolving the URI's host.
    /// The URI still names the server: its host is the TLS name every
    /// endpoint must present a certificate for, and the `:authority` of
    /// every call, as when one DNS name has several addresses. Default:
    /// the URI's host and port.
    pub fn endpoints<I>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Resolves host names with `resolver` instead of the system's.
    /// Default: [`SystemResolver`](super::SystemResolver).
    pub fn resolver(mut self, resolver: impl super::Resolver) -> Self {
        self.resolver = SharedResolver(Arc::new(resolver));
        self
    }

    /// Round robin: how often the target is resolved again to follow
    /// address changes (it is also resolved again, at most once a second,
    /// whenever no endpoint is up). A pick-first channel resolves on every
    /// connection attempt instead. Default: 30 s.
    pub fn resolve_interval(mut self, interval: Duration) -> Self {
        self.resolve_interval = interval;
        self
    }

    /// Uses only this transport: [`Transport::Http3`], [`Transport::Http2`]
    /// (TLS) or [`Transport::H2c`] (plaintext). Default for `https://`
    /// URIs: automatic, HTTP/3 where it works and HTTP/2 where it does not
    /// (QUIC first, TCP joining after [`ChannelBuilder::race_delay`],
    /// HTTP/3 remembered as broken per origin after it loses, `alt-svc`
    /// followed); for `http://` URIs: h2c.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Adds `credentials`' metadata (e.g. a bearer token) to every call;
    /// a call's own ([`Request::set_call_credentials`](crate::Request::set_call_credentials))
    /// replace them. Composes with a TLS client certificate. Default: none.
    pub fn call_credentials(mut self, credentials: impl super::CallCredentials) -> Self {
        self.credentials = Some(super::CallCredentialsExt(Arc::new(credentials)));
        self
    }

    /// Sends call credentials over plaintext HTTP/2 (h2c) too, e.g. to a
    /// sidecar on loopback; without it such calls fail UNAUTHENTICATED
    /// before anything is sent. Default: false.
    pub fn allow_credentials_over_plaintext(mut self, allow: bool) -> Self {
        self.credentials_over_plaintext = allow;
        self
    }

    /// Automatic transport: how long QUIC has alone before TCP + TLS +
    /// HTTP/2 starts in parallel (at once if QUIC fails outright); the
    /// first to connect carries the calls. Default: 300 ms.
    pub fn race_delay(mut self, delay: Duration) -> Self {
        self.race_delay = delay;
        self
    }

    /// Automatic transport: how long HTTP/3 is skipped for an origin after
    /// it lost to HTTP/2 (failed or too slow), the first time; each repeat
    /// doubles it, up to 48 hours, and a QUIC connection that succeeds
    /// clears it. After the period calls stay on HTTP/2 while one
    /// background attempt tries QUIC. The memory is shared by every
    /// channel of the process (at most 1,024 origins). Default: 5 minutes.
    pub fn broken_quic_period(mut self, period: Duration) -> Self {
        self.broken_quic_period = period;
        self
    }

    /// How to verify the server (and present a client certificate).
    /// Default: trust the system's root certificates.
    pub fn tls_config(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Uses this rustls configuration (custom verifier, session cache,
    /// key log...) instead of building one from
    /// [`ChannelBuilder::tls_config`]; grpc-h3 only sets the ALPN protocol
    /// of the transport. HTTP/3 needs TLS 1.3 in it. Default: built from
    /// the [`ClientTlsConfig`].
    pub fn rustls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.rustls_config = Some(config);
        self
    }

    /// HTTP/3: opens connections from this QUIC endpoint (a socket bound to
    /// a chosen address or interface, custom socket options) instead of the
    /// per-thread shared one. Default: a shared endpoint per thread and
    /// address family, with 8 MiB socket buffers where the OS allows.
    pub fn quic_endpoint(mut self, endpoint: quinn::Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Connects from this local address (a chosen interface, or a source
    /// address a firewall expects), on both transports; only server
    /// addresses of its family are tried. Ignored for HTTP/3 when
    /// [`ChannelBuilder::quic_endpoint`] is set. Default: any, picked by
    /// the OS.
    pub fn local_address(mut self, address: std::net::IpAddr) -> Self {
        self.local_address = Some(address);
        self
    }

    /// How long one connection attempt (name resolution, every address,
    /// handshake) may take before it fails with UNAVAILABLE. Default: 20 s,
    /// gRPC's minimum connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Declares the server gone after this long without hearing from it.
    /// HTTP/3: the QUIC idle timeout (the lower of the two peers' values
    /// applies); keep-alive PINGs make a live server answer, so a server
    /// that was killed or unplugged without closing is detected after this
    /// long (plus at most one keep-alive interval). HTTP/2: how long a
    /// keep-alive PING may go unanswered. Either way its calls then fail
    /// with UNAVAILABLE. Sooner on HTTP/3 when calls give up waiting for
    /// their response headers: two in a row (the second sent after the
    /// first gave up) that waited three round trips and 100 ms without the
    /// peer sending a single packet, not even an acknowledgement, close
    /// the connection at once. Default: 10 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The congestion controller of HTTP/3 connections. Default:
    /// [`CongestionControl::Cubic`].
    pub fn congestion_control(mut self, controller: CongestionControl) -> Self {
        self.congestion = controller;
        self
    }

    /// Whether a resumed HTTP/3 connection sends calls in TLS early data
    /// (0-RTT), before its handshake completes: the first call then costs
    /// one round trip instead of two. Only calls to methods the proto marks
    /// `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT` go early (they
    /// may be replayed); others wait for the handshake. 0-RTT is tried only
    /// with an address that completed a handshake before. Resumption needs
    /// session tickets from an earlier connection: channels built from
    /// clones of one [`ClientTlsConfig`] share them. Default: on.
    ///
    /// ```
    /// use grpc_h3::Channel;
    ///
    /// let builder = Channel::builder("https://example.com").early_data(false);
    /// # let _ = builder;
    /// ```
    pub fn early_data(mut self, enabled: bool) -> Self {
        self.early_data = enabled;
        self
    }

    /// Sends keep-alives (QUIC or HTTP/2 PINGs) this often, so calls that
    /// stay quiet longer than the idle timeout keep their connection and a
    /// dead server is noticed. `None` turns them off. Must be shorter than
    /// the idle timeout. Default: a third of the idle timeout.
    pub fn keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive_interval = Some(interval);
        self
    }

    /// Largest response header block accepted (counted as QPACK and HPACK
    /// do); values above 768 KiB are lowered to 768 KiB. Default: 16 KiB.
    pub fn max_header_list_size(mut self, bytes: u64) -> Self {
        self.max_header_list_size = bytes.min(MAX_HEADER_LIST_SIZE_CEILING);
        self
    }

    /// Delays between failed connection attempts. Default: gRPC's (1 s,
    /// ×1.6, ±20 %, at most 120 s).
    pub fn connection_backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// Makes calls wait for a connection while the channel is backing off
    /// after a failed attempt, instead of failing at once with UNAVAILABLE
    /// (gRPC's wait-for-ready; a call's own setting wins). Default: off.
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = wait;
        self
    }

    /// Builds the channel. Nothing is connected until the first call.
    pub fn build(self) -> Result<Channel, Error> {
        let uri: http::Uri = self.uri.parse().map_err(|e| {
            Error::config(format!(
                "invalid channel URI {:?}: {e}; expected https://host:port",
                self.uri
            ))
        })?;
        let plaintext = match uri.scheme_str() {
            None | Some("https") => false,
            Some("http") => true,
            Some(other) => {
                return Err(Error::config(format!(
                    "channel URI {:?}: unknown scheme {other:?}; use https:// (TLS) or http:// (plaintext HTTP/2)",
                    self.uri
                )))
            }
        };
        // `None`: automatic.
        let transport = match (self.transport, plaintext) {
            (None, false) => None,
            (None, true) | (Some(Transport::H2c), _) => Some(Transport::H2c),
            (Some(Transport::Http3 | Transport::Http2), true) => {
                return Err(Error::config(format!(
                    "channel URI {:?}: HTTP/3 and HTTP/2 over TLS need an https:// URI",
                    self.uri
                )))
            }
            (Some(transport), false) => Some(transport),
        };
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| Error::config(format!("channel URI {:?} has no host", self.uri)))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority
            .port_u16()
            .unwrap_or(if plaintext { 80 } else { 443 });
        let endpoints = self
            .endpoints
            .iter()
            .map(|place| parse_place(place, port))
            .collect::<Result<Vec<_>, Error>>()?;
        let target = Target {
            host: host.clone(),
            port,
            endpoints: endpoints.into(),
            resolver: self.resolver.clone(),
            connect_timeout: self.connect_timeout,
        };
        let keep_alive =
            transport::keep_alive_interval(self.keep_alive_interval, self.idle_timeout, "channel")?;
        let tls_config = self
            .tls
            .unwrap_or_else(|| ClientTlsConfig::new().with_system_roots());
        // With the user's own rustls configuration, its resumption store
        // holds the tickets; this channel remembers the addresses.
        let sessions = match &self.rustls_config {
            Some(_) => crate::tls::resume::SessionMemory::new(),
            None => tls_config.sessions(),
        };
        let server_name = tls_config
            .server_name_override()
            .unwrap_or(&host)
            .to_owned();
        let with_alpn = |config: &rustls::ClientConfig, alpn: &[u8]| {
            let mut config = config.clone();
            config.alpn_protocols = vec![alpn.to_vec()];
            config
        };
        let h3_connector = || -> Result<H3Connector, Error> {
            let tls = match &self.rustls_config {
                Some(config) => with_alpn(config, crate::tls::ALPN_H3),
                None => tls_config.build(self.early_data)?,
            };
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
                .map_err(|e| Error::tls(format!("TLS configuration unusable for QUIC: {e}")))?;
            let mut quic_config = quinn::ClientConfig::new(Arc::new(crypto));
            let quic_transport = transport::transport_config(
                Side::Client,
                self.idle_timeout,
                keep_alive,
                self.congestion,
            )?;
            quic_config.transport_config(Arc::new(quic_transport));
            Ok(H3Connector {
                target: target.clone(),
                server_name: server_name.clone(),
                quic_config,
                max_header_list_size: self.max_header_list_size,
                endpoint: self.endpoint.clone(),
                local_address: self.local_address,
                local_endpoint: std::sync::Mutex::default(),
                counters: Arc::default(),
                early_data: self.early_data,
                sessions: sessions.clone(),
            })
        };
        let h2_connector = |tls: bool| -> Result<H2Connector, Error> {
            let tls = if tls {
                let tls = match &self.rustls_config {
                    Some(config) => with_alpn(config, crate::tls::ALPN_H2),
                    None => tls_config.build_h2()?,
                };
                Some(tokio_rustls::TlsConnector::from(Arc::new(tls)))
            } else {
                None
            };
            Ok(H2Connector {
                target: target.clone(),
                server_name: server_name.clone(),
                tls,
                keep_alive,
                idle_timeout: self.idle_timeout,
                max_header_list_size: u32::try_from(self.max_header_list_size).unwrap_or(u32::MAX),
                local_address: self.local_address,
            })
        };
        let make: Box<dyn Fn(&Target) -> Pools + Send + Sync> = match transport {
            Some(Transport::Http3) => {
                let (h3, backoff) = (h3_connector()?, self.backoff);
                Box::new(move |target| {
                    Pools::Http3(Arc::new(Pool::new(h3.with_target(target.clone()), backoff)))
                })
            }
            Some(Transport::Http2 | Transport::H2c) => {
                let h2 = h2_connector(transport == Some(Transport::Http2))?;
                let backoff = self.backoff;
                Box::new(move |target| {
                    let mut h2 = h2.clone();
                    h2.target = target.clone();
                    Pools::Http2(Arc::new(Pool::new(h2, backoff)))
                })
            }
            None => {
                let (h3, h2) = (h3_connector()?, h2_connector(true)?);
                let (backoff, race_delay, broken) =
                    (self.backoff, self.race_delay, self.broken_quic_period);
                Box::new(move |target| {
                    let mut h2 = h2.clone();
                    h2.target = target.clone();
                    Pools::Auto(Arc::new(Auto::new(
                        h3.with_target(target.clone()),
                        h2,
                        backoff,
                        race_delay,
                        broken,
                    )))
                })
            }
        };
        let pools = match self.load_balancing {
            LoadBalancing::PickFirst => Balance::One(make(&target)),
            LoadBalancing::RoundRobin => {
                let template = target.clone();
                Balance::RoundRobin(Arc::new(RoundRobin::new(
                    target,
                    self.resolve_interval,
                    Box::new(move |address| {
                        let place = (address.ip().to_string(), address.port());
                        make(&template.with_endpoints(Arc::from(vec![place])))
                    }),
                )))
            }
        };
        let scheme = if plaintext {
            http::uri::Scheme::HTTP
        } else {
            http::uri::Scheme::HTTPS
        };
        Ok(Channel {
            inner: Arc::new(Inner {
                pools,
                scheme,
                authority,
                wait_for_ready: self.wait_for_ready,
                credentials: self.credentials.map(|c| c.0),
                credentials_over_plaintext: self.credentials_over_plaintext,
                retries: self.service_config.map(super::retry::Retries::new),
            }),
        })
    }
}
