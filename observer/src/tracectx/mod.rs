//! Distributed-tracing context extracted from the headers of one HTTP/1.1
//! request head.
//!
//! The observer only *reads* trace context; it never propagates it. Values come
//! straight from network traffic, so everything here is defensive: no input can
//! panic, and any value that does not follow its specification is recorded in
//! [`TraceContext::invalid`] and otherwise ignored ("never trust invalid
//! values"). Apart from trace-context ids, `x-request-id` and
//! `x-ot-span-context`, no header value is kept: other headers (cookies,
//! authorization, ...) are skipped without being looked at, and `tracestate`
//! is only checked for presence.
//!
//! # General rules
//!
//! * Header names are matched ASCII case-insensitively and exactly (no
//!   surrounding whitespace, which HTTP/1.1 forbids in a field name).
//! * Values have surrounding optional whitespace (space / horizontal tab)
//!   trimmed. What remains must be valid UTF-8 and must not contain any control
//!   character (C0, DEL or C1); otherwise the header is invalid. An empty value
//!   is invalid for every trace header.
//! * A trace header that occurs more than once is treated as one occurrence if
//!   all its (trimmed) values are byte-identical. If they differ the header is
//!   invalid, exactly as if it had held an invalid value.
//! * A header is in [`TraceContext::present`] when it was present *and* used,
//!   and in [`TraceContext::invalid`] when it was present but invalid or
//!   untrusted. The two sets never overlap.
//!
//! # B3 multi-header (<https://github.com/openzipkin/b3-propagation>)
//!
//! * `x-b3-traceid`: 16 or 32 hex digits, not all zero. Upper-case digits are
//!   accepted and normalised to lower case. A 64-bit id equals the 128-bit id
//!   with 16 leading zeros (see [`TraceId`]).
//! * `x-b3-spanid`, `x-b3-parentspanid`: 16 hex digits (either case), not zero.
//! * `x-b3-sampled`: `1` / `true` accept, `0` / `false` deny (`true` / `false`
//!   for backwards compatibility, ASCII case-insensitive).
//! * `x-b3-flags`: only `1` (debug) is valid. Debug implies accept and wins
//!   over `x-b3-sampled`.
//! * With a valid trace id the headers form [`TraceContext::b3_multi`]; a
//!   missing or invalid span / parent id just leaves that field `None` (an
//!   invalid one is recorded as invalid).
//! * With an *invalid* trace id the whole multi-header context is malformed:
//!   `b3_multi` is `None` and the trace id, span ids and sampling headers are
//!   all untrusted (as in Zipkin Brave, which drops everything in that case).
//! * Without a trace id, span / parent ids are orphans and invalid, while a
//!   lone `x-b3-sampled` / `x-b3-flags` is a valid sampling-only decision that
//!   sets [`TraceContext::b3_sampling`].
//!
//! # B3 single header (`b3`)
//!
//! `{traceid}-{spanid}`, `{traceid}-{spanid}-{sampling}` or
//! `{traceid}-{spanid}-{sampling}-{parentspanid}` with the id rules above and
//! sampling one of `0`, `1`, `d`; or a lone `0`, `1` or `d` (sampling only,
//! sets `b3_sampling`). Anything else is invalid. When both the single header
//! and the multi headers yield a sampling-only decision, the single header
//! takes precedence for `b3_sampling` (as in Brave).
//!
//! When `b3` and the multi headers both form a carrier but the trace ids
//! differ, or both carry span ids that differ (compared by value), the
//! context is ambiguous: [`TraceContext::b3_conflict`] is set, both B3
//! carriers are dropped and every B3 header is moved from `present` to
//! `invalid` ("trust neither"). When they agree both are kept.
//!
//! # W3C Trace Context level 1
//!
//! * `traceparent`: `version-traceid-parentid-flags`. Version is 2 lower-case
//!   hex digits and not `ff`. Version `00` must be exactly 55 characters; a
//!   higher (future) version must be at least 55 characters and, if longer,
//!   character 55 must be `-` (the extra fields are ignored). Trace id is 32
//!   lower-case hex digits, not all zero; parent id 16 lower-case hex digits,
//!   not zero; flags 2 lower-case hex digits, bit 0 set means accept,
//!   otherwise deny. Upper-case hex anywhere is invalid. The carrier's
//!   `span_id` is the parent id and its `parent_span_id` is `None`.
//! * `tracestate`: only presence matters and the value is not stored. It is
//!   valid when non-empty, at most 512 bytes of printable ASCII, and a valid
//!   `traceparent` is present; otherwise invalid.
//!
//! # Other ids
//!
//! * `x-request-id`: 1..=128 bytes of printable ASCII (`0x21..=0x7e`, plus
//!   space inside the value); stored.
//! * `x-ot-span-context`: 1..=512 bytes of printable ASCII (`0x20..=0x7e`);
//!   stored as an opaque string.
//!
//! # Where
//! `header.rs` names the headers, `id.rs` holds trace and span ids and their hex digits,
//! `parse.rs` reads a head's headers into a [`TraceContext`] by the rules above.

mod header;
mod id;
mod parse;

pub use self::header::{HeaderSet, TraceHeader};
pub use self::id::{SpanId, TraceId};
pub use self::parse::TraceHeaders;
use crate::text::InlineStr;

/// The longest `x-request-id` kept; a longer one is invalid.
pub const REQUEST_ID_MAX: usize = 128;

/// A sampling decision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sampling {
    Accept,
    Deny,
    /// Debug: implies accept.
    Debug,
}

/// Context from one format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carrier {
    pub trace_id: TraceId,
    pub span_id: Option<SpanId>,
    pub parent_span_id: Option<SpanId>,
    pub sampling: Option<Sampling>,
}

/// Trace context found in one request head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// `x-b3-traceid` (+ `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`,
    /// `x-b3-flags`).
    pub b3_multi: Option<Carrier>,
    /// A `b3` header that carries a trace id.
    pub b3_single: Option<Carrier>,
    /// `traceparent`.
    pub w3c: Option<Carrier>,
    /// Sampling decision carried by B3 headers without a trace id (`b3: 0`,
    /// `b3: d`, lone `x-b3-sampled: 0`), else `None`.
    pub b3_sampling: Option<Sampling>,
    /// `x-request-id` if valid (at most [`REQUEST_ID_MAX`] bytes, held inline: Envoy sets one on
    /// every request).
    pub request_id: Option<InlineStr<REQUEST_ID_MAX>>,
    /// `x-ot-span-context` if valid.
    pub ot_span_context: Option<String>,
    /// Headers present and valid (used).
    pub present: HeaderSet,
    /// Headers present but invalid or untrusted.
    pub invalid: HeaderSet,
    /// `b3` single and multi headers both valid but disagree.
    pub b3_conflict: bool,
}

impl TraceContext {
    /// Extracts the trace context from the headers of one request head.
    ///
    /// `headers`: (name, value) pairs in wire order; names in any case; values
    /// raw bytes. Non-trace headers are skipped without inspecting the value.
    pub fn from_headers<'a, I: IntoIterator<Item = (&'a str, &'a [u8])>>(
        headers: I,
    ) -> TraceContext {
        let mut found = TraceHeaders::default();
        for (name, value) in headers {
            if let Some(h) = TraceHeader::from_name(name) {
                found.add(h, value);
            }
        }
        found.context()
    }
}

impl TraceContext {
    /// Distinct valid trace ids from all formats (w3c, b3 single, b3 multi
    /// order, deduplicated by value).
    pub fn trace_ids(&self) -> Vec<&TraceId> {
        let mut ids: Vec<&TraceId> = Vec::with_capacity(3);
        for c in self.carriers() {
            if !ids.contains(&&c.trace_id) {
                ids.push(&c.trace_id);
            }
        }
        ids
    }

    /// The trace ids of all formats (w3c, b3 single, b3 multi order), not deduplicated; unlike
    /// [`TraceContext::trace_ids`] it allocates nothing.
    pub fn each_trace_id(&self) -> impl Iterator<Item = &TraceId> {
        self.carriers().map(|c| &c.trace_id)
    }

    /// The distinct trace-id values of all formats (w3c, b3 single, b3 multi), 0 where a format
    /// carries none or the same id as a format before it (a valid trace id is never 0).
    pub fn trace_values(&self) -> [u128; 3] {
        let mut v = [&self.w3c, &self.b3_single, &self.b3_multi]
            .map(|c| c.as_ref().map_or(0, |c| c.trace_id.value()));
        for n in 1..v.len() {
            if v[..n].contains(&v[n]) {
                v[n] = 0;
            }
        }
        v
    }

    /// The carrier to report: traceparent first, then b3 single, then b3
    /// multi.
    pub fn primary(&self) -> Option<&Carrier> {
        self.carriers().next()
    }

    /// Carries a trace: any valid trace id, or a valid `x-ot-span-context`.
    pub fn carries_trace(&self) -> bool {
        self.carriers().next().is_some() || self.ot_span_context.is_some()
    }

    /// Carries a sampling decision in any format (b3 sampled/flags, b3 single
    /// sampling field, `b3: 0|1|d`, traceparent flags).
    pub fn has_sampling(&self) -> bool {
        self.b3_sampling.is_some() || self.carriers().any(|c| c.sampling.is_some())
    }

    /// Which present headers carried the sampling decision (e.g.
    /// `{B3Sampled}`, `{B3Flags}`, `{B3Single}`, `{Traceparent}`). When several
    /// headers carried one, all of them are included.
    pub fn sampling_headers(&self) -> HeaderSet {
        let mut set = HeaderSet::default();
        for h in [
            TraceHeader::B3Sampled,
            TraceHeader::B3Flags,
            TraceHeader::Traceparent,
        ] {
            if self.present.contains(h) {
                set.insert(h);
            }
        }
        // A present `b3` is either a carrier (with or without a sampling
        // field) or a lone sampling decision.
        if self.present.contains(TraceHeader::B3Single)
            && self.b3_single.as_ref().is_none_or(|c| c.sampling.is_some())
        {
            set.insert(TraceHeader::B3Single);
        }
        set
    }

    /// True when some trace id here equals one in `other`.
    pub fn shares_trace_with(&self, other: &TraceContext) -> bool {
        self.carriers()
            .any(|a| other.carriers().any(|b| a.trace_id == b.trace_id))
    }

    /// Valid carriers in precedence order: w3c, b3 single, b3 multi.
    fn carriers(&self) -> impl Iterator<Item = &Carrier> {
        [&self.w3c, &self.b3_single, &self.b3_multi]
            .into_iter()
            .filter_map(Option::as_ref)
    }
}

#[cfg(test)]
mod tests;
