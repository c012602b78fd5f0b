//! libFuzzer entry point for [`grpc_h3_fuzz::http3_frames`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| grpc_h3_fuzz::http3_frames(data));
