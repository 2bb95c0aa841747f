//! Which language runtime an observed program runs on, from its executable file.
//!
//! It matters for attribution: in a thread-per-request server an OS thread is the context of the
//! request it serves, so an outbound call written by the thread that read an inbound request
//! belongs to that request. In a Go program it is not: goroutines are multiplexed over a few OS
//! threads, and `net/http`'s Transport writes every request from its connection's own goroutine,
//! which the scheduler runs on whichever thread is free. The correlator therefore never
//! attributes by thread in a Go process (see [`Runtime::threads_are_request_context`]).
//!
//! A Go executable is recognised by the sections the Go linker writes into every ELF binary it
//! makes, stripped ones (`-ldflags="-s -w"`) included: `.go.buildinfo` (the build information,
//! with the Go version inline since Go 1.18) and `.note.go.buildid`. ELF parsing is the `object`
//! crate's (it reads only the headers and the sections asked for, through [`ReadCache`]); the
//! build-information header is read here, as Go's `debug/buildinfo` documents it.

use std::fs::File;
use std::path::Path;

use object::read::ReadCache;
use object::{Object, ObjectSection, ReadRef};

/// The runtime of a program, as far as attribution is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Runtime {
    /// Built by the Go toolchain; the version (`go1.22.2`) when the binary records it inline.
    Go { version: Option<String> },
    /// Anything else, or not known (the executable could not be read).
    #[default]
    Other,
}

impl Runtime {
    pub fn is_go(&self) -> bool {
        matches!(self, Runtime::Go { .. })
    }

    /// Whether the OS thread that reads a request runs that request's code, so that a write by
    /// the same thread is evidence for it. False for Go (goroutines share threads).
    pub fn threads_are_request_context(&self) -> bool {
        !self.is_go()
    }

    /// `process.runtime.name` (OpenTelemetry semantic conventions), when known.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Runtime::Go { .. } => Some("go"),
            Runtime::Other => None,
        }
    }

    /// `process.runtime.version`, when known.
    pub fn version(&self) -> Option<&str> {
        match self {
            Runtime::Go { version } => version.as_deref(),
            Runtime::Other => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not an ELF file the observer can read: {source}")]
    Parse {
        path: String,
        source: object::read::Error,
    },
}

/// The runtime of the executable at `path` (e.g. `/proc/PID/exe`). Reads only the ELF header,
/// the section headers and, for a Go binary, its build information.
pub fn of_file(path: &Path) -> Result<Runtime, RuntimeError> {
    let file = File::open(path).map_err(|source| RuntimeError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let cache = ReadCache::new(file);
    of_elf(&cache).map_err(|source| RuntimeError::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// The runtime of an ELF image (whole in memory, or read on demand through a [`ReadCache`]).
pub fn of_elf<'d, R: ReadRef<'d>>(data: R) -> Result<Runtime, object::read::Error> {
    let elf = object::File::parse(data)?;
    if let Some(info) = elf.section_by_name(".go.buildinfo") {
        // A section that cannot be read still says "Go"; only the version is lost.
        let version = info.data().ok().and_then(go_version);
        return Ok(Runtime::Go { version });
    }
    if elf.section_by_name(".note.go.buildid").is_some() {
        return Ok(Runtime::Go { version: None });
    }
    Ok(Runtime::Other)
}

/// The magic that starts Go's build information (`debug/buildinfo`).
const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";
/// The header before the inline strings: magic, pointer size, flags, padding to 32 bytes.
const BUILDINFO_HEADER: usize = 32;
/// Flag: the version and module strings follow the header inline (Go 1.18 and later).
const FLAG_VERSION_INLINE: u8 = 2;
/// The header sits at a 16-byte boundary within the first bytes of the section.
const BUILDINFO_ALIGN: usize = 16;
const BUILDINFO_SEARCH: usize = 64 * 1024;
/// Longer "versions" are not versions (`go1.22.2`, `devel go1.23-abcdef ...`).
const MAX_VERSION: usize = 128;

/// The Go version recorded inline in a `.go.buildinfo` section; `None` for builds before Go 1.18
/// (the version is behind pointers there) and for anything malformed.
pub fn go_version(section: &[u8]) -> Option<String> {
    let window = &section[..section.len().min(BUILDINFO_SEARCH)];
    let at = (0..window.len())
        .step_by(BUILDINFO_ALIGN)
        .find(|&i| window[i..].starts_with(BUILDINFO_MAGIC))?;
    let header = section.get(at..at + BUILDINFO_HEADER)?;
    let flags = header[BUILDINFO_MAGIC.len() + 1];
    if flags & FLAG_VERSION_INLINE == 0 {
        return None;
    }
    let rest = &section[at + BUILDINFO_HEADER..];
    let (len, used) = uvarint(rest)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l > 0 && l <= MAX_VERSION)?;
    let text = std::str::from_utf8(rest.get(used..used.checked_add(len)?)?).ok()?;
    let looks_right = (text.starts_with("go") || text.starts_with("devel"))
        && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    looks_right.then(|| text.to_owned())
}

/// An unsigned LEB128 value (Go's `binary.Uvarint`) and the bytes it took; `None` when the bytes
/// end first or it does not fit 64 bits.
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        let part = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return None;
        }
        v |= part << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
