//! The correlator's tests: a harness (a [`Sim`]ulated process fed requests) here, and one
//! file per part of the rules.

use super::*;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use super::process::Place;
use crate::capture::record::{Direction, Origin};
use crate::http::head::{Body, Head, ParseOptions, Parsed, ResponseHead, parse};
use crate::http::tracker::{Abandon, ConnId, UnknownReason};

mod ambiguous;
mod by_thread;
mod by_trace_id;
mod go;
mod runtimes;
mod safeguards;
mod single_active;
mod spans;
mod unreadable;
mod verdicts;

const MS: u64 = 1_000_000;
/// `Config::default().grace_ns`.
const GRACE: u64 = 100 * MS;
const PID: u32 = 4242;

// Trace A (W3C).
const A: &str = "0af7651916cd43dd8448eb211c80319c";
const A_SPAN: &str = "b7ad6b7169203331";
// Trace B (W3C).
const B: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const B_SPAN: &str = "00f067aa0ba902b7";
// Trace C (B3, 128-bit).
const C: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const C_SPAN: &str = "e457b5a2e4d86bd1";
const C_PARENT: &str = "05e3ac9a4f6e3b90";
// Trace D: a 64-bit B3 id, and the same id as 128 bits.
const D64: &str = "463ac35c9f6413ad";
const D128: &str = "0000000000000000463ac35c9f6413ad";
const D_SPAN: &str = "a2fb4a1d1a96d312";
// A trace the service started itself.
const N: &str = "5b8efff798038103d269b633813fc60c";
const N_SPAN: &str = "eee19b7ec3c1b174";
// Span ids of child spans the app made (as an OpenTelemetry SDK does for every call).
const CHILD: &str = "53995c3f42cd8ad8";
const CHILD2: &str = "1fe4c6b5d2a9c801";
const OT: &str = "x-ot-span-context: 4bf92f3577b34da6;00f067aa0ba902b7;0000000000000000;sr";
const TRACESTATE: &str = "tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

use TraceHeader::{
    B3Flags, B3ParentSpanId, B3Sampled, B3Single, B3SpanId, B3TraceId, OtSpanContext, RequestId,
    Traceparent, Tracestate,
};

// ---------------------------------------------------------------------------------------------
// Harness

/// Span ids 1, 2, 3, ...
struct Counter(u64);

impl IdSource for Counter {
    fn next_id(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Span ids from a script.
struct Scripted(VecDeque<u64>);

impl IdSource for Scripted {
    fn next_id(&mut self) -> u64 {
        self.0.pop_front().expect("id script exhausted")
    }
}

fn tp(trace: &str, span: &str) -> String {
    format!("traceparent: 00-{trace}-{span}-01")
}

/// B3 multi headers, sampled.
fn b3m(trace: &str, span: &str) -> String {
    format!("x-b3-traceid: {trace}\nx-b3-spanid: {span}\nx-b3-sampled: 1")
}

/// B3 multi headers without a sampling decision.
fn b3m_ids(trace: &str, span: &str) -> String {
    format!("x-b3-traceid: {trace}\nx-b3-spanid: {span}")
}

/// B3 single header, sampled.
fn b3s(trace: &str, span: &str) -> String {
    format!("b3: {trace}-{span}-1")
}

fn lines(parts: &[&str]) -> String {
    parts.join("\n")
}

/// Parses a real request head: `line` is "METHOD /path", `headers` one header per line.
fn head(line: &str, headers: &str) -> Arc<RequestHead> {
    let mut raw = format!("{line} HTTP/1.1\r\nHost: svc.test\r\nUser-Agent: test/1\r\n");
    for h in headers.lines().filter(|l| !l.is_empty()) {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    match parse(raw.as_bytes(), ParseOptions::default()) {
        Parsed::Complete {
            head: Head::Request(r),
            len,
        } if len == raw.len() => r,
        other => panic!("not one request head: {other:?}\n{raw}"),
    }
}

fn t(s: &str) -> TraceId {
    TraceId::parse_b3(s.as_bytes()).expect("trace id")
}

fn s(x: &str) -> SpanId {
    SpanId::parse_hex(x.as_bytes()).expect("span id")
}

fn id(n: u64) -> SpanId {
    SpanId::new(n).expect("non-zero")
}

fn exchange(r: &Request, tid: u32, ts: u64) -> Exchange {
    Exchange {
        request: r.clone(),
        response: ResponseHead {
            status: 200,
            version: 1,
            body: Body::Length(0),
        },
        end: Origin {
            pid: r.conn.pid,
            tid,
            ts_ns: ts,
        },
    }
}

fn inbound_ref(trace: &str, span: &str, method: &str, path: &str) -> InboundRef {
    InboundRef {
        trace_id: Some(t(trace)),
        span_id: Some(s(span)),
        method: Some(method.into()),
        path: Some(path.into()),
    }
}

fn no_inbound() -> InboundRef {
    InboundRef {
        trace_id: None,
        span_id: None,
        method: None,
        path: None,
    }
}

fn brk(
    reason: BreakReason,
    attribution: Attribution,
    outbound: &Request,
    inbound: InboundRef,
    server_span: Option<u64>,
    missing: &[TraceHeader],
) -> Break {
    Break {
        reason,
        attribution,
        outbound: outbound.clone(),
        inbound,
        server_span_id: server_span.map(id),
        missing: missing.to_vec(),
    }
}

#[track_caller]
fn one_break(out: Vec<Finding>) -> Break {
    match <[Finding; 1]>::try_from(out) {
        Ok([Finding::Break(b)]) => b,
        Ok([other]) => panic!("expected a break, got {other:?}"),
        Err(out) => panic!("expected one break, got {out:?}"),
    }
}

#[track_caller]
fn one_span(out: Vec<Finding>) -> Span {
    match <[Finding; 1]>::try_from(out) {
        Ok([Finding::Span(s)]) => s,
        Ok([other]) => panic!("expected a span, got {other:?}"),
        Err(out) => panic!("expected one span, got {out:?}"),
    }
}

#[track_caller]
fn nothing(out: Vec<Finding>) {
    assert_eq!(out, Vec::<Finding>::new(), "expected no finding");
}

/// A correlator and the requests fed to it.
struct Sim {
    c: Correlator,
    seq: u64,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(Config::default())
    }

    fn with(cfg: Config) -> Sim {
        Sim::with_ids(cfg, Box::new(Counter(0)))
    }

    fn with_ids(cfg: Config, ids: Box<dyn IdSource + Send>) -> Sim {
        Sim {
            c: Correlator::new(cfg, ids),
            seq: 0,
        }
    }

    fn request(
        &mut self,
        role: Role,
        pid: u32,
        tid: u32,
        ts: u64,
        head: Option<Arc<RequestHead>>,
    ) -> Request {
        self.seq += 1;
        Request {
            conn: ConnId {
                pid,
                fd: 100 + self.seq as i32,
                serial: self.seq,
            },
            role,
            origin: Origin {
                pid,
                tid,
                ts_ns: ts,
            },
            peer: Some(SocketAddr::from(([10, 0, 0, 9], 8080))),
            head,
            seq: self.seq,
        }
    }

    fn feed(&mut self, ev: &HttpEvent) -> Vec<Finding> {
        let mut out = Vec::new();
        self.c.on_http(ev, &mut out);
        out
    }

    /// An inbound request read by `tid` of `PID` at `ts`.
    fn inbound(&mut self, tid: u32, ts: u64, line: &str, headers: &str) -> Request {
        self.inbound_head(PID, tid, ts, Some(head(line, headers)))
    }

    fn inbound_head(
        &mut self,
        pid: u32,
        tid: u32,
        ts: u64,
        head: Option<Arc<RequestHead>>,
    ) -> Request {
        let r = self.request(Role::Server, pid, tid, ts, head);
        let out = self.feed(&HttpEvent::Request(r.clone()));
        nothing(out);
        r
    }

    /// An outbound request written by `tid` of `PID` at `ts`, and what it yields at once.
    fn outbound(
        &mut self,
        tid: u32,
        ts: u64,
        line: &str,
        headers: &str,
    ) -> (Request, Vec<Finding>) {
        self.outbound_in(PID, tid, ts, line, headers)
    }

    fn outbound_in(
        &mut self,
        pid: u32,
        tid: u32,
        ts: u64,
        line: &str,
        headers: &str,
    ) -> (Request, Vec<Finding>) {
        let r = self.request(Role::Client, pid, tid, ts, Some(head(line, headers)));
        let out = self.feed(&HttpEvent::Request(r.clone()));
        (r, out)
    }

    /// The response to `r` (inbound: written; outbound: read) by `tid` at `ts`: its span.
    fn respond(&mut self, r: &Request, tid: u32, ts: u64) -> Span {
        let out = self.feed(&HttpEvent::Exchange(exchange(r, tid, ts)));
        one_span(out)
    }

    fn abandon(&mut self, r: &Request, tid: u32, ts: u64) {
        let ev = HttpEvent::Abandoned {
            request: r.clone(),
            why: Abandon::Closed,
            at: Origin {
                pid: r.conn.pid,
                tid,
                ts_ns: ts,
            },
        };
        nothing(self.feed(&ev));
    }

    fn unknown(&mut self, role: Option<Role>, direction: Direction, tid: u32, ts: u64) {
        self.seq += 1;
        let ev = HttpEvent::Unknown(Unknown {
            conn: ConnId {
                pid: PID,
                fd: 100 + self.seq as i32,
                serial: self.seq,
            },
            role,
            direction,
            origin: Origin {
                pid: PID,
                tid,
                ts_ns: ts,
            },
            reason: UnknownReason::Truncated,
        });
        nothing(self.feed(&ev));
    }

    fn fork(&mut self, parent: u32, child: u32) {
        self.c.on_fork(PID, parent, child);
    }

    /// The counters, checked to account for every outbound request exactly once.
    #[track_caller]
    fn stats(&self) -> CorrelatorStats {
        let s = self.c.stats();
        assert_eq!(
            s.outbound,
            s.propagated
                + s.breaks_missing
                + s.breaks_partial
                + s.breaks_mismatch
                + s.unknown
                + s.unattributed
                + s.untraced
                + s.background,
            "every outbound request has one outcome: {s:?}"
        );
        s
    }
}
