//! Examples for grpc-h3.
//!
//! The examples (helloworld, demo, route guide, user service) arrive with the
//! code generator; this crate is an empty placeholder until then.
