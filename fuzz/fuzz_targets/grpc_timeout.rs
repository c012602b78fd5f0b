//! libFuzzer entry point for [`grpc_h3_fuzz::grpc_timeout`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| grpc_h3_fuzz::grpc_timeout(data));
