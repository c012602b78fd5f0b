//! Generates the example services with grpc-h3-build: no protoc install
//! needed.

fn main() -> std::io::Result<()> {
    grpc_h3_build::compile_protos(
        &[
            "proto/helloworld/helloworld.proto",
            "proto/routeguide/route_guide.proto",
            "proto/user/v1/user.proto",
        ],
        &["proto"],
    )
}
