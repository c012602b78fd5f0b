//! Code generator for grpc-h3 service stubs.
//!
//! Not implemented yet: the generator is tracked by the code-generation issue.
//! This crate is an empty placeholder so the workspace layout is in place.
