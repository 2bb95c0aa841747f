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

use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::http::head::RequestHead;
use crate::http::tracker::{Exchange, HttpEvent, Request, Role, Unknown};
use crate::text::SharedStr;
use crate::tracectx::{HeaderSet, Sampling, SpanId, TraceContext, TraceHeader, TraceId};

/// Thread parentage followed this many levels up.
pub const MAX_THREAD_DEPTH: usize = 5;
/// Inbound trace ids remembered per process.
pub const RECENT_TRACES: usize = 4096;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    TraceId,
    Thread,
    SingleActive,
    Ambiguous,
}

impl Attribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::TraceId => "trace_id",
            Attribution::Thread => "thread",
            Attribution::SingleActive => "single_active",
            Attribution::Ambiguous => "ambiguous",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    Missing,
    Partial,
    Mismatch,
}

impl BreakReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakReason::Missing => "missing",
            BreakReason::Partial => "partial",
            BreakReason::Mismatch => "mismatch",
        }
    }
}

/// Why a verdict could not be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownCause {
    /// The inbound request's head could not be read.
    UnreadableInbound,
    /// The inbound request's B3 single and multi headers disagree.
    B3Conflict,
    /// The outbound request carries only invalid trace headers.
    InvalidOutbound,
    /// The outbound head could not be read while inbound requests were active.
    UnreadableOutbound,
    /// Records were dropped by the kernel around the time of the break.
    RecordsLost,
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

#[derive(Debug)]
struct Inbound {
    seq: u64,
    tid: u32,
    start_ns: u64,
    end_ns: Option<u64>,
    head: Option<Arc<RequestHead>>,
    /// The head's trace-id values (see [`TraceContext::trace_values`]), for attribution.
    traces: [u128; 3],
    span_id: SpanId,
}

/// The trace-id values a request carries (the non-zero ones of [`TraceContext::trace_values`],
/// which are distinct).
fn trace_keys(t: &[u128; 3]) -> impl Iterator<Item = u128> + '_ {
    t.iter().copied().filter(|&v| v != 0)
}

/// Takes a request that is no longer a candidate out of the trace-id index, if there is one.
fn unindex(index: &mut Option<BTreeMap<(u128, u64), Place>>, i: &Inbound) {
    if let Some(index) = index {
        for v in trace_keys(&i.traces) {
            index.remove(&(v, i.seq));
        }
    }
}

impl Inbound {
    /// Whether it can be the inbound request an outbound request made at `ts` serves: it arrived
    /// by then and is unanswered (for at most `max_active_ns`) or was answered at most `grace_ns`
    /// before.
    fn active_at(&self, ts: u64, cfg: &Config) -> bool {
        self.start_ns <= ts
            && match self.end_ns {
                None => ts <= self.start_ns.saturating_add(cfg.max_active_ns),
                Some(end) => ts <= end.saturating_add(cfg.grace_ns),
            }
    }
}

/// What a pass over the candidates keeps of those that pass a test: how many, and one of them
/// (the only one when there is exactly one).
#[derive(Clone, Copy)]
struct Unique<'a> {
    count: usize,
    one: Option<&'a Inbound>,
}

impl<'a> Unique<'a> {
    fn of(it: impl Iterator<Item = &'a Inbound>) -> Self {
        let mut u = Unique {
            count: 0,
            one: None,
        };
        for i in it {
            u.count += 1;
            u.one.get_or_insert(i);
        }
        u
    }

    fn only(self) -> Option<&'a Inbound> {
        if self.count == 1 { self.one } else { None }
    }
}

/// Answered inbound requests kept per process for their grace period; beyond it the oldest go
/// and the window is marked incomplete (verdicts resting on it become `unknown`).
pub const MAX_ANSWERED: usize = 256;

#[derive(Debug, Default)]
struct Process {
    /// Unanswered inbound requests, by sequence number.
    open: HashMap<u64, Inbound>,
    /// Answered inbound requests still in their grace period, in the order they were answered.
    answered: VecDeque<Inbound>,
    /// The answer number of the first of `answered` (each answered request gets the next one).
    first_answer: u64,
    /// Where each of them that carries trace ids is, by (trace-id value, sequence number), so
    /// that an outbound request finds the inbound ones it shares a trace id with without walking
    /// all of them (`MAX_ANSWERED` and more on a busy process). Built at the process's first
    /// outbound request: a process that only serves never pays for it.
    by_trace: Option<BTreeMap<(u128, u64), Place>>,
    /// Until this time the answered window lacks requests it had to drop (`MAX_ANSWERED`).
    incomplete_until: u64,
    /// When unanswered requests were last checked against `max_active_ns`.
    swept_at: u64,
    /// Trace ids of inbound requests seen lately: trace id value -> (time, server span).
    recent: HashMap<u128, (u64, SpanId)>,
    recent_order: VecDeque<(u64, u128)>,
    /// Thread id -> the thread that created it.
    parent: HashMap<u32, u32>,
    /// Its OS threads run many requests' code in turn (Go): a thread is no evidence.
    threads_shared: bool,
}

/// Where an inbound request of a [`Process`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Open,
    /// In `answered`, with this answer number.
    Answered(u64),
}

impl Process {
    /// Inbound requests active at `ts` (see [`Inbound::active_at`]). In no particular order (see
    /// [`by_arrival`]); a clone walks them again.
    fn candidates<'a>(
        &'a self,
        ts: u64,
        cfg: &'a Config,
    ) -> impl Iterator<Item = &'a Inbound> + Clone {
        self.open
            .values()
            .chain(self.answered.iter())
            .filter(move |i| i.active_at(ts, cfg))
    }

    fn at(&self, seq: u64, place: Place) -> Option<&Inbound> {
        match place {
            Place::Open => self.open.get(&seq),
            Place::Answered(no) => {
                let k = usize::try_from(no.checked_sub(self.first_answer)?).ok()?;
                self.answered.get(k)
            }
        }
    }

    /// The most recent of the inbound requests active at `ts` that share a trace-id value with
    /// `traces` (see [`TraceContext::trace_values`]); ties go to the later arrival.
    fn latest_sharing(&self, traces: &[u128; 3], ts: u64, cfg: &Config) -> Option<&Inbound> {
        // Built by `index_traces` before an outbound request is attributed.
        let index = self.by_trace.as_ref()?;
        trace_keys(traces)
            .flat_map(|v| index.range((v, 0)..=(v, u64::MAX)))
            .filter_map(|(&(_, seq), &place)| self.at(seq, place))
            .filter(|i| i.active_at(ts, cfg))
            .max_by_key(|i| (i.start_ns, i.seq))
    }

    /// Builds the trace-id index if this is the process's first outbound request.
    fn index_traces(&mut self) {
        if self.by_trace.is_some() {
            return;
        }
        let open = self.open.values().map(|i| (i, Place::Open));
        let answered = (self.first_answer..)
            .zip(&self.answered)
            .map(|(no, i)| (i, Place::Answered(no)));
        let index = open
            .chain(answered)
            .flat_map(|(i, place)| trace_keys(&i.traces).map(move |v| ((v, i.seq), place)))
            .collect();
        self.by_trace = Some(index);
    }

    fn place(&mut self, i: &Inbound, place: Place) {
        if let Some(index) = &mut self.by_trace {
            index.extend(trace_keys(&i.traces).map(|v| ((v, i.seq), place)));
        }
    }

    fn arrive(&mut self, i: Inbound) {
        self.place(&i, Place::Open);
        self.open.insert(i.seq, i);
    }

    /// Drops the oldest answered request.
    fn pop_answered(&mut self) -> Option<Inbound> {
        let i = self.answered.pop_front()?;
        self.first_answer += 1;
        unindex(&mut self.by_trace, &i);
        Some(i)
    }

    /// Drops what can no longer be a candidate at `now`.
    fn expire(&mut self, now: u64, cfg: &Config) {
        while self.answered.front().is_some_and(|i| {
            i.end_ns
                .is_some_and(|end| end.saturating_add(cfg.grace_ns) < now)
        }) {
            self.pop_answered();
        }
        // Unanswered requests past max_active: checked at most once a second.
        if now.saturating_sub(self.swept_at) >= 1_000_000_000 {
            self.swept_at = now;
            let by_trace = &mut self.by_trace;
            self.open.retain(|_, i| {
                let keep = i.start_ns.saturating_add(cfg.max_active_ns) >= now;
                if !keep {
                    unindex(by_trace, i);
                }
                keep
            });
        }
        let horizon = now.saturating_sub(cfg.recent_ns);
        while let Some(&(ts, t)) = self.recent_order.front() {
            if ts >= horizon && self.recent_order.len() <= RECENT_TRACES {
                break;
            }
            self.recent_order.pop_front();
            if self.recent.get(&t).is_some_and(|(seen, _)| *seen == ts) {
                self.recent.remove(&t);
            }
        }
    }

    fn remember(&mut self, now: u64, trace: u128, span: SpanId) {
        self.recent.insert(trace, (now, span));
        self.recent_order.push_back((now, trace));
    }

    fn answer(&mut self, seq: u64, at: u64, cfg: &Config) {
        let Some(mut i) = self.open.remove(&seq) else {
            return;
        };
        i.end_ns = Some(at);
        let no = self.first_answer + self.answered.len() as u64;
        self.place(&i, Place::Answered(no));
        self.answered.push_back(i);
        if self.answered.len() > MAX_ANSWERED
            && let Some(old) = self.pop_answered()
        {
            let until = old.end_ns.unwrap_or(at).saturating_add(cfg.grace_ns);
            self.incomplete_until = self.incomplete_until.max(until);
        }
    }

    fn span_of(&self, seq: u64) -> Option<SpanId> {
        self.open
            .get(&seq)
            .or_else(|| self.answered.iter().rev().find(|i| i.seq == seq))
            .map(|i| i.span_id)
    }
}

/// What was decided for an outbound request, kept until its exchange completes.
#[derive(Debug, Clone, Copy)]
struct ClientLink {
    attribution: Option<Attribution>,
    server_span: Option<SpanId>,
    inbound_span: Option<SpanId>,
}

/// Bounded memory of the span ids taken from the traffic (an app's own client span ids), so
/// none is emitted twice: HTTP clients re-send the same headers on a retry. Generated ids are
/// not kept here: they are random, and one equal to any of the remembered ids has odds of
/// 2^-48 (a hash set of 65,536 ids cost a cache miss per insert and per eviction, for every
/// span).
#[derive(Debug, Default)]
struct IdRegistry {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

const ID_MEMORY: usize = 1 << 16;

impl IdRegistry {
    fn claim(&mut self, id: u64) -> bool {
        if id == 0 || !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > ID_MEMORY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// Source of new span ids: random in production, a counter in tests. The correlator trusts
/// them to be fresh (it only skips 0): never returned before, and not equal to an id seen in
/// the traffic.
pub trait IdSource {
    fn next_id(&mut self) -> u64;
}

pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&mut self) -> u64 {
        rand::random()
    }
}

pub struct Correlator {
    cfg: Config,
    procs: HashMap<u32, Process>,
    clients: HashMap<u64, ClientLink>,
    ids: IdRegistry,
    source: Box<dyn IdSource + Send>,
    stats: CorrelatorStats,
}

/// The outcome for one outbound request, before it becomes findings and counters.
#[derive(Debug)]
enum Verdict {
    Propagated,
    Untraced,
    Unattributed,
    Unknown,
    Break {
        reason: BreakReason,
        missing: Vec<TraceHeader>,
    },
}

impl Correlator {
    pub fn new(cfg: Config, source: Box<dyn IdSource + Send>) -> Self {
        Correlator {
            cfg,
            procs: HashMap::new(),
            clients: HashMap::new(),
            ids: IdRegistry::default(),
            source,
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

    fn new_span_id(&mut self) -> SpanId {
        loop {
            if let Some(id) = SpanId::new(self.source.next_id()) {
                return id;
            }
        }
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
        let span_id = self.new_span_id();
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
            None => self.new_span_id(),
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
                if self.ids.claim(id.value()) {
                    id
                } else {
                    self.new_span_id()
                }
            }
            _ => self.new_span_id(),
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

    fn descends_from(p: &Process, mut tid: u32, ancestor: u32) -> bool {
        for _ in 0..=MAX_THREAD_DEPTH {
            if tid == ancestor {
                return true;
            }
            match p.parent.get(&tid) {
                Some(&up) if up != tid => tid = up,
                _ => return false,
            }
        }
        false
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

/// The candidates in arrival order.
fn by_arrival<'a>(cands: impl Iterator<Item = &'a Inbound>) -> impl Iterator<Item = &'a Inbound> {
    let mut v: Vec<&Inbound> = cands.collect();
    v.sort_unstable_by_key(|i| i.seq);
    v.into_iter()
}

/// Chooses the inbound request an outbound one belongs to among the candidates; `None` with
/// `Ambiguous`. What it chooses does not depend on the order of the candidates.
fn attribute<'a>(
    p: &'a Process,
    cands: impl Iterator<Item = &'a Inbound> + Clone,
    o: &Request,
    out_trace: &TraceContext,
    cfg: &Config,
) -> (Attribution, Option<&'a Inbound>) {
    // 1. A shared trace id; the most recent such request wins.
    if let Some(i) = p.latest_sharing(&out_trace.trace_values(), o.origin.ts_ns, cfg) {
        return (Attribution::TraceId, Some(i));
    }
    let is_open = |i: &&Inbound| i.end_ns.is_none();
    if p.threads_shared {
        return single_active(cands);
    }
    // 2a. The same thread read it: strong evidence (thread-per-connection servers, event loops).
    //     The unanswered one wins; several answered ones (keep-alive, grace) cannot be told apart.
    let tid = o.origin.tid;
    let same = Unique::of(cands.clone().filter(|i| i.tid == tid));
    if same.count > 0 {
        let open = Unique::of(cands.clone().filter(|i| i.tid == tid && is_open(i)));
        return match (open.only(), same.only()) {
            (Some(i), _) => (Attribution::Thread, Some(i)),
            (None, Some(i)) if open.count == 0 => (Attribution::Thread, Some(i)),
            _ => (Attribution::Ambiguous, None),
        };
    }
    // 2b. A thread it spawned, while the request is unanswered. Spawned threads are often shared
    //     workers (Java's HttpClient pool is created by whichever handler called first), so an
    //     answered request is no evidence.
    let spawned = Unique::of(
        cands
            .clone()
            .filter(|i| is_open(i) && Correlator::descends_from(p, tid, i.tid)),
    );
    if let Some(i) = spawned.only() {
        return (Attribution::Thread, Some(i));
    }
    single_active(cands)
}

/// Rule 3: the only active one; requests already answered (in their grace period) give way to
/// the one unanswered request. Otherwise ambiguous.
fn single_active<'a>(
    cands: impl Iterator<Item = &'a Inbound> + Clone,
) -> (Attribution, Option<&'a Inbound>) {
    if let Some(i) = Unique::of(cands.clone()).only() {
        return (Attribution::SingleActive, Some(i));
    }
    if let Some(i) = Unique::of(cands.filter(|i| i.end_ns.is_none())).only() {
        return (Attribution::SingleActive, Some(i));
    }
    (Attribution::Ambiguous, None)
}

/// (trace id, span id) of the carrier to report. Only valid, consistent ids get here: the parser
/// drops invalid values and both B3 forms when they disagree.
fn trusted_primary(t: &TraceContext) -> Option<(TraceId, Option<SpanId>)> {
    t.primary().map(|c| (c.trace_id, c.span_id))
}

fn inbound_ref_of(head: Option<&RequestHead>) -> InboundRef {
    let primary = head.and_then(|h| trusted_primary(&h.trace));
    InboundRef {
        trace_id: primary.as_ref().map(|c| c.0),
        span_id: primary.and_then(|c| c.1),
        method: head.map(|h| h.method.clone()),
        path: head.map(|h| h.path.clone()),
    }
}

/// Whether the inbound request carries a context worth propagating; `Err` with a verdict when it
/// cannot be judged or carries nothing.
fn inbound_context(head: Option<&RequestHead>) -> Result<&TraceContext, Verdict> {
    let Some(head) = head else {
        return Err(Verdict::Unknown);
    };
    let t = &head.trace;
    if t.carries_trace() {
        Ok(t)
    } else if t.b3_conflict {
        Err(Verdict::Unknown)
    } else {
        Err(Verdict::Untraced)
    }
}

/// Headers that can hold a trace id, as opposed to those that only go along with one.
const CONTEXT_HEADERS: [TraceHeader; 4] = [
    TraceHeader::B3TraceId,
    TraceHeader::B3Single,
    TraceHeader::Traceparent,
    TraceHeader::OtSpanContext,
];

/// For an outbound request without trace context: whether an invalid header might have held one.
/// An invalid `x-request-id`, a `tracestate` without `traceparent` or a B3 span id without trace
/// id cannot: the trace id is surely missing.
fn invalid_context(o: &TraceContext) -> bool {
    o.b3_conflict || CONTEXT_HEADERS.iter().any(|&h| o.invalid.contains(h))
}

/// The headers of `carried` that an outbound request without trace context lacks: all but its
/// valid ones that hold no trace id (`x-request-id`, a sampling decision). A `b3: 1` does not
/// stand for the `b3` context the inbound request carried.
fn lacking(carried: HeaderSet, o: &TraceContext) -> Vec<TraceHeader> {
    let context: HeaderSet = CONTEXT_HEADERS.into_iter().collect();
    carried
        .difference(o.present.difference(context))
        .iter()
        .collect()
}

/// B3 lets an unsampled trace travel as its deny decision alone (`b3: 0`, `x-b3-sampled: 0`).
fn deny_only_propagation(i: &TraceContext, o: &TraceContext) -> bool {
    let inbound_denied =
        i.primary().and_then(|c| c.sampling).or(i.b3_sampling) == Some(Sampling::Deny);
    inbound_denied && o.b3_sampling == Some(Sampling::Deny)
}

fn judge_one(cfg: &Config, inbound: Option<&RequestHead>, o: &TraceContext) -> Verdict {
    let i = match inbound_context(inbound) {
        Ok(t) => t,
        Err(v) => return v,
    };
    if !o.carries_trace() && deny_only_propagation(i, o) {
        return Verdict::Propagated;
    }
    if !o.carries_trace() {
        if invalid_context(o) {
            return Verdict::Unknown;
        }
        return Verdict::Break {
            reason: BreakReason::Missing,
            missing: lacking(i.present, o),
        };
    }
    if i.primary().is_none() || o.primary().is_none() {
        // Only an opaque x-ot-span-context on one side: it travels on or not, ids cannot be compared.
        return if i.ot_span_context.is_some()
            && o.ot_span_context.is_none()
            && o.primary().is_none()
        {
            Verdict::Break {
                reason: BreakReason::Missing,
                missing: vec![TraceHeader::OtSpanContext],
            }
        } else {
            Verdict::Propagated
        };
    }
    if !i.shares_trace_with(o) {
        return Verdict::Break {
            reason: BreakReason::Mismatch,
            missing: Vec::new(),
        };
    }
    let mut missing = HeaderSet::default();
    if cfg.require_sampling && i.has_sampling() && !o.has_sampling() {
        missing = missing.union(i.sampling_headers());
    }
    for h in cfg.require.iter() {
        if i.present.contains(h) && !o.present.contains(h) {
            missing.insert(h);
        }
    }
    if missing.is_empty() {
        Verdict::Propagated
    } else {
        Verdict::Break {
            reason: BreakReason::Partial,
            missing: missing.iter().collect(),
        }
    }
}

fn judge_ambiguous(heads: &[Option<&RequestHead>], o: &TraceContext) -> (Verdict, InboundRef) {
    let none = InboundRef {
        trace_id: None,
        span_id: None,
        method: None,
        path: None,
    };
    let mut contexts = Vec::new();
    let mut untraced = 0;
    for h in heads {
        match inbound_context(*h) {
            Ok(t) => contexts.push(t),
            Err(Verdict::Untraced) => untraced += 1,
            Err(_) => return (Verdict::Unknown, none),
        }
    }
    if contexts.is_empty() {
        return (Verdict::Untraced, none);
    }
    if untraced > 0 {
        return (Verdict::Unattributed, none);
    }
    // Fill the inbound fields only when every candidate is the same trace.
    let first = heads.iter().flatten().next().copied();
    let same = contexts.iter().all(|t| t.shares_trace_with(contexts[0]));
    let r = if same { inbound_ref_of(first) } else { none };
    let r = InboundRef {
        method: None,
        path: None,
        ..r
    };
    if !o.carries_trace() && o.b3_sampling == Some(Sampling::Deny) {
        // A deny-only B3 decision: fine for unsampled candidates; which one it served is unknown.
        let denied = contexts
            .iter()
            .filter(|t| deny_only_propagation(t, o))
            .count();
        if denied == contexts.len() {
            return (Verdict::Propagated, r);
        }
        if denied > 0 {
            return (Verdict::Unknown, r);
        }
    }
    if !o.carries_trace() {
        if invalid_context(o) {
            return (Verdict::Unknown, r);
        }
        let mut carried = HeaderSet::default();
        for t in &contexts {
            carried = carried.union(t.present);
        }
        return (
            Verdict::Break {
                reason: BreakReason::Missing,
                missing: lacking(carried, o),
            },
            r,
        );
    }
    if o.primary().is_none() {
        return (Verdict::Unknown, r);
    }
    // attribute() already found no candidate sharing a trace id with O.
    (
        Verdict::Break {
            reason: BreakReason::Mismatch,
            missing: Vec::new(),
        },
        r,
    )
}

#[cfg(test)]
#[path = "correlate_tests.rs"]
mod tests;
