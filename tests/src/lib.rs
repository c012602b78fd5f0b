//! grpc's interop suite over HTTP/3: the `TestService` server and the
//! client test cases, shared by the `interop_server` and `interop_client`
//! binaries and by `cargo test`.

pub mod cases;
pub mod grpcio;
pub mod server;

/// The official `grpc.testing` protos, generated.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    grpc_h3::include_proto!("grpc.testing");
}

/// A codec whose per-message compression follows a queue of flags, pushed
/// in the order the messages will be sent (messages beyond the queue are
/// compressed). Clones share the queue.
#[derive(Debug)]
pub struct FlaggedCodec<E, D> {
    inner: grpc_h3::codegen::ProstCodec<E, D>,
    flags: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<bool>>>,
}

impl<E, D> Clone for FlaggedCodec<E, D> {
    fn clone(&self) -> Self {
        FlaggedCodec {
            inner: self.inner.clone(),
            flags: self.flags.clone(),
        }
    }
}

impl<E, D> Default for FlaggedCodec<E, D> {
    fn default() -> Self {
        FlaggedCodec {
            inner: Default::default(),
            flags: Default::default(),
        }
    }
}

impl<E, D> FlaggedCodec<E, D> {
    /// Whether the next message sent is compressed.
    pub fn push(&self, compress: bool) {
        self.flags.lock().expect("flags lock").push_back(compress);
    }
}

impl<E, D> grpc_h3::codec::Codec for FlaggedCodec<E, D>
where
    E: prost::Message + Send + 'static,
    D: prost::Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;

    fn encode(&mut self, item: E, dst: &mut bytes::BytesMut) -> Result<(), grpc_h3::Status> {
        self.inner.encode(item, dst)
    }

    fn decode(&mut self, src: bytes::Bytes) -> Result<D, grpc_h3::Status> {
        self.inner.decode(src)
    }

    fn compress(&mut self, _item: &E) -> bool {
        self.flags
            .lock()
            .expect("flags lock")
            .pop_front()
            .unwrap_or(true)
    }
}
