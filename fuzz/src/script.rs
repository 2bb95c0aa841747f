//! The pipeline fuzz input: a byte script of what the kernel reports, for four processes with a
//! few threads and fds each. Every record is built with `record::raw` and decoded with
//! `record::decode`, so the pipeline sees exactly what the kernel can send.
//!
//! Format (missing bytes read as 0, so every byte string is a script):
//! `[cfg][os][wall]` then operations, each a tag byte (`tag % 10`) and its arguments:
//!
//! | tag | operation | arguments |
//! | --- | --- | --- |
//! | 0 | data record | who, flags, syscall, dt, len (u16 LE), extra, `len` payload bytes |
//! | 1 | connect | who, peer, dt |
//! | 2 | accept | who, peer, dt |
//! | 3 | close | who, dt |
//! | 4 | fork | who, child, dt |
//! | 5 | thread exit | who, dt |
//! | 6 | process exit | who, dt |
//! | 7 | drop check | counters |
//! | 8 | raw record | len (u8), `len` bytes, decoded as they are |
//! | 9 | exec | who, dt |
//!
//! * who: pid `PIDS[who & 3]`, tid `pid + (who >> 2 & 3)` (`+ 4` with bit 7), fd `3 + (who >> 4 & 7)`.
//! * flags: bit 0 write (egress). With bit 7 the record is one syscall as a model of the kernel's
//!   `try_data_exit` forwards it: head start from the first bytes, the 16 KiB head budget, CAPPED,
//!   nothing at all for body bytes after a head; bit 4 then means "the ring buffer drops this
//!   record" (the next one carries LOST_BEFORE, the drop counter grows). Without bit 7 the bits
//!   are the record's own flags (HEAD_START, CAPPED, IOV_CUT, LOST_BEFORE, READ_FAULT at bits
//!   1..=5), whatever the payload, and bit 6 makes `total_len` grow by `extra * 4096`, else by
//!   `extra`.
//! * dt: time step; bit 7 steps back `dt & 0x7f` µs (records of different CPUs), else forward
//!   `(dt & 15) * 32^(dt >> 4 & 7)` ns (up to ~9 minutes: past grace, activity and memory limits).
//! * peer: 0 none, 1 Unix socket, 2 IPv4, 3 IPv6 (`peer >> 2` varies the address).
//! * child: bit 7: a new process `PIDS[child & 3]`, else thread `pid + (child & 7)`.
//! * drop-check counters: bit 0 adds a ring-buffer drop, bits 1..=3 add to capped, iov_cut, faults.
//!
//! Checked: nothing panics; records are well formed (hex ids, unique span ids, no control
//! characters in a rendered line, every break has an outbound method and a consistent shape);
//! the summary adds up (outcomes <= outbound, released breaks = counted breaks, one span per
//! exchange, records and decode errors counted).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use observer::capture::hooks::KernelCounters;
use observer::capture::record::{Event, Origin, decode, raw};
use observer::correlate::{Config, IdSource};
use observer::http::head::ParseOptions;
use observer::http::table::Limits;
use observer::http::tracker::{FdKind, SocketLookup};
use observer::output::{Format, render};
use observer::pipeline::{Pipeline, ProcView};
use observer::record::{Attribution, BreakReason, Record, SpanKind};
use observer::tracectx::TraceHeader;
use observer_common::{
    HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_EXEC, KIND_EXIT, KIND_THREAD_EXIT, flags,
};

use crate::Reader;

pub const PIDS: [u32; 4] = [1000, 2000, 3000, 4000];
/// Monotonic time of the first record (ns since boot).
pub const START_NS: u64 = 1_000_000_000_000;

/// Flag bits of a data operation.
pub mod fl {
    pub const WRITE: u8 = 1;
    pub const HEAD_START: u8 = 1 << 1;
    pub const CAPPED: u8 = 1 << 2;
    pub const IOV_CUT: u8 = 1 << 3;
    pub const LOST_BEFORE: u8 = 1 << 4;
    pub const READ_FAULT: u8 = 1 << 5;
    pub const BIG_TOTAL: u8 = 1 << 6;
    /// The payload is one syscall, forwarded as the kernel model decides.
    pub const SYSCALL: u8 = 1 << 7;
    /// With `SYSCALL`: the ring buffer drops the record.
    pub const DROP: u8 = LOST_BEFORE;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Setup {
    /// bit 0: sampling not required; bit 1: x-request-id required; bit 2: keep the query;
    /// bits 3-4: grace (100 ms, 0, 1 s, u64::MAX); bit 5: max_active 1 s; bit 6: recent 2 s.
    pub cfg: u8,
    /// 0: every fd is a socket with a peer; otherwise `lookup` varies by (pid, fd).
    pub os: u8,
    /// Wall-clock offset: 0 realistic, 1 zero, 2 hugely negative, 3 hugely positive, else
    /// `(wall as i8) << 56`.
    pub wall: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Data {
        who: u8,
        flags: u8,
        sys: u8,
        dt: u8,
        extra: u8,
        payload: Vec<u8>,
    },
    Connect {
        who: u8,
        peer: u8,
        dt: u8,
    },
    Accept {
        who: u8,
        peer: u8,
        dt: u8,
    },
    Close {
        who: u8,
        dt: u8,
    },
    Fork {
        who: u8,
        child: u8,
        dt: u8,
    },
    ThreadExit {
        who: u8,
        dt: u8,
    },
    Exit {
        who: u8,
        dt: u8,
    },
    DropCheck {
        counters: u8,
    },
    Raw {
        bytes: Vec<u8>,
    },
    Exec {
        who: u8,
        dt: u8,
    },
}

/// Writes a script (for the seed generator).
pub fn encode(setup: Setup, ops: &[Op]) -> Vec<u8> {
    let mut b = vec![setup.cfg, setup.os, setup.wall];
    for op in ops {
        match op {
            Op::Data {
                who,
                flags,
                sys,
                dt,
                extra,
                payload,
            } => {
                let n = payload.len().min(usize::from(u16::MAX));
                b.extend_from_slice(&[0, *who, *flags, *sys, *dt]);
                b.extend_from_slice(&(n as u16).to_le_bytes());
                b.push(*extra);
                b.extend_from_slice(&payload[..n]);
            }
            Op::Connect { who, peer, dt } => b.extend_from_slice(&[1, *who, *peer, *dt]),
            Op::Accept { who, peer, dt } => b.extend_from_slice(&[2, *who, *peer, *dt]),
            Op::Close { who, dt } => b.extend_from_slice(&[3, *who, *dt]),
            Op::Fork { who, child, dt } => b.extend_from_slice(&[4, *who, *child, *dt]),
            Op::ThreadExit { who, dt } => b.extend_from_slice(&[5, *who, *dt]),
            Op::Exit { who, dt } => b.extend_from_slice(&[6, *who, *dt]),
            Op::DropCheck { counters } => b.extend_from_slice(&[7, *counters]),
            Op::Raw { bytes } => {
                let n = bytes.len().min(255);
                b.extend_from_slice(&[8, n as u8]);
                b.extend_from_slice(&bytes[..n]);
            }
            Op::Exec { who, dt } => b.extend_from_slice(&[9, *who, *dt]),
        }
    }
    b
}

/// Reads a script; any bytes are one.
pub fn parse(input: &[u8]) -> (Setup, Vec<Op>) {
    let mut r = Reader::new(input);
    let setup = Setup {
        cfg: r.u8(),
        os: r.u8(),
        wall: r.u8(),
    };
    let mut ops = Vec::new();
    while !r.is_empty() {
        let op = match r.u8() % 10 {
            0 => {
                let (who, flags, sys, dt) = (r.u8(), r.u8(), r.u8(), r.u8());
                let n = usize::from(r.u16());
                let extra = r.u8();
                Op::Data {
                    who,
                    flags,
                    sys,
                    dt,
                    extra,
                    payload: r.bytes(n).to_vec(),
                }
            }
            1 => Op::Connect {
                who: r.u8(),
                peer: r.u8(),
                dt: r.u8(),
            },
            2 => Op::Accept {
                who: r.u8(),
                peer: r.u8(),
                dt: r.u8(),
            },
            3 => Op::Close {
                who: r.u8(),
                dt: r.u8(),
            },
            4 => Op::Fork {
                who: r.u8(),
                child: r.u8(),
                dt: r.u8(),
            },
            5 => Op::ThreadExit {
                who: r.u8(),
                dt: r.u8(),
            },
            6 => Op::Exit {
                who: r.u8(),
                dt: r.u8(),
            },
            7 => Op::DropCheck { counters: r.u8() },
            8 => {
                let n = usize::from(r.u8());
                Op::Raw {
                    bytes: r.bytes(n).to_vec(),
                }
            }
            _ => Op::Exec {
                who: r.u8(),
                dt: r.u8(),
            },
        };
        ops.push(op);
    }
    (setup, ops)
}

pub fn who(w: u8) -> (u32, u32, i32) {
    let pid = PIDS[usize::from(w & 3)];
    let tid = pid + u32::from(w >> 2 & 3) + if w & 0x80 != 0 { 4 } else { 0 };
    let fd = 3 + i32::from(w >> 4 & 7);
    (pid, tid, fd)
}

fn step(ts: u64, dt: u8) -> u64 {
    if dt & 0x80 != 0 {
        ts.saturating_sub(u64::from(dt & 0x7f) * 1_000)
    } else {
        let unit = 32u64.pow(u32::from(dt >> 4 & 7));
        ts.saturating_add(u64::from(dt & 15) * unit)
    }
}

fn peer_addr(p: u8) -> Option<SocketAddr> {
    let v = p >> 2;
    match p & 3 {
        2 => Some(SocketAddr::from(([10, 0, 0, v], 8080 + u16::from(v)))),
        3 => Some(SocketAddr::from((
            [0xfd00, 0, 0, 0, 0, 0, 0, u16::from(v)],
            443,
        ))),
        _ => None,
    }
}

/// The kernel's test of the first (at most 8) bytes of a syscall.
pub fn kernel_head_start(bytes: &[u8]) -> bool {
    const PATTERNS: [&[u8]; 10] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"PATCH ",
        b"OPTIONS ",
        b"CONNECT ",
        b"TRACE ",
        b"HTTP/1.",
    ];
    let n = bytes.len().min(8);
    n > 0
        && PATTERNS.iter().any(|p| {
            let m = n.min(p.len());
            bytes[..m] == p[..m]
        })
}

/// Per (pid, fd) and direction: the head budget left and whether a record was dropped.
#[derive(Debug, Default, Clone, Copy)]
struct KDir {
    budget: u32,
    lost: bool,
}

#[derive(Default)]
struct KernelModel {
    conns: HashMap<(u32, i32), [KDir; 2]>,
}

impl KernelModel {
    /// The record for one syscall, if the kernel forwards one, and whether it was dropped.
    fn syscall(
        &mut self,
        o: Origin,
        fd: i32,
        write: bool,
        op_flags: u8,
        sys: u32,
        bytes: &[u8],
    ) -> Option<(Vec<u8>, bool)> {
        if bytes.is_empty() {
            return None;
        }
        let head_start = kernel_head_start(bytes);
        let st = self.conns.entry((o.pid, fd)).or_default();
        let dir = &mut st[usize::from(write)];
        if !head_start && dir.budget == 0 {
            return None;
        }
        let budget = if head_start { HEAD_MAX } else { dir.budget };
        let want = bytes.len().min(budget as usize);
        let capped = bytes.len() > want;
        let mut f = raw::flags_for(write, head_start);
        if capped {
            f |= flags::CAPPED;
        }
        if dir.lost {
            f |= flags::LOST_BEFORE;
        }
        if op_flags & fl::IOV_CUT != 0 {
            f |= flags::IOV_CUT;
        }
        if op_flags & fl::READ_FAULT != 0 {
            f |= flags::READ_FAULT;
        }
        let copied = &bytes[..want];
        dir.budget = if capped || copied.ends_with(b"\r\n\r\n") {
            0
        } else {
            budget - want as u32
        };
        let dropped = op_flags & fl::DROP != 0;
        dir.lost = dropped;
        let rec = raw::data_with(o, fd, sys, f, bytes.len() as u64, copied);
        Some((rec, dropped))
    }

    fn reset(&mut self, pid: u32, fd: i32) {
        self.conns.remove(&(pid, fd));
    }

    fn exit(&mut self, pid: u32) {
        self.conns.retain(|(p, _), _| *p != pid);
    }
}

/// The operating system as the pipeline asks it.
pub struct FakeOs {
    seed: u8,
}

impl SocketLookup for FakeOs {
    fn lookup(&mut self, pid: u32, fd: i32) -> FdKind {
        if self.seed == 0 {
            return FdKind::Socket {
                peer: Some(SocketAddr::from((
                    [127, 0, 0, 1],
                    40_000u16.wrapping_add(fd as u16),
                ))),
            };
        }
        let h = (pid / 1000).wrapping_mul(31) ^ (fd as u32).wrapping_mul(7) ^ u32::from(self.seed);
        match h % 4 {
            0 => FdKind::Socket {
                peer: Some(SocketAddr::from(([192, 168, 1, 2], 8080))),
            },
            1 => FdKind::Socket { peer: None },
            2 => FdKind::NotSocket,
            _ => FdKind::Unknown,
        }
    }
}

impl ProcView for FakeOs {
    fn service_name(&mut self, pid: u32) -> String {
        service(pid)
    }
}

fn service(pid: u32) -> String {
    format!("svc-{pid}")
}

/// Span ids 1, 2, 3, ...
struct Counter(u64);

impl IdSource for Counter {
    fn next_id(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn config(c: u8) -> (Config, ParseOptions) {
    let mut cfg = Config {
        require_sampling: c & 1 == 0,
        ..Config::default()
    };
    if c & 2 != 0 {
        cfg.require.insert(TraceHeader::RequestId);
    }
    cfg.grace_ns = match c >> 3 & 3 {
        0 => cfg.grace_ns,
        1 => 0,
        2 => 1_000_000_000,
        _ => u64::MAX,
    };
    if c & 0x20 != 0 {
        cfg.max_active_ns = 1_000_000_000;
    }
    if c & 0x40 != 0 {
        cfg.recent_ns = 2_000_000_000;
    }
    let parse = ParseOptions {
        keep_query: c & 4 != 0,
    };
    (cfg, parse)
}

fn wall_offset(w: u8) -> i128 {
    match w {
        0 => 1_700_000_000_000_000_000,
        1 => 0,
        2 => i128::MIN / 2,
        3 => i128::MAX / 2,
        _ => i128::from(w as i8) << 56,
    }
}

/// What a script produced (for the seed generator's report).
#[derive(Debug, Default)]
pub struct Outcome {
    pub events: u64,
    pub spans: u64,
    pub breaks: u64,
    pub records: Vec<Record>,
}

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn nonzero_hex(s: &str, lens: &[usize]) -> bool {
    is_hex(s, lens) && s.bytes().any(|b| b != b'0')
}

#[derive(Default)]
struct Checker {
    span_ids: HashSet<String>,
    server_spans: u64,
    client_spans: u64,
    released: [u64; 3],
}

impl Checker {
    fn record(&mut self, r: &Record) {
        let json = render(r, Format::Json, false);
        assert!(!json.starts_with("{\"type\":\"error\""), "{json}");
        let pretty = render(r, Format::Pretty, false);
        assert!(
            !pretty.chars().any(char::is_control) && !json.chars().any(char::is_control),
            "control character in a rendered record: {pretty:?}"
        );
        let _ = render(r, Format::Pretty, true);
        match r {
            Record::Span(s) => {
                assert!(nonzero_hex(&s.span_id, &[16]), "span id {}", s.span_id);
                assert!(
                    self.span_ids.insert(s.span_id.to_string()),
                    "span id {} emitted twice",
                    s.span_id
                );
                if let Some(p) = &s.parent_span_id {
                    assert!(nonzero_hex(p, &[16]), "parent span id {p}");
                }
                if let Some(t) = &s.trace_id {
                    assert!(nonzero_hex(t, &[16, 32]), "trace id {t}");
                }
                assert!(s.start_unix_ns <= s.end_unix_ns);
                assert!(s.duration_ms >= 0.0);
                assert_eq!(s.service, service(s.pid));
                assert!(s.method.as_ref().is_none_or(|m| !m.is_empty()));
                match s.kind {
                    SpanKind::Server => {
                        self.server_spans += 1;
                        assert!(s.attribution.is_none());
                    }
                    SpanKind::Client => self.client_spans += 1,
                }
            }
            Record::Break(b) => {
                assert!(
                    !b.outbound.method.is_empty(),
                    "break without a method: {b:?}"
                );
                assert_eq!(b.service, service(b.pid));
                let ambiguous = b.attribution == Attribution::Ambiguous;
                assert_eq!(ambiguous, b.server_span_id.is_none(), "{b:?}");
                if let Some(s) = &b.server_span_id {
                    assert!(nonzero_hex(s, &[16]));
                }
                if ambiguous {
                    assert!(b.inbound.method.is_none() && b.inbound.path.is_none());
                }
                for t in b.inbound.trace_id.iter().chain(&b.outbound.trace_id) {
                    assert!(nonzero_hex(t, &[16, 32]), "trace id {t}");
                }
                match b.reason {
                    BreakReason::Missing => {
                        self.released[0] += 1;
                        assert!(!b.missing.is_empty(), "{b:?}");
                        assert!(b.outbound.trace_id.is_none(), "{b:?}");
                    }
                    BreakReason::Partial => {
                        self.released[1] += 1;
                        assert!(!b.missing.is_empty(), "{b:?}");
                        assert!(b.outbound.trace_id.is_some(), "{b:?}");
                        assert!(b.inbound.trace_id.is_some(), "{b:?}");
                    }
                    BreakReason::Mismatch => {
                        self.released[2] += 1;
                        assert!(b.missing.is_empty(), "{b:?}");
                        assert!(b.outbound.trace_id.is_some(), "{b:?}");
                        assert_ne!(b.inbound.trace_id, b.outbound.trace_id, "{b:?}");
                    }
                }
            }
            Record::Ready { .. } | Record::Summary(_) => panic!("pipeline emitted {r:?}"),
        }
    }
}

/// Runs a script through the pipeline and checks every invariant.
pub fn run(input: &[u8]) -> Outcome {
    let (setup, ops) = parse(input);
    let (cfg, parse_opts) = config(setup.cfg);
    let mut pipe = Pipeline::new(
        parse_opts,
        // Small caps, so that eviction happens in short scripts.
        Limits {
            max_connections: 6,
            max_per_process: 4,
            idle_ns: 200_000,
        },
        cfg,
        Box::new(Counter(0)),
        wall_offset(setup.wall),
    );
    let mut os = FakeOs { seed: setup.os };
    let mut kernel = KernelModel::default();
    let mut counters = KernelCounters::default();
    let mut checker = Checker::default();
    let mut outcome = Outcome::default();
    let mut decode_errors = 0u64;
    let mut ts = START_NS;
    let mut out = Vec::new();

    for op in &ops {
        out.clear();
        let record: Option<Vec<u8>> = match op {
            Op::Data {
                who: w,
                flags: f,
                sys,
                dt,
                extra,
                payload,
            } => {
                ts = step(ts, *dt);
                let (pid, tid, fd) = who(*w);
                let o = Origin {
                    pid,
                    tid,
                    ts_ns: ts,
                };
                let write = f & fl::WRITE != 0;
                let sys = u32::from(sys % 8);
                if f & fl::SYSCALL != 0 {
                    match kernel.syscall(o, fd, write, *f, sys, payload) {
                        Some((_, true)) => {
                            counters.ringbuf_drops += 1;
                            None
                        }
                        Some((rec, false)) => Some(rec),
                        None => None,
                    }
                } else {
                    let payload = &payload[..payload.len().min(HEAD_MAX as usize)];
                    let mut bits = raw::flags_for(write, f & fl::HEAD_START != 0);
                    for (bit, flag) in [
                        (fl::CAPPED, flags::CAPPED),
                        (fl::IOV_CUT, flags::IOV_CUT),
                        (fl::LOST_BEFORE, flags::LOST_BEFORE),
                        (fl::READ_FAULT, flags::READ_FAULT),
                    ] {
                        if f & bit != 0 {
                            bits |= flag;
                        }
                    }
                    let unit = if f & fl::BIG_TOTAL != 0 { 4096 } else { 1 };
                    let total = payload.len() as u64 + u64::from(*extra) * unit;
                    Some(raw::data_with(o, fd, sys, bits, total, payload))
                }
            }
            Op::Connect { who: w, peer, dt } | Op::Accept { who: w, peer, dt } => {
                ts = step(ts, *dt);
                let (pid, tid, fd) = who(*w);
                kernel.reset(pid, fd);
                let kind = if matches!(op, Op::Connect { .. }) {
                    KIND_CONNECT
                } else {
                    KIND_ACCEPT
                };
                let mut rec = raw::conn(
                    kind,
                    Origin {
                        pid,
                        tid,
                        ts_ns: ts,
                    },
                    fd,
                    peer_addr(*peer),
                );
                if peer & 3 == 1 {
                    let at = std::mem::offset_of!(observer_common::ConnEvent, family);
                    rec[at..at + 2].copy_from_slice(&observer_common::AF_UNIX.to_ne_bytes());
                }
                Some(rec)
            }
            Op::Close { who: w, dt } => {
                ts = step(ts, *dt);
                let (pid, tid, fd) = who(*w);
                kernel.reset(pid, fd);
                Some(raw::simple(
                    KIND_CLOSE,
                    Origin {
                        pid,
                        tid,
                        ts_ns: ts,
                    },
                    fd,
                ))
            }
            Op::Fork { who: w, child, dt } => {
                ts = step(ts, *dt);
                let (pid, tid, _) = who(*w);
                let child_tid = if child & 0x80 != 0 {
                    PIDS[usize::from(child & 3)]
                } else {
                    pid + u32::from(child & 7)
                };
                Some(raw::fork(
                    Origin {
                        pid,
                        tid,
                        ts_ns: ts,
                    },
                    child_tid,
                ))
            }
            Op::ThreadExit { who: w, dt } => {
                ts = step(ts, *dt);
                let (pid, tid, _) = who(*w);
                Some(raw::simple(
                    KIND_THREAD_EXIT,
                    Origin {
                        pid,
                        tid,
                        ts_ns: ts,
                    },
                    -1,
                ))
            }
            Op::Exit { who: w, dt } => {
                ts = step(ts, *dt);
                let (pid, tid, _) = who(*w);
                kernel.exit(pid);
                Some(raw::simple(
                    KIND_EXIT,
                    Origin {
                        pid,
                        tid,
                        ts_ns: ts,
                    },
                    -1,
                ))
            }
            Op::Exec { who: w, dt } => {
                ts = step(ts, *dt);
                let (pid, tid, _) = who(*w);
                Some(raw::simple(
                    KIND_EXEC,
                    Origin {
                        pid,
                        tid,
                        ts_ns: ts,
                    },
                    -1,
                ))
            }
            Op::DropCheck { counters: c } => {
                if c & 0x10 != 0 {
                    pipe.on_idle_check(ts, &mut os, &mut out);
                    for r in &out {
                        checker.record(r);
                    }
                    outcome.records.append(&mut out);
                }
                counters.ringbuf_drops += u64::from(c & 1);
                counters.capped += u64::from(c >> 1 & 1);
                counters.iov_cut += u64::from(c >> 2 & 1);
                counters.read_faults += u64::from(c >> 3 & 1);
                pipe.on_drop_check(counters, &mut out);
                for r in &out {
                    assert!(matches!(r, Record::Break(_)), "drop check released {r:?}");
                    checker.record(r);
                }
                outcome.records.append(&mut out);
                continue;
            }
            Op::Raw { bytes } => match decode(bytes.clone()) {
                Ok(ev) => {
                    outcome.events += 1;
                    pipe.on_event(&ev, &mut os, &mut out);
                    None
                }
                Err(_) => {
                    decode_errors += 1;
                    pipe.count_decode_error();
                    None
                }
            },
        };
        if let Some(rec) = record {
            let ev: Event = decode(rec).expect("a record built by record::raw decodes");
            outcome.events += 1;
            pipe.on_event(&ev, &mut os, &mut out);
        }
        for r in &out {
            assert!(matches!(r, Record::Span(_)), "on_event emitted {r:?}");
            checker.record(r);
        }
        outcome.records.append(&mut out);
    }

    // A last drop check without new drops releases every break still held.
    pipe.on_drop_check(counters, &mut out);
    for r in &out {
        checker.record(r);
    }
    outcome.records.append(&mut out);

    let s = pipe.summary();
    let t = pipe.tracker_stats();
    let breaks = [s.breaks.missing, s.breaks.partial, s.breaks.mismatch];
    let outcomes = s.propagated
        + breaks.iter().sum::<u64>()
        + s.unknown
        + s.unattributed
        + s.untraced
        + s.background
        + s.telemetry;
    assert!(
        outcomes <= s.outbound,
        "outcomes {outcomes} > outbound: {s:?}"
    );
    assert_eq!(
        breaks, checker.released,
        "counted vs released breaks: {s:?}"
    );
    assert_eq!(checker.server_spans + checker.client_spans, t.exchanges);
    assert!(checker.server_spans <= s.inbound, "{s:?}");
    assert!(checker.client_spans <= s.outbound, "{s:?}");
    assert_eq!(s.capture.records, outcome.events);
    assert_eq!(s.capture.decode_errors, decode_errors);
    assert_eq!(s.capture.ringbuf_drops, counters.ringbuf_drops);
    assert_eq!(s.capture.truncated_heads, t.unknown_truncated);
    assert!(pipe.connections() as u64 <= outcome.events);
    let summary = Record::Summary(s);
    let line = render(&summary, Format::Json, false);
    assert!(!line.starts_with("{\"type\":\"error\""));
    let _ = render(&summary, Format::Pretty, true);

    outcome.spans = checker.server_spans + checker.client_spans;
    outcome.breaks = checker.released.iter().sum();
    outcome
}
