//! The channel's connection: lazy connect, one attempt at a time shared by
//! every waiting call (single flight), gRPC connection backoff between
//! failed attempts, replacement after loss or GOAWAY.

use std::sync::{Arc, Mutex};

use grpc_h3_core::Status;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::backoff::{Backoff, BackoffConfig};
use super::connect::{Conn, Connector, Progress};

enum State<C> {
    /// No connection and no attempt (before the first call, or after the
    /// connection was lost).
    Idle,
    /// An attempt is running; calls wait for its outcome.
    Connecting(Arc<Progress>),
    Ready(Arc<C>),
    /// The last attempt failed. Until `retry_at` calls fail at once with
    /// `error`, unless they wait for ready.
    Failed {
        retry_at: Instant,
        error: Status,
    },
}

struct Inner<C> {
    state: State<C>,
    backoff: Backoff,
}

/// The current connection, and how to get a new one.
pub(crate) struct Pool<K: Connector> {
    connector: Arc<K>,
    inner: Mutex<Inner<K::Conn>>,
    changed: Notify,
}

impl<K: Connector> Pool<K> {
    pub(crate) fn new(connector: K, backoff: BackoffConfig) -> Pool<K> {
        Pool {
            connector: Arc::new(connector),
            inner: Mutex::new(Inner {
                state: State::Idle,
                backoff: Backoff::new(backoff),
            }),
            changed: Notify::new(),
        }
    }

    pub(crate) fn authority(&self) -> String {
        self.connector.authority()
    }

    /// The connector, to make another like it.
    pub(crate) fn connector(&self) -> &K {
        &self.connector
    }

    /// The connection, if one is up and usable now (no waiting, no
    /// attempt started).
    pub(crate) fn ready(&self) -> Option<Arc<K::Conn>> {
        match &self.inner.lock().expect("pool lock").state {
            State::Ready(conn) if conn.usable() => Some(conn.clone()),
            _ => None,
        }
    }

    /// A usable connection. Waits for a running attempt, starting one if
    /// none runs. After a failed attempt the call fails with its status,
    /// unless `wait_for_ready`: then it waits for the next attempts (the
    /// call's deadline bounds the wait).
    ///
    /// A usable connection is returned without awaiting anything; the
    /// waiting runs in a box. Its future takes several hundred bytes, which
    /// would otherwise be part of every call's future, and each level of a
    /// call copies its callee's future whole when it starts it.
    pub(crate) async fn get(
        self: &Arc<Self>,
        wait_for_ready: bool,
    ) -> Result<Arc<K::Conn>, Status> {
        match self.ready() {
            Some(conn) => Ok(conn),
            None => Box::pin(self.wait_for_connection(wait_for_ready)).await,
        }
    }

    /// [`get`](Self::get) when no connection was ready.
    async fn wait_for_connection(
        self: &Arc<Self>,
        wait_for_ready: bool,
    ) -> Result<Arc<K::Conn>, Status> {
        let mut waited_for_attempt = false;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let retry_at = {
                let mut inner = self.inner.lock().expect("pool lock");
                match &inner.state {
                    State::Ready(conn) if conn.usable() => return Ok(conn.clone()),
                    State::Ready(_) | State::Idle => {
                        self.start(&mut inner);
                        None
                    }
                    State::Connecting(_) => None,
                    State::Failed { retry_at, error } => {
                        let retry_at = *retry_at;
                        if !wait_for_ready && (waited_for_attempt || Instant::now() < retry_at) {
                            return Err(error.clone());
                        }
                        if Instant::now() >= retry_at {
                            self.start(&mut inner);
                            None
                        } else {
                            Some(retry_at)
                        }
                    }
                }
            };
            match retry_at {
                None => {
                    changed.await;
                    waited_for_attempt = true;
                }
                Some(at) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
            }
        }
    }

    /// Starts an attempt on a task of its own, so that it completes (and
    /// every waiting call learns its outcome) even if the call that started
    /// it goes away.
    fn start(self: &Arc<Self>, inner: &mut Inner<K::Conn>) {
        let progress = Arc::new(Progress::new(self.connector.silence()));
        inner.state = State::Connecting(progress.clone());
        let started = Instant::now();
        let pool = self.clone();
        tokio::spawn(async move {
            let result = pool.connector.clone().connect(progress).await;
            {
                let mut inner = pool.inner.lock().expect("pool lock");
                inner.state = match result {
                    Ok(conn) => {
                        tracing::debug!(peer = %conn.remote_address(), "connected");
                        inner.backoff.reset();
                        State::Ready(Arc::new(conn))
                    }
                    Err(error) => {
                        let delay = inner.backoff.next_delay();
                        tracing::debug!(%error, ?delay, "connection attempt failed; backing off");
                        State::Failed {
                            retry_at: started + delay,
                            error,
                        }
                    }
                };
            }
            pool.changed.notify_waiters();
        });
    }

    /// What the channel is doing about its connection, for a call whose
    /// deadline passed before it got one.
    pub(crate) fn describe(&self) -> String {
        let inner = self.inner.lock().expect("pool lock");
        match &inner.state {
            State::Connecting(progress) => format!(
                "still connecting to {}: {}",
                self.authority(),
                progress.describe()
            ),
            State::Failed { error, .. } => {
                format!("the last connection attempt failed: {}", error.message())
            }
            State::Idle | State::Ready(_) => format!("connecting to {}", self.authority()),
        }
    }
}
