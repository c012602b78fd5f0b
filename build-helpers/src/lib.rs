//! build.rs integration for grpc-h3.
//!
//! Not implemented yet: tracked by the code-generation issue. This crate is an
//! empty placeholder so the workspace layout is in place.
