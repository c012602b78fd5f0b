//! The bench service, generated for both stacks from one descriptor set.

/// grpc-h3's generated code.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub(crate) mod h3 {
    include!(concat!(env!("OUT_DIR"), "/h3/bench.rs"));
}

/// tonic's generated code.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub(crate) mod tonic {
    include!(concat!(env!("OUT_DIR"), "/tonic/bench.rs"));
}
