//! The gRPC health checking service, `grpc.health.v1.Health`, for
//! grpc-h3 servers: what load balancers, Kubernetes probes and
//! `grpc-health-probe` ask.
//!
//! - `Check`: a service's status now; a service the server does not know
//!   is NOT_FOUND.
//! - `Watch`: the status now, then every change, until the client ends
//!   the call. A service the server does not know is SERVICE_UNKNOWN and
//!   the stream stays open (it reports the service once it is set).
//! - `List`: every service's status.
//!
//! The empty service name stands for the server as a whole; it starts
//! SERVING. A [`HealthReporter`] sets statuses; handing
//! [`HealthReporter::drain_hook`] to the server's
//! [`on_drain`](grpc_h3::server::ServerBuilder::on_drain) makes every
//! service NOT_SERVING when graceful shutdown begins, before the GOAWAY.
//!
//! ```no_run
//! # async fn run() -> Result<(), grpc_h3::Error> {
//! use std::time::Duration;
//! use grpc_h3::server::Server;
//! use grpc_h3_health::{HealthReporter, ServingStatus};
//!
//! let health = HealthReporter::new();
//! health.set_service_status("helloworld.Greeter", ServingStatus::Serving);
//! Server::builder()
//!     .dev_certificate()
//!     .add_service(health.service())
//!     .on_drain(health.drain_hook())
//!     .drain_notice(Duration::from_secs(2))
//!     .bind("127.0.0.1:50051".parse().unwrap())?
//!     .serve()
//!     .await
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use grpc_h3::server::NamedService;
use grpc_h3::{Request, Response, Status};
use tokio::sync::watch;
use tokio_stream::StreamExt;

// The generator's output as it is (prettyplease, not rustfmt): the test
// that regenerates it compares byte for byte.
#[allow(missing_docs, unreachable_pub, clippy::all)]
#[rustfmt::skip]
mod generated;

/// The generated `grpc.health.v1` messages, client and server.
pub mod pb {
    pub use super::generated::*;
}

pub use pb::health_check_response::ServingStatus;
use pb::health_server::{Health, HealthServer};
use pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};

/// The most service names the reporter holds: set ones, and names
/// watched without being set. `List` past it and `Watch` of one more
/// unknown name fail RESOURCE_EXHAUSTED.
pub const MAX_SERVICES: usize = 1000;

/// A service's status; `None` while only watched, not set.
type Slot = watch::Sender<Option<ServingStatus>>;

/// Sets the statuses the health service reports. Cheap to clone; every
/// clone and the service share one table.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    statuses: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Default for HealthReporter {
    fn default() -> Self {
        HealthReporter::new()
    }
}

impl HealthReporter {
    /// A reporter with the server as a whole (`""`) SERVING and nothing
    /// else known.
    pub fn new() -> HealthReporter {
        let reporter = HealthReporter {
            statuses: Arc::default(),
        };
        reporter.set_service_status("", ServingStatus::Serving);
        reporter
    }

    /// The service answering `grpc.health.v1.Health` from this reporter,
    /// for [`ServerBuilder::add_service`](grpc_h3::server::ServerBuilder::add_service).
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService {
            reporter: self.clone(),
        })
    }

    /// Sets `service` (a fully qualified name such as
    /// `helloworld.Greeter`, or `""` for the server) to `status`; its
    /// watchers hear of it if it changed.
    pub fn set_service_status(&self, service: impl Into<String>, status: ServingStatus) {
        let mut statuses = self.lock();
        let service = service.into();
        match statuses.get(&service) {
            Some(slot) => {
                slot.send_if_modified(|now| {
                    let changed = *now != Some(status);
                    *now = Some(status);
                    changed
                });
            }
            None => {
                statuses.insert(service, watch::channel(Some(status)).0);
            }
        }
    }

    /// Sets the service `S` serves as SERVING.
    pub fn set_serving<S: NamedService>(&self) {
        self.set_service_status(S::NAME, ServingStatus::Serving);
    }

    /// Sets the service `S` serves as NOT_SERVING.
    pub fn set_not_serving<S: NamedService>(&self) {
        self.set_service_status(S::NAME, ServingStatus::NotServing);
    }

    /// Forgets `service`: `Check` answers NOT_FOUND again, and its
    /// watchers hear SERVICE_UNKNOWN.
    pub fn clear_service_status(&self, service: &str) {
        let mut statuses = self.lock();
        if let Some(slot) = statuses.get(service) {
            slot.send_if_modified(|now| now.take().is_some());
            if slot.receiver_count() == 0 {
                statuses.remove(service);
            }
        }
    }

    /// Sets every service, the server included, NOT_SERVING: what a
    /// server about to drain says, so that balancers stop sending it new
    /// calls.
    pub fn set_all_not_serving(&self) {
        for slot in self.lock().values() {
            slot.send_if_modified(|now| match now {
                Some(status) if *status != ServingStatus::NotServing => {
                    *status = ServingStatus::NotServing;
                    true
                }
                _ => false,
            });
        }
    }

    /// [`HealthReporter::set_all_not_serving`] as a hook for the server's
    /// [`on_drain`](grpc_h3::server::ServerBuilder::on_drain).
    pub fn drain_hook(&self) -> impl Fn() + Send + Sync + 'static {
        let reporter = self.clone();
        move || reporter.set_all_not_serving()
    }

    /// `service`'s status now, if it is set.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        self.lock().get(service).and_then(|slot| *slot.borrow())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.statuses.lock().expect("health statuses lock")
    }

    /// A receiver of `service`'s status, making a slot for a name not set
    /// yet (pruning slots nobody watches any more first).
    fn watch(&self, service: &str) -> Result<watch::Receiver<Option<ServingStatus>>, Status> {
        let mut statuses = self.lock();
        if let Some(slot) = statuses.get(service) {
            return Ok(slot.subscribe());
        }
        statuses.retain(|_, slot| slot.borrow().is_some() || slot.receiver_count() > 0);
        if statuses.len() >= MAX_SERVICES {
            return Err(Status::resource_exhausted(format!(
                "the health service already tracks {MAX_SERVICES} service names"
            )));
        }
        let (slot, receiver) = watch::channel(None);
        statuses.insert(service.to_owned(), slot);
        Ok(receiver)
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

/// `grpc.health.v1.Health`, answering from a [`HealthReporter`]; made by
/// [`HealthReporter::service`].
#[derive(Debug)]
pub struct HealthService {
    reporter: HealthReporter,
}

/// The stream `Watch` answers with.
pub type StatusStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>,
>;

impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        match self.reporter.status(service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!(
                "no health status for service {service:?}"
            ))),
        }
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let statuses = self.reporter.lock();
        let statuses: HashMap<String, HealthCheckResponse> = statuses
            .iter()
            .filter_map(|(name, slot)| slot.borrow().map(|s| (name.clone(), response(s))))
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = StatusStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<StatusStream>, Status> {
        let receiver = self.reporter.watch(&request.get_ref().service)?;
        let stream = tokio_stream::wrappers::WatchStream::new(receiver)
            .map(|status| Ok(response(status.unwrap_or(ServingStatus::ServiceUnknown))));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_unknown_names_are_bounded_and_forgotten_when_nobody_watches() {
        let reporter = HealthReporter::new();
        let mut watchers: Vec<_> = (1..MAX_SERVICES)
            .map(|i| reporter.watch(&format!("unknown.S{i}")).unwrap())
            .collect();
        assert_eq!(reporter.lock().len(), MAX_SERVICES);
        let refused = reporter.watch("one.More").unwrap_err();
        assert_eq!(refused.code(), grpc_h3::Code::ResourceExhausted);
        // A name already tracked can still be watched.
        watchers.push(reporter.watch("unknown.S1").unwrap());
        // Once their watchers are gone, unset names make room again.
        watchers.clear();
        reporter.watch("one.More").unwrap();
        assert_eq!(
            reporter.lock().len(),
            2,
            "the server's own status and one.More"
        );
    }
}
