//! The attribution rules: which active inbound request of the process an outbound request
//! serves (see the rules in [`super`]).

use serde::Serialize;

use super::Config;
use super::process::{Inbound, Process};
use crate::http::tracker::Request;
use crate::tracectx::TraceContext;

/// Thread parentage followed this many levels up.
pub const MAX_THREAD_DEPTH: usize = 5;

/// How an outbound request was tied to the inbound request it serves (see the rules in
/// [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    TraceId,
    Thread,
    SingleActive,
    Ambiguous,
}

impl Attribution {
    /// Its text in the records.
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::TraceId => "trace_id",
            Attribution::Thread => "thread",
            Attribution::SingleActive => "single_active",
            Attribution::Ambiguous => "ambiguous",
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

/// The candidates in arrival order.
pub(super) fn by_arrival<'a>(
    cands: impl Iterator<Item = &'a Inbound>,
) -> impl Iterator<Item = &'a Inbound> {
    let mut v: Vec<&Inbound> = cands.collect();
    v.sort_unstable_by_key(|i| i.seq);
    v.into_iter()
}

/// Chooses the inbound request an outbound one belongs to among the candidates; `None` with
/// `Ambiguous`. What it chooses does not depend on the order of the candidates.
pub(super) fn attribute<'a>(
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
        let open = Unique::of(cands.filter(|i| i.tid == tid && is_open(i)));
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
            .filter(|i| is_open(i) && descends_from(p, tid, i.tid)),
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

/// Whether thread `tid` is `ancestor` or was spawned by it, at most [`MAX_THREAD_DEPTH`] levels
/// down.
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
