#![no_main]
//! libFuzzer entry point of [`berth_fuzz::taskdef`].
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::taskdef(data));
