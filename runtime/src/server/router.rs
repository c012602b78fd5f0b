//! Routing calls to services by the service name in `:path`, and the tower
//! plumbing that makes any service (generated, hand-written, tonic's,
//! behind layers) a route.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use grpc_h3_core::{EnabledEncodings, Metadata};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;
use tower_service::Service;

use super::grpc::{trailers_only, unimplemented};
use crate::body::BoxError;
use crate::Body;

/// A service as the server runs it: boxed, cloneable, and never failing
/// (a failure is a response).
pub(crate) type RouteService =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// Makes `service` a route: its response bodies boxed, its errors turned
/// into Trailers-Only responses with the status they map to.
pub(crate) fn route<S, ResBody>(service: S) -> RouteService
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    BoxCloneSyncService::new(Routed(service))
}

#[derive(Clone)]
struct Routed<S>(S);

impl<S, ResBody> Service<http::Request<Body>> for Routed<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = RoutedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A service that cannot become ready fails the call it was asked
        // for (below), not the server.
        match self.0.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        RoutedFuture {
            inner: self.0.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A routed service's response, its body boxed and its error turned
    /// into a Trailers-Only answer (no allocation of its own).
    pub(crate) struct RoutedFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, ResBody, E> Future for RoutedFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    E: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<http::Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match std::task::ready!(self.project().inner.poll(cx)) {
            Ok(response) => response.map(Body::new),
            Err(error) => {
                let status = crate::errors::status_from_error(error.into());
                trailers_only(&status, &Metadata::new(), EnabledEncodings::all())
            }
        };
        Poll::Ready(Ok(response))
    }
}

/// Services by fully qualified name; a call to anything else is
/// UNIMPLEMENTED.
#[derive(Clone, Default)]
pub(crate) struct Routes {
    services: Arc<HashMap<String, RouteService>>,
}

impl Routes {
    pub(crate) fn new(services: HashMap<String, RouteService>) -> Routes {
        Routes {
            services: Arc::new(services),
        }
    }
}

/// The service name in `/service/method`.
fn service_name(path: &str) -> Option<&str> {
    path.strip_prefix('/')?
        .split_once('/')
        .map(|(service, _)| service)
}

pin_project_lite::pin_project! {
    /// The call a route runs, or the answer for a path no route serves.
    #[project = RoutesProj]
    pub(crate) enum RoutesFuture {
        Routed { #[pin] call: tower::util::Oneshot<RouteService, http::Request<Body>> },
        Answered { answer: Option<http::Response<Body>> },
    }
}

impl Future for RoutesFuture {
    type Output = Result<http::Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RoutesProj::Routed { call } => call.poll(cx),
            RoutesProj::Answered { answer } => {
                Poll::Ready(Ok(answer.take().expect("polled after completion")))
            }
        }
    }
}

impl Service<http::Request<Body>> for Routes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = RoutesFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = service_name(request.uri().path())
            .and_then(|name| self.services.get(name))
            .cloned();
        match service {
            Some(service) => RoutesFuture::Routed {
                call: service.oneshot(request),
            },
            None => {
                let answer = match service_name(request.uri().path()) {
                    Some(name) => trailers_only(
                        &grpc_h3_core::Status::unimplemented(format!("unknown service {name}")),
                        &Metadata::new(),
                        EnabledEncodings::all(),
                    ),
                    None => unimplemented(&request),
                };
                RoutesFuture::Answered {
                    answer: Some(answer),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_come_from_the_path() {
        assert_eq!(service_name("/a.B/C"), Some("a.B"));
        assert_eq!(service_name("/a.B"), None);
        assert_eq!(service_name("a.B/C"), None);
    }
}

/// What the server calls for each request: the routes themselves, or the
/// routes behind the builder's layers. Without layers the routes are called
/// directly, saving a boxed clone and a boxed future per call.
#[derive(Clone)]
pub(crate) enum Front {
    Routes(Routes),
    Layered(RouteService),
}

pin_project_lite::pin_project! {
    /// The response [`Front`] produces.
    #[project = FrontProj]
    pub(crate) enum FrontFuture {
        Routes { #[pin] call: RoutesFuture },
        Layered { #[pin] call: tower::util::Oneshot<RouteService, http::Request<Body>> },
    }
}

impl Front {
    pub(crate) fn call(&self, request: http::Request<Body>) -> FrontFuture {
        match self {
            Front::Routes(routes) => FrontFuture::Routes {
                call: routes.clone().call(request),
            },
            Front::Layered(service) => FrontFuture::Layered {
                call: service.clone().oneshot(request),
            },
        }
    }
}

impl Future for FrontFuture {
    type Output = Result<http::Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontProj::Routes { call } => call.poll(cx),
            FrontProj::Layered { call } => call.poll(cx),
        }
    }
}
