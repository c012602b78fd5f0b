//! Interop and conformance suites for grpc-h3.
//!
//! Empty until the interop issue; the runtime's own end-to-end tests live in
//! `runtime/tests/`.
