//! Where the schema comes from: the server's reflection service (v1, or
//! v1alpha for older servers), `--proto` files or `--protoset` files.

use std::collections::BTreeMap;
use std::time::Duration;

use grpc_h3::client::Grpc;
use grpc_h3::codec::ProstCodec;
use grpc_h3::{Channel, Code, Metadata, Request, Streaming};
use grpc_h3_reflection::pb::v1::server_reflection_request::MessageRequest;
use grpc_h3_reflection::pb::v1::server_reflection_response::MessageResponse;
use grpc_h3_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
use http::uri::PathAndQuery;
use prost::Message;
use prost_reflect::DescriptorPool;
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use tokio::sync::mpsc;

use crate::args::Args;
use crate::Failure;

/// Whichever schema source the flags chose.
pub(crate) enum Schema {
    /// Asked of the server, file by file as needed.
    Reflection(Box<Reflection>),
    /// Read from files given on the command line.
    Files(DescriptorPool),
}

impl Schema {
    /// `--proto` or `--protoset` files when given, else reflection over
    /// `channel`.
    pub(crate) fn from_args(
        args: &Args,
        channel: &Channel,
        metadata: &Metadata,
        timeout: Option<Duration>,
    ) -> Result<Schema, Failure> {
        if args.proto.is_empty() && args.protoset.is_empty() {
            return Ok(Schema::Reflection(Box::new(Reflection {
                channel: channel.clone(),
                metadata: metadata.clone(),
                timeout,
                stream: None,
                files: BTreeMap::new(),
            })));
        }
        let mut files = Vec::new();
        if !args.proto.is_empty() {
            let includes = if args.import_path.is_empty() {
                args.proto
                    .iter()
                    .map(|p| match p.parent() {
                        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                        _ => ".".into(),
                    })
                    .collect()
            } else {
                args.import_path.clone()
            };
            let set = grpc_h3_build::descriptor_set(&args.proto, &includes)
                .map_err(|e| Failure::usage(format!("compiling --proto files: {e}")))?;
            files.extend(set.file);
        }
        for path in &args.protoset {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure::usage(format!("reading --protoset {}: {e}", path.display()))
            })?;
            let set = FileDescriptorSet::decode(bytes.as_slice()).map_err(|e| {
                Failure::usage(format!(
                    "--protoset {} is not an encoded FileDescriptorSet ({e}); make one with protoc --include_imports -o FILE",
                    path.display()
                ))
            })?;
            files.extend(set.file);
        }
        Ok(Schema::Files(pool(files)?))
    }

    /// Every service's full name, sorted.
    pub(crate) async fn services(&mut self) -> Result<Vec<String>, Failure> {
        let mut names: Vec<String> = match self {
            Schema::Files(pool) => pool.services().map(|s| s.full_name().to_owned()).collect(),
            Schema::Reflection(reflection) => {
                match reflection
                    .ask(MessageRequest::ListServices(String::new()))
                    .await?
                {
                    MessageResponse::ListServicesResponse(list) => {
                        list.service.into_iter().map(|s| s.name).collect()
                    }
                    other => return Err(unexpected(other)),
                }
            }
        };
        names.sort();
        Ok(names)
    }

    /// A pool defining `symbols` (services, methods, messages, enums) and
    /// all they use, plus the google.rpc error details.
    pub(crate) async fn pool_for(&mut self, symbols: &[String]) -> Result<DescriptorPool, Failure> {
        match self {
            Schema::Files(pool) => Ok(pool.clone()),
            Schema::Reflection(reflection) => {
                for symbol in symbols {
                    reflection.load_symbol(symbol).await?;
                }
                pool(reflection.files.values().cloned().collect())
            }
        }
    }
}

/// One pool from files, with google.rpc's (for error details) added when
/// absent; a file named twice is taken once.
fn pool(files: Vec<FileDescriptorProto>) -> Result<DescriptorPool, Failure> {
    let rich = FileDescriptorSet::decode(grpc_h3_types::pb::FILE_DESCRIPTOR_SET)
        .expect("grpc-h3-types carries a valid descriptor set");
    let mut by_name = BTreeMap::new();
    for file in files.into_iter().chain(rich.file) {
        by_name.entry(file.name().to_owned()).or_insert(file);
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(by_name.into_values())
        .map_err(|e| Failure::usage(format!("the schema is incomplete or inconsistent: {e}")))?;
    Ok(pool)
}

fn unexpected(response: MessageResponse) -> Failure {
    Failure::usage(format!(
        "the reflection service answered out of turn: {response:?}"
    ))
}

/// A reflection stream, opened on first use.
pub(crate) struct Reflection {
    channel: Channel,
    metadata: Metadata,
    timeout: Option<Duration>,
    stream: Option<(
        mpsc::Sender<ServerReflectionRequest>,
        Streaming<ServerReflectionResponse>,
    )>,
    files: BTreeMap<String, FileDescriptorProto>,
}

const V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
// The same messages on the wire, under the older name.
const V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

impl Reflection {
    async fn open(
        &self,
        path: &'static str,
        first: ServerReflectionRequest,
    ) -> Result<
        (
            mpsc::Sender<ServerReflectionRequest>,
            Streaming<ServerReflectionResponse>,
        ),
        grpc_h3::Status,
    > {
        let (sender, receiver) = mpsc::channel(1);
        sender.try_send(first).expect("a fresh channel has room");
        let mut request = Request::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
        *request.metadata_mut() = self.metadata.clone();
        if let Some(timeout) = self.timeout {
            request.set_timeout(timeout);
        }
        let codec = ProstCodec::<ServerReflectionRequest, ServerReflectionResponse>::default();
        let response = Grpc::new(self.channel.clone())
            .streaming(request, PathAndQuery::from_static(path), codec)
            .await?;
        Ok((sender, response.into_inner()))
    }

    async fn ask(&mut self, question: MessageRequest) -> Result<MessageResponse, Failure> {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(question),
        };
        match &self.stream {
            Some((sender, _)) => sender
                .send(request)
                .await
                .map_err(|_| Failure::usage("the reflection stream ended early"))?,
            None => {
                let opened = match self.open(V1, request.clone()).await {
                    Err(status) if status.code() == Code::Unimplemented => {
                        self.open(V1ALPHA, request).await
                    }
                    other => other,
                };
                self.stream = Some(opened.map_err(|status| {
                    let doing = if status.code() == Code::Unimplemented {
                        "the server has no reflection service: pass its schema with --proto or --protoset"
                    } else {
                        "asking the server's reflection service for the schema"
                    };
                    Failure::from_status(&status).context(doing)
                })?);
            }
        }
        let (_, responses) = self.stream.as_mut().expect("opened above");
        match responses.message().await {
            Ok(Some(response)) => response
                .message_response
                .ok_or_else(|| Failure::usage("the reflection service sent an empty answer")),
            Ok(None) => Err(Failure::usage("the reflection service ended the stream")),
            Err(status) => Err(Failure::from_status(&status).context("reflection")),
        }
    }

    async fn load_symbol(&mut self, symbol: &str) -> Result<(), Failure> {
        let answer = self
            .ask(MessageRequest::FileContainingSymbol(symbol.to_owned()))
            .await?;
        self.add_files(answer, &format!("symbol {symbol:?}"))?;
        // Imports the server did not send along.
        loop {
            let missing: Vec<String> = self
                .files
                .values()
                .flat_map(|f| f.dependency.iter())
                .filter(|d| !self.files.contains_key(*d))
                .cloned()
                .collect();
            let Some(name) = missing.into_iter().next() else {
                return Ok(());
            };
            let answer = self
                .ask(MessageRequest::FileByFilename(name.clone()))
                .await?;
            self.add_files(answer, &format!("file {name:?}"))?;
        }
    }

    fn add_files(&mut self, answer: MessageResponse, what: &str) -> Result<(), Failure> {
        match answer {
            MessageResponse::FileDescriptorResponse(files) => {
                for bytes in files.file_descriptor_proto {
                    let file = FileDescriptorProto::decode(bytes.as_slice()).map_err(|e| {
                        Failure::usage(format!("the server sent a bad descriptor for {what}: {e}"))
                    })?;
                    self.files.insert(file.name().to_owned(), file);
                }
                Ok(())
            }
            MessageResponse::ErrorResponse(e) => Err(Failure::usage(format!(
                "the server does not know {what}: {} ({:?})",
                e.error_message,
                Code::from_i32(e.error_code)
            ))),
            other => Err(unexpected(other)),
        }
    }
}
