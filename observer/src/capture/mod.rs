//! Kernel side glue: the hooks, preflight checks, loading and attaching, and decoding of
//! ring-buffer records.
pub mod hooks;
pub mod loader;
pub mod pace;
pub mod preflight;
pub mod reader;
pub mod record;
