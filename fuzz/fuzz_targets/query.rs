#![no_main]
//! libFuzzer entry point of [`berth_fuzz::query`].
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::query(data));
