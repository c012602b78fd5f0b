//! `protoc-gen-grpc-h3`: a protoc plugin that writes one `.rs` file per
//! protobuf package, holding the prost messages and the grpc-h3 clients and
//! servers.
//!
//! ```sh
//! protoc --plugin=protoc-gen-grpc-h3=target/release/protoc-gen-grpc-h3 \
//!        --grpc-h3_out=src/gen --grpc-h3_opt=server=false -I proto proto/helloworld.proto
//! ```
//!
//! Every failure, including an unreadable request, is reported through the
//! response's `error` field, which protoc prints.

use std::io::{Read, Write};
use std::process::ExitCode;

use prost::Message;
use prost_types::compiler::code_generator_response::{Feature, File};
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};
use prost_types::FileDescriptorSet;

fn respond(input: &[u8]) -> Result<Vec<File>, String> {
    let request = CodeGeneratorRequest::decode(input).map_err(|e| {
        format!("cannot decode a CodeGeneratorRequest from stdin ({e}); run this plugin through protoc --grpc-h3_out=DIR")
    })?;
    let options = grpc_h3_codegen::Options::from_plugin_parameter(request.parameter())
        .map_err(|e| e.to_string())?;
    let fds = FileDescriptorSet {
        file: request.proto_file,
    };
    let files = grpc_h3_codegen::generate(&fds, &request.file_to_generate, &options)
        .map_err(|e| e.to_string())?;
    Ok(files
        .into_iter()
        .map(|f| File {
            name: Some(f.name),
            content: Some(f.content),
            ..Default::default()
        })
        .collect())
}

fn main() -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("protoc-gen-grpc-h3: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let mut response = CodeGeneratorResponse {
        supported_features: Some(Feature::Proto3Optional as u64),
        ..Default::default()
    };
    match respond(&input) {
        Ok(files) => response.file = files,
        Err(error) => response.error = Some(error),
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(&response.encode_to_vec())
        .and_then(|()| stdout.flush())
    {
        eprintln!("protoc-gen-grpc-h3: cannot write the response: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
