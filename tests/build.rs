//! Generates the grpc.testing messages and stubs from the official protos:
//! grpc-h3's, and tonic's from the same descriptors (the tonic interop
//! tests run tonic's client and server against ours).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let fds_path = out.join("grpc.testing.fds");
    grpc_h3_build::configure()
        .file_descriptor_set_path(&fds_path)
        .compile_protos(&["proto/grpc/testing/test.proto"], &["proto"])?;
    let fds = prost::Message::decode(std::fs::read(&fds_path)?.as_slice())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let tonic_out = out.join("tonic");
    std::fs::create_dir_all(&tonic_out)?;
    tonic_prost_build::configure()
        .build_transport(true)
        .out_dir(&tonic_out)
        .compile_fds(fds)?;

    // helloworld, as a tonic user has it (docs/migrating-from-tonic.md).
    let hello_fds = out.join("helloworld.fds");
    std::fs::create_dir_all(out.join("hello-h3"))?;
    grpc_h3_build::configure()
        .out_dir(out.join("hello-h3"))
        .file_descriptor_set_path(&hello_fds)
        .compile_protos(
            &["../examples/proto/helloworld/helloworld.proto"],
            &["../examples/proto"],
        )?;
    let fds = prost::Message::decode(std::fs::read(&hello_fds)?.as_slice())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    tonic_prost_build::configure()
        .build_transport(true)
        .out_dir(&tonic_out)
        .compile_fds(fds)
}
