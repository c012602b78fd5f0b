//! Generates the grpc.testing messages and stubs from the official protos.

fn main() -> std::io::Result<()> {
    grpc_h3_build::compile_protos(&["proto/grpc/testing/test.proto"], &["proto"])
}
