//! Relating each process's inbound requests to the outbound requests they cause, and deciding
//! whether the trace context went along.
//!
//! Pure: it is fed [`HttpEvent`]s (from the connection tracker) and thread facts (forks, exits),
//! and returns [`Finding`]s. No clock, no I/O: all times are the kernel's monotonic timestamps.
//!
//! # Attribution
//! An inbound request (read on a server-side connection) is *active* from the first byte of its
//! head until its response head is written, plus a grace period (`Config::grace_ns`), and at most
//! `Config::max_active_ns` (a request whose response is never seen does not stay active forever).
//! An outbound request (written on a client-side connection) is attributed, first rule that
//! applies wins, among the active inbound requests of the same process:
//! 1. **trace_id**: it carries a trace id (B3 multi, B3 single or W3C, compared as 128-bit values)
//!    equal to one of theirs. This survives thread pools, event loops and selector threads.
//! 2. **thread**: it was written by the thread that read one of them (when that thread read
//!    several, keep-alive with the previous one in its grace period, the one still unanswered wins;
//!    several answered ones are ambiguous), or, failing that, by a thread spawned (clone parentage,
//!    up to `MAX_THREAD_DEPTH` levels) by the thread that read the one unanswered request. Spawned
//!    threads are often shared workers, so an answered request is no evidence for them. Never in
//!    a process whose threads are not request contexts ([`Correlator::set_threads_shared`]: Go,
//!    whose goroutines share a few OS threads and whose HTTP client writes from its own goroutine).
//! 3. **single_active**: exactly one is active, or exactly one is still unanswered and the others
//!    are only in their grace period (a thread pool whose client writes from its own threads, as
//!    Java's HttpClient does, serving sequential requests).
//! 4. **ambiguous**: otherwise.
//!
//! With no active inbound request the outbound one is *background* traffic: never a break.
//! Telemetry exports (OTLP/HTTP, Zipkin and Jaeger paths, `TELEMETRY_PATHS`) are never breaks
//! either: SDK exporters send them without the served request's context by design. An outbound
//! request carrying the trace id of an earlier inbound request of the process that is no longer
//! active (async work, retries; remembered for `Config::recent_ns`) is propagation.
//!
//! # Verdicts
//! For the attributed inbound request `I` and outbound request `O`:
//! * `I` unreadable (lost records, truncated or unparsable head), or its B3 single and multi
//!   headers disagree with nothing else to trust: **unknown**.
//! * `I` carries no trace context: nothing to propagate, no break (`untraced`).
//! * `O` carries only a B3 deny decision (`b3: 0`) and `I` was not sampled: propagated (B3's
//!   deny-only form).
//! * `O` carries no trace context in any format: break **missing**; if it carries only invalid
//!   trace headers, one of which could hold a trace id (`x-b3-traceid`, `b3`, `traceparent`,
//!   `x-ot-span-context`): **unknown** (something was sent; we cannot say what).
//! * `O` carries trace ids, none equal to `I`'s: break **mismatch**.
//! * Same trace id, but a header that `I` carried and the profile requires is absent from `O`
//!   (by default the sampling decision, in any format, and `tracestate`; `--require` adds
//!   headers): break **partial**, listing the headers.
//! * Otherwise the context was propagated (`ok`); a new span id on `O` (the app made a child
//!   span) is fine.
//!
//! Ambiguous attribution: if every candidate is readable and carries trace context, `O` without
//! context is a **missing** break (`attribution: ambiguous`; the inbound fields are filled only
//! when all candidates share one trace), and `O` with a trace id matching none of them is a
//! **mismatch**. If the candidates are a mix of traced and untraced, it is **unattributed**: no
//! alert. Any unreadable candidate makes it **unknown**.
//!
//! # Limits
//! Inbound requests whose records the kernel lost are invisible here; the pipeline therefore holds
//! every break until a check of the kernel's drop counters taken after it, and turns it into
//! `unknown` if records were dropped meanwhile. Attribution by thread and by "single active" is a
//! heuristic for work handed between threads without the trace id: such a case with several
//! requests in flight is `ambiguous`, and with a mix of traced and untraced requests stays silent.
//!
//! # Span ids
//! The server span takes the inbound trace id, its parent is the inbound span id, and it gets a
//! new span id. The client span takes the outbound trace id; when the outbound span id differs
//! from the inbound's (the app made a child span) it uses that id, so the downstream server span
//! links to it; otherwise a new id. Its parent is the server span it was attributed to. Ids already
//! emitted are never reused.
//!
//! # Where
//! `attribute.rs` holds the attribution rules, `judge.rs` the verdicts, `ids.rs` the span ids,
//! `process.rs` the state kept per process; this module feeds them the traffic and counts.

mod attribute;
mod ids;
mod judge;
mod process;

use foldhash::{HashMap, HashMapExt as _};
use serde::Serialize;

pub use self::attribute::{Attribution, MAX_THREAD_DEPTH};
use self::attribute::{attribute, by_arrival};
use self::ids::SpanIds;
pub use self::ids::{IdSource, RandomIds};
pub use self::judge::BreakReason;
use self::judge::{Verdict, inbound_ref_of, judge_ambiguous, judge_one, trusted_primary};
use self::process::{Inbound, Process};
pub use self::process::{MAX_ANSWERED, RECENT_TRACES};
use crate::http::head::RequestHead;
use crate::http::tracker::{Exchange, HttpEvent, Request, Role, Unknown};
use crate::text::SharedStr;
use crate::tracectx::{HeaderSet, SpanId, TraceHeader, TraceId};

/// Path endings of telemetry exports (OTLP/HTTP, Zipkin, Jaeger): an SDK's exporter sends these
/// without the trace context of the request being served, by design. They are never breaks.
pub const TELEMETRY_PATHS: &[&str] = &[
    "/v1/traces",
    "/v1/metrics",
    "/v1/logs",
    "/api/v2/spans",
    "/api/v1/spans",
    "/api/traces",
];

/// How long inbound requests stay candidates, and what a propagation must carry.
#[derive(Debug, Clone)]
pub struct Config {
    /// After its response, an inbound request stays a candidate this long.
    pub grace_ns: u64,
    /// An inbound request without a response stops being active after this long.
    pub max_active_ns: u64,
    /// Trace ids of inbound requests are remembered this long (at most `RECENT_TRACES` per
    /// process): an outbound request carrying one continues that trace, even when the request is
    /// no longer active (async work, retries, queues), and is never called a mismatch.
    pub recent_ns: u64,
    /// Headers required on the outbound request when the inbound one carried them, beyond the
    /// sampling decision.
    pub require: HeaderSet,
    /// Whether the sampling decision is required (default profile).
    pub require_sampling: bool,
}

impl Default for Config {
    fn default() -> Self {
        let mut require = HeaderSet::default();
        require.insert(TraceHeader::Tracestate);
        Config {
            grace_ns: 100_000_000,
            max_active_ns: 300_000_000_000,
            recent_ns: 600_000_000_000,
            require,
            require_sampling: true,
        }
    }
}

/// The inbound side of a break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRef {
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub method: Option<SharedStr>,
    pub path: Option<SharedStr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    pub reason: BreakReason,
    pub attribution: Attribution,
    pub outbound: Request,
    pub inbound: InboundRef,
    /// The server span the outbound request was attributed to (not for ambiguous ones).
    pub server_span_id: Option<SpanId>,
    /// Headers the inbound request carried that the outbound one lacks.
    pub missing: Vec<TraceHeader>,
}

/// A span the observer emits.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub exchange: Exchange,
    pub trace_id: Option<TraceId>,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// For client spans: how the outbound request was attributed (None: background).
    pub attribution: Option<Attribution>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    Span(Span),
    Break(Break),
}

/// What became of every outbound request, and of inbound ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CorrelatorStats {
    pub inbound: u64,
    pub outbound: u64,
    pub propagated: u64,
    pub breaks_missing: u64,
    pub breaks_partial: u64,
    pub breaks_mismatch: u64,
    pub unknown: u64,
    pub unattributed: u64,
    pub untraced: u64,
    pub background: u64,
    /// Outbound telemetry exports (see `TELEMETRY_PATHS`).
    pub telemetry: u64,
    pub by_trace_id: u64,
    pub by_thread: u64,
    pub by_single_active: u64,
    pub by_ambiguous: u64,
}

/// What was decided for an outbound request, kept until its exchange completes.
#[derive(Debug, Clone, Copy)]
struct ClientLink {
    attribution: Option<Attribution>,
    server_span: Option<SpanId>,
    inbound_span: Option<SpanId>,
}

pub struct Correlator {
    cfg: Config,
    procs: HashMap<u32, Process>,
    clients: HashMap<u64, ClientLink>,
    ids: SpanIds,
    stats: CorrelatorStats,
}

impl Correlator {
    pub fn new(cfg: Config, source: Box<dyn IdSource + Send>) -> Self {
        Correlator {
            cfg,
            procs: HashMap::new(),
            clients: HashMap::new(),
            ids: SpanIds::new(source),
            stats: CorrelatorStats::default(),
        }
    }

    pub fn stats(&self) -> CorrelatorStats {
        self.stats
    }

    /// Marks one more result as unknown (e.g. a break withdrawn because records were lost).
    pub fn count_unknown_instead_of_break(&mut self, reason: BreakReason) {
        let counter = match reason {
            BreakReason::Missing => &mut self.stats.breaks_missing,
            BreakReason::Partial => &mut self.stats.breaks_partial,
            BreakReason::Mismatch => &mut self.stats.breaks_mismatch,
        };
        *counter = counter.saturating_sub(1);
        self.stats.unknown += 1;
    }

    /// Says whether the OS threads of `pid` run many requests' code in turn (a Go program), so
    /// that the thread rule never applies there. Call it before the process's first event (and
    /// again after an exec); it holds until the process exits.
    pub fn set_threads_shared(&mut self, pid: u32, shared: bool) {
        if shared {
            self.procs.entry(pid).or_default().threads_shared = true;
        } else if let Some(p) = self.procs.get_mut(&pid) {
            p.threads_shared = false;
        }
    }

    pub fn on_fork(&mut self, pid: u32, parent_tid: u32, child_tid: u32) {
        if child_tid != pid {
            self.procs
                .entry(pid)
                .or_default()
                .parent
                .insert(child_tid, parent_tid);
        }
    }

    pub fn on_thread_exit(&mut self, pid: u32, tid: u32) {
        if let Some(p) = self.procs.get_mut(&pid) {
            // Children keep pointing at the exited thread's id; it is only a key now.
            p.parent.remove(&tid);
        }
    }

    pub fn on_exit(&mut self, pid: u32) {
        self.procs.remove(&pid);
    }

    pub fn on_http(&mut self, ev: &HttpEvent, out: &mut Vec<Finding>) {
        match ev {
            HttpEvent::Request(r) if r.role == Role::Server => self.on_inbound(r),
            HttpEvent::Request(r) => self.on_outbound(r, out),
            HttpEvent::Exchange(x) if x.request.role == Role::Server => {
                self.on_inbound_done(x, out)
            }
            HttpEvent::Exchange(x) => self.on_outbound_done(x, out),
            HttpEvent::Unknown(u) => self.on_unknown(u),
            HttpEvent::Abandoned { request, at, .. } => {
                if request.role == Role::Server {
                    self.end_inbound(request.conn.pid, request.seq, at.ts_ns);
                } else {
                    self.clients.remove(&request.seq);
                }
            }
        }
    }

    fn on_inbound(&mut self, r: &Request) {
        self.stats.inbound += 1;
        let span_id = self.ids.fresh();
        let now = r.origin.ts_ns;
        let p = self.procs.entry(r.conn.pid).or_default();
        p.expire(now, &self.cfg);
        if let Some(t) = r.head.as_ref().and_then(|h| trusted_primary(&h.trace)) {
            p.remember(now, t.0.value(), span_id);
        }
        p.arrive(Inbound {
            seq: r.seq,
            tid: r.origin.tid,
            start_ns: now,
            end_ns: None,
            head: r.head.clone(),
            traces: r.head.as_ref().map_or([0; 3], |h| h.trace.trace_values()),
            span_id,
        });
    }

    fn end_inbound(&mut self, pid: u32, seq: u64, at: u64) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.answer(seq, at, &self.cfg);
        }
    }

    fn on_inbound_done(&mut self, x: &Exchange, out: &mut Vec<Finding>) {
        let pid = x.request.conn.pid;
        self.end_inbound(pid, x.request.seq, x.end.ts_ns);
        let span_id = self.procs.get(&pid).and_then(|p| p.span_of(x.request.seq));
        let span_id = match span_id {
            Some(id) => id,
            None => self.ids.fresh(),
        };
        let primary = x
            .request
            .head
            .as_ref()
            .and_then(|h| trusted_primary(&h.trace));
        out.push(Finding::Span(Span {
            exchange: x.clone(),
            parent_span_id: primary.as_ref().and_then(|c| c.1),
            trace_id: primary.map(|c| c.0),
            span_id,
            attribution: None,
        }));
    }

    fn on_outbound_done(&mut self, x: &Exchange, out: &mut Vec<Finding>) {
        let link = self.clients.remove(&x.request.seq);
        let primary = x
            .request
            .head
            .as_ref()
            .and_then(|h| trusted_primary(&h.trace));
        let own = primary.as_ref().and_then(|c| c.1);
        let span_id = match own {
            Some(id) if link.is_some_and(|l| l.inbound_span != Some(id)) || link.is_none() => {
                self.ids.own_or_fresh(id)
            }
            _ => self.ids.fresh(),
        };
        out.push(Finding::Span(Span {
            exchange: x.clone(),
            trace_id: primary.map(|c| c.0),
            span_id,
            parent_span_id: link.and_then(|l| l.server_span),
            attribution: link.and_then(|l| l.attribution),
        }));
    }

    fn on_unknown(&mut self, u: &Unknown) {
        // An unreadable outbound head while inbound requests are active: a verdict we cannot give.
        if u.role == Some(Role::Client) && u.direction == crate::capture::record::Direction::Egress
        {
            let active = self
                .procs
                .get(&u.conn.pid)
                .is_some_and(|p| p.candidates(u.origin.ts_ns, &self.cfg).next().is_some());
            if active {
                self.stats.outbound += 1;
                self.stats.unknown += 1;
            }
        }
    }

    fn on_outbound(&mut self, o: &Request, out: &mut Vec<Finding>) {
        self.stats.outbound += 1;
        let pid = o.conn.pid;
        let ts = o.origin.ts_ns;
        let Some(out_head) = o.head.clone() else {
            return;
        };
        let background = ClientLink {
            attribution: None,
            server_span: None,
            inbound_span: None,
        };
        if TELEMETRY_PATHS.iter().any(|t| out_head.path.ends_with(t)) {
            self.stats.telemetry += 1;
            self.clients.insert(o.seq, background);
            return;
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            self.stats.background += 1;
            self.clients.insert(o.seq, background);
            return;
        };
        p.expire(ts, &self.cfg);
        p.index_traces();
        let p = &*p;
        let cands = p.candidates(ts, &self.cfg);
        if cands.clone().next().is_none() {
            self.stats.background += 1;
            self.clients.insert(o.seq, background);
            return;
        }
        let (attribution, chosen) = attribute(p, cands.clone(), o, &out_head.trace, &self.cfg);
        // It carries the trace of an earlier inbound request of this process that is no longer
        // active: work continued asynchronously. Propagated, whatever is in flight now.
        let continued = if attribution == Attribution::TraceId {
            None
        } else {
            out_head
                .trace
                .each_trace_id()
                .find_map(|t| p.recent.get(&t.value()))
                .map(|(_, span)| *span)
        };
        // The window of answered requests lost some that were still in their grace period: only
        // a trace id or an unanswered request read by the same thread still decide.
        let window_complete = ts > p.incomplete_until
            || attribution == Attribution::TraceId
            || (attribution == Attribution::Thread && chosen.is_some_and(|i| i.end_ns.is_none()));
        let (verdict, inbound_ref, server_span, inbound_span) = match chosen {
            _ if continued.is_some() => (Verdict::Propagated, None, continued, None),
            Some(i) => {
                let v = judge_one(&self.cfg, i.head.as_deref(), &out_head.trace);
                let primary = i.head.as_ref().and_then(|h| trusted_primary(&h.trace));
                (
                    v,
                    Some(inbound_ref_of(i.head.as_deref())),
                    Some(i.span_id),
                    primary.and_then(|c| c.1),
                )
            }
            None => {
                let heads: Vec<Option<&RequestHead>> =
                    by_arrival(cands).map(|i| i.head.as_deref()).collect();
                let (v, r) = judge_ambiguous(&heads, &out_head.trace);
                (v, Some(r), None, None)
            }
        };
        let attribution = if continued.is_some() {
            Attribution::TraceId
        } else {
            attribution
        };
        let verdict = match verdict {
            Verdict::Break { .. } if !window_complete => Verdict::Unknown,
            v => v,
        };
        self.clients.insert(
            o.seq,
            ClientLink {
                attribution: Some(attribution),
                server_span,
                inbound_span,
            },
        );
        match attribution {
            Attribution::TraceId => self.stats.by_trace_id += 1,
            Attribution::Thread => self.stats.by_thread += 1,
            Attribution::SingleActive => self.stats.by_single_active += 1,
            Attribution::Ambiguous => self.stats.by_ambiguous += 1,
        }
        match verdict {
            Verdict::Propagated => self.stats.propagated += 1,
            Verdict::Untraced => self.stats.untraced += 1,
            Verdict::Unattributed => self.stats.unattributed += 1,
            Verdict::Unknown => self.stats.unknown += 1,
            Verdict::Break { reason, missing } => {
                match reason {
                    BreakReason::Missing => self.stats.breaks_missing += 1,
                    BreakReason::Partial => self.stats.breaks_partial += 1,
                    BreakReason::Mismatch => self.stats.breaks_mismatch += 1,
                }
                out.push(Finding::Break(Break {
                    reason,
                    attribution,
                    outbound: o.clone(),
                    inbound: inbound_ref.unwrap_or(InboundRef {
                        trace_id: None,
                        span_id: None,
                        method: None,
                        path: None,
                    }),
                    server_span_id: server_span,
                    missing,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests;
