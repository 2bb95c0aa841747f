//! HTTP/1.x: head parsing and per-connection reassembly and pairing (both pure).
pub mod head;
pub mod table;
pub mod tracker;
