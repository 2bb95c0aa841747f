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

use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;

use crate::text::{InlineStr, inline_ascii, is_name};

/// The longest `x-request-id` kept; a longer one is invalid.
pub const REQUEST_ID_MAX: usize = 128;

/// Trace-context headers the observer understands.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum TraceHeader {
    B3TraceId,
    B3SpanId,
    B3ParentSpanId,
    B3Sampled,
    B3Flags,
    B3Single,
    Traceparent,
    Tracestate,
    RequestId,
    OtSpanContext,
}

impl TraceHeader {
    /// Every trace header, in declaration order.
    pub const ALL: [TraceHeader; 10] = [
        TraceHeader::B3TraceId,
        TraceHeader::B3SpanId,
        TraceHeader::B3ParentSpanId,
        TraceHeader::B3Sampled,
        TraceHeader::B3Flags,
        TraceHeader::B3Single,
        TraceHeader::Traceparent,
        TraceHeader::Tracestate,
        TraceHeader::RequestId,
        TraceHeader::OtSpanContext,
    ];

    /// The B3 headers (single and multi).
    const B3: [TraceHeader; 6] = [
        TraceHeader::B3TraceId,
        TraceHeader::B3SpanId,
        TraceHeader::B3ParentSpanId,
        TraceHeader::B3Sampled,
        TraceHeader::B3Flags,
        TraceHeader::B3Single,
    ];

    /// Lower-case wire name of the header.
    pub fn name(self) -> &'static str {
        match self {
            TraceHeader::B3TraceId => "x-b3-traceid",
            TraceHeader::B3SpanId => "x-b3-spanid",
            TraceHeader::B3ParentSpanId => "x-b3-parentspanid",
            TraceHeader::B3Sampled => "x-b3-sampled",
            TraceHeader::B3Flags => "x-b3-flags",
            TraceHeader::B3Single => "b3",
            TraceHeader::Traceparent => "traceparent",
            TraceHeader::Tracestate => "tracestate",
            TraceHeader::RequestId => "x-request-id",
            TraceHeader::OtSpanContext => "x-ot-span-context",
        }
    }

    /// Looks a header name up, ASCII case-insensitively. No whitespace is
    /// trimmed.
    pub fn from_name(name: &str) -> Option<Self> {
        use TraceHeader::*;
        // Most header names are not trace headers. The length and one letter leave at most one
        // candidate, compared as a constant-length array (a lookup per header line of every
        // head; a test holds the names here to `name()`).
        let b = name.as_bytes();
        let at = |i: usize| b.get(i).map_or(0, u8::to_ascii_lowercase);
        let (found, h) = match (b.len(), at(0)) {
            (2, b'b') => (is_name(b, b"b3"), B3Single),
            (10, b't') => (is_name(b, b"tracestate"), Tracestate),
            (11, b't') => (is_name(b, b"traceparent"), Traceparent),
            (10, b'x') => (is_name(b, b"x-b3-flags"), B3Flags),
            (11, b'x') => (is_name(b, b"x-b3-spanid"), B3SpanId),
            (12, b'x') => match at(5) {
                b't' => (is_name(b, b"x-b3-traceid"), B3TraceId),
                b's' => (is_name(b, b"x-b3-sampled"), B3Sampled),
                _ => (is_name(b, b"x-request-id"), RequestId),
            },
            (17, b'x') if at(2) == b'b' => (is_name(b, b"x-b3-parentspanid"), B3ParentSpanId),
            (17, b'x') => (is_name(b, b"x-ot-span-context"), OtSpanContext),
            _ => return None,
        };
        found.then_some(h)
    }

    /// Is this one of the B3 headers (single or multi)?
    pub fn is_b3(self) -> bool {
        TraceHeader::B3.contains(&self)
    }

    fn bit(self) -> u16 {
        1u16 << (self as u16)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Small bitset of [`TraceHeader`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct HeaderSet(u16);

impl HeaderSet {
    /// The empty set.
    pub const EMPTY: HeaderSet = HeaderSet(0);

    pub fn insert(&mut self, h: TraceHeader) {
        self.0 |= h.bit();
    }

    pub fn remove(&mut self, h: TraceHeader) {
        self.0 &= !h.bit();
    }

    pub fn contains(self, h: TraceHeader) -> bool {
        self.0 & h.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Members in [`TraceHeader::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = TraceHeader> {
        TraceHeader::ALL
            .into_iter()
            .filter(move |h| self.contains(*h))
    }

    pub fn union(self, o: HeaderSet) -> HeaderSet {
        HeaderSet(self.0 | o.0)
    }

    pub fn difference(self, o: HeaderSet) -> HeaderSet {
        HeaderSet(self.0 & !o.0)
    }
}

impl FromIterator<TraceHeader> for HeaderSet {
    fn from_iter<T: IntoIterator<Item = TraceHeader>>(iter: T) -> Self {
        let mut set = HeaderSet::default();
        for h in iter {
            set.insert(h);
        }
        set
    }
}

/// A trace id: the normalised 128-bit value plus the text as sent on the wire.
///
/// Equality and Hash use the value only, so a 64-bit B3 id `463ac35c9f6413ad`
/// equals the 128-bit `0000000000000000463ac35c9f6413ad` (B3 and W3C
/// interoperability).
#[derive(Clone, Copy, Debug)]
pub struct TraceId {
    /// The value's high and low 64 bits: two `u64`s, not a `u128`, whose 16-byte alignment would
    /// pad every carrier (a head holds three).
    hi: u64,
    lo: u64,
    /// Sent as 32 hex digits (else 16): with the value, that is the wire text, lower-cased.
    wide: bool,
}

impl TraceId {
    fn new(value: u128, wide: bool) -> TraceId {
        TraceId {
            hi: (value >> 64) as u64,
            lo: value as u64,
            wide,
        }
    }

    /// The id as a 128-bit number (64-bit ids are zero-extended).
    pub fn value(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }

    /// The text as sent, lower-cased (16 or 32 hex digits), made when asked: ids are parsed
    /// for every request, and only those of emitted records are printed.
    pub fn wire(&self) -> InlineStr<32> {
        let digits = hex_digits::<32>(self.value());
        // A 16-digit id is below 2^64: its digits are the low 16.
        let text = if self.wide {
            &digits[..]
        } else {
            &digits[16..]
        };
        inline_ascii(text)
    }

    /// A B3 trace id: 16 or 32 hex digits of either case, not all zero.
    /// No whitespace is accepted.
    pub fn parse_b3(b: &[u8]) -> Option<TraceId> {
        if b.len() != 16 && b.len() != 32 {
            return None;
        }
        let value = parse_hex_u128(b, Case::Any)?;
        (value != 0).then(|| TraceId::new(value, b.len() == 32))
    }

    /// A W3C trace id: exactly 32 lower-case hex digits, not all zero.
    pub fn parse_w3c(b: &[u8]) -> Option<TraceId> {
        if b.len() != 32 {
            return None;
        }
        let value = parse_hex_u128(b, Case::Lower)?;
        (value != 0).then(|| TraceId::new(value, true))
    }
}

impl PartialEq for TraceId {
    fn eq(&self, other: &Self) -> bool {
        (self.hi, self.lo) == (other.hi, other.lo)
    }
}

impl Eq for TraceId {}

impl Hash for TraceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value().hash(state);
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.wire())
    }
}

/// A non-zero 64-bit span id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SpanId(NonZeroU64);

impl SpanId {
    /// `None` for 0, which is never a valid span id.
    pub fn new(v: u64) -> Option<SpanId> {
        NonZeroU64::new(v).map(SpanId)
    }

    pub fn value(self) -> u64 {
        self.0.get()
    }

    /// Exactly 16 hex digits of either case, not zero. No whitespace.
    pub fn parse_hex(b: &[u8]) -> Option<SpanId> {
        Self::parse_hex_case(b, Case::Any)
    }

    fn parse_hex_case(b: &[u8], case: Case) -> Option<SpanId> {
        if b.len() != 16 {
            return None;
        }
        SpanId::new(parse_hex_u64(b, case)?)
    }
}

impl SpanId {
    /// The 16 lower-case hex digits, inline (as [`TraceId::wire`]).
    pub fn text(self) -> InlineStr<16> {
        inline_ascii(&hex_digits::<16>(u128::from(self.value())))
    }
}

/// The `N` low hex digits of `v`, lower case, most significant first.
fn hex_digits<const N: usize>(v: u128) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; N];
    let mut v = v;
    for d in out.iter_mut().rev() {
        *d = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
    out
}

/// Bytes checked to be ASCII (hex digits, [`printable`] values) as text.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.value())
    }
}

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

/// The trace headers of one request head, gathered one header line at a time (for a caller
/// that already looked each name up, see [`TraceContext::from_headers`]); [`Self::context`]
/// reads them.
#[derive(Clone, Copy)]
pub struct TraceHeaders<'a> {
    slots: [Slot<'a>; TraceHeader::ALL.len()],
}

impl Default for TraceHeaders<'_> {
    fn default() -> Self {
        TraceHeaders {
            slots: [Slot::Absent; TraceHeader::ALL.len()],
        }
    }
}

impl<'a> TraceHeaders<'a> {
    /// One line of header `h` (its raw value), in wire order.
    pub fn add(&mut self, h: TraceHeader, value: &'a [u8]) {
        let value = trim_ows(value);
        let slot = &mut self.slots[h.index()];
        *slot = match *slot {
            Slot::Absent => Slot::One(value),
            Slot::One(prev) if prev == value => Slot::One(prev),
            Slot::One(_) | Slot::Conflict => Slot::Conflict,
        };
    }

    /// The trace context these headers carry.
    pub fn context(self) -> TraceContext {
        let slots = self.slots;
        let field = |h: TraceHeader| Field::from_slot(slots[h.index()]);

        let mut ctx = TraceContext::default();

        // B3 multi-header.
        let trace_id = field(TraceHeader::B3TraceId).parse(TraceId::parse_b3);
        let span_id = field(TraceHeader::B3SpanId).parse(SpanId::parse_hex);
        let parent_id = field(TraceHeader::B3ParentSpanId).parse(SpanId::parse_hex);
        let sampled = field(TraceHeader::B3Sampled).parse(parse_b3_sampled);
        let flags = field(TraceHeader::B3Flags).parse(parse_b3_flags);
        let mut multi_lone_sampling = None;
        match trace_id {
            Parsed::Valid(trace_id) => {
                ctx.present.insert(TraceHeader::B3TraceId);
                let span_id = ctx.mark(TraceHeader::B3SpanId, span_id);
                let parent_span_id = ctx.mark(TraceHeader::B3ParentSpanId, parent_id);
                let sampled = ctx.mark(TraceHeader::B3Sampled, sampled);
                let flags = ctx.mark(TraceHeader::B3Flags, flags);
                ctx.b3_multi = Some(Carrier {
                    trace_id,
                    span_id,
                    parent_span_id,
                    sampling: flags.or(sampled),
                });
            }
            Parsed::Invalid => {
                ctx.invalid.insert(TraceHeader::B3TraceId);
                ctx.distrust(TraceHeader::B3SpanId, &span_id);
                ctx.distrust(TraceHeader::B3ParentSpanId, &parent_id);
                ctx.distrust(TraceHeader::B3Sampled, &sampled);
                ctx.distrust(TraceHeader::B3Flags, &flags);
            }
            Parsed::Absent => {
                ctx.distrust(TraceHeader::B3SpanId, &span_id);
                ctx.distrust(TraceHeader::B3ParentSpanId, &parent_id);
                let sampled = ctx.mark(TraceHeader::B3Sampled, sampled);
                let flags = ctx.mark(TraceHeader::B3Flags, flags);
                multi_lone_sampling = flags.or(sampled);
            }
        }

        // B3 single header.
        let mut single_lone_sampling = None;
        match ctx.mark(
            TraceHeader::B3Single,
            field(TraceHeader::B3Single).parse(parse_b3_single),
        ) {
            Some(B3SingleValue::Carrier(c)) => ctx.b3_single = Some(c),
            Some(B3SingleValue::Sampling(s)) => single_lone_sampling = Some(s),
            None => {}
        }
        ctx.b3_sampling = single_lone_sampling.or(multi_lone_sampling);

        if let (Some(m), Some(s)) = (&ctx.b3_multi, &ctx.b3_single) {
            let span_differs = matches!((m.span_id, s.span_id), (Some(a), Some(b)) if a != b);
            if m.trace_id != s.trace_id || span_differs {
                ctx.b3_conflict = true;
                ctx.b3_multi = None;
                ctx.b3_single = None;
                for h in TraceHeader::B3 {
                    if ctx.present.contains(h) {
                        ctx.present.remove(h);
                        ctx.invalid.insert(h);
                    }
                }
            }
        }

        // W3C Trace Context.
        ctx.w3c = ctx.mark(
            TraceHeader::Traceparent,
            field(TraceHeader::Traceparent).parse(parse_traceparent),
        );
        let has_w3c = ctx.w3c.is_some();
        let tracestate = field(TraceHeader::Tracestate)
            .parse(|s| (has_w3c && printable_ascii(s, 1, 512, true)).then_some(()));
        ctx.mark(TraceHeader::Tracestate, tracestate);

        // Opaque ids.
        let request_id = field(TraceHeader::RequestId)
            .parse(|s| printable_ascii(s, 1, REQUEST_ID_MAX, false).then(|| inline_ascii(s)));
        ctx.request_id = ctx.mark(TraceHeader::RequestId, request_id);
        let ot = field(TraceHeader::OtSpanContext)
            .parse(|s| printable_ascii(s, 1, 512, true).then(|| ascii(s).to_owned()));
        ctx.ot_span_context = ctx.mark(TraceHeader::OtSpanContext, ot);

        ctx
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

    /// Records the header as present / invalid according to `p` and returns
    /// the valid value.
    fn mark<T>(&mut self, h: TraceHeader, p: Parsed<T>) -> Option<T> {
        match p {
            Parsed::Absent => None,
            Parsed::Invalid => {
                self.invalid.insert(h);
                None
            }
            Parsed::Valid(v) => {
                self.present.insert(h);
                Some(v)
            }
        }
    }

    /// Records a header that was sent as untrusted, whatever its value.
    fn distrust<T>(&mut self, h: TraceHeader, p: &Parsed<T>) {
        if !matches!(p, Parsed::Absent) {
            self.invalid.insert(h);
        }
    }
}

/// Occurrences of one header in the request head (trimmed values).
#[derive(Clone, Copy)]
enum Slot<'a> {
    Absent,
    One(&'a [u8]),
    /// Several occurrences with different values.
    Conflict,
}

/// A header value after the generic checks (printable ASCII: every trace header's value is;
/// no conflicting duplicates).
enum Field<'a> {
    Absent,
    Bad,
    Text(&'a [u8]),
}

impl<'a> Field<'a> {
    fn from_slot(slot: Slot<'a>) -> Field<'a> {
        match slot {
            Slot::Absent => Field::Absent,
            Slot::Conflict => Field::Bad,
            Slot::One(bytes) if printable(bytes) => Field::Text(bytes),
            Slot::One(_) => Field::Bad,
        }
    }

    fn parse<T>(self, f: impl FnOnce(&'a [u8]) -> Option<T>) -> Parsed<T> {
        match self {
            Field::Absent => Parsed::Absent,
            Field::Bad => Parsed::Invalid,
            Field::Text(s) => f(s).map_or(Parsed::Invalid, Parsed::Valid),
        }
    }
}

/// Printable ASCII and space only (`0x20..=0x7e`): no control character (tab included), nothing
/// beyond ASCII. Every trace header's value is made of these, so whatever else a value holds
/// makes it invalid before its parser looks at it.
fn printable(b: &[u8]) -> bool {
    // A fold, not `all`: without the early exit the check is vectorised.
    b.iter().fold(true, |ok, &c| ok & (0x20..0x7f).contains(&c))
}

enum Parsed<T> {
    Absent,
    Invalid,
    Valid(T),
}

enum B3SingleValue {
    Carrier(Carrier),
    Sampling(Sampling),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Lower,
    Any,
}

/// Strips optional whitespace (space, horizontal tab) from both ends.
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Each byte's value as a hex digit, [`NOT_HEX`] where it is none.
const fn hex_table(upper: bool) -> [u8; 256] {
    let mut t = [NOT_HEX; 256];
    let mut d = 0u8;
    while d < 10 {
        t[(b'0' + d) as usize] = d;
        d += 1;
    }
    let mut d = 0u8;
    while d < 6 {
        t[(b'a' + d) as usize] = 10 + d;
        if upper {
            t[(b'A' + d) as usize] = 10 + d;
        }
        d += 1;
    }
    t
}

/// Not a hex digit: the one table value with the high bit set.
const NOT_HEX: u8 = 0xff;
static HEX_LOWER: [u8; 256] = hex_table(false);
static HEX_ANY: [u8; 256] = hex_table(true);

/// Hex digits only (no sign, no prefix); at most 16 digits. One table lookup per digit, and no
/// branch until the end: ids are parsed for every request.
fn parse_hex_u64(b: &[u8], case: Case) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let table = match case {
        Case::Lower => &HEX_LOWER,
        Case::Any => &HEX_ANY,
    };
    let (value, seen) = b.iter().fold((0u64, 0u8), |(acc, seen), &d| {
        let v = table[usize::from(d)];
        ((acc << 4) | u64::from(v & 0xf), seen | v)
    });
    (seen & 0x80 == 0).then_some(value)
}

/// Hex digits only (no sign, no prefix); at most 32 digits.
fn parse_hex_u128(b: &[u8], case: Case) -> Option<u128> {
    if b.is_empty() || b.len() > 32 {
        return None;
    }
    let (high, low) = b.split_at(b.len().saturating_sub(16));
    let low = parse_hex_u64(low, case)?;
    let high = if high.is_empty() {
        0
    } else {
        parse_hex_u64(high, case)?
    };
    Some((u128::from(high) << 64) | u128::from(low))
}

fn parse_b3_sampled(s: &[u8]) -> Option<Sampling> {
    if s == b"1" || s.eq_ignore_ascii_case(b"true") {
        Some(Sampling::Accept)
    } else if s == b"0" || s.eq_ignore_ascii_case(b"false") {
        Some(Sampling::Deny)
    } else {
        None
    }
}

fn parse_b3_flags(s: &[u8]) -> Option<Sampling> {
    (s == b"1").then_some(Sampling::Debug)
}

fn parse_b3_single_sampling(s: &[u8]) -> Option<Sampling> {
    match s {
        b"0" => Some(Sampling::Deny),
        b"1" => Some(Sampling::Accept),
        b"d" => Some(Sampling::Debug),
        _ => None,
    }
}

fn parse_b3_single(s: &[u8]) -> Option<B3SingleValue> {
    if let Some(sampling) = parse_b3_single_sampling(s) {
        return Some(B3SingleValue::Sampling(sampling));
    }
    let mut parts = s.split(|&b| b == b'-');
    let trace_id = TraceId::parse_b3(parts.next()?)?;
    let span_id = SpanId::parse_hex(parts.next()?)?;
    let sampling = match parts.next() {
        Some(p) => Some(parse_b3_single_sampling(p)?),
        None => None,
    };
    let parent_span_id = match parts.next() {
        Some(p) => Some(SpanId::parse_hex(p)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(B3SingleValue::Carrier(Carrier {
        trace_id,
        span_id: Some(span_id),
        parent_span_id,
        sampling,
    }))
}

fn parse_traceparent(b: &[u8]) -> Option<Carrier> {
    const LEN_V00: usize = 55;
    if b.len() < LEN_V00 {
        return None;
    }
    let version = parse_hex_u64(b.get(0..2)?, Case::Lower)?;
    if version == 0xff {
        return None;
    }
    if version == 0 && b.len() != LEN_V00 {
        return None;
    }
    if b.len() > LEN_V00 && b.get(LEN_V00) != Some(&b'-') {
        return None;
    }
    if b.get(2) != Some(&b'-') || b.get(35) != Some(&b'-') || b.get(52) != Some(&b'-') {
        return None;
    }
    let trace_id = TraceId::parse_w3c(b.get(3..35)?)?;
    let span_id = SpanId::parse_hex_case(b.get(36..52)?, Case::Lower)?;
    let flags = parse_hex_u64(b.get(53..55)?, Case::Lower)?;
    let sampling = if flags & 1 == 1 {
        Sampling::Accept
    } else {
        Sampling::Deny
    };
    Some(Carrier {
        trace_id,
        span_id: Some(span_id),
        parent_span_id: None,
        sampling: Some(sampling),
    })
}

/// `min..=max` bytes, each printable ASCII (`0x21..=0x7e`), plus space when
/// `space_anywhere` or when it is inside the value (a trimmed value has no
/// surrounding space anyway).
fn printable_ascii(b: &[u8], min: usize, max: usize, space_anywhere: bool) -> bool {
    if b.len() < min || b.len() > max {
        return false;
    }
    let inner = |i: usize| i > 0 && i + 1 < b.len();
    b.iter()
        .enumerate()
        .all(|(i, &c)| matches!(c, 0x21..=0x7e) || (c == b' ' && (space_anywhere || inner(i))))
}

#[cfg(test)]
#[path = "tracectx_tests.rs"]
mod tests;
