//! Generates the bench service twice from one descriptor set: grpc-h3 with
//! grpc-h3-build, tonic with tonic-prost-build.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let fds_path = out.join("bench.fds");
    std::fs::create_dir_all(out.join("h3"))?;
    std::fs::create_dir_all(out.join("tonic"))?;
    grpc_h3_build::configure()
        .out_dir(out.join("h3"))
        .file_descriptor_set_path(&fds_path)
        .compile_protos(&["proto/bench.proto"], &["proto"])?;
    let fds = prost::Message::decode(std::fs::read(&fds_path)?.as_slice())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    tonic_prost_build::configure()
        .build_transport(false)
        .out_dir(out.join("tonic"))
        .compile_fds(fds)
}
