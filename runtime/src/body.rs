//! [`Body`]: the HTTP body type gRPC requests and responses carry through
//! services, layers and transports: a boxed `http_body::Body` of `Bytes`
//! whose errors are [`Status`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use grpc_h3_core::Status;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

/// Any error, boxed: what tower services and HTTP bodies report.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC HTTP body: framed messages, then (in responses) trailers.
///
/// ```
/// use bytes::Bytes;
/// use http_body::Body as _;
/// let body = grpc_h3::Body::from_bytes(Bytes::from_static(b"\0\0\0\0\0"));
/// assert_eq!(body.size_hint().exact(), Some(5));
/// ```
pub struct Body {
    inner: UnsyncBoxBody<Bytes, Status>,
}

impl Body {
    /// Wraps any body of `Bytes`; its errors become [`Status`]es (see
    /// [`crate::status_from_error`]).
    pub fn new<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // A `Body` already: no second box around it.
        let mut slot = Some(body);
        if let Some(body) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
            return body.take().expect("just filled");
        }
        let body = slot.expect("not taken");
        Body {
            inner: body
                .map_err(|e| crate::errors::status_from_error(e.into()))
                .boxed_unsync(),
        }
    }

    /// A body with nothing in it.
    pub fn empty() -> Body {
        Body::new(http_body_util::Empty::new())
    }

    /// A body of these bytes.
    pub fn from_bytes(bytes: Bytes) -> Body {
        Body::new(http_body_util::Full::new(bytes))
    }

    /// Wraps a body whose errors are already [`Status`]es, without mapping.
    pub(crate) fn from_status_body<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes, Error = Status> + Send + 'static,
    {
        Body {
            inner: body.boxed_unsync(),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
