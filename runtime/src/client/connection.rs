//! The channel's one QUIC connection: lazy connect, reuse, replacement
//! after loss or GOAWAY.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use grpc_h3_core::Status;

use crate::transport::quic;

pub(crate) type Sender = h3::client::SendRequest<quic::Opener, Bytes>;

thread_local! {
    static ENDPOINTS: std::cell::RefCell<[Option<quinn::Endpoint>; 2]> =
        const { std::cell::RefCell::new([None, None]) };
}

/// A client UDP endpoint for `bind`'s address family, shared by the
/// connections opened from this thread: quinn multiplexes any number of
/// connections over one endpoint, so a new connection pays for no socket,
/// buffers or driver task of its own. The cache is per thread because an
/// endpoint's driver lives on the runtime that created it, and a worker
/// thread belongs to one runtime; `fresh` replaces an endpoint whose runtime
/// has shut down.
fn shared_endpoint(bind: SocketAddr, fresh: bool) -> std::io::Result<quinn::Endpoint> {
    ENDPOINTS.with(|endpoints| {
        let mut endpoints = endpoints.borrow_mut();
        let slot = &mut endpoints[usize::from(bind.is_ipv6())];
        match slot {
            Some(endpoint) if !fresh => Ok(endpoint.clone()),
            _ => {
                let endpoint = quinn::Endpoint::client(bind)?;
                *slot = Some(endpoint.clone());
                Ok(endpoint)
            }
        }
    })
}

/// Everything needed to open connections to one target.
pub(crate) struct Connector {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) server_name: String,
    pub(crate) quic_config: quinn::ClientConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_header_list_size: u64,
}

/// One live connection. Calls hold a clone of `sender`, which keeps the
/// connection open until they finish even after the channel replaced it.
pub(crate) struct Connection {
    pub(crate) sender: Sender,
    quic: quinn::Connection,
    closed: Arc<AtomicBool>,
    // The socket must outlive the connection.
    _endpoint: quinn::Endpoint,
}

impl Connection {
    fn usable(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.quic.close_reason().is_none()
    }

    /// Stops handing this connection to new calls (after a GOAWAY or a
    /// failure); calls in flight keep it alive until they end.
    pub(crate) fn retire(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// The current connection, replaced when it stops being usable.
pub(crate) struct Pool {
    connector: Connector,
    current: Mutex<Option<Arc<Connection>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Pool {
    pub(crate) fn new(connector: Connector) -> Pool {
        Pool {
            connector,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn authority(&self) -> String {
        if self.connector.host.contains(':') {
            format!("[{}]:{}", self.connector.host, self.connector.port)
        } else {
            format!("{}:{}", self.connector.host, self.connector.port)
        }
    }

    fn cached(&self) -> Option<Arc<Connection>> {
        let current = self.current.lock().expect("connection lock");
        current.as_ref().filter(|c| c.usable()).cloned()
    }

    /// The usable connection, connecting first if there is none.
    pub(crate) async fn get(&self) -> Result<Arc<Connection>, Status> {
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let conn = Arc::new(self.connect().await?);
        *self.current.lock().expect("connection lock") = Some(conn.clone());
        Ok(conn)
    }

    async fn resolve(&self) -> Result<SocketAddr, Status> {
        let target = (self.connector.host.as_str(), self.connector.port);
        let mut addrs = tokio::net::lookup_host(target).await.map_err(|e| {
            Status::unavailable(format!("cannot resolve {}: {e}", self.authority()))
        })?;
        addrs.next().ok_or_else(|| {
            Status::unavailable(format!("{} resolved to no address", self.authority()))
        })
    }

    async fn connect(&self) -> Result<Connection, Status> {
        let c = &self.connector;
        let attempt = async {
            let addr = self.resolve().await?;
            let bind: SocketAddr = if addr.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let open = |fresh| {
                let endpoint = shared_endpoint(bind, fresh)
                    .map_err(|e| Status::unavailable(format!("cannot open a UDP socket: {e}")))?;
                let connecting = endpoint.connect_with(c.quic_config.clone(), addr, &c.server_name);
                Ok::<_, Status>((endpoint, connecting))
            };
            let (endpoint, connecting) = match open(false)? {
                // The cached endpoint's runtime is gone: make a new one.
                (_, Err(quinn::ConnectError::EndpointStopping)) => open(true)?,
                opened => opened,
            };
            let connecting = connecting
                .map_err(|e| Status::unavailable(format!("cannot connect to {addr}: {e}")))?;
            let quic_conn = connecting.await.map_err(|e| {
                Status::unavailable(format!(
                    "connecting to {addr} ({}) failed: {e}",
                    c.server_name
                ))
            })?;
            let (mut driver, sender) = h3::client::builder()
                .max_field_section_size(c.max_header_list_size)
                .build(quic::Connection::client(quic_conn.clone()))
                .await
                .map_err(|e| {
                    Status::unavailable(format!("HTTP/3 setup with {addr} failed: {e}"))
                })?;
            let closed = Arc::new(AtomicBool::new(false));
            let closed_by_driver = closed.clone();
            tokio::spawn(async move {
                let err = poll_fn(|cx| driver.poll_close(cx)).await;
                tracing::debug!(error = %err, "HTTP/3 connection ended");
                closed_by_driver.store(true, Ordering::Release);
            });
            Ok(Connection {
                sender,
                quic: quic_conn,
                closed,
                _endpoint: endpoint,
            })
        };
        match tokio::time::timeout(c.connect_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Status::unavailable(format!(
                "connecting to {} timed out after {:?}",
                self.authority(),
                c.connect_timeout
            ))),
        }
    }
}
