//! Arbitrary bytes as one ring-buffer record into `capture::record::decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| observer_fuzz::records::check_bytes(data));
