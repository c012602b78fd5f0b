//! gRPC server reflection, `grpc.reflection.v1` and `v1alpha`, for
//! grpc-h3 servers: what grpcurl, `grpc-h3` (this project's CLI),
//! grpc_cli and Postman ask to learn a server's schema.
//!
//! The schema comes from descriptor sets you register. The generator
//! gives every compiled package a `FILE_DESCRIPTOR_SET` constant (its
//! files and everything they import, without comments), so registering
//! is one line per package; any other encoded `FileDescriptorSet` works
//! too, e.g. one written by
//! `grpc_h3_build::Builder::file_descriptor_set_path`, with comments.
//! The reflection service describes itself without being asked.
//!
//! ```no_run
//! # mod helloworld { pub const FILE_DESCRIPTOR_SET: &[u8] = &[]; }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use grpc_h3::server::Server;
//!
//! let reflection = grpc_h3_reflection::Builder::new()
//!     .register_encoded_file_descriptor_set(helloworld::FILE_DESCRIPTOR_SET)
//!     .register_encoded_file_descriptor_set(grpc_h3_health::pb::FILE_DESCRIPTOR_SET)
//!     .build()?;
//! Server::builder()
//!     .dev_certificate()
//!     .add_service(reflection.v1())
//!     .add_service(reflection.v1alpha())
//!     .bind("127.0.0.1:50051".parse()?)?
//!     .serve()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Every service in the registered files is listed, whether or not the
//! server serves it, as grpc-go and tonic do. Answers to unknown files
//! or symbols are in-stream `ErrorResponse`s (NOT_FOUND), and the stream
//! stays open. File answers carry the file and everything it imports,
//! transitively, so a client resolves it from one response.

mod index;

use std::fmt;
use std::sync::Arc;

use grpc_h3::{Request, Response, Status, Streaming};
use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorSet;
use tokio_stream::StreamExt;

use index::Index;

// The generator's output as it is (prettyplease, not rustfmt): the test
// that regenerates it compares byte for byte.
#[allow(missing_docs, unreachable_pub, clippy::all)]
#[rustfmt::skip]
mod generated {
    pub mod v1;
    pub mod v1alpha;
}

/// The generated reflection messages, clients and servers.
pub mod pb {
    /// `grpc.reflection.v1`.
    pub mod v1 {
        pub use crate::generated::v1::*;
    }
    /// `grpc.reflection.v1alpha`, the same protocol under its older name.
    pub mod v1alpha {
        pub use crate::generated::v1alpha::*;
    }
}

/// Why the registered descriptors cannot make one schema.
#[derive(Debug)]
pub struct Error {
    message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Collects descriptor sets and builds the reflection services.
#[derive(Debug, Default)]
#[must_use]
pub struct Builder {
    sets: Vec<Result<FileDescriptorSet, String>>,
}

impl Builder {
    /// A builder holding only the reflection service's own descriptors.
    pub fn new() -> Builder {
        Builder::default()
            .register_encoded_file_descriptor_set(pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(pb::v1alpha::FILE_DESCRIPTOR_SET)
    }

    /// Adds an encoded `google.protobuf.FileDescriptorSet`, such as a
    /// generated package's `FILE_DESCRIPTOR_SET`. A file already
    /// registered under the same name is kept as it was.
    pub fn register_encoded_file_descriptor_set(mut self, encoded: impl AsRef<[u8]>) -> Builder {
        let set = FileDescriptorSet::decode(encoded.as_ref()).map_err(|e| {
            format!(
                "descriptor set #{} ({} bytes) is not an encoded FileDescriptorSet: {e}",
                self.sets.len() + 1,
                encoded.as_ref().len()
            )
        });
        self.sets.push(set);
        self
    }

    /// Adds a decoded `FileDescriptorSet`.
    pub fn register_file_descriptor_set(mut self, set: FileDescriptorSet) -> Builder {
        self.sets.push(Ok(set));
        self
    }

    /// Checks that the files make one schema (every import present, no
    /// name defined twice) and builds the services.
    pub fn build(self) -> Result<Reflection, Error> {
        let mut files = Vec::new();
        let mut names = std::collections::HashSet::new();
        for set in self.sets {
            let set = set.map_err(|message| Error { message })?;
            files.extend(
                set.file
                    .into_iter()
                    .filter(|f| names.insert(f.name().to_owned())),
            );
        }
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(files).map_err(|e| Error {
            message: format!("the registered descriptors do not make one schema: {e}"),
        })?;
        Ok(Reflection {
            index: Arc::new(Index::new(pool)),
        })
    }
}

/// The built reflection services, sharing one schema.
#[derive(Clone, Debug)]
pub struct Reflection {
    index: Arc<Index>,
}

impl Reflection {
    /// `grpc.reflection.v1.ServerReflection`, for
    /// [`ServerBuilder::add_service`](grpc_h3::server::ServerBuilder::add_service).
    pub fn v1(
        &self,
    ) -> pb::v1::server_reflection_server::ServerReflectionServer<ReflectionService> {
        pb::v1::server_reflection_server::ServerReflectionServer::new(ReflectionService {
            index: self.index.clone(),
        })
    }

    /// `grpc.reflection.v1alpha.ServerReflection`, for older tools.
    pub fn v1alpha(
        &self,
    ) -> pb::v1alpha::server_reflection_server::ServerReflectionServer<ReflectionService> {
        pb::v1alpha::server_reflection_server::ServerReflectionServer::new(ReflectionService {
            index: self.index.clone(),
        })
    }
}

/// Answers reflection requests; made by [`Reflection::v1`] and
/// [`Reflection::v1alpha`].
#[derive(Debug)]
pub struct ReflectionService {
    index: Arc<Index>,
}

/// The response stream of `ServerReflectionInfo`: one response per
/// request, produced as the client reads (nothing is queued ahead).
pub type ResponseStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

impl pb::v1::server_reflection_server::ServerReflection for ReflectionService {
    type ServerReflectionInfoStream = ResponseStream<pb::v1::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<pb::v1::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        let index = self.index.clone();
        let answers = request
            .into_inner()
            .map(move |asked| asked.map(|asked| index.answer(asked)));
        Ok(Response::new(Box::pin(answers)))
    }
}

impl pb::v1alpha::server_reflection_server::ServerReflection for ReflectionService {
    type ServerReflectionInfoStream = ResponseStream<pb::v1alpha::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<pb::v1alpha::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        let index = self.index.clone();
        let answers = request.into_inner().map(move |asked| {
            let asked: pb::v1::ServerReflectionRequest = transcode(&asked?)?;
            transcode(&index.answer(asked))
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// The two versions' messages are the same on the wire.
fn transcode<T: Message + Default>(message: &impl Message) -> Result<T, Status> {
    T::decode(message.encode_to_vec().as_slice())
        .map_err(|e| Status::internal(format!("reflection v1alpha transcoding: {e}")))
}
