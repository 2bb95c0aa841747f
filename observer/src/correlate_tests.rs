use super::*;

use std::net::SocketAddr;

use crate::capture::record::{Direction, Origin};
use crate::http::head::{Body, Head, ParseOptions, Parsed, ResponseHead, parse};
use crate::http::tracker::{Abandon, ConnId, UnknownReason};

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

// ---------------------------------------------------------------------------------------------
// Span ids

#[test]
fn server_span_takes_the_inbound_trace_its_span_as_parent_and_a_new_id() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /orders?id=7", &tp(A, A_SPAN));
    let c = sim.inbound(
        12,
        2 * MS,
        "POST /pay",
        &lines(&[&b3m(C, C_SPAN), &format!("x-b3-parentspanid: {C_PARENT}")]),
    );
    let u = sim.inbound(13, 3 * MS, "GET /health", "");
    let x = sim.inbound_head(PID, 14, 4 * MS, None);
    let o = sim.inbound(15, 5 * MS, "GET /ot", OT);

    assert_eq!(
        sim.respond(&a, 11, 10 * MS),
        Span {
            exchange: exchange(&a, 11, 10 * MS),
            trace_id: Some(t(A)),
            span_id: id(1),
            parent_span_id: Some(s(A_SPAN)),
            attribution: None,
        }
    );
    // B3: the parent is the caller's span (x-b3-spanid), not x-b3-parentspanid.
    assert_eq!(
        sim.respond(&c, 12, 11 * MS),
        Span {
            exchange: exchange(&c, 12, 11 * MS),
            trace_id: Some(t(C)),
            span_id: id(2),
            parent_span_id: Some(s(C_SPAN)),
            attribution: None,
        }
    );
    for (r, n) in [(&u, 3), (&x, 4), (&o, 5)] {
        let tid = r.origin.tid;
        assert_eq!(
            sim.respond(r, tid, 12 * MS),
            Span {
                exchange: exchange(r, tid, 12 * MS),
                trace_id: None,
                span_id: id(n),
                parent_span_id: None,
                attribution: None,
            }
        );
    }
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 5,
            ..Default::default()
        }
    );
}

#[test]
fn client_span_keeps_the_apps_child_span_id_and_points_at_the_server_span() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /orders", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(11, 2 * MS, "GET /stock", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.respond(&o, 11, 3 * MS),
        Span {
            exchange: exchange(&o, 11, 3 * MS),
            trace_id: Some(t(A)),
            span_id: s(CHILD),
            parent_span_id: Some(id(1)),
            attribution: Some(Attribution::TraceId),
        }
    );
    assert_eq!(sim.respond(&a, 11, 4 * MS).span_id, id(1));
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            propagated: 1,
            by_trace_id: 1,
            ..Default::default()
        }
    );
}

#[test]
fn client_span_gets_a_new_id_when_the_inbound_span_id_is_forwarded_unchanged() {
    for (inbound, outbound, trace) in [
        (tp(A, A_SPAN), tp(A, A_SPAN), A),
        (b3m(C, C_SPAN), b3m(C, C_SPAN), C),
        (b3s(C, C_SPAN), b3m(C, C_SPAN), C),
    ] {
        let mut sim = Sim::new();
        let a = sim.inbound(11, MS, "GET /in", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /out", &outbound);
        nothing(out);
        assert_eq!(
            sim.respond(&o, 11, 3 * MS),
            Span {
                exchange: exchange(&o, 11, 3 * MS),
                trace_id: Some(t(trace)),
                span_id: id(2),
                parent_span_id: Some(id(1)),
                attribution: Some(Attribution::TraceId),
            },
            "{inbound} -> {outbound}"
        );
        assert_eq!(sim.respond(&a, 11, 4 * MS).span_id, id(1));
    }
}

#[test]
fn span_ids_are_never_emitted_twice_even_when_the_app_reuses_them() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /orders", &tp(A, A_SPAN)); // server span 1
    // Two calls under one child span (an HTTP client retry re-sends the same headers).
    let (o1, out) = sim.outbound(11, 2 * MS, "GET /stock", &tp(A, CHILD));
    nothing(out);
    let (o2, out) = sim.outbound(11, 3 * MS, "GET /stock", &tp(A, CHILD));
    nothing(out);
    // A third call under a child span of its own.
    let (o3, out) = sim.outbound(11, 4 * MS, "GET /price", &tp(A, CHILD2));
    nothing(out);
    assert_eq!(sim.respond(&o1, 11, 5 * MS).span_id, s(CHILD));
    assert_eq!(sim.respond(&o2, 11, 6 * MS).span_id, id(2));
    assert_eq!(sim.respond(&o3, 11, 7 * MS).span_id, s(CHILD2));
    assert_eq!(sim.respond(&a, 11, 8 * MS).span_id, id(1));
    // Background traffic reusing both child span ids, in another process.
    let (o4, out) = sim.outbound_in(7, 70, 9 * MS, "GET /config", &tp(N, CHILD));
    nothing(out);
    let (o5, out) = sim.outbound_in(7, 70, 10 * MS, "GET /config", &tp(N, CHILD2));
    nothing(out);
    assert_eq!(sim.respond(&o5, 70, 11 * MS).span_id, id(3));
    assert_eq!(
        sim.respond(&o4, 70, 12 * MS),
        Span {
            exchange: exchange(&o4, 70, 12 * MS),
            trace_id: Some(t(N)),
            span_id: id(4),
            parent_span_id: None,
            attribution: None,
        }
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 5,
            propagated: 3,
            background: 2,
            by_trace_id: 3,
            ..Default::default()
        }
    );
}

#[test]
fn zero_ids_from_the_source_are_skipped() {
    let ids = Scripted([7, 0, 9, 0, 0, 11].into());
    let mut sim = Sim::with_ids(Config::default(), Box::new(ids));
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let b = sim.inbound(12, 2 * MS, "GET /b", "");
    let (o, out) = sim.outbound(11, 3 * MS, "GET /c", &tp(A, A_SPAN));
    nothing(out);
    let client = sim.respond(&o, 11, 4 * MS);
    assert_eq!(
        (client.span_id, client.parent_span_id),
        (id(11), Some(id(7)))
    );
    assert_eq!(sim.respond(&a, 11, 5 * MS).span_id, id(7));
    assert_eq!(sim.respond(&b, 12, 6 * MS).span_id, id(9));
}

#[test]
fn background_client_spans_have_no_parent_and_no_attribution() {
    let mut sim = Sim::new();
    let (o1, out) = sim.outbound(11, MS, "GET /config", "");
    nothing(out);
    let (o2, out) = sim.outbound(11, 2 * MS, "GET /config", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.respond(&o1, 11, 3 * MS),
        Span {
            exchange: exchange(&o1, 11, 3 * MS),
            trace_id: None,
            span_id: id(1),
            parent_span_id: None,
            attribution: None,
        }
    );
    assert_eq!(
        sim.respond(&o2, 11, 4 * MS),
        Span {
            exchange: exchange(&o2, 11, 4 * MS),
            trace_id: Some(t(N)),
            span_id: s(N_SPAN),
            parent_span_id: None,
            attribution: None,
        }
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            outbound: 2,
            background: 2,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_client_spans_have_no_parent() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, MS, "GET /health", "");
    let (o, out) = sim.outbound(13, 2 * MS, "GET /x", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.respond(&o, 13, 3 * MS),
        Span {
            exchange: exchange(&o, 13, 3 * MS),
            trace_id: Some(t(N)),
            span_id: s(N_SPAN),
            parent_span_id: None,
            attribution: Some(Attribution::Ambiguous),
        }
    );
}

#[test]
fn abandoned_requests_get_no_span() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &tp(A, CHILD));
    nothing(out);
    sim.abandon(&o, 11, 3 * MS);
    sim.abandon(&a, 11, 4 * MS);
    // The link was dropped: a late exchange for it (the tracker never sends one) is unattributed.
    assert_eq!(sim.respond(&o, 11, 5 * MS).attribution, None);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            propagated: 1,
            by_trace_id: 1,
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Attribution: trace id

#[test]
fn trace_id_attribution_across_formats_and_id_widths() {
    let upper_b3 = format!(
        "x-b3-traceid: {}\nx-b3-spanid: {C_SPAN}\nx-b3-sampled: 1",
        C.to_ascii_uppercase()
    );
    let cases: [(&str, String, String, &str); 9] = [
        ("w3c -> w3c", tp(A, A_SPAN), tp(A, CHILD), A),
        ("b3 multi -> b3 single", b3m(C, C_SPAN), b3s(C, CHILD), C),
        ("b3 single -> b3 multi", b3s(C, C_SPAN), b3m(C, CHILD), C),
        (
            "b3 multi 64 -> w3c 128",
            b3m(D64, D_SPAN),
            tp(D128, CHILD),
            D128,
        ),
        (
            "w3c 128 -> b3 multi 64",
            tp(D128, D_SPAN),
            b3m(D64, CHILD),
            D64,
        ),
        (
            "b3 single 64 -> b3 single 128",
            b3s(D64, D_SPAN),
            b3s(D128, CHILD),
            D128,
        ),
        (
            "b3 multi 128 -> b3 multi 64",
            b3m(D128, D_SPAN),
            b3m(D64, CHILD),
            D64,
        ),
        ("upper-case b3 -> w3c", upper_b3, tp(C, CHILD), C),
        ("b3 -> w3c", b3m(C, C_SPAN), tp(C, CHILD), C),
    ];
    for (name, inbound, outbound, out_trace) in cases {
        let mut sim = Sim::new();
        // Decoys on other threads: an untraced request and another trace. Without the trace id
        // rule this would be ambiguous (and unattributed).
        sim.inbound(11, MS, "GET /health", "");
        sim.inbound(12, 2 * MS, "GET /other", &tp(B, B_SPAN));
        sim.inbound(13, 3 * MS, "GET /real", &inbound);
        sim.inbound(14, 4 * MS, "GET /late", &tp(N, N_SPAN));
        // Written by a thread none of them is related to (a pool or selector thread).
        let (o, out) = sim.outbound(30, 5 * MS, "GET /down", &outbound);
        nothing(out);
        assert_eq!(
            sim.respond(&o, 30, 6 * MS),
            Span {
                exchange: exchange(&o, 30, 6 * MS),
                trace_id: Some(t(out_trace)),
                span_id: s(CHILD),
                parent_span_id: Some(id(3)),
                attribution: Some(Attribution::TraceId),
            },
            "{name}"
        );
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 4,
                outbound: 1,
                propagated: 1,
                by_trace_id: 1,
                ..Default::default()
            },
            "{name}"
        );
    }
}

#[test]
fn trace_id_wins_over_thread() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    // Thread 11 writes the call that belongs to the request thread 12 read.
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(B, CHILD));
    nothing(out);
    let span = sim.respond(&o, 11, 4 * MS);
    assert_eq!(
        (span.parent_span_id, span.attribution),
        (Some(id(2)), Some(Attribution::TraceId))
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            propagated: 1,
            by_trace_id: 1,
            ..Default::default()
        }
    );
}

#[test]
fn trace_id_prefers_the_most_recent_inbound_of_that_trace() {
    let mut sim = Sim::new();
    // The same trace arrives twice (a retry by the caller); only the second carries tracestate.
    sim.inbound(11, MS, "GET /first", &tp(A, A_SPAN));
    sim.inbound(
        12,
        2 * MS,
        "GET /second",
        &lines(&[&tp(A, CHILD2), TRACESTATE]),
    );
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(A, CHILD));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Partial,
            Attribution::TraceId,
            &o,
            inbound_ref(A, CHILD2, "GET", "/second"),
            Some(2),
            &[Tracestate],
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Attribution: thread

#[test]
fn thread_attribution_same_thread() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let c = sim.inbound(12, 2 * MS, "POST /pay?card=1", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(12, 3 * MS, "GET /fraud", "");
    let b = one_break(out);
    assert_eq!(
        b,
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(C, C_SPAN, "POST", "/pay"),
            Some(2),
            &[B3TraceId, B3SpanId, B3Sampled],
        )
    );
    // The break names the server span that is emitted for the inbound request.
    assert_eq!(Some(sim.respond(&c, 12, 4 * MS).span_id), b.server_span_id);
    assert_eq!(sim.respond(&a, 11, 5 * MS).span_id, id(1));
    let client = sim.respond(&o, 12, 6 * MS);
    assert_eq!(
        (client.parent_span_id, client.attribution, client.trace_id),
        (Some(id(2)), Some(Attribution::Thread), None)
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            breaks_missing: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn thread_attribution_follows_spawned_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.fork(12, 21);
    sim.fork(21, 22);
    sim.fork(11, 23);
    let (o, out) = sim.outbound(22, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    let (o, out) = sim.outbound(23, 4 * MS, "GET /y", &tp(N, N_SPAN));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Mismatch,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            breaks_missing: 1,
            breaks_mismatch: 1,
            by_thread: 2,
            ..Default::default()
        }
    );
}

#[test]
fn thread_parentage_is_followed_up_to_max_thread_depth() {
    assert_eq!(MAX_THREAD_DEPTH, 5);
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    // 12 -> 31 -> 32 -> 33 -> 34 -> 35 -> 36
    let mut parent = 12;
    for tid in 31..=36 {
        sim.fork(parent, tid);
        parent = tid;
    }
    for (tid, ts) in [(31, 3), (33, 4), (35, 5)] {
        let (o, out) = sim.outbound(tid, ts * MS, "GET /x", "");
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Missing,
                Attribution::Thread,
                &o,
                inbound_ref(B, B_SPAN, "GET", "/b"),
                Some(2),
                &[Traceparent],
            ),
            "tid {tid}"
        );
    }
    // Six levels down: no longer related, two candidates.
    let (o, out) = sim.outbound(36, 6 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 4,
            breaks_missing: 4,
            by_thread: 3,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn thread_exit_cuts_the_lineage_and_a_reused_tid_gets_its_new_parent() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.fork(12, 31);
    sim.fork(31, 32);
    sim.fork(12, 40);
    sim.c.on_thread_exit(PID, 31);
    // 32's parent exited: its lineage ends there.
    let (o, out) = sim.outbound(32, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent],
        )
    );
    // Thread 40 exits, its id is reused by a thread that 11 creates.
    sim.c.on_thread_exit(PID, 40);
    sim.fork(11, 40);
    let (o, out) = sim.outbound(40, 4 * MS, "GET /y", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
}

#[test]
fn a_fork_naming_the_process_leader_as_child_is_ignored() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.fork(12, PID);
    let (_, out) = sim.outbound(PID, 3 * MS, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
    assert_eq!(sim.stats().by_ambiguous, 1);
}

#[test]
fn forks_in_another_process_do_not_relate_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.c.on_fork(PID + 1, 12, 21);
    let (_, out) = sim.outbound(21, 3 * MS, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
}

#[test]
fn keep_alive_on_one_thread_the_open_request_wins() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 11, 10 * MS);
    // Next request on the same keep-alive connection and thread, while /a is in its grace period.
    let b = sim.inbound(11, 20 * MS, "GET /b", &tp(B, B_SPAN));
    sim.inbound(12, 21 * MS, "POST /c", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(11, 30 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    // Both answered and in their grace period: the thread cannot tell.
    sim.respond(&b, 11, 40 * MS);
    let (o, out) = sim.outbound(11, 50 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent],
        )
    );
    // Once /a's grace period is over, /b is the thread's only one.
    let (o, out) = sim.outbound(11, 10 * MS + GRACE + 1, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 3,
            outbound: 3,
            breaks_missing: 3,
            by_thread: 2,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn a_threads_answered_request_in_grace_is_still_its_own() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 11, 10 * MS);
    sim.inbound(12, 5 * MS, "GET /b", &tp(B, B_SPAN));
    // Work finishing after the response (fire and forget) on the thread that read /a.
    let (o, out) = sim.outbound(11, 20 * MS, "POST /audit", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
}

#[test]
fn two_open_requests_on_one_thread_are_ambiguous() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(11, 2 * MS, "GET /b", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent],
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Attribution: single active, background, time limits

#[test]
fn single_active_inbound_takes_calls_from_unrelated_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(50, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
    let (o, out) = sim.outbound(50, 3 * MS, "GET /y", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.respond(&o, 50, 4 * MS).attribution,
        Some(Attribution::TraceId)
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            propagated: 1,
            breaks_missing: 1,
            by_trace_id: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn no_active_inbound_is_background_never_a_break() {
    let mut sim = Sim::new();
    // Another process's traced request is not a candidate.
    sim.inbound_head(PID + 1, 11, MS, Some(head("GET /a", &tp(A, A_SPAN))));
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 3 * MS, "GET /y", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            background: 2,
            ..Default::default()
        }
    );
}

#[test]
fn an_inbound_request_is_active_from_its_first_byte() {
    let mut sim = Sim::new();
    sim.inbound(11, 10 * MS, "GET /a", &tp(A, A_SPAN));
    let (_, out) = sim.outbound(11, 10 * MS - 1, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 10 * MS, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Thread);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            breaks_missing: 1,
            background: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn grace_period_boundaries() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 11, 10 * MS);
    let (o, out) = sim.outbound(11, 10 * MS + GRACE, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
    let (_, out) = sim.outbound(11, 10 * MS + GRACE + 1, "GET /x", "");
    nothing(out);
    // A later inbound request (which forgets /a) is the only candidate then.
    sim.inbound(12, 500 * MS, "GET /b", "");
    let (_, out) = sim.outbound(11, 600 * MS, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 3,
            breaks_missing: 1,
            untraced: 1,
            background: 1,
            by_thread: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn grace_period_of_zero_ends_with_the_response() {
    let mut sim = Sim::with(Config {
        grace_ns: 0,
        ..Config::default()
    });
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 12, 10 * MS);
    let (_, out) = sim.outbound(11, 10 * MS, "GET /x", "");
    assert_eq!(one_break(out).reason, BreakReason::Missing);
    let (_, out) = sim.outbound(11, 10 * MS + 1, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            breaks_missing: 1,
            background: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn an_abandoned_inbound_request_ends_when_abandoned() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.abandon(&a, 11, 20 * MS);
    let (_, out) = sim.outbound(11, 20 * MS + GRACE, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Thread);
    let (_, out) = sim.outbound(11, 20 * MS + GRACE + 1, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            breaks_missing: 1,
            background: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn an_unanswered_inbound_request_is_active_at_most_max_active() {
    let mut sim = Sim::with(Config {
        max_active_ns: 1000 * MS,
        ..Config::default()
    });
    sim.inbound(11, 5 * MS, "GET /stream", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(50, 1005 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/stream"),
            Some(1),
            &[Traceparent],
        )
    );
    let (_, out) = sim.outbound(50, 1005 * MS + 1, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 1005 * MS + 1, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 3,
            breaks_missing: 1,
            background: 2,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn process_exit_clears_requests_and_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound_head(PID + 1, 21, MS, Some(head("GET /b", &tp(B, B_SPAN))));
    sim.fork(11, 12);
    sim.c.on_exit(PID);
    // The pid is reused by a new process: nothing of the old one counts.
    let (_, out) = sim.outbound(12, 2 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    nothing(out);
    // Another process is untouched.
    let (o, out) = sim.outbound_in(PID + 1, 22, 3 * MS, "GET /y", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    // New requests of the reused pid have no lineage from before either (12 was 11's child).
    sim.inbound(11, 4 * MS, "GET /c", &tp(C, C_SPAN));
    sim.inbound(14, 4 * MS, "GET /d", &tp(N, N_SPAN));
    let (_, out) = sim.outbound(12, 5 * MS, "GET /z", "");
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 4,
            outbound: 4,
            breaks_missing: 2,
            background: 2,
            by_single_active: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Verdicts for one attributed inbound request

#[test]
fn missing_lists_every_header_the_inbound_request_carried() {
    let mut sim = Sim::new();
    let all = lines(&[
        &b3m(A, A_SPAN),
        &format!("x-b3-parentspanid: {C_PARENT}"),
        &tp(A, A_SPAN),
        TRACESTATE,
        "x-request-id: 7f3c-11",
        OT,
    ]);
    sim.inbound(11, MS, "PUT /cart/9", &all);
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "PUT", "/cart/9"),
            Some(1),
            &[
                B3TraceId,
                B3SpanId,
                B3ParentSpanId,
                B3Sampled,
                Traceparent,
                Tracestate,
                RequestId,
                OtSpanContext,
            ],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            breaks_missing: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn missing_does_not_list_headers_the_outbound_request_has() {
    // (inbound, outbound without trace context, missing)
    let cases: [(String, &str, &[TraceHeader]); 4] = [
        // x-request-id forwarded, the trace context dropped.
        (
            lines(&[&tp(A, A_SPAN), "x-request-id: r-1"]),
            "x-request-id: r-1",
            &[Traceparent],
        ),
        // The sampling decision forwarded alone: the ids are missing.
        (b3m(C, C_SPAN), "x-b3-sampled: 1", &[B3TraceId, B3SpanId]),
        (
            lines(&[&b3m_ids(C, C_SPAN), "x-b3-flags: 1"]),
            "x-b3-flags: 1",
            &[B3TraceId, B3SpanId],
        ),
        // `b3: 1` is a b3 header, but not the context the inbound `b3` carried.
        (b3s(C, C_SPAN), "b3: 1", &[B3Single]),
    ];
    for (inbound, outbound, missing) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", outbound);
        let b = one_break(out);
        assert_eq!(
            (b.reason, b.attribution, &b.outbound, b.missing.as_slice()),
            (BreakReason::Missing, Attribution::Thread, &o, missing),
            "{inbound} -> {outbound}"
        );
    }
}

#[test]
fn partial_when_the_sampling_decision_is_dropped_in_each_format() {
    let deny = format!("traceparent: 00-{A}-{A_SPAN}-00");
    // (inbound, outbound sharing its trace id, missing, inbound trace and span)
    type Case = (
        String,
        String,
        &'static [TraceHeader],
        (&'static str, &'static str),
    );
    let cases: [Case; 9] = [
        (b3m(C, C_SPAN), b3m_ids(C, CHILD), &[B3Sampled], (C, C_SPAN)),
        (
            lines(&[&b3m_ids(C, C_SPAN), "x-b3-flags: 1"]),
            b3m_ids(C, CHILD),
            &[B3Flags],
            (C, C_SPAN),
        ),
        (
            b3s(C, C_SPAN),
            format!("b3: {C}-{CHILD}"),
            &[B3Single],
            (C, C_SPAN),
        ),
        (
            format!("b3: {C}-{C_SPAN}-d"),
            format!("b3: {C}-{CHILD}"),
            &[B3Single],
            (C, C_SPAN),
        ),
        // A lone `b3: 1` next to B3 multi ids.
        (
            lines(&[&b3m_ids(C, C_SPAN), "b3: 1"]),
            b3m_ids(C, CHILD),
            &[B3Single],
            (C, C_SPAN),
        ),
        (
            tp(A, A_SPAN),
            b3m_ids(A, CHILD),
            &[Traceparent],
            (A, A_SPAN),
        ),
        // A deny decision must travel too.
        (deny, b3m_ids(A, CHILD), &[Traceparent], (A, A_SPAN)),
        (
            lines(&[&tp(A, A_SPAN), TRACESTATE]),
            tp(A, CHILD),
            &[Tracestate],
            (A, A_SPAN),
        ),
        (
            lines(&[&tp(A, A_SPAN), TRACESTATE, &b3m(A, A_SPAN)]),
            b3m_ids(A, CHILD),
            &[B3Sampled, Traceparent, Tracestate],
            (A, A_SPAN),
        ),
    ];
    for (inbound, outbound, missing, (trace, span)) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        sim.inbound(12, MS, "GET /b", &tp(B, B_SPAN));
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Partial,
                Attribution::TraceId,
                &o,
                inbound_ref(trace, span, "GET", "/a"),
                Some(1),
                missing,
            ),
            "{inbound} -> {outbound}"
        );
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 2,
                outbound: 1,
                breaks_partial: 1,
                by_trace_id: 1,
                ..Default::default()
            }
        );
    }
}

#[test]
fn no_partial_when_the_sampling_decision_travels_in_another_format() {
    let cases: [(String, String); 5] = [
        (b3m(C, C_SPAN), tp(C, CHILD)),
        (tp(A, A_SPAN), b3m(A, CHILD)),
        (tp(A, A_SPAN), b3s(A, CHILD)),
        (
            b3s(C, C_SPAN),
            lines(&[&b3m_ids(C, CHILD), "x-b3-flags: 1"]),
        ),
        // The decision changed but travelled: not this tool's business.
        (tp(A, A_SPAN), format!("traceparent: 00-{A}-{CHILD}-00")),
    ];
    for (inbound, outbound) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 1,
                propagated: 1,
                by_trace_id: 1,
                ..Default::default()
            },
            "{inbound} -> {outbound}"
        );
    }
}

#[test]
fn sampling_is_not_required_when_the_profile_says_so() {
    let mut sim = Sim::with(Config {
        require_sampling: false,
        ..Config::default()
    });
    sim.inbound(11, MS, "GET /a", &b3m(C, C_SPAN));
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &b3m_ids(C, CHILD));
    nothing(out);
    // tracestate is still required.
    sim.inbound(12, MS, "GET /b", &lines(&[&tp(B, B_SPAN), TRACESTATE]));
    let (o, out) = sim.outbound(12, 2 * MS, "GET /y", &b3m_ids(B, CHILD));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Partial,
            Attribution::TraceId,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Tracestate],
        )
    );
    // Nothing required at all: same trace id is enough.
    let mut sim = Sim::with(Config {
        require_sampling: false,
        require: HeaderSet::default(),
        ..Config::default()
    });
    sim.inbound(12, MS, "GET /b", &lines(&[&tp(B, B_SPAN), TRACESTATE]));
    let (_, out) = sim.outbound(12, 2 * MS, "GET /y", &b3m_ids(B, CHILD));
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn require_adds_headers_such_as_x_request_id() {
    let mut require = Config::default().require;
    require.insert(RequestId);
    let cfg = Config {
        require,
        ..Config::default()
    };
    // (inbound, outbound, missing)
    let cases: [(String, String, &[TraceHeader]); 4] = [
        (
            lines(&[&tp(A, A_SPAN), "x-request-id: abc-123"]),
            tp(A, CHILD),
            &[RequestId],
        ),
        (
            lines(&[&b3m(C, C_SPAN), "x-request-id: abc-123"]),
            b3m_ids(C, CHILD),
            &[B3Sampled, RequestId],
        ),
        (
            lines(&[&tp(A, A_SPAN), "x-request-id: abc-123"]),
            lines(&[&tp(A, CHILD), "x-request-id: abc-123"]),
            &[],
        ),
        // Only when the inbound request carried it.
        (tp(A, A_SPAN), tp(A, CHILD), &[]),
    ];
    for (inbound, outbound, missing) in cases {
        let mut sim = Sim::with(cfg.clone());
        sim.inbound(11, MS, "GET /a", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        if missing.is_empty() {
            nothing(out);
            assert_eq!(sim.stats().propagated, 1);
        } else {
            let b = one_break(out);
            assert_eq!(
                (b.reason, &b.outbound, b.missing.as_slice()),
                (BreakReason::Partial, &o, missing),
                "{inbound} -> {outbound}"
            );
            assert_eq!(sim.stats().breaks_partial, 1);
        }
    }
    // The default profile does not require x-request-id.
    let mut sim = Sim::new();
    sim.inbound(
        11,
        MS,
        "GET /a",
        &lines(&[&tp(A, A_SPAN), "x-request-id: r"]),
    );
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &tp(A, CHILD));
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn mismatch_when_the_service_starts_a_new_trace() {
    // (inbound, outbound, attribution given by a same-thread call)
    let cases: [(String, String, (&str, &str)); 4] = [
        (tp(A, A_SPAN), tp(N, N_SPAN), (A, A_SPAN)),
        (b3m(C, C_SPAN), b3s(N, N_SPAN), (C, C_SPAN)),
        (b3s(D64, D_SPAN), b3m(N, N_SPAN), (D64, D_SPAN)),
        // The low 64 bits equal, the high ones not: another trace.
        (
            b3m(D64, D_SPAN),
            tp("0000000000000001463ac35c9f6413ad", CHILD),
            (D64, D_SPAN),
        ),
    ];
    for (inbound, outbound, (trace, span)) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Mismatch,
                Attribution::Thread,
                &o,
                inbound_ref(trace, span, "GET", "/a"),
                Some(1),
                &[],
            ),
            "{inbound} -> {outbound}"
        );
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 1,
                breaks_mismatch: 1,
                by_thread: 1,
                ..Default::default()
            }
        );
    }
    // A new trace in one format, the inbound one in another: propagated.
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (_, out) = sim.outbound(
        11,
        2 * MS,
        "GET /x",
        &lines(&[&tp(N, N_SPAN), &b3m(A, CHILD)]),
    );
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn untraced_inbound_requests_have_nothing_to_propagate() {
    let bad_tp = "traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01";
    for inbound in [
        "",
        "x-request-id: r-1",
        "b3: 0",
        "x-b3-sampled: 0",
        "tracestate: a=b",
        bad_tp,
    ] {
        let mut sim = Sim::new();
        let r = sim.inbound(11, MS, "GET /a", inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
        nothing(out);
        let (_, out) = sim.outbound(12, 3 * MS, "GET /y", &tp(N, N_SPAN));
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 2,
                untraced: 2,
                by_thread: 1,
                by_single_active: 1,
                ..Default::default()
            },
            "{inbound}"
        );
        let span = sim.respond(&r, 11, 4 * MS);
        assert_eq!((span.trace_id, span.parent_span_id), (None, None));
    }
}

#[test]
fn unreadable_inbound_request_is_unknown() {
    let mut sim = Sim::new();
    sim.inbound_head(PID, 11, MS, None);
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(50, 3 * MS, "GET /y", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            unknown: 2,
            by_thread: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn inbound_b3_single_and_multi_disagreeing_is_unknown_unless_w3c_is_there() {
    let trace_conflict = lines(&[&b3s(C, C_SPAN), &b3m(D64, D_SPAN)]);
    let span_conflict = lines(&[&b3s(C, C_SPAN), &b3m(C, CHILD2)]);
    for inbound in [&trace_conflict, &span_conflict] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
        nothing(out);
        // Forwarding one of the two does not make it trustworthy.
        let (_, out) = sim.outbound(11, 3 * MS, "GET /y", &b3s(C, CHILD));
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 2,
                unknown: 2,
                by_thread: 2,
                ..Default::default()
            },
            "{inbound}"
        );
    }
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &lines(&[&trace_conflict, &tp(A, A_SPAN)]));
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
    let (_, out) = sim.outbound(11, 3 * MS, "GET /y", &tp(A, CHILD));
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn outbound_with_only_invalid_trace_context_is_unknown() {
    let long_ot = format!("x-ot-span-context: {}", "o".repeat(600));
    let cases = [
        format!("traceparent: 00-{}-{CHILD}-01", A.to_ascii_uppercase()),
        format!("traceparent: ff-{A}-{CHILD}-01"),
        "x-b3-traceid: 12345".to_owned(),
        format!("x-b3-traceid: {C}\nx-b3-traceid: {N}\nx-b3-spanid: {CHILD}"),
        "b3: not-a-context".to_owned(),
        // B3 single and multi disagreeing on the outbound side.
        lines(&[&b3s(N, N_SPAN), &b3m(C, CHILD)]),
        long_ot,
    ];
    for outbound in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &b3m(C, C_SPAN));
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 1,
                unknown: 1,
                by_thread: 1,
                ..Default::default()
            },
            "{outbound}"
        );
    }
}

#[test]
fn outbound_with_invalid_headers_that_cannot_hold_a_trace_id_is_missing() {
    let long_id = format!("x-request-id: {}", "r".repeat(200));
    // (outbound, missing) for an inbound request with W3C + tracestate + B3 multi.
    let cases: [(String, &[TraceHeader]); 4] = [
        (
            long_id,
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
        // tracestate without traceparent.
        (
            TRACESTATE.to_owned(),
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
        // A span id without a trace id, an invalid sampling flag.
        (
            format!("x-b3-spanid: {CHILD}"),
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
        (
            "x-b3-sampled: yes".to_owned(),
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
    ];
    for (outbound, missing) in cases {
        let mut sim = Sim::new();
        sim.inbound(
            11,
            MS,
            "GET /a",
            &lines(&[&tp(A, A_SPAN), TRACESTATE, &b3m(A, A_SPAN)]),
        );
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Missing,
                Attribution::Thread,
                &o,
                inbound_ref(A, A_SPAN, "GET", "/a"),
                Some(1),
                missing,
            ),
            "{outbound}"
        );
    }
}

#[test]
fn opaque_x_ot_span_context() {
    // Carried on: propagated.
    let mut sim = Sim::new();
    let r = sim.inbound(11, MS, "GET /a", OT);
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", OT);
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
    let span = sim.respond(&r, 11, 3 * MS);
    assert_eq!((span.trace_id, span.parent_span_id), (None, None));

    // Dropped: missing, the inbound fields without ids.
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", OT);
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            InboundRef {
                trace_id: None,
                span_id: None,
                method: Some("GET".into()),
                path: Some("/a".into()),
            },
            Some(1),
            &[OtSpanContext],
        )
    );

    // Opaque on one side, ids on the other: they cannot be compared; no alarm.
    for (inbound, outbound) in [
        (OT.to_owned(), tp(N, N_SPAN)),
        (tp(A, A_SPAN), OT.to_owned()),
    ] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats().breaks_missing + sim.stats().breaks_mismatch,
            0,
            "{inbound} -> {outbound}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Ambiguous attribution

#[test]
fn ambiguous_all_traced_distinct_traces_is_missing_without_inbound_fields() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /c", &b3s(C, C_SPAN));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[B3Single, Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            breaks_missing: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_candidates_of_one_trace_fill_the_inbound_trace() {
    let mut sim = Sim::new();
    sim.inbound(
        11,
        MS,
        "GET /a",
        &lines(&[&tp(A, A_SPAN), "x-request-id: r1"]),
    );
    sim.inbound(12, 2 * MS, "GET /b", &b3s(A, CHILD2));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", "x-request-id: r1");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            InboundRef {
                trace_id: Some(t(A)),
                span_id: Some(s(A_SPAN)),
                method: None,
                path: None,
            },
            None,
            &[B3Single, Traceparent],
        )
    );
    let (o, out) = sim.outbound(50, 4 * MS, "GET /y", &tp(N, N_SPAN));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Mismatch,
            Attribution::Ambiguous,
            &o,
            InboundRef {
                trace_id: Some(t(A)),
                span_id: Some(s(A_SPAN)),
                method: None,
                path: None,
            },
            None,
            &[],
        )
    );
}

#[test]
fn ambiguous_new_trace_is_mismatch() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /c", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", &tp(N, N_SPAN));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Mismatch,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            breaks_mismatch: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_mix_of_traced_and_untraced_is_unattributed_and_silent() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /health", "x-request-id: k8s");
    let (_, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(50, 4 * MS, "GET /y", &tp(N, N_SPAN));
    nothing(out);
    // The traced one forwarded: attributed by trace id.
    let (_, out) = sim.outbound(50, 5 * MS, "GET /z", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 3,
            propagated: 1,
            unattributed: 2,
            by_trace_id: 1,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_all_untraced_is_untraced() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", "");
    sim.inbound(12, 2 * MS, "GET /b", "b3: 0");
    let (_, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(50, 4 * MS, "GET /x", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            untraced: 2,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_with_an_unreadable_candidate_is_unknown() {
    for unreadable in [
        None,
        Some(head(
            "GET /u",
            &lines(&[&b3s(C, C_SPAN), &b3m(D64, D_SPAN)]),
        )),
    ] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
        sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
        sim.inbound_head(PID, 13, 3 * MS, unreadable);
        let (_, out) = sim.outbound(50, 4 * MS, "GET /x", "");
        nothing(out);
        let (_, out) = sim.outbound(50, 5 * MS, "GET /y", &tp(N, N_SPAN));
        nothing(out);
        // A readable one whose trace id travelled is still found.
        let (o, out) = sim.outbound(50, 6 * MS, "GET /z", &tp(B, CHILD));
        nothing(out);
        assert_eq!(sim.respond(&o, 50, 7 * MS).parent_span_id, Some(id(2)));
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 3,
                outbound: 3,
                propagated: 1,
                unknown: 2,
                by_trace_id: 1,
                by_ambiguous: 2,
                ..Default::default()
            }
        );
    }
}

#[test]
fn ambiguous_with_invalid_or_opaque_outbound_context_is_unknown() {
    for outbound in [
        format!("traceparent: 00-{}-{CHILD}-01", N.to_ascii_uppercase()),
        OT.to_owned(),
    ] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
        sim.inbound(12, 2 * MS, "GET /c", &b3m(C, C_SPAN));
        let (_, out) = sim.outbound(50, 3 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 2,
                outbound: 1,
                unknown: 1,
                by_ambiguous: 1,
                ..Default::default()
            },
            "{outbound}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime models

#[test]
fn node_event_loop_many_requests_in_flight_on_one_thread() {
    let mut sim = Sim::new();
    const LOOP: u32 = 7;
    sim.inbound(LOOP, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(LOOP, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.inbound(LOOP, 3 * MS, "GET /c", &b3s(C, C_SPAN));
    sim.inbound(LOOP, 4 * MS, "GET /d", &b3m(D64, D_SPAN));
    // /a and /c are forwarded (in whatever order the loop gets to them).
    let (oc, out) = sim.outbound(LOOP, 5 * MS, "GET /for-c", &b3s(C, CHILD));
    nothing(out);
    let (oa, out) = sim.outbound(LOOP, 6 * MS, "GET /for-a", &tp(A, CHILD2));
    nothing(out);
    // /b or /d dropped it: which one cannot be told.
    let (o, out) = sim.outbound(LOOP, 7 * MS, "GET /for-b-or-d", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[B3TraceId, B3SpanId, B3Sampled, B3Single, Traceparent],
        )
    );
    let (o, out) = sim.outbound(LOOP, 8 * MS, "GET /new", &tp(N, N_SPAN));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Mismatch,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[],
        )
    );
    assert_eq!(sim.respond(&oc, LOOP, 9 * MS).parent_span_id, Some(id(3)));
    assert_eq!(sim.respond(&oa, LOOP, 9 * MS).parent_span_id, Some(id(1)));
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 4,
            outbound: 4,
            propagated: 2,
            breaks_missing: 1,
            breaks_mismatch: 1,
            by_trace_id: 2,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

#[test]
fn java_selector_thread_writes_for_worker_threads() {
    let mut sim = Sim::new();
    const SELECTOR: u32 = 30;
    let a = sim.inbound(21, MS, "GET /a", &tp(A, A_SPAN));
    let b = sim.inbound(22, 2 * MS, "GET /b", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(SELECTOR, 3 * MS, "GET /x", &b3m(C, CHILD));
    nothing(out);
    assert_eq!(
        sim.respond(&o, SELECTOR, 4 * MS),
        Span {
            exchange: exchange(&o, SELECTOR, 4 * MS),
            trace_id: Some(t(C)),
            span_id: s(CHILD),
            parent_span_id: Some(id(2)),
            attribution: Some(Attribution::TraceId),
        }
    );
    sim.respond(&a, 21, 10 * MS);
    sim.respond(&b, 22, 11 * MS);
    // Later, one request in flight: the selector's call without context is its.
    sim.inbound(21, 500 * MS, "GET /c", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(SELECTOR, 501 * MS, "GET /y", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/c"),
            Some(3),
            &[Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 3,
            outbound: 2,
            propagated: 1,
            breaks_missing: 1,
            by_trace_id: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Unreadable outbound heads, counters

#[test]
fn unreadable_outbound_head_is_unknown_only_while_inbound_requests_are_active() {
    let mut sim = Sim::new();
    sim.unknown(Some(Role::Client), Direction::Egress, 11, MS);
    assert_eq!(sim.stats(), CorrelatorStats::default());
    sim.inbound(11, 2 * MS, "GET /a", &tp(A, A_SPAN));
    sim.unknown(Some(Role::Client), Direction::Egress, 50, 3 * MS);
    // Not outbound request heads: a response read, the server side, a connection of unknown role.
    sim.unknown(Some(Role::Client), Direction::Ingress, 11, 4 * MS);
    sim.unknown(Some(Role::Server), Direction::Ingress, 11, 4 * MS);
    sim.unknown(Some(Role::Server), Direction::Egress, 11, 4 * MS);
    sim.unknown(None, Direction::Egress, 11, 4 * MS);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            unknown: 1,
            ..Default::default()
        }
    );
}

#[test]
fn count_unknown_instead_of_break_moves_one_break_to_unknown() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &lines(&[&tp(A, A_SPAN), TRACESTATE]));
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(one_break(out).reason, BreakReason::Missing);
    let (_, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(A, CHILD));
    assert_eq!(one_break(out).reason, BreakReason::Partial);
    let (_, out) = sim.outbound(11, 4 * MS, "GET /x", &tp(N, N_SPAN));
    assert_eq!(one_break(out).reason, BreakReason::Mismatch);
    let before = CorrelatorStats {
        inbound: 1,
        outbound: 3,
        breaks_missing: 1,
        breaks_partial: 1,
        breaks_mismatch: 1,
        by_trace_id: 1,
        by_thread: 2,
        ..Default::default()
    };
    assert_eq!(sim.stats(), before);
    sim.c.count_unknown_instead_of_break(BreakReason::Partial);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            breaks_partial: 0,
            unknown: 1,
            ..before
        }
    );
    sim.c.count_unknown_instead_of_break(BreakReason::Missing);
    sim.c.count_unknown_instead_of_break(BreakReason::Mismatch);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            breaks_missing: 0,
            breaks_partial: 0,
            breaks_mismatch: 0,
            unknown: 3,
            ..before
        }
    );
}

#[test]
fn names() {
    assert_eq!(
        [
            Attribution::TraceId,
            Attribution::Thread,
            Attribution::SingleActive,
            Attribution::Ambiguous
        ]
        .map(Attribution::as_str),
        ["trace_id", "thread", "single_active", "ambiguous"]
    );
    assert_eq!(
        [
            BreakReason::Missing,
            BreakReason::Partial,
            BreakReason::Mismatch
        ]
        .map(BreakReason::as_str),
        ["missing", "partial", "mismatch"]
    );
    assert_eq!(
        serde_json::to_string(&Attribution::SingleActive).unwrap(),
        "\"single_active\""
    );
}

#[test]
fn ambiguous_with_opaque_inbound_contexts() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", OT);
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent, OtSpanContext],
        )
    );
    // The opaque context carried on: it cannot be told whose it is.
    let (_, out) = sim.outbound(50, 4 * MS, "GET /y", OT);
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            breaks_missing: 1,
            unknown: 1,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Safeguards against false alarms: telemetry exports, continued traces, B3 deny-only.

#[test]
fn telemetry_exports_are_never_breaks() {
    let mut sim = Sim::new();
    let _i = sim.inbound(10, 0, "GET /orders", &tp(A, A_SPAN));
    for path in [
        "/v1/traces",
        "/otlp/v1/metrics",
        "/v1/logs",
        "/api/v2/spans",
        "/api/traces",
    ] {
        let (_o, out) = sim.outbound(10, MS, &format!("POST {path}"), "");
        nothing(out);
    }
    // The same call to an ordinary path is a break.
    let (_o, out) = sim.outbound(10, 2 * MS, "POST /v1/tracesx", "");
    assert_eq!(one_break(out).reason, BreakReason::Missing);
    let st = sim.c.stats();
    assert_eq!((st.telemetry, st.breaks_missing, st.outbound), (5, 1, 6));
}

#[test]
fn outbound_continuing_an_earlier_trace_is_not_a_mismatch() {
    let mut sim = Sim::new();
    // Request A is served and answered; long after its grace period, request B is active and
    // the service sends a call that still carries A's trace (async work, a retry).
    let a = sim.inbound(10, 0, "GET /a", &tp(A, A_SPAN));
    let a_span = sim.respond(&a, 10, MS).span_id;
    let _b = sim.inbound(11, 10_000 * MS, "GET /b", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(12, 10_001 * MS, "GET /later", &tp(A, CHILD));
    nothing(out);
    let st = sim.c.stats();
    assert_eq!(
        (st.propagated, st.breaks_mismatch, st.by_trace_id),
        (1, 0, 1)
    );
    // Its client span hangs under the server span of A.
    let span = sim.respond(&o, 12, 10_002 * MS);
    assert_eq!(span.parent_span_id, Some(a_span));
    assert_eq!(span.attribution, Some(Attribution::TraceId));
}

#[test]
fn remembered_traces_expire() {
    let cfg = Config {
        recent_ns: 1_000 * MS,
        ..Config::default()
    };
    let mut sim = Sim::with(cfg);
    let a = sim.inbound(10, 0, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 10, MS);
    let _b = sim.inbound(11, 5_000 * MS, "GET /b", &tp(B, B_SPAN));
    let (_o, out) = sim.outbound(11, 5_001 * MS, "GET /later", &tp(A, CHILD));
    let b = one_break(out);
    assert_eq!(
        (b.reason, b.attribution),
        (BreakReason::Mismatch, Attribution::Thread)
    );
}

#[test]
fn b3_deny_only_propagation_of_an_unsampled_trace_is_fine() {
    let mut sim = Sim::new();
    let _i = sim.inbound(
        10,
        0,
        "GET /a",
        &format!("x-b3-traceid: {C}\nx-b3-spanid: {C_SPAN}\nx-b3-sampled: 0"),
    );
    let (_o, out) = sim.outbound(10, MS, "GET /down", "b3: 0");
    nothing(out);
    assert_eq!(sim.c.stats().propagated, 1);
}

#[test]
fn b3_deny_only_for_a_sampled_trace_is_missing() {
    let mut sim = Sim::new();
    let _i = sim.inbound(10, 0, "GET /a", &b3m(C, C_SPAN));
    let (_o, out) = sim.outbound(10, MS, "GET /down", "b3: 0");
    let b = one_break(out);
    assert_eq!(b.reason, BreakReason::Missing);
}

#[test]
fn b3_deny_only_with_ambiguous_candidates() {
    let mut sim = Sim::new();
    let unsampled =
        |t: &str, s: &str| format!("x-b3-traceid: {t}\nx-b3-spanid: {s}\nx-b3-sampled: 0");
    let _i1 = sim.inbound(10, 0, "GET /a", &unsampled(C, C_SPAN));
    let _i2 = sim.inbound(11, 0, "GET /b", &unsampled(D64, D_SPAN));
    let (_o, out) = sim.outbound(12, MS, "GET /down", "x-b3-sampled: 0");
    nothing(out);
    assert_eq!(sim.c.stats().propagated, 1);
    // One sampled candidate among them: which request the decision belongs to is unknown.
    let _i3 = sim.inbound(13, 2 * MS, "GET /c", &b3m(N, N_SPAN));
    let (_o, out) = sim.outbound(12, 3 * MS, "GET /down", "b3: 0");
    nothing(out);
    assert_eq!(sim.c.stats().unknown, 1);
}

#[test]
fn withdrawn_break_counter_never_underflows() {
    let mut sim = Sim::new();
    sim.c.count_unknown_instead_of_break(BreakReason::Partial);
    let st = sim.c.stats();
    assert_eq!((st.breaks_partial, st.unknown), (0, 1));
}

/// Java's HttpClient writes from its own threads: with the previous request answered but still in
/// its grace period, the one unanswered request is the single active one.
#[test]
fn unanswered_request_wins_over_ones_in_grace() {
    let mut sim = Sim::new();
    let prev = sim.inbound(20, 0, "GET /prev", "");
    sim.respond(&prev, 20, 10 * MS);
    let cur = sim.inbound(21, 20 * MS, "GET /cur", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(99, 30 * MS, "GET /leaf", "");
    let b = one_break(out);
    assert_eq!(
        (b.reason, b.attribution),
        (BreakReason::Missing, Attribution::SingleActive)
    );
    assert_eq!(b.inbound.trace_id, Some(t(C)));
    assert_eq!(b.outbound, o);
    let _ = cur;
    // Two unanswered requests and an untraced one in grace: ambiguous over a traced/untraced
    // mix, so no alert.
    let _other = sim.inbound(22, 31 * MS, "GET /other", &b3m(D64, D_SPAN));
    let (_o, out) = sim.outbound(99, 32 * MS, "GET /leaf", "");
    nothing(out);
    let st = sim.c.stats();
    assert_eq!((st.by_ambiguous, st.unattributed), (1, 1));
}

/// More answered requests in their grace period than the window keeps: a verdict that rests on
/// the window (single_active here) becomes unknown; a trace id still decides.
#[test]
fn overflowing_grace_window_makes_heuristic_verdicts_unknown() {
    let mut sim = Sim::new();
    for n in 0..(MAX_ANSWERED as u64 + 10) {
        let r = sim.inbound(1000 + n as u32, n * 1000, "GET /bulk", "");
        sim.respond(&r, 1000 + n as u32, n * 1000 + 500);
    }
    let _traced = sim.inbound(7, MS, "GET /traced", &b3m(C, C_SPAN));
    let (_o, out) = sim.outbound(99, 2 * MS, "GET /leaf", "");
    nothing(out);
    assert_eq!(sim.c.stats().unknown, 1);
    // A forwarded trace id is still recognised, and a mismatch by trace-less rules is not claimed.
    let (_o, out) = sim.outbound(99, 3 * MS, "GET /leaf", &b3m(C, CHILD));
    nothing(out);
    let st = sim.c.stats();
    assert_eq!(
        (st.propagated, st.by_trace_id, st.breaks_missing),
        (1, 1, 0)
    );
}

/// The trace-id index is built at the process's first outbound request and then holds exactly the
/// trace values of the requests that can still be candidates: entries leave with their request
/// when its grace period ends, when the answered window overflows and when an unanswered request
/// passes `max_active_ns`.
#[test]
fn trace_index_follows_the_active_requests() {
    let mut sim = Sim::with(Config {
        max_active_ns: 10_000 * MS,
        ..Config::default()
    });
    fn check(sim: &Sim) -> (usize, usize) {
        let p = &sim.c.procs[&PID];
        let open = p.open.values().map(|i| (i, Place::Open));
        let answered = (p.first_answer..)
            .zip(&p.answered)
            .map(|(no, i)| (i, Place::Answered(no)));
        let want: BTreeMap<(u128, u64), Place> = open
            .chain(answered)
            .flat_map(|(i, place)| {
                i.traces
                    .iter()
                    .filter(|&&v| v != 0)
                    .map(move |&v| ((v, i.seq), place))
            })
            .collect();
        assert_eq!(p.by_trace.as_ref(), Some(&want));
        for (&(_, seq), &place) in &want {
            assert_eq!(p.at(seq, place).map(|i| i.seq), Some(seq));
        }
        (p.open.len() + p.answered.len(), want.len())
    }
    // Unanswered, traced in both formats (one value), and untraced.
    let stream = sim.inbound(
        11,
        MS,
        "GET /stream",
        &(tp(A, A_SPAN) + "\r\n" + &b3m(A, A_SPAN)),
    );
    sim.inbound(12, MS, "GET /plain", "");
    assert!(sim.c.procs[&PID].by_trace.is_none());
    sim.outbound(11, MS, "GET /first", "");
    assert_eq!(check(&sim), (2, 1));
    // More answered requests than the window keeps, each with its own trace.
    for n in 0..(MAX_ANSWERED as u64 + 10) {
        let trace = format!("{:032x}", 0x1000 + n);
        let r = sim.inbound(
            1000 + n as u32,
            2 * MS + n,
            "GET /bulk",
            &tp(&trace, A_SPAN),
        );
        sim.respond(&r, 1000 + n as u32, 2 * MS + n + 1);
    }
    assert_eq!(check(&sim), (2 + MAX_ANSWERED, 1 + MAX_ANSWERED));
    // The oldest bulk request left the window, and its index entry with it: an outbound request
    // carrying its trace is still propagation, through the traces seen lately.
    let (_, out) = sim.outbound(
        11,
        3 * MS,
        "GET /x",
        &tp(&format!("{:032x}", 0x1000), CHILD),
    );
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
    // The stream is still found by its trace id.
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.c.clients[&o.seq].attribution,
        Some(Attribution::TraceId)
    );
    // Past the grace period of every bulk request: only the two unanswered ones are left.
    sim.outbound(11, 3 * MS + GRACE + MS, "GET /x", "");
    assert_eq!(check(&sim), (2, 1));
    // Past max_active (and the once-a-second sweep): nothing.
    sim.outbound(11, 20_000 * MS, "GET /x", "");
    assert_eq!(check(&sim), (0, 0));
    // Answering a swept request changes nothing.
    sim.respond(&stream, 11, 20_001 * MS);
    assert_eq!(check(&sim), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Go: OS threads are not request contexts

/// Go's scheduler runs a handler's goroutine, and the Transport's writeLoop goroutine that
/// writes its outbound request, on whichever thread is free: the thread that read another
/// request is no evidence.
#[test]
fn go_a_call_written_on_the_thread_that_read_another_request_is_not_attributed_to_it() {
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID, true);
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &b3m(C, C_SPAN));
    // /a's call without context, written on thread 12 (which read /b).
    let (o, out) = sim.outbound(12, 3 * MS, "GET /from-a", "");
    let b = one_break(out);
    assert_eq!(
        (b.attribution, b.inbound.trace_id, b.server_span_id),
        (Attribution::Ambiguous, None, None),
        "{b:?}"
    );
    assert_eq!(b.outbound, o);
    // A thread spawned by 11 is no evidence either.
    sim.fork(11, 21);
    let (_, out) = sim.outbound(21, 4 * MS, "GET /from-b", &tp(N, N_SPAN));
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            breaks_missing: 1,
            breaks_mismatch: 1,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

/// The thread rule would tie a traced request's dropped call to the untraced request its thread
/// read (untraced: a silent miss). Without it the candidates are mixed: unattributed, counted.
#[test]
fn go_a_mix_of_traced_and_untraced_candidates_is_unattributed_not_untraced() {
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID, true);
    sim.inbound(11, MS, "GET /traced", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /untraced", "");
    let (_, out) = sim.outbound(12, 3 * MS, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            unattributed: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

/// What needs no thread still works in Go: a shared trace id, and the only active request.
#[test]
fn go_trace_id_and_single_active_still_attribute() {
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID, true);
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(12, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
    sim.inbound(12, 3 * MS, "GET /b", &tp(B, B_SPAN));
    let (_, out) = sim.outbound(11, 4 * MS, "GET /y", &tp(B, CHILD));
    nothing(out);
    sim.respond(&a, 11, 5 * MS);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            propagated: 1,
            breaks_missing: 1,
            by_trace_id: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

/// The same timeline in a process whose threads are request contexts is attributed by thread;
/// a process that exec'd into another program is told again.
#[test]
fn the_thread_rule_applies_again_when_a_process_is_not_go() {
    let timeline = |shared: bool| {
        let mut sim = Sim::new();
        sim.c.set_threads_shared(PID, true);
        sim.c.set_threads_shared(PID, shared);
        sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
        sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
        let (_, out) = sim.outbound(12, 3 * MS, "GET /x", "");
        one_break(out).attribution
    };
    assert_eq!(timeline(false), Attribution::Thread);
    assert_eq!(timeline(true), Attribution::Ambiguous);
    // Unknown processes are not created by a `false`.
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID + 1, false);
    assert!(sim.c.procs.is_empty());
}
