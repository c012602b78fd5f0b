//! Answers reflection requests from a descriptor pool: no I/O, one
//! response per request.

use std::collections::HashSet;

use grpc_h3::Code;
use prost::Message;
use prost_reflect::{DescriptorPool, FileDescriptor};

use crate::pb::v1::server_reflection_request::MessageRequest;
use crate::pb::v1::server_reflection_response::MessageResponse;
use crate::pb::v1::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};

/// The schema a reflection service describes.
#[derive(Debug)]
pub(crate) struct Index {
    pool: DescriptorPool,
}

impl Index {
    pub(crate) fn new(pool: DescriptorPool) -> Index {
        Index { pool }
    }

    /// The response to one request, errors included (reflection reports
    /// them in the stream, which stays open).
    pub(crate) fn answer(&self, request: ServerReflectionRequest) -> ServerReflectionResponse {
        let message_response = match &request.message_request {
            Some(MessageRequest::ListServices(_)) => self.list_services(),
            Some(MessageRequest::FileByFilename(name)) => match self.pool.get_file_by_name(name) {
                Some(file) => with_dependencies(file),
                None => error(Code::NotFound, format!("no file named {name:?}")),
            },
            Some(MessageRequest::FileContainingSymbol(symbol)) => {
                match self.file_of_symbol(symbol) {
                    Some(file) => with_dependencies(file),
                    None => error(Code::NotFound, format!("no symbol named {symbol:?}")),
                }
            }
            Some(MessageRequest::FileContainingExtension(extension)) => {
                let found = self
                    .pool
                    .get_message_by_name(trim(&extension.containing_type))
                    .and_then(|message| {
                        let number = u32::try_from(extension.extension_number).ok()?;
                        message.get_extension(number)
                    });
                match found {
                    Some(extension) => with_dependencies(extension.parent_file()),
                    None => error(
                        Code::NotFound,
                        format!(
                            "no extension {} of {:?}",
                            extension.extension_number, extension.containing_type
                        ),
                    ),
                }
            }
            Some(MessageRequest::AllExtensionNumbersOfType(name)) => {
                match self.pool.get_message_by_name(trim(name)) {
                    Some(message) => {
                        MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                            base_type_name: message.full_name().to_owned(),
                            extension_number: message
                                .extensions()
                                .map(|e| e.number() as i32)
                                .collect(),
                        })
                    }
                    None => error(Code::NotFound, format!("no message type named {name:?}")),
                }
            }
            None => error(
                Code::InvalidArgument,
                "the request names no question (message_request is unset)".to_owned(),
            ),
        };
        ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(message_response),
        }
    }

    fn list_services(&self) -> MessageResponse {
        let mut names: Vec<String> = self
            .pool
            .services()
            .map(|s| s.full_name().to_owned())
            .collect();
        names.sort();
        MessageResponse::ListServicesResponse(ListServiceResponse {
            service: names
                .into_iter()
                .map(|name| ServiceResponse { name })
                .collect(),
        })
    }

    /// The file defining a service, method, message, field, enum, enum
    /// value or extension.
    fn file_of_symbol(&self, symbol: &str) -> Option<FileDescriptor> {
        let symbol = trim(symbol);
        let pool = &self.pool;
        if let Some(service) = pool.get_service_by_name(symbol) {
            return Some(service.parent_file());
        }
        if let Some(message) = pool.get_message_by_name(symbol) {
            return Some(message.parent_file());
        }
        if let Some(enumeration) = pool.get_enum_by_name(symbol) {
            return Some(enumeration.parent_file());
        }
        if let Some(extension) = pool.get_extension_by_name(symbol) {
            return Some(extension.parent_file());
        }
        let (parent, member) = symbol.rsplit_once('.')?;
        if let Some(service) = pool.get_service_by_name(parent) {
            return service
                .methods()
                .find(|m| m.name() == member)
                .map(|_| service.parent_file());
        }
        if let Some(message) = pool.get_message_by_name(parent) {
            let found = message.get_field_by_name(member).is_some()
                || message.oneofs().any(|o| o.name() == member);
            return found.then(|| message.parent_file());
        }
        // Enum values are scoped next to their enum: `pkg.VALUE`.
        pool.all_enums()
            .find(|e| {
                e.full_name().rsplit_once('.').map(|(scope, _)| scope) == Some(parent)
                    && e.get_value_by_name(member).is_some()
            })
            .map(|e| e.parent_file())
    }
}

fn trim(name: &str) -> &str {
    name.strip_prefix('.').unwrap_or(name)
}

/// `file` and every file it imports, transitively, each once, the asked
/// file first: tools resolve a file's imports from the same response.
fn with_dependencies(file: FileDescriptor) -> MessageResponse {
    let mut seen = HashSet::new();
    let mut pending = vec![file];
    let mut encoded = Vec::new();
    while let Some(file) = pending.pop() {
        if !seen.insert(file.name().to_owned()) {
            continue;
        }
        encoded.push(file.file_descriptor_proto().encode_to_vec());
        pending.extend(file.dependencies());
    }
    MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
        file_descriptor_proto: encoded,
    })
}

fn error(code: Code, message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(ErrorResponse {
        error_code: code as i32,
        error_message: message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1::ExtensionRequest;

    fn index() -> Index {
        let mut pool = DescriptorPool::new();
        pool.decode_file_descriptor_set(crate::pb::v1::FILE_DESCRIPTOR_SET)
            .unwrap();
        Index::new(pool)
    }

    fn ask(index: &Index, request: MessageRequest) -> MessageResponse {
        let response = index.answer(ServerReflectionRequest {
            host: "h".into(),
            message_request: Some(request.clone()),
        });
        assert_eq!(response.valid_host, "h");
        assert_eq!(
            response.original_request.unwrap().message_request,
            Some(request)
        );
        response.message_response.unwrap()
    }

    fn files(response: MessageResponse) -> Vec<String> {
        match response {
            MessageResponse::FileDescriptorResponse(files) => files
                .file_descriptor_proto
                .iter()
                .map(|b| {
                    prost_types::FileDescriptorProto::decode(&b[..])
                        .unwrap()
                        .name()
                        .to_owned()
                })
                .collect(),
            other => panic!("expected files, got {other:?}"),
        }
    }

    fn error_code(response: MessageResponse) -> i32 {
        match response {
            MessageResponse::ErrorResponse(e) => e.error_code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_of_symbol_leads_to_its_file() {
        let index = index();
        for symbol in [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1.ServerReflection.ServerReflectionInfo",
            ".grpc.reflection.v1.ServerReflectionRequest",
            "grpc.reflection.v1.ServerReflectionRequest.host",
            "grpc.reflection.v1.ServerReflectionRequest.message_request",
            "grpc.reflection.v1.ErrorResponse",
        ] {
            let response = ask(&index, MessageRequest::FileContainingSymbol(symbol.into()));
            assert_eq!(
                files(response),
                ["grpc/reflection/v1/reflection.proto"],
                "{symbol}"
            );
        }
        for missing in [
            "grpc.reflection.v1.Nope",
            "grpc.reflection.v1.ServerReflection.Nope",
            "",
        ] {
            let response = ask(&index, MessageRequest::FileContainingSymbol(missing.into()));
            assert_eq!(error_code(response), Code::NotFound as i32, "{missing}");
        }
    }

    #[test]
    fn lists_services_and_reports_unknown_files_and_extensions_in_the_stream() {
        let index = index();
        match ask(&index, MessageRequest::ListServices(String::new())) {
            MessageResponse::ListServicesResponse(list) => assert_eq!(
                list.service
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
                ["grpc.reflection.v1.ServerReflection"]
            ),
            other => panic!("{other:?}"),
        }
        let response = ask(&index, MessageRequest::FileByFilename("nope.proto".into()));
        assert_eq!(error_code(response), Code::NotFound as i32);
        let response = ask(
            &index,
            MessageRequest::FileContainingExtension(ExtensionRequest {
                containing_type: "grpc.reflection.v1.ErrorResponse".into(),
                extension_number: 100,
            }),
        );
        assert_eq!(error_code(response), Code::NotFound as i32);
        match ask(
            &index,
            MessageRequest::AllExtensionNumbersOfType("grpc.reflection.v1.ErrorResponse".into()),
        ) {
            MessageResponse::AllExtensionNumbersResponse(numbers) => {
                assert_eq!(numbers.base_type_name, "grpc.reflection.v1.ErrorResponse");
                assert!(numbers.extension_number.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let unset = index.answer(ServerReflectionRequest::default());
        assert_eq!(
            error_code(unset.message_response.unwrap()),
            Code::InvalidArgument as i32
        );
    }
}
