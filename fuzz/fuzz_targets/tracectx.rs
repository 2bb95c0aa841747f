//! Header name/value pairs (see `observer_fuzz::headers`) into `TraceContext::from_headers`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| observer_fuzz::headers::run(data));
