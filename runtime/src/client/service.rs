//! [`GrpcService`]: what a generated client calls through.

use std::future::Future;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower_service::Service;

use crate::body::BoxError;

/// A tower service that carries gRPC `http` requests to a server and
/// returns its responses: a [`Channel`](crate::Channel), the same behind
/// tower layers or an [interceptor](crate::InterceptedService), or any
/// other HTTP client service (tonic's `Channel` included). Implemented for
/// every `tower::Service<http::Request<ReqBody>>` whose response bodies
/// are bodies of `Bytes`.
pub trait GrpcService<ReqBody> {
    /// The body of the responses.
    type ResponseBody: http_body::Body<Data = Bytes>;
    /// How a call can fail before its response head.
    type Error: Into<BoxError>;
    /// The response head to come.
    type Future: Future<Output = Result<http::Response<Self::ResponseBody>, Self::Error>>;

    /// Whether the service can take a call now (see `tower::Service`).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>>;

    /// Starts a call.
    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future;
}

impl<T, ReqBody, ResBody> GrpcService<ReqBody> for T
where
    T: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    T::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type ResponseBody = ResBody;
    type Error = T::Error;
    type Future = T::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), T::Error>> {
        Service::poll_ready(self, cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> T::Future {
        Service::call(self, request)
    }
}
