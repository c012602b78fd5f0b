//! Example services for grpc-h3, generated from `proto/` by `build.rs`,
//! with their implementations. The binaries in `src/bin` run them.

/// The README's Rust snippets, compiled (and run, unless marked `no_run`)
/// as doctests of this crate, which has the `helloworld` package they
/// include. A change that breaks a README snippet fails `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub mod greeter;
pub mod local;
pub mod route_guide;
pub mod user_service;

/// Generated from `proto/helloworld/helloworld.proto`.
#[allow(missing_docs, unreachable_pub)]
pub mod helloworld {
    grpc_h3::include_proto!("helloworld");
}

/// Generated from `proto/routeguide/route_guide.proto`.
#[allow(missing_docs, unreachable_pub)]
pub mod routeguide {
    grpc_h3::include_proto!("routeguide");
}

/// Generated from `proto/user/v1/user.proto`.
#[allow(missing_docs, unreachable_pub)]
pub mod user {
    /// Version 1 of the user API.
    pub mod v1 {
        grpc_h3::include_proto!("user.v1");
    }
}
