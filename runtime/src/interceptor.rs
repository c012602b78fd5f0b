//! Interceptors: a function over a call's metadata and extensions that may
//! change them or refuse the call with a [`Status`], on a server per
//! service and on a client per client. [`AsyncInterceptor`] is the same
//! with a future (a token lookup, a policy server).
//!
//! ```
//! use grpc_h3::{Request, Status};
//!
//! fn check_token(request: Request<()>) -> Result<Request<()>, Status> {
//!     match request.metadata().get("authorization") {
//!         Some("Bearer open-sesame") => Ok(request),
//!         _ => Err(Status::unauthenticated("missing or wrong bearer token")),
//!     }
//! }
//! // Server: GreeterServer::with_interceptor(MyGreeter, check_token)
//! // Client: GreeterClient::with_interceptor(channel, add_token)
//! # let _ = check_token;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use grpc_h3_core::{EnabledEncodings, Metadata, Status};
use tower_service::Service;

use crate::body::BoxError;
use crate::{Body, Request};

/// Sees (and may change) a call's metadata and extensions before it goes
/// on; an `Err` ends the call with that status.
pub trait Interceptor {
    /// Intercepts one call.
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status>;
}

impl<F> Interceptor for F
where
    F: FnMut(Request<()>) -> Result<Request<()>, Status>,
{
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self(request)
    }
}

/// An [`Interceptor`] that may wait.
pub trait AsyncInterceptor {
    /// The future deciding the call.
    type Future: Future<Output = Result<Request<()>, Status>> + Send + 'static;

    /// Intercepts one call.
    fn call(&mut self, request: Request<()>) -> Self::Future;
}

impl<F, Fut> AsyncInterceptor for F
where
    F: FnMut(Request<()>) -> Fut,
    Fut: Future<Output = Result<Request<()>, Status>> + Send + 'static,
{
    type Future = Fut;

    fn call(&mut self, request: Request<()>) -> Fut {
        self(request)
    }
}

/// The head of an `http::Request` as an interceptor sees it.
fn intercepted<B>(request: http::Request<B>) -> (Request<()>, http::request::Parts, B) {
    let (mut parts, body) = request.into_parts();
    let metadata = Metadata::from_headers(&parts.headers);
    let extensions = std::mem::take(&mut parts.extensions);
    (Request::from_parts(metadata, extensions, ()), parts, body)
}

/// The `http::Request` again, with the interceptor's changes.
fn rebuilt<B>(request: Request<()>, mut parts: http::request::Parts, body: B) -> http::Request<B> {
    let (metadata, extensions, ()) = request.into_parts_with_extensions();
    metadata.replace_in(&mut parts.headers);
    parts.extensions = extensions;
    http::Request::from_parts(parts, body)
}

fn refused(status: &Status) -> http::Response<Body> {
    crate::server::grpc::trailers_only(status, &Metadata::new(), EnabledEncodings::all())
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A service behind an [`Interceptor`] (or, with [`AsyncInterceptedService`],
/// an [`AsyncInterceptor`]). A refused call is answered Trailers-Only with
/// the interceptor's status, on a server to the client, on a client to the
/// caller.
#[derive(Clone, Debug)]
pub struct InterceptedService<S, F> {
    inner: S,
    interceptor: F,
}

impl<S, F> InterceptedService<S, F> {
    /// `inner`, behind `interceptor`.
    pub fn new(inner: S, interceptor: F) -> InterceptedService<S, F> {
        InterceptedService { inner, interceptor }
    }
}

impl<S, F, B, ResBody> Service<http::Request<B>> for InterceptedService<S, F>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    F: Interceptor,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (head, parts, body) = intercepted(request);
        match self.interceptor.call(head) {
            Ok(head) => {
                let call = self.inner.call(rebuilt(head, parts, body));
                Box::pin(async move { Ok(call.await?.map(Body::new)) })
            }
            Err(status) => Box::pin(std::future::ready(Ok(refused(&status)))),
        }
    }
}

/// A service behind an [`AsyncInterceptor`].
#[derive(Clone, Debug)]
pub struct AsyncInterceptedService<S, F> {
    inner: S,
    interceptor: F,
}

impl<S, F> AsyncInterceptedService<S, F> {
    /// `inner`, behind `interceptor`.
    pub fn new(inner: S, interceptor: F) -> AsyncInterceptedService<S, F> {
        AsyncInterceptedService { inner, interceptor }
    }
}

impl<S, F, B, ResBody> Service<http::Request<B>> for AsyncInterceptedService<S, F>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    F: AsyncInterceptor,
    B: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (head, parts, body) = intercepted(request);
        let decision = self.interceptor.call(head);
        // The ready service goes with the call; the clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match decision.await {
                Ok(head) => {
                    let response = inner.call(rebuilt(head, parts, body)).await?;
                    Ok(response.map(Body::new))
                }
                Err(status) => Ok(refused(&status)),
            }
        })
    }
}
