//! Decoding of ring-buffer records into safe Rust types.
//!
//! This is the only place where bytes written by the kernel programs are interpreted. Every field
//! is read at its `offset_of!` position in the shared `#[repr(C)]` types with a bounds check;
//! kinds, syscalls and address families are matched against the known constants, never
//! transmuted. A record that does not fit its declared shape is a [`DecodeError`], never a panic.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use observer_common::{
    AF_INET, AF_INET6, AF_UNIX, ConnEvent as RawConn, DataHeader, EventHeader,
    ForkEvent as RawFork, HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_DATA, KIND_EXEC,
    KIND_EXIT, KIND_FORK, KIND_THREAD_EXIT, flags, sys,
};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need} bytes its kind needs")]
    Short { len: usize, need: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("unknown syscall id {0} in a data record")]
    UnknownSyscall(u32),
    #[error("data record claims {claimed} payload bytes but carries {carried}")]
    PayloadLength { claimed: usize, carried: usize },
    #[error("data record claims {0} payload bytes, more than the head budget")]
    PayloadTooLong(usize),
}

/// The syscall that moved the bytes of a data record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syscall {
    Read,
    Readv,
    Recvfrom,
    Recvmsg,
    Write,
    Writev,
    Sendto,
    Sendmsg,
}

impl Syscall {
    fn from_raw(v: u32) -> Result<Self, DecodeError> {
        Ok(match v {
            sys::READ => Syscall::Read,
            sys::READV => Syscall::Readv,
            sys::RECVFROM => Syscall::Recvfrom,
            sys::RECVMSG => Syscall::Recvmsg,
            sys::WRITE => Syscall::Write,
            sys::WRITEV => Syscall::Writev,
            sys::SENDTO => Syscall::Sendto,
            sys::SENDMSG => Syscall::Sendmsg,
            other => return Err(DecodeError::UnknownSyscall(other)),
        })
    }
}

/// Which way the bytes went, seen from the observed process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The process read them.
    Ingress,
    /// The process wrote them.
    Egress,
}

/// Who did it: process, thread and the time (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub pid: u32,
    pub tid: u32,
    pub ts_ns: u64,
}

/// The bytes of a data record: shared from an owned record, or borrowed from the ring buffer for
/// as long as the record is being handled (no copy on the hot path).
#[derive(Clone)]
pub enum Payload<'a> {
    Shared(Bytes),
    Borrowed(&'a [u8]),
}

impl std::ops::Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Shared(b) => b,
            Payload::Borrowed(b) => b,
        }
    }
}

impl PartialEq for Payload<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Payload<'_> {}

impl std::fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.escape_ascii())
    }
}

impl Payload<'_> {
    pub fn into_owned(self) -> Payload<'static> {
        match self {
            Payload::Shared(b) => Payload::Shared(b),
            Payload::Borrowed(b) => Payload::Shared(Bytes::copy_from_slice(b)),
        }
    }
}

/// Bytes moved by one syscall on a connection that start or continue an HTTP head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data<'a> {
    pub origin: Origin,
    pub fd: i32,
    pub direction: Direction,
    pub syscall: Syscall,
    /// The kernel saw the bytes begin like a request or status line.
    pub head_start: bool,
    /// Bytes beyond the head budget were not copied.
    pub capped: bool,
    /// More iovec segments than the kernel walks; bytes were not copied.
    pub iov_cut: bool,
    /// Records of this connection and direction were lost before this one.
    pub lost_before: bool,
    /// Reading the process's memory failed part way.
    pub read_fault: bool,
    /// Bytes the syscall moved (at least `data.len()`).
    pub total_len: u64,
    pub data: Payload<'a>,
}

/// A connection established by `connect` or `accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub origin: Origin,
    pub fd: i32,
    /// Peer address when it is an IP socket and the process passed a sockaddr.
    pub peer: Option<SocketAddr>,
    /// A Unix-domain socket.
    pub unix: bool,
}

/// A decoded ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Data(Data<'a>),
    Connect(Connection),
    Accept(Connection),
    Close {
        origin: Origin,
        fd: i32,
    },
    /// `origin` is the parent thread; `child_tid` the new task (a thread or a process).
    Fork {
        origin: Origin,
        child_tid: u32,
    },
    /// A thread other than the leader exited.
    ThreadExit {
        origin: Origin,
    },
    /// The whole process exited.
    Exit {
        origin: Origin,
    },
    /// The process replaced its program (`execve`).
    Exec {
        origin: Origin,
    },
}

impl Event<'_> {
    /// The same event, owning its bytes.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Data(d) => Event::Data(Data {
                data: d.data.into_owned(),
                ..d
            }),
            Event::Connect(c) => Event::Connect(c),
            Event::Accept(c) => Event::Accept(c),
            Event::Close { origin, fd } => Event::Close { origin, fd },
            Event::Fork { origin, child_tid } => Event::Fork { origin, child_tid },
            Event::ThreadExit { origin } => Event::ThreadExit { origin },
            Event::Exit { origin } => Event::Exit { origin },
            Event::Exec { origin } => Event::Exec { origin },
        }
    }

    pub fn origin(&self) -> Origin {
        match self {
            Event::Data(d) => d.origin,
            Event::Connect(c) | Event::Accept(c) => c.origin,
            Event::Close { origin, .. }
            | Event::Fork { origin, .. }
            | Event::ThreadExit { origin }
            | Event::Exit { origin }
            | Event::Exec { origin } => *origin,
        }
    }
}

fn need(buf: &[u8], n: usize) -> Result<(), DecodeError> {
    if buf.len() < n {
        Err(DecodeError::Short {
            len: buf.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

fn array<const N: usize>(buf: &[u8], at: usize) -> Result<[u8; N], DecodeError> {
    buf.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(DecodeError::Short {
            len: buf.len(),
            need: at + N,
        })
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, DecodeError> {
    array(buf, at).map(u16::from_ne_bytes)
}
fn u32_at(buf: &[u8], at: usize) -> Result<u32, DecodeError> {
    array(buf, at).map(u32::from_ne_bytes)
}
fn i32_at(buf: &[u8], at: usize) -> Result<i32, DecodeError> {
    array(buf, at).map(i32::from_ne_bytes)
}
fn u64_at(buf: &[u8], at: usize) -> Result<u64, DecodeError> {
    array(buf, at).map(u64::from_ne_bytes)
}

/// (kind, origin, fd) from the common head at `base`.
fn header(buf: &[u8], base: usize) -> Result<(u32, Origin, i32), DecodeError> {
    need(buf, base + size_of::<EventHeader>())?;
    let kind = u32_at(buf, base + offset_of!(EventHeader, kind))?;
    let origin = Origin {
        pid: u32_at(buf, base + offset_of!(EventHeader, pid))?,
        tid: u32_at(buf, base + offset_of!(EventHeader, tid))?,
        ts_ns: u64_at(buf, base + offset_of!(EventHeader, ts_ns))?,
    };
    let fd = i32_at(buf, base + offset_of!(EventHeader, fd))?;
    Ok((kind, origin, fd))
}

/// Decodes one owned record (the payload of a data record is shared from it without copying).
pub fn decode(record: impl Into<Bytes>) -> Result<Event<'static>, DecodeError> {
    let record: Bytes = record.into();
    decode_with(&record, |r| Payload::Shared(record.slice(r)))
}

/// Decodes one record in place, e.g. in the ring buffer: the payload borrows from `record`.
pub fn decode_ref(record: &[u8]) -> Result<Event<'_>, DecodeError> {
    decode_with(record, |r| Payload::Borrowed(&record[r]))
}

/// `buf` is the whole record as read from the ring buffer; `payload` takes the data's range.
fn decode_with<'a>(
    buf: &[u8],
    payload: impl FnOnce(std::ops::Range<usize>) -> Payload<'a>,
) -> Result<Event<'a>, DecodeError> {
    let (kind, origin, fd) = header(buf, 0)?;
    match kind {
        KIND_DATA => {
            let hdr_len = size_of::<DataHeader>();
            need(buf, hdr_len)?;
            let fl = u32_at(buf, offset_of!(DataHeader, flags))?;
            let syscall = Syscall::from_raw(u32_at(buf, offset_of!(DataHeader, syscall))?)?;
            let total_len = u64_at(buf, offset_of!(DataHeader, total_len))?;
            let data_len = u32_at(buf, offset_of!(DataHeader, data_len))? as usize;
            if data_len > HEAD_MAX as usize {
                return Err(DecodeError::PayloadTooLong(data_len));
            }
            let carried = buf.len() - hdr_len;
            // The ring buffer pads records to 8 bytes; the payload must be there, padding may follow.
            if carried < data_len {
                return Err(DecodeError::PayloadLength {
                    claimed: data_len,
                    carried,
                });
            }
            let direction = if fl & flags::WRITE != 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            Ok(Event::Data(Data {
                origin,
                fd,
                direction,
                syscall,
                head_start: fl & flags::HEAD_START != 0,
                capped: fl & flags::CAPPED != 0,
                iov_cut: fl & flags::IOV_CUT != 0,
                lost_before: fl & flags::LOST_BEFORE != 0,
                read_fault: fl & flags::READ_FAULT != 0,
                total_len: total_len.max(data_len as u64),
                data: payload(hdr_len..hdr_len + data_len),
            }))
        }
        KIND_CONNECT | KIND_ACCEPT => {
            need(buf, size_of::<RawConn>())?;
            let family = u16_at(buf, offset_of!(RawConn, family))?;
            let port = u16_at(buf, offset_of!(RawConn, port))?;
            let addr: [u8; 16] = array(buf, offset_of!(RawConn, addr))?;
            let peer = match family {
                AF_INET => {
                    let v4 = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
                    Some(SocketAddr::new(IpAddr::V4(v4), port))
                }
                AF_INET6 => Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(addr)), port)),
                _ => None,
            };
            let c = Connection {
                origin,
                fd,
                peer,
                unix: family == AF_UNIX,
            };
            Ok(if kind == KIND_CONNECT {
                Event::Connect(c)
            } else {
                Event::Accept(c)
            })
        }
        KIND_CLOSE => Ok(Event::Close { origin, fd }),
        KIND_FORK => {
            need(buf, size_of::<RawFork>())?;
            let child_tid = u32_at(buf, offset_of!(RawFork, child_tid))?;
            Ok(Event::Fork { origin, child_tid })
        }
        KIND_THREAD_EXIT => Ok(Event::ThreadExit { origin }),
        KIND_EXIT => Ok(Event::Exit { origin }),
        KIND_EXEC => Ok(Event::Exec { origin }),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Builders of raw records, the byte layout the kernel writes: used by tests, benchmarks and
/// fuzzing to produce recorded traffic.
pub mod raw {
    use super::*;

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn put_header(buf: &mut [u8], kind: u32, o: Origin, fd: i32) {
        put(buf, offset_of!(EventHeader, kind), &kind.to_ne_bytes());
        put(buf, offset_of!(EventHeader, pid), &o.pid.to_ne_bytes());
        put(buf, offset_of!(EventHeader, tid), &o.tid.to_ne_bytes());
        put(buf, offset_of!(EventHeader, fd), &fd.to_ne_bytes());
        put(buf, offset_of!(EventHeader, ts_ns), &o.ts_ns.to_ne_bytes());
    }

    /// A data record as the kernel writes it.
    pub fn data(o: Origin, fd: i32, write: bool, head_start: bool, payload: &[u8]) -> Vec<u8> {
        data_with(
            o,
            fd,
            if write { sys::WRITE } else { sys::READ },
            flags_for(write, head_start),
            payload.len() as u64,
            payload,
        )
    }

    pub fn flags_for(write: bool, head_start: bool) -> u32 {
        (if write { flags::WRITE } else { 0 }) | (if head_start { flags::HEAD_START } else { 0 })
    }

    pub fn data_with(
        o: Origin,
        fd: i32,
        syscall: u32,
        fl: u32,
        total: u64,
        payload: &[u8],
    ) -> Vec<u8> {
        let hdr = size_of::<DataHeader>();
        let mut buf = vec![0u8; hdr + payload.len()];
        put_header(&mut buf, KIND_DATA, o, fd);
        put(&mut buf, offset_of!(DataHeader, flags), &fl.to_ne_bytes());
        put(
            &mut buf,
            offset_of!(DataHeader, syscall),
            &syscall.to_ne_bytes(),
        );
        put(
            &mut buf,
            offset_of!(DataHeader, total_len),
            &total.to_ne_bytes(),
        );
        put(
            &mut buf,
            offset_of!(DataHeader, data_len),
            &(payload.len() as u32).to_ne_bytes(),
        );
        put(&mut buf, hdr, payload);
        buf
    }

    pub fn conn(kind: u32, o: Origin, fd: i32, peer: Option<SocketAddr>) -> Vec<u8> {
        let mut buf = vec![0u8; size_of::<RawConn>()];
        put_header(&mut buf, kind, o, fd);
        if let Some(p) = peer {
            put(&mut buf, offset_of!(RawConn, port), &p.port().to_ne_bytes());
            match p.ip() {
                IpAddr::V4(a) => {
                    put(
                        &mut buf,
                        offset_of!(RawConn, family),
                        &AF_INET.to_ne_bytes(),
                    );
                    put(&mut buf, offset_of!(RawConn, addr), &a.octets());
                }
                IpAddr::V6(a) => {
                    put(
                        &mut buf,
                        offset_of!(RawConn, family),
                        &AF_INET6.to_ne_bytes(),
                    );
                    put(&mut buf, offset_of!(RawConn, addr), &a.octets());
                }
            }
        }
        buf
    }

    pub fn simple(kind: u32, o: Origin, fd: i32) -> Vec<u8> {
        let mut buf = vec![0u8; size_of::<EventHeader>()];
        put_header(&mut buf, kind, o, fd);
        buf
    }

    pub fn fork(o: Origin, child_tid: u32) -> Vec<u8> {
        let mut buf = vec![0u8; size_of::<RawFork>()];
        put_header(&mut buf, KIND_FORK, o, -1);
        put(
            &mut buf,
            offset_of!(RawFork, child_tid),
            &child_tid.to_ne_bytes(),
        );
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: Origin = Origin {
        pid: 42,
        tid: 43,
        ts_ns: 1_000,
    };

    #[test]
    fn layouts_match_the_kernel_abi() {
        assert_eq!(size_of::<EventHeader>(), 24);
        assert_eq!(size_of::<DataHeader>(), 48);
        assert_eq!(size_of::<RawConn>(), 48);
        assert_eq!(size_of::<RawFork>(), 32);
    }

    #[test]
    fn data_record_roundtrip() {
        let rec = raw::data(O, 7, true, true, b"GET / HTTP/1.1\r\n\r\n");
        let Event::Data(d) = decode(rec).unwrap() else {
            panic!("not data")
        };
        assert_eq!(d.origin, O);
        assert_eq!(d.fd, 7);
        assert_eq!(d.direction, Direction::Egress);
        assert_eq!(d.syscall, Syscall::Write);
        assert!(d.head_start && !d.capped && !d.lost_before && !d.iov_cut && !d.read_fault);
        assert_eq!(&d.data[..], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(d.total_len, 18);
    }

    #[test]
    fn data_flags_decoded() {
        let fl = flags::CAPPED | flags::IOV_CUT | flags::LOST_BEFORE | flags::READ_FAULT;
        let rec = raw::data_with(O, 3, sys::RECVMSG, fl, 99_999, b"abc");
        let Event::Data(d) = decode(rec).unwrap() else {
            panic!()
        };
        assert_eq!(d.direction, Direction::Ingress);
        assert_eq!(d.syscall, Syscall::Recvmsg);
        assert!(d.capped && d.iov_cut && d.lost_before && d.read_fault && !d.head_start);
        assert_eq!(d.total_len, 99_999);
    }

    #[test]
    fn ring_buffer_padding_after_payload_is_ignored() {
        let mut rec = raw::data(O, 7, false, true, b"HTTP/1.1 200 OK\r\n\r\n");
        rec.extend_from_slice(&[0, 0, 0, 0, 0]);
        let Event::Data(d) = decode(rec).unwrap() else {
            panic!()
        };
        assert_eq!(&d.data[..], b"HTTP/1.1 200 OK\r\n\r\n");
    }

    #[test]
    fn truncated_records_are_errors() {
        let rec = raw::data(O, 7, false, true, b"GET / HTTP/1.1\r\n\r\n");
        for cut in 0..rec.len() {
            let r = decode(rec[..cut].to_vec());
            assert!(r.is_err(), "cut at {cut} decoded: {r:?}");
        }
    }

    #[test]
    fn payload_longer_than_budget_is_rejected() {
        let mut rec = raw::data(O, 7, false, true, b"x");
        let at = offset_of!(DataHeader, data_len);
        rec[at..at + 4].copy_from_slice(&(HEAD_MAX + 1).to_ne_bytes());
        assert_eq!(
            decode(rec),
            Err(DecodeError::PayloadTooLong(HEAD_MAX as usize + 1))
        );
    }

    #[test]
    fn unknown_kind_and_syscall_are_errors() {
        assert_eq!(
            decode(raw::simple(99, O, 1)),
            Err(DecodeError::UnknownKind(99))
        );
        let rec = raw::data_with(O, 1, 77, 0, 1, b"x");
        assert_eq!(decode(rec), Err(DecodeError::UnknownSyscall(77)));
    }

    #[test]
    fn connect_and_accept_addresses() {
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let Event::Connect(c) = decode(raw::conn(KIND_CONNECT, O, 5, Some(v4))).unwrap() else {
            panic!()
        };
        assert_eq!(c.peer, Some(v4));
        assert_eq!(c.fd, 5);
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        let Event::Accept(c) = decode(raw::conn(KIND_ACCEPT, O, 9, Some(v6))).unwrap() else {
            panic!()
        };
        assert_eq!(c.peer, Some(v6));
        let Event::Accept(c) = decode(raw::conn(KIND_ACCEPT, O, 9, None)).unwrap() else {
            panic!()
        };
        assert_eq!(c.peer, None);
        assert!(!c.unix);
    }

    #[test]
    fn lifecycle_records() {
        assert_eq!(
            decode(raw::simple(KIND_CLOSE, O, 4)).unwrap(),
            Event::Close { origin: O, fd: 4 }
        );
        assert_eq!(
            decode(raw::fork(O, 77)).unwrap(),
            Event::Fork {
                origin: O,
                child_tid: 77
            }
        );
        assert_eq!(
            decode(raw::simple(KIND_EXIT, O, -1)).unwrap(),
            Event::Exit { origin: O }
        );
        assert_eq!(
            decode(raw::simple(KIND_THREAD_EXIT, O, -1)).unwrap(),
            Event::ThreadExit { origin: O }
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic pseudo-random input covering every kind value's neighbourhood.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200usize {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if len >= 4 {
                buf[..4].copy_from_slice(&((len % 9) as u32).to_ne_bytes());
            }
            let _ = decode(buf);
        }
    }
}
