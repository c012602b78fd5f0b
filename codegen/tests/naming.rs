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

#[test]
fn each_method_carries_its_idempotency_level_into_the_call() {
    use prost_types::method_options::IdempotencyLevel;
    let mut fds = descriptor_set();
    let methods = &mut fds.file[0].service[0].method;
    let level = |level: IdempotencyLevel| {
        Some(prost_types::MethodOptions {
            idempotency_level: Some(level as i32),
            ..Default::default()
        })
    };
    methods[0].options = level(IdempotencyLevel::Idempotent);
    methods[1].options = level(IdempotencyLevel::NoSideEffects);
    let files = generate(&fds, &["kw/inner/kw.proto".into()], &Options::default()).unwrap();
    let code = &files[0].content;
    let body_of = |name: &str| {
        let start = code
            .find(name)
            .unwrap_or_else(|| panic!("no {name} in:\n{code}"));
        let end = code[start..].find("\n        }").unwrap() + start;
        &code[start..end]
    };
    assert!(body_of("pub async fn r#type(").contains("Idempotency::Idempotent"));
    assert!(body_of("pub async fn self_(").contains("Idempotency::NoSideEffects"));
    assert!(!body_of("pub async fn r#match(").contains("Idempotency"));
    syn::parse_file(code).unwrap();
}
