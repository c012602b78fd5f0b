//! What services implement and what generated code calls: [`Service`],
//! [`ServerCall`], and one helper per call kind that turns a typed handler
//! into a [`ServerReply`].

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use grpc_h3_core::{Codec, CompressionEncoding, FrameDecoder, FrameEncoder, Metadata, Status};

use crate::message::PeerInfo;
use crate::streaming::RecvBody;
use crate::{Request, Response, Streaming};

/// The future of one call, as a [`Service`] returns it.
pub type CallFuture = Pin<Box<dyn Future<Output = ServerReply> + Send + 'static>>;

/// A gRPC service: routes a method name to a call.
///
/// Generated `<Service>Server<T>` types implement it; hand-written
/// implementations use the helpers in this module ([`unary`],
/// [`server_streaming`], [`client_streaming`], [`streaming`]).
pub trait Service: Send + Sync + 'static {
    /// Starts the call to `method` (e.g. `SayHello`), or returns `None` if the
    /// service has no such method (the client gets UNIMPLEMENTED).
    fn call(&self, method: &str, call: ServerCall) -> Option<CallFuture>;
}

/// A service's fully qualified name, e.g. `helloworld.Greeter`.
pub trait NamedService {
    /// The name, as it appears in `:path` (`/NAME/Method`).
    const NAME: &'static str;
}

/// An incoming call, before its messages are decoded.
pub struct ServerCall {
    pub(crate) metadata: Metadata,
    pub(crate) deadline: Option<Instant>,
    pub(crate) peer: PeerInfo,
    pub(crate) body: Box<dyn RecvBody>,
    pub(crate) request_encoding: Option<CompressionEncoding>,
    pub(crate) response_encoding: Option<CompressionEncoding>,
    pub(crate) max_decoding_message_size: usize,
    pub(crate) max_encoding_message_size: usize,
}

impl ServerCall {
    /// The request metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    fn split<C: Codec + Clone>(self, codec: C) -> (Request<Streaming<C::Decode>>, ReplyEncoder<C>) {
        let decoder = FrameDecoder::new(self.request_encoding, self.max_decoding_message_size);
        let stream = Streaming::new(self.body, decoder, codec.clone());
        let encoder = ReplyEncoder {
            codec,
            frames: FrameEncoder::new(self.response_encoding, self.max_encoding_message_size),
        };
        let request = Request::from_server(self.metadata, stream, self.deadline, self.peer);
        (request, encoder)
    }
}

impl std::fmt::Debug for ServerCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCall")
            .field("metadata", &self.metadata)
            .field("deadline", &self.deadline)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

struct ReplyEncoder<C> {
    codec: C,
    frames: FrameEncoder,
}

impl<C: Codec> ReplyEncoder<C> {
    fn encode(&mut self, message: C::Encode) -> Result<Bytes, Status> {
        self.frames.encode(&mut self.codec, message)
    }
}

pub(crate) type MessageStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// The messages of a reply, already framed.
pub(crate) enum ReplyMessages {
    One(Bytes),
    Stream(MessageStream),
}

/// A successful reply: headers, framed messages, then trailers.
pub(crate) struct ReplyBody {
    pub(crate) metadata: Metadata,
    pub(crate) messages: ReplyMessages,
    pub(crate) trailers: Metadata,
    pub(crate) encoding: Option<CompressionEncoding>,
}

/// What a call produces for the transport to send.
pub struct ServerReply(pub(crate) Result<ReplyBody, Status>);

impl ServerReply {
    /// A reply that fails the call with `status` (sent Trailers-Only).
    pub fn error(status: Status) -> ServerReply {
        ServerReply(Err(status))
    }
}

impl std::fmt::Debug for ServerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(_) => f.write_str("ServerReply(Ok(..))"),
            Err(status) => write!(f, "ServerReply({status:?})"),
        }
    }
}

async fn single_message<T>(stream: &mut Streaming<T>) -> Result<T, Status> {
    let message = stream
        .message()
        .await?
        .ok_or_else(|| Status::internal("unary call ended without a request message"))?;
    if stream.message().await?.is_some() {
        return Err(Status::internal(
            "unary call received more than one request message",
        ));
    }
    Ok(message)
}

/// Reads the one request message of a unary or server-streaming call.
async fn single_request<C: Codec + Clone>(
    call: ServerCall,
    codec: C,
) -> Result<(Request<C::Decode>, ReplyEncoder<C>), Status> {
    let (request, encoder) = call.split(codec);
    let (mut stream, request) = request.swap(());
    let message = single_message(&mut stream).await?;
    Ok((request.map(|()| message), encoder))
}

fn reply_one<C: Codec>(
    encoder: &mut ReplyEncoder<C>,
    response: Response<C::Encode>,
) -> ServerReply {
    let (metadata, message, trailers) = response.into_parts();
    let result = encoder.encode(message).map(|frame| ReplyBody {
        metadata,
        messages: ReplyMessages::One(frame),
        trailers,
        encoding: encoder.frames.compression(),
    });
    ServerReply(result)
}

fn reply_stream<C, S>(encoder: ReplyEncoder<C>, response: Response<S>) -> ServerReply
where
    C: Codec,
    S: Stream<Item = Result<C::Encode, Status>> + Send + 'static,
{
    let (metadata, messages, trailers) = response.into_parts();
    let encoding = encoder.frames.compression();
    let stream = EncodeStream {
        messages: Box::pin(messages),
        encoder,
    };
    ServerReply(Ok(ReplyBody {
        metadata,
        messages: ReplyMessages::Stream(Box::pin(stream)),
        trailers,
        encoding,
    }))
}

/// Runs a unary handler: one request in, one response out.
pub async fn unary<C, F, Fut>(call: ServerCall, codec: C, handler: F) -> ServerReply
where
    C: Codec + Clone,
    F: FnOnce(Request<C::Decode>) -> Fut,
    Fut: Future<Output = Result<Response<C::Encode>, Status>>,
{
    let (request, mut encoder) = match single_request(call, codec).await {
        Ok(parts) => parts,
        Err(status) => return ServerReply::error(status),
    };
    match handler(request).await {
        Ok(response) => reply_one(&mut encoder, response),
        Err(status) => ServerReply::error(status),
    }
}

/// Runs a server-streaming handler: one request in, a stream out.
pub async fn server_streaming<C, F, Fut, S>(call: ServerCall, codec: C, handler: F) -> ServerReply
where
    C: Codec + Clone,
    F: FnOnce(Request<C::Decode>) -> Fut,
    Fut: Future<Output = Result<Response<S>, Status>>,
    S: Stream<Item = Result<C::Encode, Status>> + Send + 'static,
{
    let (request, encoder) = match single_request(call, codec).await {
        Ok(parts) => parts,
        Err(status) => return ServerReply::error(status),
    };
    match handler(request).await {
        Ok(response) => reply_stream(encoder, response),
        Err(status) => ServerReply::error(status),
    }
}

/// Runs a client-streaming handler: a stream in, one response out.
pub async fn client_streaming<C, F, Fut>(call: ServerCall, codec: C, handler: F) -> ServerReply
where
    C: Codec + Clone,
    F: FnOnce(Request<Streaming<C::Decode>>) -> Fut,
    Fut: Future<Output = Result<Response<C::Encode>, Status>>,
{
    let (request, mut encoder) = call.split(codec);
    match handler(request).await {
        Ok(response) => reply_one(&mut encoder, response),
        Err(status) => ServerReply::error(status),
    }
}

/// Runs a bidirectional-streaming handler: a stream in, a stream out.
pub async fn streaming<C, F, Fut, S>(call: ServerCall, codec: C, handler: F) -> ServerReply
where
    C: Codec + Clone,
    F: FnOnce(Request<Streaming<C::Decode>>) -> Fut,
    Fut: Future<Output = Result<Response<S>, Status>>,
    S: Stream<Item = Result<C::Encode, Status>> + Send + 'static,
{
    let (request, encoder) = call.split(codec);
    match handler(request).await {
        Ok(response) => reply_stream(encoder, response),
        Err(status) => ServerReply::error(status),
    }
}

/// Frames a handler's response stream as it is polled.
struct EncodeStream<C: Codec> {
    messages: Pin<Box<dyn Stream<Item = Result<C::Encode, Status>> + Send>>,
    encoder: ReplyEncoder<C>,
}

// Nothing in it is ever pinned in place: the message stream is boxed.
impl<C: Codec> Unpin for EncodeStream<C> {}

impl<C: Codec> Stream for EncodeStream<C> {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        Poll::Ready(match ready!(this.messages.as_mut().poll_next(cx)) {
            Some(Ok(message)) => Some(this.encoder.encode(message)),
            Some(Err(status)) => Some(Err(status)),
            None => None,
        })
    }
}
