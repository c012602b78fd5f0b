//! Which connection a call takes: [`Pools`], the transports of one
//! endpoint (HTTP/3, HTTP/2 or the automatic choice), and [`Balance`],
//! one endpoint or a round robin over several.

use std::sync::Arc;

use grpc_h3_core::Status;

use super::auto::{Auto, Picked};
use super::balance::RoundRobin;
use super::h2::H2Connector;
use super::h3::H3Connector;
use super::pool::Pool;

/// The transports of one endpoint.
pub(crate) enum Pools {
    Http3(Arc<Pool<H3Connector>>),
    Http2(Arc<Pool<H2Connector>>),
    /// Both, the channel choosing (see [`Auto`]).
    Auto(Arc<Auto>),
}

impl Pools {
    pub(crate) fn describe(&self) -> String {
        match self {
            Pools::Http3(pool) => pool.describe(),
            Pools::Http2(pool) => pool.describe(),
            Pools::Auto(auto) => auto.describe(),
        }
    }

    pub(crate) fn authority(&self) -> String {
        match self {
            Pools::Http3(pool) => pool.authority(),
            Pools::Http2(pool) => pool.authority(),
            Pools::Auto(auto) => auto.authority(),
        }
    }

    /// A connection that is up now, without waiting.
    pub(crate) fn ready(&self) -> Option<Picked> {
        match self {
            Pools::Http3(pool) => pool.ready().map(Picked::Http3),
            Pools::Http2(pool) => pool.ready().map(Picked::Http2),
            Pools::Auto(auto) => auto.ready(),
        }
    }

    /// A connection, waiting for (or starting) an attempt if need be
    /// (without awaiting anything when one is up: see [`Pool::get`]).
    pub(crate) async fn pick(&self, wait_for_ready: bool) -> Result<Picked, Status> {
        match self {
            Pools::Http3(pool) => pool.get(wait_for_ready).await.map(Picked::Http3),
            Pools::Http2(pool) => pool.get(wait_for_ready).await.map(Picked::Http2),
            Pools::Auto(auto) => auto.pick(wait_for_ready).await,
        }
    }

    /// `picked`, with the automatic transport choice that made it when it
    /// is an HTTP/2 connection (the choice learns `alt-svc` from the
    /// response).
    pub(crate) fn with_learner(&self, picked: Picked) -> (Picked, Option<Arc<Auto>>) {
        let learner = match (self, &picked) {
            (Pools::Auto(auto), Picked::Http2(_)) => Some(auto.clone()),
            _ => None,
        };
        (picked, learner)
    }

    pub(crate) fn current_transport(&self) -> Option<crate::Transport> {
        match self {
            Pools::Http3(pool) => pool.ready().map(|_| crate::Transport::Http3),
            Pools::Http2(pool) => pool.ready().map(|conn| conn.transport()),
            Pools::Auto(auto) => auto.current(),
        }
    }
}

/// Where a channel's calls go: one endpoint (pick first), or several.
pub(crate) enum Balance {
    One(Pools),
    RoundRobin(Arc<RoundRobin>),
}

impl Balance {
    pub(crate) fn describe(&self) -> String {
        match self {
            Balance::One(pools) => pools.describe(),
            Balance::RoundRobin(balancer) => balancer.describe(),
        }
    }

    pub(crate) fn authority(&self) -> String {
        match self {
            Balance::One(pools) => pools.authority(),
            Balance::RoundRobin(balancer) => balancer.authority(),
        }
    }

    /// The connection for the next call and, for an HTTP/2 one chosen
    /// automatically, the choice to tell about the response's `alt-svc`.
    pub(crate) async fn pick(
        &self,
        wait_for_ready: bool,
    ) -> Result<(Picked, Option<Arc<Auto>>), Status> {
        match self {
            Balance::One(pools) => Ok(pools.with_learner(pools.pick(wait_for_ready).await?)),
            // Boxed, as in `Pool::get`.
            Balance::RoundRobin(balancer) => Box::pin(balancer.pick(wait_for_ready)).await,
        }
    }

    pub(crate) fn current_transport(&self) -> Option<crate::Transport> {
        match self {
            Balance::One(pools) => pools.current_transport(),
            Balance::RoundRobin(balancer) => balancer.current_transport(),
        }
    }
}
