//! `capture::record::decode` on arbitrary bytes and on structured records.
//!
//! Raw bytes: whatever decodes must agree with the bytes at the ABI offsets and survive a round
//! trip through the `record::raw` builders; errors must describe the input truthfully.
//! Structured: a record written field by field at `offset_of!` positions of the shared
//! `#[repr(C)]` types (independently of `record::raw`), optionally damaged; the expected outcome
//! is computed from the description and must be exactly what `decode` returns.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::Arbitrary;
use observer::capture::record::{
    Connection, Data, DecodeError, Direction, Event, Origin, Payload, Syscall, decode, decode_ref, raw,
};
use observer_common::{
    AF_INET, AF_INET6, AF_UNIX, ConnEvent, DataHeader, EventHeader, ForkEvent, HEAD_MAX,
    KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_DATA, KIND_EXEC, KIND_EXIT, KIND_FORK,
    KIND_THREAD_EXIT, flags, sys,
};

const HDR: usize = size_of::<EventHeader>();
const DATA_HDR: usize = size_of::<DataHeader>();

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

pub fn syscall_raw(s: Syscall) -> u32 {
    match s {
        Syscall::Read => sys::READ,
        Syscall::Readv => sys::READV,
        Syscall::Recvfrom => sys::RECVFROM,
        Syscall::Recvmsg => sys::RECVMSG,
        Syscall::Write => sys::WRITE,
        Syscall::Writev => sys::WRITEV,
        Syscall::Sendto => sys::SENDTO,
        Syscall::Sendmsg => sys::SENDMSG,
    }
}

fn known_syscall(v: u32) -> Option<Syscall> {
    Some(match v {
        sys::READ => Syscall::Read,
        sys::READV => Syscall::Readv,
        sys::RECVFROM => Syscall::Recvfrom,
        sys::RECVMSG => Syscall::Recvmsg,
        sys::WRITE => Syscall::Write,
        sys::WRITEV => Syscall::Writev,
        sys::SENDTO => Syscall::Sendto,
        sys::SENDMSG => Syscall::Sendmsg,
        _ => return None,
    })
}

/// The record the kernel would write for a decoded event, built with `record::raw`.
pub fn encode(ev: &Event) -> Vec<u8> {
    match ev {
        Event::Data(d) => {
            let mut fl = 0;
            for (on, bit) in [
                (d.direction == Direction::Egress, flags::WRITE),
                (d.head_start, flags::HEAD_START),
                (d.capped, flags::CAPPED),
                (d.iov_cut, flags::IOV_CUT),
                (d.lost_before, flags::LOST_BEFORE),
                (d.read_fault, flags::READ_FAULT),
            ] {
                if on {
                    fl |= bit;
                }
            }
            raw::data_with(
                d.origin,
                d.fd,
                syscall_raw(d.syscall),
                fl,
                d.total_len,
                &d.data,
            )
        }
        Event::Connect(c) | Event::Accept(c) => {
            let kind = if matches!(ev, Event::Connect(_)) {
                KIND_CONNECT
            } else {
                KIND_ACCEPT
            };
            let mut b = raw::conn(kind, c.origin, c.fd, c.peer);
            if c.unix {
                let at = offset_of!(ConnEvent, family);
                b[at..at + 2].copy_from_slice(&AF_UNIX.to_ne_bytes());
            }
            b
        }
        Event::Close { origin, fd } => raw::simple(KIND_CLOSE, *origin, *fd),
        Event::Fork { origin, child_tid } => raw::fork(*origin, *child_tid),
        Event::ThreadExit { origin } => raw::simple(KIND_THREAD_EXIT, *origin, -1),
        Event::Exit { origin } => raw::simple(KIND_EXIT, *origin, -1),
        Event::Exec { origin } => raw::simple(KIND_EXEC, *origin, -1),
    }
}

/// Decodes arbitrary bytes and checks the result against them.
pub fn check_bytes(bytes: &[u8]) {
    let res = decode(bytes.to_vec());
    // Decoding from a shared `Bytes` gives the same answer as from a `Vec`.
    assert_eq!(res, decode(bytes::Bytes::copy_from_slice(bytes)));
    // And in place, as the ring-buffer reader does.
    assert_eq!(res, decode_ref(bytes).map(Event::into_owned));
    let ev = match res {
        Err(DecodeError::Short { len, need }) => {
            assert_eq!(len, bytes.len());
            assert!(len < need, "short record of {len} bytes needs {need}");
            return;
        }
        Err(DecodeError::PayloadLength { claimed, carried }) => {
            assert!(carried < claimed && claimed <= HEAD_MAX as usize);
            assert_eq!(carried, bytes.len() - DATA_HDR);
            return;
        }
        Err(DecodeError::PayloadTooLong(n)) => {
            assert!(n > HEAD_MAX as usize);
            return;
        }
        Err(DecodeError::UnknownKind(k)) => {
            assert_eq!(k, u32_at(bytes, offset_of!(EventHeader, kind)));
            assert!(!(KIND_DATA..=KIND_EXEC).contains(&k));
            return;
        }
        Err(DecodeError::UnknownSyscall(s)) => {
            assert_eq!(s, u32_at(bytes, offset_of!(DataHeader, syscall)));
            assert!(known_syscall(s).is_none());
            return;
        }
        Ok(ev) => ev,
    };
    assert!(bytes.len() >= HDR);
    let o = ev.origin();
    assert_eq!(o.pid, u32_at(bytes, offset_of!(EventHeader, pid)));
    assert_eq!(o.tid, u32_at(bytes, offset_of!(EventHeader, tid)));
    assert_eq!(o.ts_ns, u64_at(bytes, offset_of!(EventHeader, ts_ns)));
    let kind = u32_at(bytes, offset_of!(EventHeader, kind));
    match &ev {
        Event::Data(d) => {
            assert_eq!(kind, KIND_DATA);
            let n = d.data.len();
            assert!(n <= HEAD_MAX as usize);
            assert_eq!(n, u32_at(bytes, offset_of!(DataHeader, data_len)) as usize);
            assert!(bytes.len() >= DATA_HDR + n);
            assert_eq!(&d.data[..], &bytes[DATA_HDR..DATA_HDR + n]);
            assert!(d.total_len >= n as u64);
            let fl = u32_at(bytes, offset_of!(DataHeader, flags));
            assert_eq!(d.direction == Direction::Egress, fl & flags::WRITE != 0);
            assert_eq!(d.head_start, fl & flags::HEAD_START != 0);
        }
        Event::Connect(c) | Event::Accept(c) => {
            assert!(kind == KIND_CONNECT || kind == KIND_ACCEPT);
            assert!(bytes.len() >= size_of::<ConnEvent>());
            assert!(!(c.unix && c.peer.is_some()));
        }
        Event::Fork { .. } => {
            assert_eq!(kind, KIND_FORK);
            assert!(bytes.len() >= size_of::<ForkEvent>());
        }
        Event::Close { .. } => assert_eq!(kind, KIND_CLOSE),
        Event::ThreadExit { .. } => assert_eq!(kind, KIND_THREAD_EXIT),
        Event::Exit { .. } => assert_eq!(kind, KIND_EXIT),
        Event::Exec { .. } => assert_eq!(kind, KIND_EXEC),
    }
    // What the raw builders make of the event decodes to the same event.
    assert_eq!(decode(encode(&ev)).as_ref(), Ok(&ev));
}

// ---------------------------------------------------------------------------------------------
// Structured records.

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Kind {
    Data,
    Connect,
    Accept,
    Close,
    Fork,
    ThreadExit,
    Exit,
    Other(u32),
}

impl Kind {
    fn raw(self) -> u32 {
        match self {
            Kind::Data => KIND_DATA,
            Kind::Connect => KIND_CONNECT,
            Kind::Accept => KIND_ACCEPT,
            Kind::Close => KIND_CLOSE,
            Kind::Fork => KIND_FORK,
            Kind::ThreadExit => KIND_THREAD_EXIT,
            Kind::Exit => KIND_EXIT,
            Kind::Other(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Family {
    Absent,
    Unix,
    Inet,
    Inet6,
    Other(u16),
}

/// What happens to the record after it was written.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Damage {
    None,
    /// Cut to this many bytes (when shorter).
    Cut(u16),
    /// `data_len` overwritten.
    DataLen(u32),
    /// One byte XORed.
    Flip {
        at: u16,
        xor: u8,
    },
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    pub pid: u32,
    pub tid: u32,
    pub fd: i32,
    pub ts_ns: u64,
    pub flags: u32,
    /// A known syscall (`sys % 8`) unless `odd_syscall`.
    pub sys: u8,
    pub odd_syscall: Option<u32>,
    pub total_len: u64,
    pub payload: Vec<u8>,
    pub family: Family,
    pub port: u16,
    pub addr: [u8; 16],
    pub child_tid: u32,
    /// Ring-buffer padding after the record (0..=7 bytes used).
    pub padding: Vec<u8>,
    pub damage: Damage,
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

impl Spec {
    fn syscall(&self) -> u32 {
        self.odd_syscall.unwrap_or(u32::from(self.sys % 8))
    }

    /// The record as the kernel lays it out, before padding and damage.
    fn layout(&self) -> Vec<u8> {
        let kind = self.kind.raw();
        let len = match kind {
            KIND_DATA => DATA_HDR + self.payload.len(),
            KIND_CONNECT | KIND_ACCEPT => size_of::<ConnEvent>(),
            KIND_FORK => size_of::<ForkEvent>(),
            _ => HDR,
        };
        let mut b = vec![0u8; len];
        put(&mut b, offset_of!(EventHeader, kind), &kind.to_ne_bytes());
        put(
            &mut b,
            offset_of!(EventHeader, pid),
            &self.pid.to_ne_bytes(),
        );
        put(
            &mut b,
            offset_of!(EventHeader, tid),
            &self.tid.to_ne_bytes(),
        );
        put(&mut b, offset_of!(EventHeader, fd), &self.fd.to_ne_bytes());
        put(
            &mut b,
            offset_of!(EventHeader, ts_ns),
            &self.ts_ns.to_ne_bytes(),
        );
        match kind {
            KIND_DATA => {
                put(
                    &mut b,
                    offset_of!(DataHeader, flags),
                    &self.flags.to_ne_bytes(),
                );
                put(
                    &mut b,
                    offset_of!(DataHeader, syscall),
                    &self.syscall().to_ne_bytes(),
                );
                put(
                    &mut b,
                    offset_of!(DataHeader, total_len),
                    &self.total_len.to_ne_bytes(),
                );
                let n = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
                put(&mut b, offset_of!(DataHeader, data_len), &n.to_ne_bytes());
                put(&mut b, DATA_HDR, &self.payload);
            }
            KIND_CONNECT | KIND_ACCEPT => {
                let family = match self.family {
                    Family::Absent => 0,
                    Family::Unix => AF_UNIX,
                    Family::Inet => AF_INET,
                    Family::Inet6 => AF_INET6,
                    Family::Other(f) => f,
                };
                put(&mut b, offset_of!(ConnEvent, family), &family.to_ne_bytes());
                put(
                    &mut b,
                    offset_of!(ConnEvent, port),
                    &self.port.to_ne_bytes(),
                );
                put(&mut b, offset_of!(ConnEvent, addr), &self.addr);
            }
            KIND_FORK => put(
                &mut b,
                offset_of!(ForkEvent, child_tid),
                &self.child_tid.to_ne_bytes(),
            ),
            _ => {}
        }
        b
    }

    /// What `decode` must return for `bytes` (the laid-out record after padding and damage),
    /// derived from the kernel ABI independently of the decoder. `None` when a flipped byte makes
    /// the answer not worth predicting (then only `check_bytes` applies).
    fn expected(&self, bytes: &[u8]) -> Option<Result<Event<'static>, DecodeError>> {
        if matches!(self.damage, Damage::Flip { .. }) {
            return None;
        }
        let short = |need: usize| DecodeError::Short {
            len: bytes.len(),
            need,
        };
        if bytes.len() < HDR {
            return Some(Err(short(HDR)));
        }
        let origin = Origin {
            pid: self.pid,
            tid: self.tid,
            ts_ns: self.ts_ns,
        };
        let kind = self.kind.raw();
        Some(match kind {
            KIND_DATA => {
                if bytes.len() < DATA_HDR {
                    return Some(Err(short(DATA_HDR)));
                }
                let Some(syscall) = known_syscall(self.syscall()) else {
                    return Some(Err(DecodeError::UnknownSyscall(self.syscall())));
                };
                let claimed = match self.damage {
                    Damage::DataLen(n) => n as usize,
                    _ => self.payload.len(),
                };
                if claimed > HEAD_MAX as usize {
                    return Some(Err(DecodeError::PayloadTooLong(claimed)));
                }
                let carried = bytes.len() - DATA_HDR;
                if carried < claimed {
                    return Some(Err(DecodeError::PayloadLength { claimed, carried }));
                }
                let fl = self.flags;
                Ok(Event::Data(Data {
                    origin,
                    fd: self.fd,
                    direction: if fl & flags::WRITE != 0 {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    },
                    syscall,
                    head_start: fl & flags::HEAD_START != 0,
                    capped: fl & flags::CAPPED != 0,
                    iov_cut: fl & flags::IOV_CUT != 0,
                    lost_before: fl & flags::LOST_BEFORE != 0,
                    read_fault: fl & flags::READ_FAULT != 0,
                    total_len: self.total_len.max(claimed as u64),
                    data: Payload::Shared(bytes::Bytes::copy_from_slice(
                        &bytes[DATA_HDR..DATA_HDR + claimed],
                    )),
                }))
            }
            KIND_CONNECT | KIND_ACCEPT => {
                if bytes.len() < size_of::<ConnEvent>() {
                    return Some(Err(short(size_of::<ConnEvent>())));
                }
                let a = self.addr;
                let peer = match self.family {
                    Family::Inet => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
                    Family::Inet6 => Some(IpAddr::V6(Ipv6Addr::from(a))),
                    Family::Other(f) if f == AF_INET => {
                        Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])))
                    }
                    Family::Other(f) if f == AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(a))),
                    _ => None,
                };
                let unix = matches!(self.family, Family::Unix)
                    || matches!(self.family, Family::Other(f) if f == AF_UNIX);
                let c = Connection {
                    origin,
                    fd: self.fd,
                    peer: peer.map(|ip| SocketAddr::new(ip, self.port)),
                    unix,
                };
                Ok(if kind == KIND_CONNECT {
                    Event::Connect(c)
                } else {
                    Event::Accept(c)
                })
            }
            KIND_CLOSE => Ok(Event::Close {
                origin,
                fd: self.fd,
            }),
            KIND_FORK => {
                if bytes.len() < size_of::<ForkEvent>() {
                    return Some(Err(short(size_of::<ForkEvent>())));
                }
                Ok(Event::Fork {
                    origin,
                    child_tid: self.child_tid,
                })
            }
            KIND_THREAD_EXIT => Ok(Event::ThreadExit { origin }),
            KIND_EXIT => Ok(Event::Exit { origin }),
            KIND_EXEC => Ok(Event::Exec { origin }),
            other => Err(DecodeError::UnknownKind(other)),
        })
    }
}

/// Lays out a structured record, damages it as described and checks what `decode` makes of it.
pub fn check_spec(spec: &Spec) {
    let mut bytes = spec.layout();
    let pad = spec.padding.len().min(7);
    bytes.extend_from_slice(&spec.padding[..pad]);
    match spec.damage {
        Damage::None => {}
        Damage::Cut(n) => bytes.truncate(usize::from(n)),
        Damage::DataLen(n) => {
            if spec.kind.raw() == KIND_DATA {
                put(
                    &mut bytes,
                    offset_of!(DataHeader, data_len),
                    &n.to_ne_bytes(),
                );
            }
        }
        Damage::Flip { at, xor } => {
            if !bytes.is_empty() {
                let at = usize::from(at) % bytes.len();
                bytes[at] ^= xor;
            }
        }
    }
    if let Some(want) = spec.expected(&bytes) {
        assert_eq!(decode(bytes.clone()), want, "spec {spec:?}");
    }
    check_bytes(&bytes);
}
