//! The state the correlator keeps per process: its inbound requests, unanswered and answered
//! (in their grace period), indexed by trace id once the process makes outbound requests; the
//! trace ids it served lately; and the parentage of its threads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use foldhash::HashMap;

use super::Config;
use crate::http::head::RequestHead;
use crate::tracectx::SpanId;

/// Inbound trace ids remembered per process.
pub const RECENT_TRACES: usize = 4096;

/// An inbound request, while it can be a candidate.
#[derive(Debug)]
pub(super) struct Inbound {
    pub(super) seq: u64,
    pub(super) tid: u32,
    pub(super) start_ns: u64,
    pub(super) end_ns: Option<u64>,
    pub(super) head: Option<Arc<RequestHead>>,
    /// The head's trace-id values (see [`crate::tracectx::TraceContext::trace_values`]), for attribution.
    pub(super) traces: [u128; 3],
    pub(super) span_id: SpanId,
}

/// The trace-id values a request carries (the non-zero ones of [`crate::tracectx::TraceContext::trace_values`],
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

/// Answered inbound requests kept per process for their grace period; beyond it the oldest go
/// and the window is marked incomplete (verdicts resting on it become `unknown`).
pub const MAX_ANSWERED: usize = 256;

/// What the correlator keeps of one process.
#[derive(Debug, Default)]
pub(super) struct Process {
    /// Unanswered inbound requests, by sequence number.
    pub(super) open: HashMap<u64, Inbound>,
    /// Answered inbound requests still in their grace period, in the order they were answered.
    pub(super) answered: VecDeque<Inbound>,
    /// The answer number of the first of `answered` (each answered request gets the next one).
    pub(super) first_answer: u64,
    /// Where each of them that carries trace ids is, by (trace-id value, sequence number), so
    /// that an outbound request finds the inbound ones it shares a trace id with without walking
    /// all of them (`MAX_ANSWERED` and more on a busy process). Built at the process's first
    /// outbound request: a process that only serves never pays for it.
    pub(super) by_trace: Option<BTreeMap<(u128, u64), Place>>,
    /// Until this time the answered window lacks requests it had to drop (`MAX_ANSWERED`).
    pub(super) incomplete_until: u64,
    /// When unanswered requests were last checked against `max_active_ns`.
    pub(super) swept_at: u64,
    /// Trace ids of inbound requests seen lately: trace id value -> (time, server span).
    pub(super) recent: HashMap<u128, (u64, SpanId)>,
    pub(super) recent_order: VecDeque<(u64, u128)>,
    /// Thread id -> the thread that created it.
    pub(super) parent: HashMap<u32, u32>,
    /// Its OS threads run many requests' code in turn (Go): a thread is no evidence.
    pub(super) threads_shared: bool,
}

/// Where an inbound request of a [`Process`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Open,
    /// In `answered`, with this answer number.
    Answered(u64),
}

impl Process {
    /// Inbound requests active at `ts` (see [`Inbound::active_at`]). In no particular order (see
    /// [`by_arrival`]); a clone walks them again.
    pub(super) fn candidates<'a>(
        &'a self,
        ts: u64,
        cfg: &'a Config,
    ) -> impl Iterator<Item = &'a Inbound> + Clone {
        self.open
            .values()
            .chain(self.answered.iter())
            .filter(move |i| i.active_at(ts, cfg))
    }

    pub(super) fn at(&self, seq: u64, place: Place) -> Option<&Inbound> {
        match place {
            Place::Open => self.open.get(&seq),
            Place::Answered(no) => {
                let k = usize::try_from(no.checked_sub(self.first_answer)?).ok()?;
                self.answered.get(k)
            }
        }
    }

    /// The most recent of the inbound requests active at `ts` that share a trace-id value with
    /// `traces` (see [`crate::tracectx::TraceContext::trace_values`]); ties go to the later arrival.
    pub(super) fn latest_sharing(
        &self,
        traces: &[u128; 3],
        ts: u64,
        cfg: &Config,
    ) -> Option<&Inbound> {
        // Built by `index_traces` before an outbound request is attributed.
        let index = self.by_trace.as_ref()?;
        trace_keys(traces)
            .flat_map(|v| index.range((v, 0)..=(v, u64::MAX)))
            .filter_map(|(&(_, seq), &place)| self.at(seq, place))
            .filter(|i| i.active_at(ts, cfg))
            .max_by_key(|i| (i.start_ns, i.seq))
    }

    /// Builds the trace-id index if this is the process's first outbound request.
    pub(super) fn index_traces(&mut self) {
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

    pub(super) fn arrive(&mut self, i: Inbound) {
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
    pub(super) fn expire(&mut self, now: u64, cfg: &Config) {
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

    pub(super) fn remember(&mut self, now: u64, trace: u128, span: SpanId) {
        self.recent.insert(trace, (now, span));
        self.recent_order.push_back((now, trace));
    }

    pub(super) fn answer(&mut self, seq: u64, at: u64, cfg: &Config) {
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

    pub(super) fn span_of(&self, seq: u64) -> Option<SpanId> {
        self.open
            .get(&seq)
            .or_else(|| self.answered.iter().rev().find(|i| i.seq == seq))
            .map(|i| i.span_id)
    }
}
