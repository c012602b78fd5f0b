//! libFuzzer entry point for [`grpc_h3_fuzz::status`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| grpc_h3_fuzz::status(data));
