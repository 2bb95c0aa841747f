//! Structured records (every kind, known and unknown syscalls and families, padding, cuts,
//! damaged lengths) laid out at the ABI offsets, checked against the outcome they must have.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer_fuzz::records::{Spec, check_spec};

fuzz_target!(|spec: Spec| check_spec(&spec));
