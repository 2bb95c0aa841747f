//! The verdicts: for an outbound request and the inbound request(s) it was attributed to,
//! whether the trace context went along (see the verdicts in [`super`]).

use serde::Serialize;

use super::{Config, InboundRef};
use crate::http::head::RequestHead;
use crate::tracectx::{HeaderSet, Sampling, SpanId, TraceContext, TraceHeader, TraceId};

/// Why an outbound request is a break (see the verdicts in [`super`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    Missing,
    Partial,
    Mismatch,
}

impl BreakReason {
    /// Its text in the records.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakReason::Missing => "missing",
            BreakReason::Partial => "partial",
            BreakReason::Mismatch => "mismatch",
        }
    }
}

/// The outcome for one outbound request, before it becomes findings and counters.
#[derive(Debug)]
pub(super) enum Verdict {
    Propagated,
    Untraced,
    Unattributed,
    Unknown,
    Break {
        reason: BreakReason,
        missing: Vec<TraceHeader>,
    },
}

/// (trace id, span id) of the carrier to report. Only valid, consistent ids get here: the parser
/// drops invalid values and both B3 forms when they disagree.
pub(super) fn trusted_primary(t: &TraceContext) -> Option<(TraceId, Option<SpanId>)> {
    t.primary().map(|c| (c.trace_id, c.span_id))
}

pub(super) fn inbound_ref_of(head: Option<&RequestHead>) -> InboundRef {
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

pub(super) fn judge_one(cfg: &Config, inbound: Option<&RequestHead>, o: &TraceContext) -> Verdict {
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

pub(super) fn judge_ambiguous(
    heads: &[Option<&RequestHead>],
    o: &TraceContext,
) -> (Verdict, InboundRef) {
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
