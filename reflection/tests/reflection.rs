//! Reflection over real calls, HTTP/3 and HTTP/2 on loopback, v1 and
//! v1alpha: list, files by name and by every kind of symbol with their
//! imports, extensions, and in-stream errors that leave the stream open.

use std::collections::BTreeSet;

use grpc_h3::server::Server;
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Transport};
use grpc_h3_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use grpc_h3_reflection::pb::v1::server_reflection_request::MessageRequest;
use grpc_h3_reflection::pb::v1::server_reflection_response::MessageResponse;
use grpc_h3_reflection::pb::v1::{ExtensionRequest, ServerReflectionRequest};
use grpc_h3_reflection::pb::v1alpha;
use prost::Message;

fn shapes() -> prost_types::FileDescriptorSet {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proto");
    grpc_h3_build::descriptor_set(&[format!("{dir}/shapes.proto")], &[dir]).unwrap()
}

async fn serve(transport: Transport) -> (Channel, tokio::sync::oneshot::Sender<()>) {
    let reflection = grpc_h3_reflection::Builder::new()
        .register_file_descriptor_set(shapes())
        .register_encoded_file_descriptor_set(grpc_h3_health::pb::FILE_DESCRIPTOR_SET)
        .build()
        .unwrap();
    let cert = DevCertificate::localhost().unwrap();
    let bound = Server::builder()
        .tls_identity(cert.cert_pem(), cert.key_pem())
        .add_service(reflection.v1())
        .add_service(reflection.v1alpha())
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let port = bound.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve_with_shutdown(async {
        let _ = stopped.await;
    }));
    let channel = Channel::builder(format!("https://localhost:{port}"))
        .tls_config(ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
        .transport(transport)
        .build()
        .unwrap();
    (channel, stop)
}

/// Asks every question on one stream, in order, and returns the answers.
async fn ask(channel: &Channel, questions: Vec<MessageRequest>) -> Vec<MessageResponse> {
    let client = ServerReflectionClient::new(channel.clone());
    let requests = questions.iter().cloned().map(|q| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(q),
    });
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests.collect::<Vec<_>>()))
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        assert_eq!(
            answer.original_request.unwrap().message_request.as_ref(),
            Some(&questions[out.len()])
        );
        out.push(answer.message_response.unwrap());
    }
    assert_eq!(out.len(), questions.len());
    out
}

fn file_names(answer: &MessageResponse) -> Vec<String> {
    match answer {
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

async fn answers_every_question(transport: Transport) {
    let (channel, _stop) = serve(transport).await;
    let answers = ask(
        &channel,
        vec![
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileByFilename("shapes.proto".into()),
            MessageRequest::FileContainingSymbol("shapes.Canvas.Draw".into()),
            MessageRequest::FileContainingSymbol("shapes.Drawing.Stroke.Style".into()),
            MessageRequest::FileContainingSymbol("no.such.Symbol".into()),
            MessageRequest::FileContainingExtension(ExtensionRequest {
                containing_type: "shapes.base.Shape".into(),
                extension_number: 101,
            }),
            MessageRequest::AllExtensionNumbersOfType("shapes.base.Shape".into()),
            MessageRequest::FileByFilename("shapes_base.proto".into()),
        ],
    )
    .await;
    match &answers[0] {
        MessageResponse::ListServicesResponse(list) => {
            let names: BTreeSet<_> = list.service.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(
                names,
                BTreeSet::from([
                    "grpc.health.v1.Health",
                    "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection",
                    "shapes.Canvas",
                ])
            );
        }
        other => panic!("{other:?}"),
    }
    let with_import = ["shapes.proto", "shapes_base.proto"];
    assert_eq!(file_names(&answers[1]), with_import);
    assert_eq!(file_names(&answers[2]), with_import);
    assert_eq!(file_names(&answers[3]), with_import);
    match &answers[4] {
        MessageResponse::ErrorResponse(e) => {
            assert_eq!(e.error_code, grpc_h3::Code::NotFound as i32);
            assert!(e.error_message.contains("no.such.Symbol"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(file_names(&answers[5]), with_import);
    match &answers[6] {
        MessageResponse::AllExtensionNumbersResponse(numbers) => {
            let mut found = numbers.extension_number.clone();
            found.sort();
            assert_eq!(found, [100, 101]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(file_names(&answers[7]), ["shapes_base.proto"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_every_question_over_http3() {
    answers_every_question(Transport::Http3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_every_question_over_http2() {
    answers_every_question(Transport::Http2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1alpha_answers_like_v1() {
    let (channel, _stop) = serve(Transport::Http3).await;
    let client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "grpc.health.v1.Health".into(),
            ),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    match answer.message_response.unwrap() {
        v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files) => {
            let file =
                prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..])
                    .unwrap();
            assert_eq!(file.name(), "grpc/health/v1/health.proto");
        }
        other => panic!("{other:?}"),
    }
    assert!(answers.message().await.unwrap().is_none());
}

#[test]
fn conflicting_descriptors_are_refused_with_the_reason() {
    let mut broken = shapes();
    broken.file.retain(|f| f.name() != "shapes_base.proto");
    let err = grpc_h3_reflection::Builder::new()
        .register_file_descriptor_set(broken)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("shapes_base.proto"), "{err}");
    let err = grpc_h3_reflection::Builder::new()
        .register_encoded_file_descriptor_set(b"\xff\xff")
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an encoded FileDescriptorSet"), "{err}");
}
