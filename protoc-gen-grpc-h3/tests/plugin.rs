//! The plugin, run by a real protoc: same code as the build.rs helper, and
//! clear errors for input it cannot handle.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prost::Message;
use prost_types::compiler::CodeGeneratorResponse;

const PLUGIN: &str = env!("CARGO_BIN_EXE_protoc-gen-grpc-h3");

fn examples_proto() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proto")
}

const EXAMPLE_PROTOS: [&str; 3] = [
    "helloworld/helloworld.proto",
    "routeguide/route_guide.proto",
    "user/v1/user.proto",
];

/// A fresh directory under the target dir, removed first if it exists.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn protoc() -> Command {
    let mut command = Command::new(protoc_bin_vendored::protoc_bin_path().unwrap());
    command.arg(format!("--plugin=protoc-gen-grpc-h3={PLUGIN}"));
    command.arg(format!(
        "-I{}",
        protoc_bin_vendored::include_path().unwrap().display()
    ));
    command
}

fn read_dir_sorted(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn plugin_and_build_rs_generate_identical_code() {
    let plugin_out = scratch("plugin-out");
    let status = protoc()
        .arg(format!("--grpc-h3_out={}", plugin_out.display()))
        .arg(format!("-I{}", examples_proto().display()))
        .args(EXAMPLE_PROTOS.map(|p| examples_proto().join(p)))
        .status()
        .unwrap();
    assert!(status.success());

    let build_out = scratch("build-out");
    let protos = EXAMPLE_PROTOS.map(|p| examples_proto().join(p));
    grpc_h3_build::configure()
        .out_dir(&build_out)
        .emit_rerun_if_changed(false)
        .compile_protos(&protos, &[examples_proto()])
        .unwrap();

    let from_plugin = read_dir_sorted(&plugin_out);
    let from_build = read_dir_sorted(&build_out);
    let names: Vec<&str> = from_plugin.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["helloworld.rs", "routeguide.rs", "user.v1.rs"]);
    assert_eq!(from_plugin, from_build);
    // The examples crate compiles the build.rs output (and its tests run
    // it), so the identical plugin output compiles too.
}

#[test]
fn options_select_what_is_generated() {
    let out = scratch("options-out");
    let status = protoc()
        .arg(format!("--grpc-h3_out={}", out.display()))
        .arg("--grpc-h3_opt=server=false,messages=false")
        .arg(format!("-I{}", examples_proto().display()))
        .arg(examples_proto().join("helloworld/helloworld.proto"))
        .status()
        .unwrap();
    assert!(status.success());
    let code = std::fs::read_to_string(out.join("helloworld.rs")).unwrap();
    assert!(code.contains("pub mod greeter_client"));
    assert!(!code.contains("greeter_server"));
    assert!(
        !code.contains("::prost::Message"),
        "messages=false leaves messages out"
    );
}

fn write_proto(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_proto_the_generator_cannot_handle_is_reported_with_file_and_element() {
    let dir = scratch("bad-proto");
    let proto = write_proto(
        &dir,
        "clash.proto",
        "syntax = \"proto3\";\npackage clash;\nmessage M {}\n\
         service Svc {\n  rpc GetItem(M) returns (M);\n  rpc Get_Item(M) returns (M);\n}\n",
    );
    let output = protoc()
        .arg(format!("--grpc-h3_out={}", dir.display()))
        .arg(format!("-I{}", dir.display()))
        .arg(&proto)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("clash.proto: service clash.Svc, method Get_Item: methods GetItem and Get_Item would both become fn get_item"),
        "{stderr}"
    );

    // The same through build.rs.
    let err = grpc_h3_build::configure()
        .out_dir(dir.join("out"))
        .emit_rerun_if_changed(false)
        .compile_protos(&[&proto], &[&dir])
        .unwrap_err();
    assert!(
        err.to_string().contains("would both become fn get_item"),
        "{err}"
    );
}

#[test]
fn unknown_options_are_reported() {
    let dir = scratch("bad-option");
    let output = protoc()
        .arg(format!("--grpc-h3_out={}", dir.display()))
        .arg("--grpc-h3_opt=colour=blue")
        .arg(format!("-I{}", examples_proto().display()))
        .arg(examples_proto().join("helloworld/helloworld.proto"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown option \"colour=blue\""),
        "{stderr}"
    );
}

#[test]
fn a_broken_request_is_answered_with_an_error_not_a_panic() {
    let mut child = Command::new(PLUGIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\xff\xff\xff not protobuf")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "errors travel in the response");
    let response = CodeGeneratorResponse::decode(output.stdout.as_slice()).unwrap();
    assert!(
        response
            .error()
            .contains("cannot decode a CodeGeneratorRequest"),
        "{}",
        response.error()
    );
    assert!(response.file.is_empty());
    assert_eq!(
        response.supported_features(),
        1,
        "proto3 optional is declared"
    );
}

#[test]
fn a_syntax_error_names_the_file_through_build_rs() {
    let dir = scratch("syntax-error");
    let proto = write_proto(&dir, "broken.proto", "syntax = \"proto3\";\nmessage {\n");
    let err = grpc_h3_build::configure()
        .out_dir(dir.join("out"))
        .emit_rerun_if_changed(false)
        .compile_protos(&[&proto], &[&dir])
        .unwrap_err();
    assert!(err.to_string().contains("broken.proto"), "{err}");
}
