#![no_main]
//! libFuzzer entry point of [`berth_fuzz::pattern`].
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::pattern(data));
