//! Names that are Rust keywords, nested packages and empty services.

use grpc_h3_codegen::{generate, Options};
use prost_types::{
    DescriptorProto, FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto,
    ServiceDescriptorProto,
};

fn method(name: &str, server_streaming: bool) -> MethodDescriptorProto {
    MethodDescriptorProto {
        name: Some(name.into()),
        input_type: Some(".kw.inner.Msg".into()),
        output_type: Some(".kw.inner.Msg".into()),
        server_streaming: Some(server_streaming),
        ..Default::default()
    }
}

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("kw/inner/kw.proto".into()),
            package: Some("kw.inner".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Msg".into()),
                ..Default::default()
            }],
            service: vec![
                ServiceDescriptorProto {
                    name: Some("Loop".into()),
                    method: vec![
                        method("Type", false),
                        method("Self", true),
                        method("Match", false),
                    ],
                    ..Default::default()
                },
                ServiceDescriptorProto {
                    name: Some("Nothing".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
    }
}

#[test]
fn keywords_are_escaped_and_the_file_is_named_after_the_package() {
    let files = generate(
        &descriptor_set(),
        &["kw/inner/kw.proto".into()],
        &Options::default(),
    )
    .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "kw.inner.rs");
    let code = &files[0].content;
    for expected in [
        "pub async fn r#type(",
        "pub async fn self_(",
        "pub async fn r#match(",
        "type SelfStream:",
        "\"/kw.inner.Loop/Type\"",
        "pub mod loop_client",
        "pub mod nothing_server",
        "pub trait Nothing: Send + Sync + 'static {}",
    ] {
        assert!(code.contains(expected), "missing {expected:?} in:\n{code}");
    }
    // The output is valid Rust.
    syn::parse_file(code).unwrap();
}

#[test]
fn generation_is_deterministic() {
    let fds = descriptor_set();
    let files = ["kw/inner/kw.proto".to_owned()];
    let first = generate(&fds, &files, &Options::default()).unwrap();
    for _ in 0..3 {
        assert_eq!(generate(&fds, &files, &Options::default()).unwrap(), first);
    }
}

#[test]
fn an_unusable_runtime_path_is_an_error() {
    let options = Options {
        runtime_path: "not a path!".into(),
        ..Options::default()
    };
    let err = generate(&descriptor_set(), &["kw/inner/kw.proto".into()], &options).unwrap_err();
    assert!(err.to_string().contains("runtime_path"), "{err}");
}
