#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| openbits_fuzz_targets::upload_server(data));
