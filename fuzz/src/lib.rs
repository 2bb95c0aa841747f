//! Shared code of the fuzz targets in `fuzz_targets/`: the input formats (read by the targets,
//! written by the seed generator `examples/gen_seeds/`) and the invariants checked on every
//! input. Each target is a thin wrapper around one `check` function here.
//!
//! * [`records`]: ring-buffer records into `capture::record::decode`, as raw bytes and as
//!   structured records laid out independently of `record::raw`;
//! * [`script`]: a byte script of kernel records (data in both directions, connect, accept,
//!   close, fork, exits, drop checks) built with `record::raw` + `record::decode` and fed through
//!   `pipeline::Pipeline` with a fake `ProcView`;
//! * [`headers`]: header name/value pairs into `tracectx::TraceContext::from_headers`.

pub mod headers;
pub mod records;
pub mod script;

/// Reads a fuzz input front to back; past its end every read yields zeros / nothing, so any byte
/// string is a valid input.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.buf.split_first() {
            Some((&b, rest)) => {
                self.buf = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.buf.split_at(n.min(self.buf.len()));
        self.buf = rest;
        head
    }
}
