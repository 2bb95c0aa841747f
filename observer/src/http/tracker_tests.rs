//! Unit tests of the tracker: recorded byte sequences, built the way the kernel writes its
//! records (`record::raw`, then `record::decode`), go through `Tracker::on_event` with a table as
//! the operating system; the produced events and counters are checked exactly.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use observer_common::{HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_EXIT, flags, sys};

use super::*;
use crate::capture::record::{decode, raw};
use crate::http::table::Limits;

const PID: u32 = 100;
const FD: i32 = 7;
/// Main thread of the observed process; the other threads are numbered after it.
const T1: u32 = 100;
const T2: u32 = 101;
const T3: u32 = 102;

const TP_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const TRACEPARENT: &str = "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const B3_ID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const B3: &str = "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";

fn peer() -> SocketAddr {
    "10.1.2.3:43210".parse().unwrap()
}

fn peer2() -> SocketAddr {
    "[fd00::7]:8080".parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The operating system and the kernel side, as tables and a model of `try_data_exit`.
// ---------------------------------------------------------------------------------------------

/// `SocketLookup` from a table; fds missing from it are `FdKind::Unknown`. Counts the questions.
#[derive(Default)]
struct Table {
    fds: HashMap<(u32, i32), FdKind>,
    asked: Vec<(u32, i32)>,
}

impl SocketLookup for Table {
    fn lookup(&mut self, pid: u32, fd: i32) -> FdKind {
        self.asked.push((pid, fd));
        self.fds.get(&(pid, fd)).copied().unwrap_or(FdKind::Unknown)
    }
}

/// The kernel's own test of the first (at most 8) bytes of a syscall, written independently of
/// `head::looks_like_head`: a prefix match when there are fewer bytes than a pattern.
fn kernel_head_start(bytes: &[u8]) -> bool {
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

#[derive(Debug, Clone, Copy, Default)]
struct KDir {
    budget: u32,
    lost: bool,
}

/// What `try_data_exit` and the connection life-cycle programs keep per (tgid, fd) and direction.
#[derive(Default)]
struct Kernel {
    conns: HashMap<(u32, i32), [KDir; 2]>,
    /// The next data record does not fit in the ring buffer.
    drop_next: bool,
}

impl Kernel {
    /// The record the kernel writes for one syscall that moved `bytes`, if any.
    fn data(&mut self, o: Origin, fd: i32, write: bool, bytes: &[u8]) -> Option<Vec<u8>> {
        let total = bytes.len() as u64;
        if total == 0 {
            return None;
        }
        let head_start = kernel_head_start(bytes);
        let dir = usize::from(write);
        let st = self
            .conns
            .get(&(o.pid, fd))
            .map(|s| s[dir])
            .unwrap_or_default();
        if !head_start && st.budget == 0 {
            return None;
        }
        let budget = if head_start { HEAD_MAX } else { st.budget };
        let want = total.min(u64::from(budget)) as usize;
        let mut fl = raw::flags_for(write, head_start);
        let capped = total > want as u64;
        if capped {
            fl |= flags::CAPPED;
        }
        if st.lost {
            fl |= flags::LOST_BEFORE;
        }
        let copied = &bytes[..want];
        let mut remaining = budget - want as u32;
        if copied.len() >= 4 && copied.ends_with(b"\r\n\r\n") || capped {
            remaining = 0;
        }
        let sent = !std::mem::take(&mut self.drop_next);
        let state = self.conns.entry((o.pid, fd)).or_default();
        state[dir] = KDir {
            budget: remaining,
            lost: !sent,
        };
        let syscall = if write { sys::WRITE } else { sys::READ };
        sent.then(|| raw::data_with(o, fd, syscall, fl, total, copied))
    }

    fn conn(&mut self, kind: u32, o: Origin, fd: i32, peer: Option<SocketAddr>) -> Vec<u8> {
        self.conns.insert((o.pid, fd), Default::default());
        raw::conn(kind, o, fd, peer)
    }

    /// Only closes of fds the kernel knows about are reported.
    fn close(&mut self, o: Origin, fd: i32) -> Option<Vec<u8>> {
        self.conns
            .remove(&(o.pid, fd))
            .map(|_| raw::simple(KIND_CLOSE, o, fd))
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: syscalls in, events out, with invariants checked on every event.
// ---------------------------------------------------------------------------------------------

struct H {
    t: Tracker,
    os: Table,
    k: Kernel,
    ts: u64,
    out: Vec<HttpEvent>,
    /// Every request event, by seq.
    requests: HashMap<u64, Request>,
    /// Requests that got their exchange or were abandoned.
    ended: HashSet<u64>,
}

impl H {
    fn new() -> Self {
        H {
            t: Tracker::new(ParseOptions::default()),
            os: Table::default(),
            k: Kernel::default(),
            ts: 0,
            out: Vec::new(),
            requests: HashMap::new(),
            ended: HashSet::new(),
        }
    }

    /// A new origin of `pid`/`tid`, later than every earlier one.
    fn at_pid(&mut self, pid: u32, tid: u32) -> Origin {
        self.ts += 1;
        Origin {
            pid,
            tid,
            ts_ns: self.ts,
        }
    }

    fn at(&mut self, tid: u32) -> Origin {
        self.at_pid(PID, tid)
    }

    /// Feeds one decoded event and checks the invariants of what it produced.
    fn event(&mut self, ev: &Event) {
        let start = self.out.len();
        self.t.on_event(ev, &mut self.os, &mut self.out);
        for e in &self.out[start..] {
            match e {
                HttpEvent::Request(r) => {
                    assert!(
                        self.requests.insert(r.seq, r.clone()).is_none(),
                        "seq {} reused",
                        r.seq
                    );
                }
                HttpEvent::Exchange(Exchange { request, .. })
                | HttpEvent::Abandoned { request, .. } => {
                    assert_eq!(
                        self.requests.get(&request.seq),
                        Some(request),
                        "ended request was not announced as it is"
                    );
                    assert!(self.ended.insert(request.seq), "request ended twice");
                }
                HttpEvent::Unknown(_) => {}
            }
        }
    }

    fn record(&mut self, rec: Vec<u8>) {
        let ev = decode(rec).expect("the builders produce valid records");
        self.event(&ev);
    }

    /// One syscall of `tid` moving `bytes` on `fd`; the kernel forwards a record or not.
    /// Returns the syscall's origin.
    fn sys_pid(&mut self, pid: u32, tid: u32, fd: i32, write: bool, bytes: &[u8]) -> Origin {
        let o = self.at_pid(pid, tid);
        if let Some(rec) = self.k.data(o, fd, write, bytes) {
            self.record(rec);
        }
        o
    }

    fn read(&mut self, tid: u32, fd: i32, bytes: impl AsRef<[u8]>) -> Origin {
        self.sys_pid(PID, tid, fd, false, bytes.as_ref())
    }

    fn write(&mut self, tid: u32, fd: i32, bytes: impl AsRef<[u8]>) -> Origin {
        self.sys_pid(PID, tid, fd, true, bytes.as_ref())
    }

    /// A data record with exactly these flags, whatever the kernel model would do.
    fn data(
        &mut self,
        tid: u32,
        fd: i32,
        write: bool,
        extra_flags: u32,
        head_start: bool,
        bytes: &[u8],
    ) -> Origin {
        let o = self.at(tid);
        let fl = raw::flags_for(write, head_start) | extra_flags;
        let syscall = if write { sys::WRITE } else { sys::READ };
        self.record(raw::data_with(
            o,
            fd,
            syscall,
            fl,
            bytes.len() as u64,
            bytes,
        ));
        o
    }

    fn accept(&mut self, tid: u32, fd: i32, peer: Option<SocketAddr>) -> Origin {
        let o = self.at(tid);
        let rec = self.k.conn(KIND_ACCEPT, o, fd, peer);
        self.record(rec);
        o
    }

    fn connect(&mut self, tid: u32, fd: i32, peer: Option<SocketAddr>) -> Origin {
        let o = self.at(tid);
        let rec = self.k.conn(KIND_CONNECT, o, fd, peer);
        self.record(rec);
        o
    }

    fn close(&mut self, tid: u32, fd: i32) -> Origin {
        let o = self.at(tid);
        if let Some(rec) = self.k.close(o, fd) {
            self.record(rec);
        }
        o
    }

    fn exit(&mut self, pid: u32) -> Origin {
        let o = self.at_pid(pid, pid);
        self.record(raw::simple(KIND_EXIT, o, -1));
        o
    }

    /// The events produced since the last call.
    fn take(&mut self) -> Vec<HttpEvent> {
        std::mem::take(&mut self.out)
    }

    fn stats(&self) -> TrackerStats {
        self.t.stats()
    }
}

// ---------------------------------------------------------------------------------------------
// Looking at events.
// ---------------------------------------------------------------------------------------------

fn o(x: Origin) -> String {
    format!("{}/{}@{}", x.pid, x.tid, x.ts_ns)
}

fn conn_s(c: ConnId) -> String {
    format!("{}:{}#{}", c.pid, c.fd, c.serial)
}

/// A one-line summary of an event with its identities and origins.
fn s(ev: &HttpEvent) -> String {
    match ev {
        HttpEvent::Request(r) => {
            let head = match &r.head {
                Some(h) => format!("{} {}", h.method, h.path),
                None => "-".to_owned(),
            };
            format!(
                "req {} {:?} {head} {} {}",
                r.seq,
                r.role,
                conn_s(r.conn),
                o(r.origin)
            )
        }
        HttpEvent::Exchange(x) => {
            format!("exch {} {} {}", x.request.seq, x.response.status, o(x.end))
        }
        HttpEvent::Unknown(u) => format!(
            "unknown {:?} {:?} {:?} {} {}",
            u.reason,
            u.direction,
            u.role,
            conn_s(u.conn),
            o(u.origin)
        ),
        HttpEvent::Abandoned { request, why, at } => {
            format!("abandoned {} {why:?} {}", request.seq, o(*at))
        }
    }
}

fn ss(evs: &[HttpEvent]) -> Vec<String> {
    evs.iter().map(s).collect()
}

#[track_caller]
fn request(ev: &HttpEvent) -> &Request {
    match ev {
        HttpEvent::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

#[track_caller]
fn exchange(ev: &HttpEvent) -> &Exchange {
    match ev {
        HttpEvent::Exchange(x) => x,
        other => panic!("not an exchange: {other:?}"),
    }
}

#[track_caller]
fn head_of(r: &Request) -> &RequestHead {
    r.head.as_deref().expect("request has a head")
}

fn trace_id(r: &Request) -> String {
    head_of(r)
        .trace
        .primary()
        .map(|c| c.trace_id.wire().as_str().to_owned())
        .unwrap_or_default()
}

fn cid(fd: i32, serial: u64) -> ConnId {
    ConnId {
        pid: PID,
        fd,
        serial,
    }
}

fn get(path: &str, extra: &[&str]) -> Vec<u8> {
    let mut h = format!("GET {path} HTTP/1.1\r\nHost: svc:8080\r\n");
    for e in extra {
        h.push_str(e);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

fn ok(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ok_head(status: u16, len: usize) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\nContent-Length: {len}\r\n\r\n").into_bytes()
}

fn stats(f: impl FnOnce(&mut TrackerStats)) -> TrackerStats {
    let mut s = TrackerStats::default();
    f(&mut s);
    s
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn kernel_model_flags_like_the_kernel() {
    // The model the tests rely on: prefix matches for short writes, the status line, no match.
    for yes in [
        &b"G"[..],
        b"GE",
        b"P",
        b"H",
        b"O",
        b"C",
        b"T",
        b"D",
        b"HTTP/1.1 ",
        b"PATCH /",
    ] {
        assert!(kernel_head_start(yes), "{yes:?}");
    }
    for no in [
        &b"E"[..],
        b"GET/",
        b"\x16\x03\x01",
        b"*2\r\n",
        b"HTTP/2.0",
        b"x",
    ] {
        assert!(!kernel_head_start(no), "{no:?}");
    }
    let mut k = Kernel::default();
    let o = Origin {
        pid: 1,
        tid: 1,
        ts_ns: 1,
    };
    // A head ending in CRLFCRLF stops forwarding; a body-only write is then dropped.
    assert!(k.data(o, 3, false, b"GET / HTTP/1.1\r\n\r\n").is_some());
    assert!(k.data(o, 3, false, b"body").is_none());
    // A head not ending there keeps it going, the other direction is separate.
    assert!(k.data(o, 3, false, b"GET / HTTP/1.1\r\n").is_some());
    assert!(k.data(o, 3, true, b"body").is_none());
    assert!(k.data(o, 3, false, b"Host: a\r\n\r\n").is_some());
    assert!(k.data(o, 3, false, b"body").is_none());
}

#[test]
fn request_split_at_every_point() {
    let raw = get("/split/here?q=1", &[TRACEPARENT, "User-Agent: t/1"]);
    for cut in 1..raw.len() {
        let mut h = H::new();
        h.accept(T1, FD, Some(peer()));
        let first = h.read(T2, FD, &raw[..cut]);
        assert!(h.take().is_empty(), "cut {cut}: complete too early");
        let second = h.read(T3, FD, &raw[cut..]);
        let evs = h.take();
        assert_eq!(evs.len(), 1, "cut {cut}: {evs:?}");
        let r = request(&evs[0]);
        assert_eq!(r.origin, first, "cut {cut}");
        assert_ne!(r.origin, second);
        assert_eq!(r.role, Role::Server);
        assert_eq!(r.conn, cid(FD, 1));
        assert_eq!(r.peer, Some(peer()));
        let hd = head_of(r);
        assert_eq!(
            (hd.method.as_str(), hd.path.as_str()),
            ("GET", "/split/here")
        );
        assert_eq!(hd.user_agent.as_deref(), Some("t/1"));
        assert_eq!(trace_id(r), TP_ID);
        assert_eq!(
            h.stats(),
            stats(|s| s.requests = 1),
            "cut {cut}: nothing else is counted"
        );
    }
}

#[test]
fn response_split_at_every_point_then_the_next_exchange() {
    // Split anywhere in the head or its body; the connection goes on with a second exchange.
    let resp = ok(200, "hello");
    let head_len = resp.len() - 5;
    for cut in 1..resp.len() {
        let mut h = H::new();
        h.connect(T1, FD, Some(peer2()));
        h.write(T1, FD, get("/a", &[]));
        let a = h.read(T2, FD, &resp[..cut]);
        let b = h.read(T2, FD, &resp[cut..]);
        h.write(T1, FD, get("/b", &[]));
        let c = h.read(T3, FD, ok(404, "nope"));
        let evs = h.take();
        let end = if cut >= head_len { a } else { b };
        assert_eq!(
            ss(&evs),
            vec![
                "req 1 Client GET /a 100:7#1 100/100@2".to_owned(),
                format!("exch 1 200 {}", o(end)),
                "req 2 Client GET /b 100:7#1 100/100@5".to_owned(),
                format!("exch 2 404 {}", o(c)),
            ],
            "cut {cut}"
        );
        assert_eq!(exchange(&evs[1]).response.body, head::Body::Length(5));
        assert_eq!(request(&evs[0]).peer, Some(peer2()));
        assert_eq!(
            h.stats(),
            stats(|s| {
                s.requests = 2;
                s.exchanges = 2;
                // The rest of the body is forwarded (and skipped) only when the first part
                // did not end the head's syscall with CRLFCRLF.
                s.body_records = u64::from(cut > head_len);
            }),
            "cut {cut}"
        );
    }
}

#[test]
fn head_spread_over_several_records_of_several_threads() {
    let mut h = H::new();
    h.connect(T1, FD, Some(peer()));
    let raw = get("/many", &[B3, "Accept: */*", "X-Long: 0123456789"]);
    let pieces: Vec<&[u8]> = raw.chunks(9).collect();
    assert!(pieces.len() > 5);
    let mut origins = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let tid = [T1, T2, T3][i % 3];
        origins.push(h.write(tid, FD, p));
        if i + 1 < pieces.len() {
            assert!(h.out.is_empty(), "complete after piece {i}");
        }
    }
    let resp = ok(201, "{}");
    let r1 = h.read(T3, FD, &resp[..10]);
    let r2 = h.read(T2, FD, &resp[10..30]);
    let r3 = h.read(T1, FD, &resp[30..]);
    let evs = h.take();
    assert_eq!(evs.len(), 2, "{evs:?}");
    let r = request(&evs[0]);
    assert_eq!(r.origin, origins[0]);
    assert_eq!(r.role, Role::Client);
    assert_eq!(trace_id(r), B3_ID);
    assert_eq!(head_of(r).path, "/many");
    let x = exchange(&evs[1]);
    assert_eq!(x.request, *r);
    assert_eq!(x.response.status, 201);
    assert_eq!(x.end, r3, "the record that completed the response head");
    assert_ne!(x.end, r1);
    assert_ne!(x.end, r2);
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.exchanges = 1
        })
    );
}

#[test]
fn pipelined_requests_in_one_record_and_responses_in_one_record() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let mut reqs = get("/1", &[TRACEPARENT]);
    reqs.extend(get("/2", &[B3]));
    reqs.extend(b"DELETE /3 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    reqs.extend(get("/4", &[]));
    let a = h.read(T2, FD, &reqs);
    let mut resps = ok(200, "one");
    resps.extend(ok(201, ""));
    resps.extend(b"HTTP/1.1 204 No Content\r\n\r\n");
    resps.extend(ok(500, "four!"));
    let b = h.write(T3, FD, &resps);
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /1 100:7#1 {}", o(a)),
            format!("req 2 Server GET /2 100:7#1 {}", o(a)),
            format!("req 3 Server DELETE /3 100:7#1 {}", o(a)),
            format!("req 4 Server GET /4 100:7#1 {}", o(a)),
            format!("exch 1 200 {}", o(b)),
            format!("exch 2 201 {}", o(b)),
            format!("exch 3 204 {}", o(b)),
            format!("exch 4 500 {}", o(b)),
        ]
    );
    assert_eq!(trace_id(request(&evs[0])), TP_ID);
    assert_eq!(trace_id(request(&evs[1])), B3_ID);
    assert!(!head_of(request(&evs[3])).trace.carries_trace());
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 4;
            s.exchanges = 4
        })
    );
}

/// Regression: a Content-Length body skip carried across records ate the first bytes of the
/// next response head, because the body syscalls were never forwarded.
#[test]
fn regression_unforwarded_response_body_does_not_eat_the_next_head() {
    let mut h = H::new();
    h.connect(T1, FD, None);
    h.data(T1, FD, true, 0, true, &get("/a", &[]));
    let a = h.data(T1, FD, false, 0, true, &ok_head(200, 2));
    // The body "ok" is read by a syscall the kernel does not forward.
    h.data(T1, FD, true, 0, true, &get("/b", &[]));
    let b = h.data(T1, FD, false, 0, true, &ok_head(404, 0));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            "req 1 Client GET /a 100:7#1 100/100@2".to_owned(),
            format!("exch 1 200 {}", o(a)),
            "req 2 Client GET /b 100:7#1 100/100@4".to_owned(),
            format!("exch 2 404 {}", o(b)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 2;
            s.exchanges = 2
        })
    );
}

#[test]
fn keep_alive_many_exchanges_with_unforwarded_bodies() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let mut want = Vec::new();
    for i in 0..20u16 {
        let path = format!("/item/{i}");
        let ro = h.read(T2, FD, get(&path, &[TRACEPARENT]));
        let body = "x".repeat(usize::from(i) * 7 + 1);
        let wo = h.write(T2, FD, ok_head(200 + i, body.len()));
        // The body goes in its own write, which the kernel does not forward.
        h.write(T2, FD, &body);
        want.push(format!("req {} Server GET {path} 100:7#1 {}", i + 1, o(ro)));
        want.push(format!("exch {} {} {}", i + 1, 200 + i, o(wo)));
    }
    let evs = h.take();
    assert_eq!(ss(&evs), want);
    assert!(
        evs.iter()
            .filter_map(|e| match e {
                HttpEvent::Request(r) => Some(r),
                _ => None,
            })
            .all(|r| trace_id(r) == TP_ID && r.peer == Some(peer()))
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 20;
            s.exchanges = 20
        })
    );
    assert_eq!(h.t.connections(), 1);
}

#[test]
fn http_1_0_exchange_until_close() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let a = h.read(T1, FD, b"GET /old HTTP/1.0\r\nUser-Agent: ancient\r\n\r\n");
    let b = h.write(
        T1,
        FD,
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n<html>GET / HTTP/1.1\r\n",
    );
    // More body, forwarded because the last write did not end the head's syscall with CRLFCRLF.
    h.write(T1, FD, b"more body\r\n\r\n");
    let c = h.close(T1, FD);
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /old 100:7#1 {}", o(a)),
            format!("exch 1 200 {}", o(b)),
        ]
    );
    let x = exchange(&evs[1]);
    assert_eq!(head_of(&x.request).version, 0);
    assert_eq!(x.response.version, 0);
    assert_eq!(x.response.body, head::Body::UntilClose);
    assert_eq!(h.t.connections(), 0, "closed at {c:?}");
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.exchanges = 1;
            s.body_records = 1;
        })
    );
}

#[test]
fn mixed_case_header_names() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let raw = b"POST /Mixed HTTP/1.1\r\nHOST: Svc.Local\r\nuser-AGENT: Ua/2\r\n\
        X-B3-TRACEID: 463AC35C9F6413AD48485A3953BB6124\r\nX-b3-SpanId: A2FB4A1D1A96D312\r\n\
        CONTENT-length: 4\r\n\r\nbodyGET /next HTTP/1.1\r\n\r\n";
    let a = h.read(T1, FD, raw);
    let b = h.write(
        T1,
        FD,
        b"HTTP/1.1 200 OK\r\ncOnTeNt-LeNgTh: 2\r\n\r\nokHTTP/1.1 202 OK\r\n\r\n",
    );
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server POST /Mixed 100:7#1 {}", o(a)),
            format!("req 2 Server GET /next 100:7#1 {}", o(a)),
            format!("exch 1 200 {}", o(b)),
            format!("exch 2 202 {}", o(b)),
        ]
    );
    let hd = head_of(request(&evs[0]));
    assert_eq!(hd.host.as_deref(), Some("Svc.Local"));
    assert_eq!(hd.user_agent.as_deref(), Some("Ua/2"));
    assert_eq!(hd.body, head::Body::Length(4));
    assert_eq!(
        trace_id(request(&evs[0])),
        "463ac35c9f6413ad48485a3953bb6124"
    );
}

#[test]
fn trace_headers_after_a_6kb_cookie_in_one_and_in_many_writes() {
    let secret = "SeSsIoNsEcReT".repeat(6 * 1024 / 13 + 1);
    let cookie = format!("Cookie: sid={secret}");
    let raw = get(
        "/with-cookie",
        &[&cookie, "Authorization: Bearer TOPSECRETTOKEN", TRACEPARENT],
    );
    assert!(raw.len() > 6 * 1024);
    for chunk in [raw.len(), 1000, 4096, 333] {
        let mut h = H::new();
        h.connect(T1, FD, Some(peer()));
        let mut first = None;
        for piece in raw.chunks(chunk) {
            let at = h.write(T2, FD, piece);
            first.get_or_insert(at);
        }
        let b = h.read(T2, FD, ok(200, "fine"));
        let evs = h.take();
        assert_eq!(
            ss(&evs),
            vec![
                format!(
                    "req 1 Client GET /with-cookie 100:7#1 {}",
                    o(first.unwrap())
                ),
                format!("exch 1 200 {}", o(b)),
            ],
            "chunk {chunk}"
        );
        assert_eq!(trace_id(request(&evs[0])), TP_ID);
        let dbg = format!("{evs:?}");
        assert!(!dbg.contains("SeSsIoN"), "cookie leaked: chunk {chunk}");
        assert!(
            !dbg.contains("TOPSECRET"),
            "credential leaked: chunk {chunk}"
        );
        let dbg = format!("{:?}", h.t);
        assert!(
            !dbg.contains("SeSsIoN") && !dbg.contains("sid="),
            "cookie kept by the tracker"
        );
    }
}

#[test]
fn request_with_body_in_the_same_record_then_the_next_request() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    // Body in the head's record, next request in its own record.
    let a = h.read(
        T1,
        FD,
        b"POST /upload HTTP/1.1\r\nContent-Length: 11\r\n\r\nGET / HTTP/",
    );
    let b = h.read(T1, FD, get("/after", &[B3]));
    // Body partly in the head's record, the rest and the next request in the next record.
    let c = h.read(
        T2,
        FD,
        b"PUT /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nHTTP/",
    );
    let d = h.read(T2, FD, b"1.1 2PATCH /q HTTP/1.1\r\n\r\n");
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server POST /upload 100:7#1 {}", o(a)),
            format!("req 2 Server GET /after 100:7#1 {}", o(b)),
            format!("req 3 Server PUT /p 100:7#1 {}", o(c)),
            format!("req 4 Server PATCH /q 100:7#1 {}", o(d)),
        ]
    );
    assert_eq!(trace_id(request(&evs[1])), B3_ID);
    assert_eq!(
        h.stats(),
        stats(|s| s.requests = 4),
        "no unknowns, no body-only records"
    );
}

#[test]
fn chunked_response_then_the_next_exchange() {
    let mut h = H::new();
    h.connect(T1, FD, Some(peer()));
    h.write(T1, FD, get("/stream", &[]));
    // Head and first chunk in one read: the kernel forwards the next reads too, up to the one
    // ending with CRLFCRLF (the last chunk), and none of them is a head.
    let a = h.read(
        T1,
        FD,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    h.read(T1, FD, b"7\r\nHTTP/1.\r\n");
    h.read(T1, FD, b"0\r\n\r\n");
    h.write(T1, FD, get("/next", &[]));
    // A chunked response whose head is read alone: no body record is forwarded.
    let b = h.read(
        T1,
        FD,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    h.read(T1, FD, b"3\r\nabc\r\n0\r\n\r\n");
    h.write(T1, FD, get("/last", &[]));
    let c = h.read(T1, FD, ok(203, "x"));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            "req 1 Client GET /stream 100:7#1 100/100@2".to_owned(),
            format!("exch 1 200 {}", o(a)),
            "req 2 Client GET /next 100:7#1 100/100@6".to_owned(),
            format!("exch 2 200 {}", o(b)),
            "req 3 Client GET /last 100:7#1 100/100@9".to_owned(),
            format!("exch 3 203 {}", o(c)),
        ]
    );
    assert_eq!(exchange(&evs[1]).response.body, head::Body::Chunked);
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 3;
            s.exchanges = 3;
            s.body_records = 2;
        })
    );
}

#[test]
fn continue_100_then_200() {
    // Interim response in its own record.
    let mut h = H::new();
    h.connect(T1, FD, Some(peer()));
    let a = h.write(
        T1,
        FD,
        b"POST /big HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    h.read(T1, FD, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(h.take().iter().all(|e| matches!(e, HttpEvent::Request(_))));
    h.write(T1, FD, b"hello");
    let b = h.read(T1, FD, ok(200, "done"));
    let evs = h.take();
    assert_eq!(ss(&evs), vec![format!("exch 1 200 {}", o(b))]);
    assert_eq!(exchange(&evs[0]).request.origin, a);

    // Interim and final response in one record, and 103 Early Hints too.
    let mut h = H::new();
    h.connect(T1, FD, Some(peer()));
    h.write(T1, FD, get("/hints", &[]));
    let c = h.read(
        T1,
        FD,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            "req 1 Client GET /hints 100:7#1 100/100@2".to_owned(),
            format!("exch 1 201 {}", o(c)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.exchanges = 1
        })
    );
}

#[test]
fn upgrade_101_stops_parsing() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let a = h.read(
        T1,
        FD,
        get(
            "/ws",
            &["Upgrade: websocket", "Connection: Upgrade", TRACEPARENT],
        ),
    );
    let b = h.write(
        T1,
        FD,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
    );
    // What follows is another protocol, even when it looks like HTTP.
    h.read(T1, FD, get("/not-http-anymore", &[]));
    h.write(T1, FD, ok(200, "nope"));
    h.data(T1, FD, false, 0, true, b"GET /x HTTP/1.1\r\n\r\n");
    h.data(T1, FD, true, 0, true, b"HTTP/1.1 200 OK\r\n\r\n");
    h.read(T1, FD, b"GET /partial");
    let c = h.close(T1, FD);
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /ws 100:7#1 {}", o(a)),
            format!("exch 1 101 {}", o(b)),
        ],
        "closed at {c:?}"
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.exchanges = 1
        })
    );
}

/// A deterministic xorshift generator.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// No exchange and no readable request came out of garbage. Only an unreadable head read on a
/// server connection stands for a request in flight: a request without a head, announced with
/// the `Unknown` that explains it.
#[track_caller]
fn assert_no_http(h: &mut H, what: &str) {
    let evs = h.take();
    for (i, e) in evs.iter().enumerate() {
        match e {
            HttpEvent::Request(r) => {
                assert!(
                    r.head.is_none() && r.role == Role::Server,
                    "{what}: {evs:?}"
                );
                // The nearest earlier event other than an overflowing older request.
                let Some(HttpEvent::Unknown(u)) = evs[..i].iter().rev().find(|e| {
                    !matches!(
                        e,
                        HttpEvent::Abandoned {
                            why: Abandon::Overflow,
                            ..
                        }
                    )
                }) else {
                    panic!("{what}: unexplained request: {evs:?}")
                };
                assert_eq!(
                    (u.origin, u.direction, u.role),
                    (r.origin, Direction::Ingress, Some(Role::Server)),
                    "{what}"
                );
            }
            HttpEvent::Exchange(_) => panic!("{what}: {evs:?}"),
            HttpEvent::Unknown(_) | HttpEvent::Abandoned { .. } => {}
        }
    }
    let st = h.stats();
    assert_eq!((st.requests, st.exchanges), (0, 0), "{what}");
}

#[test]
fn garbage_produces_no_requests() {
    let tls_hello: &[u8] =
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x9b\x00\x00\x02\x13\x01\x01\x00";
    let redis: &[u8] = b"*2\r\n$3\r\nGET\r\n$5\r\nmykey\r\n";
    let redis_inline: &[u8] = b"GET mykey\r\n";
    let redis_reply: &[u8] = b"$5\r\nhello\r\n";
    for (i, role) in [Some(Role::Server), Some(Role::Client), None]
        .into_iter()
        .enumerate()
    {
        let mut h = H::new();
        match role {
            Some(Role::Server) => {
                h.accept(T1, FD, None);
            }
            Some(Role::Client) => {
                h.connect(T1, FD, None);
            }
            None => {}
        }
        // TLS and RESP do not begin like a head: the kernel forwards none of it.
        for bytes in [tls_hello, redis, redis_reply] {
            h.read(T1, FD, bytes);
            h.write(T1, FD, bytes);
        }
        assert!(h.take().is_empty());
        assert_eq!(h.stats(), TrackerStats::default());
        // An inline Redis command does, and is unparsable.
        let at = h.read(T1, FD, redis_inline);
        let evs = h.take();
        let role_s = format!("{role:?}");
        let mut want = vec![format!(
            "unknown Unparsable Ingress {role_s} 100:7#1 {}",
            o(at)
        )];
        if role == Some(Role::Server) {
            want.push(format!("req 1 Server - 100:7#1 {}", o(at)));
        }
        assert_eq!(ss(&evs), want, "case {i}");
        assert_eq!(h.stats(), stats(|s| s.unknown_unparsable = 1), "case {i}");
        // Through the kernel model: most of it is not even forwarded.
        for (n, bytes) in [tls_hello, redis, redis_inline, redis_reply]
            .iter()
            .enumerate()
        {
            h.read(T1, FD, bytes);
            h.write(T1, FD, bytes);
            h.read(T1, FD, redis);
            assert_no_http(&mut h, &format!("case {i} via kernel {n}"));
        }
        // As records flagged any way, whatever the kernel would do.
        for (n, bytes) in [tls_hello, redis, redis_inline, redis_reply]
            .iter()
            .enumerate()
        {
            for hs in [false, true] {
                for write in [false, true] {
                    h.data(T1, FD, write, 0, hs, bytes);
                }
            }
            assert_no_http(&mut h, &format!("case {i} flagged {n}"));
        }
        for seed in 1..200u64 {
            let bytes = noise(seed, (seed as usize * 37) % 700 + 1);
            h.read(T2, FD, &bytes);
            h.data(T2, FD, seed % 2 == 0, 0, true, &bytes);
            h.data(T2, FD, seed % 2 == 1, 0, false, &bytes);
            // Random bytes after a plausible start.
            let mut start = b"GET /".to_vec();
            start.extend(noise(seed + 1000, 64));
            h.data(T2, FD, false, 0, true, &start);
            assert_no_http(&mut h, &format!("case {i} noise {seed}"));
        }
        assert!(
            h.stats().unknown_unparsable > 0,
            "case {i}: something was looked at"
        );
        // The connection still works afterwards.
        if role == Some(Role::Server) {
            h.close(T1, FD);
            let evs = h.take();
            assert!(!evs.is_empty());
            assert!(evs.iter().all(|e| matches!(
                e,
                HttpEvent::Abandoned {
                    why: Abandon::Closed,
                    ..
                }
            )));
            h.accept(T1, FD, None);
            h.read(T1, FD, get("/fine", &[]));
            let evs = h.take();
            assert_eq!(evs.len(), 1, "{evs:?}");
            assert_eq!(head_of(request(&evs[0])).path, "/fine");
        }
    }
}

#[test]
fn one_byte_per_write_for_a_whole_request_and_response() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let mut raw = b"POST /one/byte HTTP/1.1\r\nHost: h\r\n".to_vec();
    raw.extend_from_slice(TRACEPARENT.as_bytes());
    raw.extend_from_slice(b"\r\nContent-Length: 3\r\n\r\nabc");
    let mut first = None;
    let mut flagged = 0;
    for b in &raw {
        // The kernel flags every letter that may begin a head: G, P, H, O, C, T, D.
        flagged += usize::from(kernel_head_start(&[*b]));
        let at = h.read(T2, FD, [*b]);
        first.get_or_insert(at);
    }
    assert!(
        flagged >= 9,
        "the test exercises head_start inside the head"
    );
    let resp = ok(200, "xyz");
    let mut last = None;
    for b in &resp {
        last = Some(h.write(T3, FD, [*b]));
    }
    let evs = h.take();
    // The response head ends 3 body bytes before the last write.
    let end = Origin {
        ts_ns: last.unwrap().ts_ns - 3,
        ..last.unwrap()
    };
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server POST /one/byte 100:7#1 {}", o(first.unwrap())),
            format!("exch 1 200 {}", o(end)),
        ]
    );
    assert_eq!(trace_id(request(&evs[0])), TP_ID);
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.exchanges = 1;
            // Each body byte is forwarded (the kernel cannot see CRLFCRLF across writes).
            s.body_records = 6;
        })
    );
}

/// A request head of exactly `len` bytes.
fn head_of_len(path: &str, len: usize) -> Vec<u8> {
    let start = format!("GET {path} HTTP/1.1\r\n{TRACEPARENT}\r\nX-Fill: ");
    let fill = len - start.len() - 4;
    let mut raw = start.into_bytes();
    raw.extend(std::iter::repeat_n(b'f', fill));
    raw.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw.len(), len);
    raw
}

#[test]
fn head_of_exactly_the_budget_parses() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let raw = head_of_len("/exact", HEAD_MAX as usize);
    let a = h.read(T1, FD, &raw);
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![format!("req 1 Server GET /exact 100:7#1 {}", o(a))]
    );
    assert_eq!(trace_id(request(&evs[0])), TP_ID);
    assert_eq!(h.stats(), stats(|s| s.requests = 1));
}

#[test]
fn head_over_the_budget_in_one_syscall_is_truncated_and_still_answered() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let raw = head_of_len("/huge", HEAD_MAX as usize + 1);
    let a = h.read(T2, FD, &raw[..raw.len()]);
    // The rest is not forwarded (capped ends the head budget), nor is the body.
    h.read(T2, FD, b"more");
    let b = h.write(T2, FD, ok(431, "too big"));
    // The connection goes on.
    let c = h.read(T3, FD, get("/small", &[]));
    let d = h.write(T3, FD, ok(200, ""));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("unknown Truncated Ingress Some(Server) 100:7#1 {}", o(a)),
            format!("req 1 Server - 100:7#1 {}", o(a)),
            format!("exch 1 431 {}", o(b)),
            format!("req 2 Server GET /small 100:7#1 {}", o(c)),
            format!("exch 2 200 {}", o(d)),
        ]
    );
    let x = exchange(&evs[2]);
    assert_eq!(x.request.head, None);
    assert_eq!(x.request.peer, Some(peer()));
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.unknown_truncated = 1;
            s.requests = 1;
            s.exchanges = 2;
        })
    );
    assert!(
        !format!("{:?}", h.t).contains("fffff"),
        "the cut head is not kept"
    );
}

#[test]
fn head_over_the_budget_in_many_syscalls_is_truncated() {
    // 4 KiB writes: the kernel forwards exactly HEAD_MAX bytes (no capped flag), then stops.
    let raw = head_of_len("/huge", 3 * HEAD_MAX as usize);
    for (role, write) in [(Role::Client, true), (Role::Server, false)] {
        let mut h = H::new();
        match role {
            Role::Client => h.connect(T1, FD, None),
            Role::Server => h.accept(T1, FD, None),
        };
        let mut first = None;
        for piece in raw.chunks(4096) {
            let at = h.sys_pid(PID, T2, FD, write, piece);
            first.get_or_insert(at);
        }
        let at = first.unwrap();
        let evs = h.take();
        let dir = if write { "Egress" } else { "Ingress" };
        let mut want = vec![format!(
            "unknown Truncated {dir} Some({role:?}) 100:7#1 {}",
            o(at)
        )];
        if role == Role::Server {
            want.push(format!("req 1 Server - 100:7#1 {}", o(at)));
        }
        assert_eq!(ss(&evs), want);
        // Its response: paired on the server side; the client side has nothing to pair with.
        let b = h.sys_pid(PID, T3, FD, !write, &ok(400, ""));
        let evs = h.take();
        match role {
            Role::Server => assert_eq!(ss(&evs), vec![format!("exch 1 400 {}", o(b))]),
            Role::Client => assert!(evs.is_empty()),
        }
        assert_eq!(
            h.stats(),
            stats(|s| {
                s.unknown_truncated = 1;
                s.exchanges = u64::from(role == Role::Server);
                s.unpaired_responses = u64::from(role == Role::Client);
            })
        );
    }
}

#[test]
fn damaged_records_are_truncated_not_guessed() {
    for fl in [flags::IOV_CUT, flags::READ_FAULT, flags::CAPPED] {
        let mut h = H::new();
        h.accept(T1, FD, None);
        // The damage is in the first record; the head would complete in the second.
        let a = h.data(T2, FD, false, fl, true, b"GET /dmg HTTP/1.1\r\nHost: a");
        h.data(T2, FD, false, 0, false, b"bc\r\n\r\n");
        // A damaged record that still holds a whole head is fine.
        let b = h.data(T2, FD, false, fl, true, b"GET /whole HTTP/1.1\r\n\r\n");
        let evs = h.take();
        assert_eq!(
            ss(&evs),
            vec![
                format!("unknown Truncated Ingress Some(Server) 100:7#1 {}", o(a)),
                format!("req 1 Server - 100:7#1 {}", o(a)),
                format!("req 2 Server GET /whole 100:7#1 {}", o(b)),
            ],
            "flags {fl:#x}"
        );
        assert_eq!(
            h.stats(),
            stats(|s| {
                s.unknown_truncated = 1;
                s.requests = 1;
                s.body_records = 1;
            }),
            "flags {fl:#x}"
        );
    }
}

#[test]
fn lost_records_abandon_pending_requests() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let r1 = h.read(T1, FD, get("/1", &[]));
    let r2 = h.read(T1, FD, get("/2", &[]));
    // The response to /1 does not fit in the ring buffer.
    h.k.drop_next = true;
    h.write(T2, FD, ok(200, "a"));
    let w2 = h.write(T2, FD, ok(201, "b"));
    // A fresh exchange works.
    let r3 = h.read(T1, FD, get("/3", &[]));
    let w3 = h.write(T2, FD, ok(202, "c"));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /1 100:7#1 {}", o(r1)),
            format!("req 2 Server GET /2 100:7#1 {}", o(r2)),
            format!("unknown Lost Egress Some(Server) 100:7#1 {}", o(w2)),
            format!("abandoned 1 Lost {}", o(w2)),
            format!("abandoned 2 Lost {}", o(w2)),
            format!("req 3 Server GET /3 100:7#1 {}", o(r3)),
            format!("exch 3 202 {}", o(w3)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 3;
            s.exchanges = 1;
            s.unknown_lost = 1;
            s.abandoned = 2;
            // The 201 after the loss has no request left to answer.
            s.unpaired_responses = 1;
        })
    );
}

#[test]
fn lost_records_in_the_middle_of_a_head() {
    let mut h = H::new();
    h.connect(T1, FD, None);
    let raw = get("/lost/middle", &[TRACEPARENT, "X-A: 1", "X-B: 2"]);
    let a = h.write(T2, FD, &raw[..20]);
    h.k.drop_next = true;
    h.write(T2, FD, &raw[20..40]);
    h.write(T2, FD, &raw[40..]);
    // The next head is read normally.
    let b = h.write(T3, FD, get("/next", &[]));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("unknown Lost Egress Some(Client) 100:7#1 {}", o(a)),
            format!("req 1 Client GET /next 100:7#1 {}", o(b)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.unknown_lost = 1;
            s.body_records = 1;
        })
    );
    // A loss on a direction with no head in progress is reported at the record that tells it.
    h.data(T1, FD, false, flags::LOST_BEFORE, true, &ok_head(200, 0));
    let evs = h.take();
    assert_eq!(evs.len(), 2, "{evs:?}");
    let HttpEvent::Unknown(u) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(
        (u.reason, u.direction),
        (UnknownReason::Lost, Direction::Ingress)
    );
    assert!(matches!(
        &evs[1],
        HttpEvent::Abandoned {
            why: Abandon::Lost,
            ..
        }
    ));
    assert_eq!(h.stats().unpaired_responses, 1);
}

#[test]
fn close_in_the_middle_of_a_head() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let r1 = h.read(T1, FD, get("/done", &[]));
    let r2 = h.read(T2, FD, b"GET /half HTTP/1.1\r\nHost: a\r\n");
    let w = h.write(T3, FD, b"HTTP/1.1 200 OK\r\nContent-Le");
    let c = h.close(T1, FD);
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /done 100:7#1 {}", o(r1)),
            format!(
                "unknown ClosedMidHead Ingress Some(Server) 100:7#1 {}",
                o(r2)
            ),
            format!("unknown ClosedMidHead Egress Some(Server) 100:7#1 {}", o(w)),
            format!("abandoned 1 Closed {}", o(c)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.unknown_closed_mid_head = 2;
            s.abandoned = 1;
        })
    );
    assert_eq!(h.t.connections(), 0);
    // A close between heads reports nothing.
    h.accept(T1, FD, None);
    h.read(T1, FD, get("/x", &[]));
    h.write(T1, FD, ok(200, ""));
    h.take();
    h.close(T1, FD);
    assert!(h.take().is_empty());
}

#[test]
fn reused_fd_is_a_new_connection_and_never_pairs_across() {
    let mut h = H::new();
    h.accept(T1, FD, Some(peer()));
    let r1 = h.read(T1, FD, get("/first", &[]));
    let c1 = h.close(T1, FD);
    h.accept(T1, FD, Some(peer2()));
    // The response to the closed connection's request cannot come on the new one.
    h.write(T1, FD, ok(200, ""));
    let r2 = h.read(T1, FD, get("/second", &[]));
    let w2 = h.write(T1, FD, ok(201, ""));
    // accept on the same fd without a close seen: the old connection ends there.
    let r3 = h.read(T1, FD, get("/third", &[]));
    let a3 = h.accept(T2, FD, None);
    h.write(T1, FD, ok(202, ""));
    // connect reuses it too, and turns it into a client.
    let c4 = h.connect(T3, FD, Some(peer()));
    let r4 = h.write(T3, FD, get("/fourth", &[]));
    let w4 = h.read(T3, FD, ok(203, ""));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /first 100:7#1 {}", o(r1)),
            format!("abandoned 1 Closed {}", o(c1)),
            format!("req 2 Server GET /second 100:7#2 {}", o(r2)),
            format!("exch 2 201 {}", o(w2)),
            format!("req 3 Server GET /third 100:7#2 {}", o(r3)),
            format!("abandoned 3 Closed {}", o(a3)),
            format!("req 4 Client GET /fourth 100:7#4 {}", o(r4)),
            format!("exch 4 203 {}", o(w4)),
        ],
        "connect at {c4:?}"
    );
    assert_eq!(request(&evs[0]).peer, Some(peer()));
    assert_eq!(request(&evs[2]).peer, Some(peer2()));
    assert_eq!(request(&evs[6]).peer, Some(peer()));
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 4;
            s.exchanges = 2;
            s.abandoned = 2;
            s.unpaired_responses = 2;
        })
    );
    assert!(
        h.os.asked.is_empty(),
        "connections it saw open need no lookup"
    );
}

#[test]
fn pre_existing_fd_reused_after_close_is_looked_up_again() {
    let mut h = H::new();
    h.os.fds
        .insert((PID, FD), FdKind::Socket { peer: Some(peer()) });
    let r1 = h.read(T1, FD, get("/a", &[]));
    h.close(T1, FD);
    h.os.fds.insert(
        (PID, FD),
        FdKind::Socket {
            peer: Some(peer2()),
        },
    );
    let r2 = h.write(T1, FD, get("/b", &[]));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /a 100:7#1 {}", o(r1)),
            format!("abandoned 1 Closed 100/100@{}", r1.ts_ns + 1),
            format!("req 2 Client GET /b 100:7#2 {}", o(r2)),
        ]
    );
    assert_eq!(request(&evs[0]).peer, Some(peer()));
    assert_eq!(request(&evs[2]).peer, Some(peer2()));
    assert_eq!(h.os.asked, vec![(PID, FD), (PID, FD)]);
}

#[test]
fn roles_from_connect_accept_and_direction() {
    let mut h = H::new();
    // connect: client. A request read on it goes the wrong way and is not guessed.
    h.connect(T1, 3, Some(peer()));
    let a = h.read(T1, 3, get("/wrong-way", &[]));
    let b = h.write(T1, 3, get("/out", &[]));
    // accept: server. A request written on it goes the wrong way.
    h.accept(T1, 4, Some(peer2()));
    let c = h.write(T1, 4, get("/wrong-way", &[]));
    let d = h.read(T1, 4, get("/in", &[]));
    // Sockets that existed before: the first request's direction decides.
    h.os.fds
        .insert((PID, 5), FdKind::Socket { peer: Some(peer()) });
    let e = h.read(T1, 5, get("/read-first", &[]));
    let f = h.write(T1, 5, get("/then-written", &[]));
    h.os.fds.insert((PID, 6), FdKind::Socket { peer: None });
    let g = h.write(T1, 6, get("/written-first", &[]));
    let i = h.read(T1, 6, get("/then-read", &[]));
    // Unknown to the OS (gone): a socket without a peer.
    let j = h.read(T1, 9, get("/unknown-fd", &[]));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("unknown Unparsable Ingress Some(Client) 100:3#1 {}", o(a)),
            format!("req 1 Client GET /out 100:3#1 {}", o(b)),
            format!("unknown Unparsable Egress Some(Server) 100:4#2 {}", o(c)),
            format!("req 2 Server GET /in 100:4#2 {}", o(d)),
            format!("req 3 Server GET /read-first 100:5#3 {}", o(e)),
            format!("unknown Unparsable Egress Some(Server) 100:5#3 {}", o(f)),
            format!("req 4 Client GET /written-first 100:6#4 {}", o(g)),
            format!("unknown Unparsable Ingress Some(Client) 100:6#4 {}", o(i)),
            format!("req 5 Server GET /unknown-fd 100:9#5 {}", o(j)),
        ]
    );
    let peers: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            HttpEvent::Request(r) => Some(r.peer),
            _ => None,
        })
        .collect();
    assert_eq!(
        peers,
        vec![Some(peer()), Some(peer2()), Some(peer()), None, None]
    );
    assert_eq!(h.os.asked, vec![(PID, 5), (PID, 6), (PID, 9)]);
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 5;
            s.unknown_unparsable = 4;
        })
    );
    assert_eq!(h.t.connections(), 5);
}

#[test]
fn not_socket_fd_produces_nothing_and_is_counted() {
    let mut h = H::new();
    h.os.fds.insert((PID, 3), FdKind::NotSocket);
    // A file that begins like a request, read and written in several records.
    h.read(T1, 3, b"GET /file HTTP/1.1\r\n");
    h.read(T1, 3, b"Host: a\r\n\r\n");
    h.write(T1, 3, ok(200, "x"));
    h.data(T1, 3, false, flags::LOST_BEFORE, true, &get("/again", &[]));
    assert!(h.take().is_empty());
    assert_eq!(h.stats(), stats(|s| s.not_socket_records = 4));
    assert_eq!(h.os.asked, vec![(PID, 3)], "asked once");
    assert_eq!(h.t.connections(), 1);
    h.close(T1, 3);
    assert!(h.take().is_empty());
    assert_eq!(h.t.connections(), 0);
    // The fd number reused for an accepted socket is HTTP again.
    h.accept(T1, 3, None);
    let a = h.read(T1, 3, get("/sock", &[]));
    assert_eq!(
        ss(&h.take()),
        vec![format!("req 1 Server GET /sock 100:3#2 {}", o(a))]
    );
    assert_eq!(h.stats().not_socket_records, 4);
}

#[test]
fn response_before_any_request_is_unpaired() {
    let mut h = H::new();
    h.accept(T1, 3, None);
    h.write(T1, 3, ok(200, "early"));
    h.connect(T1, 4, None);
    h.read(T1, 4, ok(200, "early"));
    // Role not known yet: a response says nothing about it.
    h.os.fds.insert((PID, 5), FdKind::Socket { peer: None });
    h.read(T1, 5, ok(200, ""));
    h.write(T1, 5, ok(200, ""));
    // A response going the wrong way for the role.
    let r = h.read(T1, 3, get("/x", &[]));
    h.read(T1, 3, ok(200, ""));
    assert_eq!(
        ss(&h.take()),
        vec![format!("req 1 Server GET /x 100:3#1 {}", o(r))]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.unpaired_responses = 5;
        })
    );
    // The request is still pending: its response pairs.
    let w = h.write(T1, 3, ok(204, ""));
    assert_eq!(ss(&h.take()), vec![format!("exch 1 204 {}", o(w))]);
}

#[test]
fn process_exit_abandons_its_pending_requests_only() {
    let mut h = H::new();
    h.accept(T1, 7, None);
    h.read(T1, 7, get("/a", &[]));
    h.read(T1, 7, get("/b", &[]));
    h.connect(T2, 8, Some(peer()));
    h.write(T2, 8, get("/c", &[]));
    let half = h.read(T2, 8, b"HTTP/1.1 200 OK\r\n");
    // Another process with the same fd numbers.
    let other = 200;
    h.sys_pid(other, other, 7, false, &get("/other", &[]));
    h.take();
    let x = h.exit(PID);
    let mut got = ss(&h.take());
    got.sort();
    assert_eq!(
        got,
        vec![
            format!("abandoned 1 ProcessExit {}", o(x)),
            format!("abandoned 2 ProcessExit {}", o(x)),
            format!("abandoned 3 ProcessExit {}", o(x)),
            format!(
                "unknown ClosedMidHead Ingress Some(Client) 100:8#2 {}",
                o(half)
            ),
        ]
    );
    assert_eq!(h.t.connections(), 1);
    // The other process's request is still there.
    let w = h.sys_pid(other, other, 7, true, &ok(200, ""));
    assert_eq!(ss(&h.take()), vec![format!("exch 4 200 {}", o(w))]);
    // Thread exits and forks change nothing.
    h.record(raw::simple(
        observer_common::KIND_THREAD_EXIT,
        Origin {
            pid: other,
            tid: 201,
            ts_ns: 1,
        },
        -1,
    ));
    h.record(raw::fork(
        Origin {
            pid: other,
            tid: other,
            ts_ns: 2,
        },
        300,
    ));
    assert!(h.take().is_empty());
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 4;
            s.exchanges = 1;
            s.abandoned = 3;
            s.unknown_closed_mid_head = 1;
        })
    );
}

#[test]
fn more_than_max_pending_requests() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let mut origins = Vec::new();
    for i in 0..MAX_PENDING {
        origins.push(h.read(T1, FD, get(&format!("/{i}"), &[])));
    }
    let evs = h.take();
    assert_eq!(evs.len(), MAX_PENDING);
    assert!(evs.iter().all(|e| matches!(e, HttpEvent::Request(_))));
    // One more: the oldest is given up, announced before the new one.
    let over = h.read(T1, FD, get("/over", &[]));
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("abandoned 1 Overflow {}", o(over)),
            format!(
                "req {} Server GET /over 100:7#1 {}",
                MAX_PENDING + 1,
                o(over)
            ),
        ]
    );
    // Responses pair with the oldest still pending.
    let w = h.write(T1, FD, ok(200, ""));
    assert_eq!(ss(&h.take()), vec![format!("exch 2 200 {}", o(w))]);
    // Pipelined in one record: 10 more overflow 10 more.
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.extend(get(&format!("/p{i}"), &[]));
    }
    let p = h.read(T2, FD, &batch);
    let evs = h.take();
    let abandoned: Vec<u64> = evs
        .iter()
        .filter_map(|e| match e {
            HttpEvent::Abandoned {
                request,
                why: Abandon::Overflow,
                at,
            } => {
                assert_eq!(*at, p);
                Some(request.seq)
            }
            _ => None,
        })
        .collect();
    // 63 pending before the batch: 9 of the 10 new ones push out seqs 3..=11.
    assert_eq!(abandoned, (3..=11).collect::<Vec<u64>>());
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = MAX_PENDING as u64 + 11;
            s.exchanges = 1;
            s.abandoned = 10;
        })
    );
    assert_eq!(origins[1].ts_ns, origins[0].ts_ns + 1);
}

#[test]
fn pipelined_heads_that_begin_in_a_later_record() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let a = h.read(T1, FD, b"GET /1 HTTP/1.1\r\nHo");
    let b = h.read(T2, FD, b"st: a\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HT");
    let c = h.read(T3, FD, b"TP/1.1\r\n\r\n");
    let w1 = h.write(T1, FD, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab");
    let w2 = h.write(
        T2,
        FD,
        b"cHTTP/1.1 201 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 202",
    );
    let w3 = h.write(T3, FD, b" OK\r\nContent-Length: 0\r\n\r\n");
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /1 100:7#1 {}", o(a)),
            format!("req 2 Server GET /2 100:7#1 {}", o(b)),
            format!("req 3 Server GET /3 100:7#1 {}", o(b)),
            format!("exch 1 200 {}", o(w1)),
            format!("exch 2 201 {}", o(w2)),
            format!("exch 3 202 {}", o(w3)),
        ]
    );
    assert_ne!(o(c), o(b));
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 3;
            s.exchanges = 3
        })
    );
}

#[test]
fn body_skip_counts_the_bytes_the_syscall_moved_not_only_those_copied() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let a = h.read(
        T1,
        FD,
        b"POST /p HTTP/1.1\r\nContent-Length: 120\r\n\r\n0123456789",
    );
    // 100 body bytes moved, only 10 copied (a fault part way): 10 bytes of body are left.
    let o2 = h.at(T1);
    h.record(raw::data_with(
        o2,
        FD,
        sys::READ,
        flags::READ_FAULT,
        100,
        b"GET /no HT",
    ));
    let b = h.data(
        T1,
        FD,
        false,
        0,
        false,
        b"0123456789GET /next HTTP/1.1\r\n\r\n",
    );
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server POST /p 100:7#1 {}", o(a)),
            format!("req 2 Server GET /next 100:7#1 {}", o(b)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 2;
            s.body_records = 1
        })
    );
}

#[test]
fn body_offsets_are_not_trusted_after_lost_records() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    h.read(
        T1,
        FD,
        b"POST /p HTTP/1.1\r\nContent-Length: 13\r\n\r\n0123456789",
    );
    // Records were lost; this one would hold the last 3 body bytes and a head if nothing had been
    // lost, but nothing says where the body ends now.
    let b = h.data(
        T1,
        FD,
        false,
        flags::LOST_BEFORE,
        false,
        b"abcGET /x HTTP/1.1\r\n\r\n",
    );
    let evs = h.take();
    assert_eq!(
        ss(&evs)[1..],
        [
            format!("unknown Lost Ingress Some(Server) 100:7#1 {}", o(b)),
            format!("abandoned 1 Lost {}", o(b)),
        ]
    );
    assert_eq!(h.stats().requests, 1);
    assert_eq!(h.stats().body_records, 1);
}

#[test]
fn broken_head_in_progress_then_a_new_head() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    // The rest of this head never comes (no loss reported); the next record starts a new head.
    let a = h.read(T1, FD, b"GET /cut HTTP/1.1\r\nHost: a\r\n");
    let b = h.read(T2, FD, get("/whole", &[TRACEPARENT]));
    let w1 = h.write(T1, FD, ok(400, ""));
    let w2 = h.write(T1, FD, ok(200, ""));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("unknown Unparsable Ingress Some(Server) 100:7#1 {}", o(a)),
            format!("req 1 Server - 100:7#1 {}", o(a)),
            format!("req 2 Server GET /whole 100:7#1 {}", o(b)),
            format!("exch 1 400 {}", o(w1)),
            format!("exch 2 200 {}", o(w2)),
        ]
    );
    assert_eq!(trace_id(request(&evs[2])), TP_ID);
    // On a client connection nothing is queued for it.
    let mut h = H::new();
    h.connect(T1, FD, None);
    let a = h.write(T1, FD, b"GET /cut HTTP/1.1\r\nHost: a\r\n");
    let b = h.write(T1, FD, get("/whole", &[]));
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("unknown Unparsable Egress Some(Client) 100:7#1 {}", o(a)),
            format!("req 1 Client GET /whole 100:7#1 {}", o(b)),
        ]
    );
}

#[test]
fn too_many_header_lines_and_damaged_garbage_are_truncated() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let mut raw = b"GET /many HTTP/1.1\r\n".to_vec();
    for i in 0..=head::MAX_HEADERS {
        raw.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert!(raw.len() < HEAD_MAX as usize);
    let a = h.read(T1, FD, &raw);
    // A damaged record whose bytes do not parse: the missing bytes may be why.
    let b = h.data(
        T1,
        FD,
        false,
        flags::IOV_CUT,
        true,
        b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n",
    );
    // Undamaged, the same bytes are unparsable.
    let c = h.data(
        T1,
        FD,
        false,
        0,
        true,
        b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n",
    );
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("unknown Truncated Ingress Some(Server) 100:7#1 {}", o(a)),
            format!("req 1 Server - 100:7#1 {}", o(a)),
            format!("unknown Truncated Ingress Some(Server) 100:7#1 {}", o(b)),
            format!("req 2 Server - 100:7#1 {}", o(b)),
            format!("unknown Unparsable Ingress Some(Server) 100:7#1 {}", o(c)),
            format!("req 3 Server - 100:7#1 {}", o(c)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.unknown_truncated = 2;
            s.unknown_unparsable = 1;
        })
    );
}

#[test]
fn body_until_close_is_never_read_as_heads() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let a = h.read(T1, FD, get("/raw", &[]));
    // An HTTP/1.0 response whose body is itself HTTP text.
    let b = h.write(
        T1,
        FD,
        b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
    );
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /raw 100:7#1 {}", o(a)),
            format!("exch 1 200 {}", o(b)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.exchanges = 1
        })
    );
}

#[test]
fn response_to_head_has_no_body_even_with_content_length() {
    // Pipelined HEAD and GET, both responses in one read: the HEAD response's Content-Length
    // announces the size of a body it does not carry.
    let mut h = H::new();
    h.connect(T1, FD, None);
    let a = h.write(T1, FD, b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    let b = h.read(
        T2,
        FD,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 201 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let c = h.write(T1, FD, get("/c", &[]));
    let d = h.read(T2, FD, ok(202, ""));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Client HEAD /a 100:7#1 {}", o(a)),
            format!("req 2 Client GET /b 100:7#1 {}", o(a)),
            format!("exch 1 200 {}", o(b)),
            format!("exch 2 201 {}", o(b)),
            format!("req 3 Client GET /c 100:7#1 {}", o(c)),
            format!("exch 3 202 {}", o(d)),
        ]
    );
    // The response keeps the framing it announced.
    assert_eq!(exchange(&evs[2]).response.body, head::Body::Length(1000));
    // Server side, chunked framing announced for HEAD.
    let mut h = H::new();
    h.accept(T1, FD, None);
    let a = h.read(T1, FD, b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    let b = h.write(
        T1,
        FD,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 203 OK\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("req 1 Server HEAD /a 100:7#1 {}", o(a)),
            format!("req 2 Server GET /b 100:7#1 {}", o(a)),
            format!("exch 1 200 {}", o(b)),
            format!("exch 2 203 {}", o(b)),
        ]
    );
}

#[test]
fn chunked_body_followed_by_a_pipelined_head_in_the_same_record() {
    let mut h = H::new();
    h.connect(T1, FD, None);
    let a = h.write(
        T1,
        FD,
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n0\r\nX-Trailer: t\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    );
    let b = h.read(
        T2,
        FD,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nA\r\nHTTP/1.1 2\r\n0\r\n\r\nHTTP/1.1 201 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let c = h.write(T1, FD, get("/c", &[]));
    let d = h.read(T2, FD, ok(202, ""));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Client POST /a 100:7#1 {}", o(a)),
            format!("req 2 Client GET /b 100:7#1 {}", o(a)),
            format!("exch 1 200 {}", o(b)),
            format!("exch 2 201 {}", o(b)),
            format!("req 3 Client GET /c 100:7#1 {}", o(c)),
            format!("exch 3 202 {}", o(d)),
        ]
    );
    // A chunked body that does not end within the record: the rest is body.
    let mut h = H::new();
    h.connect(T1, FD, None);
    h.write(T1, FD, get("/d", &[]));
    let e = h.read(
        T2,
        FD,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nHTTP/1.1 200 OK\r\n",
    );
    h.read(T2, FD, b"\r\n0\r\n\r\n");
    assert_eq!(ss(&h.take())[1..], [format!("exch 1 200 {}", o(e))]);
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 1;
            s.exchanges = 1;
            s.body_records = 1;
        })
    );
}

#[test]
fn body_writes_that_look_like_heads_while_the_kernel_still_forwards() {
    // One byte per write, body "PING!": the kernel cannot see the head's end and forwards every
    // body byte; "P" is flagged as a possible head start but is body.
    let mut h = H::new();
    h.accept(T1, FD, None);
    let mut first = None;
    for b in b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nPING!" {
        first.get_or_insert(h.read(T1, FD, [*b]));
    }
    let mut second = None;
    for b in b"GET /b HTTP/1.1\r\n\r\n" {
        second.get_or_insert(h.read(T2, FD, [*b]));
    }
    let w1 = h.write(T1, FD, ok(200, ""));
    let w2 = h.write(T1, FD, ok(201, ""));
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("req 1 Server POST /a 100:7#1 {}", o(first.unwrap())),
            format!("req 2 Server GET /b 100:7#1 {}", o(second.unwrap())),
            format!("exch 1 200 {}", o(w1)),
            format!("exch 2 201 {}", o(w2)),
        ]
    );
    // A body write that begins like a request line, after a head whose syscall also carried
    // the start of the body.
    let mut h = H::new();
    h.accept(T1, FD, None);
    let a = h.read(
        T1,
        FD,
        b"POST /a HTTP/1.1\r\nContent-Length: 30\r\n\r\n0123",
    );
    h.read(T1, FD, b"GET /in/body HTTP/1.1 xxxxxx");
    let b = h.read(T1, FD, b"GET /b HTTP/1.1\r\n\r\n");
    let w1 = h.write(T1, FD, ok(200, ""));
    let w2 = h.write(T1, FD, ok(201, ""));
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("req 1 Server POST /a 100:7#1 {}", o(a)),
            format!("req 2 Server GET /b 100:7#1 {}", o(b)),
            format!("exch 1 200 {}", o(w1)),
            format!("exch 2 201 {}", o(w2)),
        ]
    );
    assert_eq!(
        h.stats(),
        stats(|s| {
            s.requests = 2;
            s.exchanges = 2;
            s.body_records = 1;
        })
    );
}

#[test]
fn long_body_beyond_the_kernel_budget_then_the_next_request() {
    // Head and the start of a 100 KB body in one syscall, the rest in writes of `chunk` bytes:
    // the kernel forwards up to the head budget (the last one capped, or exactly spending it),
    // then nothing until the next head.
    for chunk in [8192, 4096, 1000] {
        let mut h = H::new();
        h.accept(T1, FD, None);
        let head = b"PUT /big HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
        let body = noise(7, 100_000);
        // The first syscall carries `chunk` bytes too.
        let in_first = chunk - head.len();
        let mut first = head.to_vec();
        first.extend_from_slice(&body[..in_first]);
        let a = h.read(T1, FD, &first);
        for piece in body[in_first..].chunks(chunk) {
            h.read(T1, FD, piece);
        }
        let b = h.read(T2, FD, get("/next", &[]));
        let evs = h.take();
        assert_eq!(
            ss(&evs),
            vec![
                format!("req 1 Server PUT /big 100:7#1 {}", o(a)),
                format!("req 2 Server GET /next 100:7#1 {}", o(b)),
            ],
            "chunk {chunk}"
        );
        let forwarded = (HEAD_MAX as usize).div_ceil(chunk) as u64 - 1;
        assert_eq!(
            h.stats(),
            stats(|s| {
                s.requests = 2;
                s.body_records = forwarded;
            }),
            "chunk {chunk}"
        );
    }
}

#[test]
fn nothing_of_an_upgraded_connection_is_parsed_not_even_what_followed_101_in_its_record() {
    let mut h = H::new();
    h.accept(T1, FD, None);
    let a = h.read(T1, FD, get("/tunnel", &["Upgrade: custom"]));
    let b = h.write(
        T1,
        FD,
        b"HTTP/1.1 101 Switching\r\n\r\nHTTP/1.1 custom protocol text",
    );
    let c = h.close(T1, FD);
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("req 1 Server GET /tunnel 100:7#1 {}", o(a)),
            format!("exch 1 101 {}", o(b)),
        ],
        "closed at {c:?}"
    );
    assert_eq!(h.stats().unknown_closed_mid_head, 0);
}

#[test]
fn request_in_three_pieces_at_every_pair_of_split_points() {
    let raw = get("/3", &[B3]);
    for i in 1..raw.len() - 1 {
        for j in i + 1..raw.len() {
            let mut h = H::new();
            h.connect(T1, FD, None);
            let a = h.write(T1, FD, &raw[..i]);
            h.write(T2, FD, &raw[i..j]);
            h.write(T3, FD, &raw[j..]);
            let evs = h.take();
            assert_eq!(evs.len(), 1, "{i} {j}: {evs:?}");
            let r = request(&evs[0]);
            assert_eq!((r.origin, r.role), (a, Role::Client), "{i} {j}");
            assert_eq!(head_of(r).path, "/3");
            assert_eq!(trace_id(r), B3_ID, "{i} {j}");
            assert_eq!(h.stats(), stats(|s| s.requests = 1), "{i} {j}");
        }
    }
}

#[test]
fn interleaved_connections_directions_and_processes_stay_apart() {
    let mut h = H::new();
    let other = 200;
    h.accept(T1, 3, Some(peer()));
    h.connect(T2, 4, Some(peer2()));
    let req3 = get("/on3", &[TRACEPARENT]);
    let req4 = get("/on4", &[B3]);
    let req_other = get("/other-pid", &[]);
    let a = h.read(T1, 3, &req3[..10]);
    let b = h.write(T2, 4, &req4[..7]);
    // Same fd number in another process: a pre-existing socket there.
    let c = h.sys_pid(other, other, 3, false, &req_other[..5]);
    // The server on fd 3 starts its response before the request is complete: it stays apart.
    let d = h.write(T1, 3, b"HTTP/1.1 200 OK\r\n");
    h.read(T3, 3, &req3[10..]);
    h.write(T2, 4, &req4[7..]);
    h.sys_pid(other, other, 3, false, &req_other[5..]);
    h.write(T1, 3, b"Content-Length: 0\r\n\r\n");
    let e = h.read(T2, 4, ok(204, ""));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /on3 100:3#1 {}", o(a)),
            format!("req 2 Client GET /on4 100:4#2 {}", o(b)),
            format!("req 3 Server GET /other-pid 200:3#3 {}", o(c)),
            format!("exch 1 200 100/100@{}", d.ts_ns + 4),
            format!("exch 2 204 {}", o(e)),
        ]
    );
    assert_eq!(trace_id(request(&evs[0])), TP_ID);
    assert_eq!(trace_id(request(&evs[1])), B3_ID);
    assert_eq!(request(&evs[0]).peer, Some(peer()));
    assert_eq!(request(&evs[1]).peer, Some(peer2()));
    assert_eq!(h.os.asked, vec![(other, 3)]);
    assert_eq!(h.t.connections(), 3);
}

#[test]
fn query_string_kept_only_when_asked() {
    for keep_query in [false, true] {
        let mut h = H::new();
        h.t = Tracker::new(ParseOptions { keep_query });
        h.accept(T1, FD, None);
        h.read(T1, FD, get("/search?q=secret&x=1", &[]));
        let evs = h.take();
        let want = if keep_query {
            "/search?q=secret&x=1"
        } else {
            "/search"
        };
        assert_eq!(head_of(request(&evs[0])).path, want);
        assert_eq!(format!("{evs:?}").contains("secret"), keep_query);
    }
}

#[test]
fn upgrade_on_the_client_side() {
    let mut h = H::new();
    h.connect(T1, FD, Some(peer()));
    let a = h.write(
        T1,
        FD,
        get("/ws", &["Upgrade: websocket", "Connection: Upgrade"]),
    );
    let b = h.read(
        T2,
        FD,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    );
    h.write(T1, FD, get("/frame-that-looks-like-http", &[]));
    h.read(T2, FD, ok(200, ""));
    h.close(T1, FD);
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("req 1 Client GET /ws 100:7#1 {}", o(a)),
            format!("exch 1 101 {}", o(b)),
        ]
    );
    // A 101 that answers nothing upgrades nothing.
    let mut h = H::new();
    h.connect(T1, FD, None);
    h.read(T1, FD, b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    let c = h.write(T1, FD, get("/still-http", &[]));
    assert_eq!(
        ss(&h.take()),
        vec![format!("req 1 Client GET /still-http 100:7#1 {}", o(c))]
    );
    assert_eq!(h.stats().unpaired_responses, 1);
}

#[test]
fn close_with_a_partial_pipelined_head_after_a_complete_one() {
    let mut h = H::new();
    h.connect(T1, FD, None);
    let a = h.write(T1, FD, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nHo");
    let c = h.close(T2, FD);
    assert_eq!(
        ss(&h.take()),
        vec![
            format!("req 1 Client GET /1 100:7#1 {}", o(a)),
            format!("unknown ClosedMidHead Egress Some(Client) 100:7#1 {}", o(a)),
            format!("abandoned 1 Closed {}", o(c)),
        ]
    );
}

#[test]
fn chunked_body_length() {
    let cases: [(&[u8], Option<usize>); 12] = [
        (b"0\r\n\r\n", Some(5)),
        (b"0\r\n\r\nGET", Some(5)),
        (b"5\r\nhello\r\n0\r\n\r\n", Some(15)),
        (
            b"5;name=v\r\nhello\r\nA\r\n0123456789\r\n0\r\nT: 1\r\nU: 2\r\n\r\nX",
            Some(49),
        ),
        // Incomplete.
        (b"", None),
        (b"5\r\nhel", None),
        (b"5\r\nhello\r\n0\r\n", None),
        (b"0\r\nT: 1\r\n", None),
        // Malformed: no size, data longer than announced, a size too large.
        (b"\r\n\r\n", None),
        (b"2\r\nhello\r\n0\r\n\r\n", None),
        (b"zz\r\n", None),
        (b"ffffffffffffffff\r\n", None),
    ];
    for (buf, want) in cases {
        assert_eq!(
            head::chunked_len(buf),
            want,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

#[test]
fn accept_of_a_unix_socket_and_v6_peers() {
    let mut h = H::new();
    h.accept(T1, 3, None);
    let a = h.read(T1, 3, get("/unix", &[]));
    let o6 = h.at(T1);
    h.record(raw::conn(KIND_ACCEPT, o6, 4, Some(peer2())));
    let b = h.read(T1, 4, get("/v6", &[]));
    let evs = h.take();
    assert_eq!(
        ss(&evs),
        vec![
            format!("req 1 Server GET /unix 100:3#1 {}", o(a)),
            format!("req 2 Server GET /v6 100:4#2 {}", o(b)),
        ]
    );
    assert_eq!(request(&evs[0]).peer, None);
    assert_eq!(request(&evs[1]).peer, Some(peer2()));
}

// ---------------------------------------------------------------------------------------------
// The bounded connection table.
// ---------------------------------------------------------------------------------------------

fn bounded(max_connections: usize, max_per_process: usize, idle_ns: u64) -> H {
    let mut h = H::new();
    h.t = Tracker::with_limits(
        ParseOptions::default(),
        Limits {
            max_connections,
            max_per_process,
            idle_ns,
        },
    );
    h
}

#[test]
fn over_the_per_process_cap_the_least_recently_used_connection_goes_and_its_request_is_abandoned() {
    let mut h = bounded(100, 2, u64::MAX);
    h.accept(T1, 3, Some(peer()));
    h.read(T1, 3, get("/old", &[]));
    h.accept(T1, 4, Some(peer()));
    h.read(T1, 4, get("/newer", &[]));
    let reqs = h.take();
    let (old, newer) = (request(&reqs[0]).seq, request(&reqs[1]).seq);
    // A third connection: fd 3, the least recently used, is evicted with its unanswered request.
    h.accept(T1, 5, Some(peer()));
    let evs = ss(&h.take());
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(
        evs[0].starts_with(&format!("abandoned {old} Evicted")),
        "{evs:?}"
    );
    assert_eq!(h.t.connections(), 2);
    assert_eq!(h.t.evictions().evicted_overflow, 1);
    // The response on fd 4 still pairs; the one on fd 3 meets a fresh connection and pairs nothing.
    h.write(T1, 4, ok(200, "x"));
    h.write(T1, 3, ok(200, "x"));
    let evs = ss(&h.take());
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(evs[0].starts_with(&format!("exch {newer} 200")), "{evs:?}");
    assert_eq!(h.stats().unpaired_responses, 1);
}

#[test]
fn another_process_is_not_evicted_for_one_over_its_own_cap() {
    let mut h = bounded(100, 1, u64::MAX);
    let o = h.at_pid(PID + 1, PID + 1);
    let rec = h.k.conn(KIND_ACCEPT, o, 3, None);
    h.record(rec);
    h.accept(T1, 3, None);
    h.accept(T1, 4, None);
    assert_eq!(h.t.connections(), 2, "one per process");
    assert_eq!(h.t.evictions().evicted_overflow, 1);
}

#[test]
fn idle_connections_are_evicted_and_a_later_record_starts_afresh() {
    let mut h = bounded(100, 100, 10);
    h.accept(T1, 3, Some(peer()));
    h.read(T1, 3, get("/a", &[]));
    h.write(T1, 3, ok(200, "x"));
    h.accept(T1, 4, Some(peer()));
    h.read(T1, 4, get("/pending", &[]));
    let evs = h.take();
    let pending = request(&evs[evs.len() - 1]).seq;
    let now = h.ts;
    // Nothing has been idle for 10 ns yet.
    h.t.evict_idle(now, &mut h.out);
    assert!(h.take().is_empty());
    assert_eq!(h.t.connections(), 2);
    h.t.evict_idle(now + 20, &mut h.out);
    let evs = ss(&h.take());
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert!(
        evs[0].starts_with(&format!("abandoned {pending} Evicted")),
        "{evs:?}"
    );
    assert_eq!(h.t.connections(), 0);
    assert_eq!(h.t.evictions().evicted_idle, 2);
    // The keep-alive client comes back: the server connection is known again through /proc.
    h.ts = now + 30;
    h.read(T1, 3, get("/b", &[]));
    h.write(T1, 3, ok(200, "x"));
    let evs = h.take();
    assert_eq!(evs.len(), 2);
    assert_eq!(exchange(&evs[1]).request.role, Role::Server);
    assert!(h.os.asked.contains(&(PID, 3)));
}

#[test]
fn a_connection_entry_stays_small() {
    // README's Bounds section: 250-500 B per idle connection, by the hash table's load.
    let entry = std::mem::size_of::<Conn>() + std::mem::size_of::<i32>();
    assert!(entry <= 300, "Conn entry grew to {entry} B");
}
