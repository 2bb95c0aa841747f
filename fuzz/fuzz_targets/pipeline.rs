//! A script of kernel records (see `observer_fuzz::script`) through the whole pipeline.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    observer_fuzz::script::run(data);
});
