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

use crate::text::{InlineStr, inline_ascii};

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
        /// The longest name (`x-b3-parentspanid`, `x-ot-span-context`).
        const LONGEST: usize = 17;
        // Most header names are not trace headers: rejected by their first letter and length
        // (every trace header begins with `x`, `b` or `t`), then lowercased once and compared
        // byte for byte (`eq_ignore_ascii_case` lowercases both sides, byte by byte, per name).
        let name = name.as_bytes();
        let first = name.first()?.to_ascii_lowercase();
        if !matches!(first, b'x' | b'b' | b't') || name.len() > LONGEST {
            return None;
        }
        let mut buf = [0u8; LONGEST];
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        TraceHeader::ALL
            .into_iter()
            .find(|h| h.name().as_bytes() == lower)
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
mod tests {
    use super::*;
    use std::collections::HashSet;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const B3_TRACE64: &str = "463ac35c9f6413ad";
    const B3_TRACE128: &str = "463ac35c9f6413ad48485a3953bb6124";
    const SPAN: &str = "a2fb4a1d1a96d312";
    const PARENT: &str = "0020000000000001";

    fn ctx(h: &[(&str, &str)]) -> TraceContext {
        TraceContext::from_headers(h.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    fn ctx_bytes(h: &[(&str, &[u8])]) -> TraceContext {
        TraceContext::from_headers(h.iter().copied())
    }

    fn set(hs: &[TraceHeader]) -> HeaderSet {
        hs.iter().copied().collect()
    }

    use TraceHeader::*;

    // ---- TraceHeader / HeaderSet ------------------------------------------

    #[test]
    fn header_names_round_trip_case_insensitively() {
        for h in TraceHeader::ALL {
            assert_eq!(TraceHeader::from_name(h.name()), Some(h));
            assert_eq!(
                TraceHeader::from_name(&h.name().to_ascii_uppercase()),
                Some(h)
            );
            assert_eq!(h.name(), h.name().to_ascii_lowercase());
        }
        assert_eq!(TraceHeader::from_name("X-B3-TraceId"), Some(B3TraceId));
        assert_eq!(TraceHeader::from_name("TraceParent"), Some(Traceparent));
        assert_eq!(TraceHeader::from_name("B3"), Some(B3Single));
        assert_eq!(TraceHeader::from_name("cookie"), None);
        assert_eq!(TraceHeader::from_name(" b3"), None);
        assert_eq!(TraceHeader::from_name(""), None);
        assert_eq!(TraceHeader::from_name("x-b3-traceid\0"), None);
    }

    #[test]
    fn trace_values_are_distinct() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let a = 0x0af7651916cd43dd8448eb211c80319c_u128;
        let b = 0x4bf92f3577b34da6a3ce929d0e0e4736_u128;
        assert_eq!(ctx(&[]).trace_values(), [0, 0, 0]);
        assert_eq!(ctx(&[("traceparent", tp)]).trace_values(), [a, 0, 0]);
        let same = ctx(&[
            ("traceparent", tp),
            ("x-b3-traceid", "0af7651916cd43dd8448eb211c80319c"),
            ("x-b3-spanid", "b7ad6b7169203331"),
        ]);
        assert_eq!(same.trace_values(), [a, 0, 0]);
        let other = ctx(&[
            ("traceparent", tp),
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ]);
        assert_eq!(other.trace_values(), [a, 0, b]);
        let b3_only = ctx(&[
            ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ]);
        assert_eq!(b3_only.trace_values(), [0, b, 0]);
    }

    #[test]
    fn printable_is_ascii_without_control_characters() {
        for b in 0..=u8::MAX {
            let want = char::from(b).is_ascii() && !char::from(b).is_control();
            assert_eq!(printable(&[b]), want, "{b:#04x}");
            assert_eq!(printable(&[b'a', b, b'z']), want, "{b:#04x}");
        }
        assert!(printable(b""));
        assert!(printable(
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
        for bad in ["caf\u{e9}", "a\tb", "a\x7fb", "\0", "caf\u{85}", "x\n"] {
            assert!(!printable(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn values_with_a_tab_or_beyond_ascii_are_invalid() {
        for value in [
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71\t9203331-01",
            "vendor=caf\u{e9}",
        ] {
            let header = if value.starts_with("00-") {
                "traceparent"
            } else {
                "x-request-id"
            };
            let c = ctx(&[(header, value)]);
            let h = TraceHeader::from_name(header).unwrap();
            assert!(c.invalid.contains(h) && !c.present.contains(h), "{value:?}");
        }
    }

    /// The fast reject by first letter and length, and the lowercased comparison, find exactly
    /// what a case-insensitive scan of every name does.
    #[test]
    fn header_name_lookup_agrees_with_a_full_scan() {
        let scan = |n: &str| {
            TraceHeader::ALL
                .into_iter()
                .find(|h| h.name().eq_ignore_ascii_case(n))
        };
        let mut names: Vec<String> = vec![
            "".into(),
            "x".into(),
            "b".into(),
            "t".into(),
            "host".into(),
            "user-agent".into(),
            "x-forwarded-for".into(),
            "traceparentx".into(),
            "é3".into(),
        ];
        for h in TraceHeader::ALL {
            let n = h.name();
            names.push(n.to_owned());
            names.push(n.to_ascii_uppercase());
            names.push(format!("{n}x"));
            names.push(n[1..].to_owned());
            names.push(n[..n.len() - 1].to_owned());
            for i in 0..n.len() {
                let mut b = n.as_bytes().to_vec();
                b[i] = b'z';
                names.push(String::from_utf8(b).unwrap());
                let mut b = n.as_bytes().to_vec();
                b[i] ^= 0x20;
                names.push(String::from_utf8_lossy(&b).into_owned());
            }
        }
        for n in &names {
            assert_eq!(TraceHeader::from_name(n), scan(n), "{n:?}");
        }
    }

    #[test]
    fn hex_parsers_agree_with_from_str_radix() {
        // Every byte as a digit, in both cases.
        for b in 0..=255u8 {
            let any = char::from(b).to_digit(16).map(u64::from);
            let lower = any.filter(|_| !b.is_ascii_uppercase());
            assert_eq!(parse_hex_u64(&[b], Case::Any), any, "{b:#04x}");
            assert_eq!(parse_hex_u64(&[b], Case::Lower), lower, "{b:#04x}");
        }
        // Every length up to 33 digits, with a bad digit at every place (values are random
        // digits from a fixed seed).
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const DIGITS: &[u8] = b"0123456789abcdefABCDEF";
        for len in 0..=33usize {
            for round in 0..40 {
                let mut text: Vec<u8> = (0..len)
                    .map(|_| DIGITS[(next() % DIGITS.len() as u64) as usize])
                    .collect();
                if round % 4 == 3 && len > 0 {
                    let at = (next() % len as u64) as usize;
                    text[at] = [b'g', b' ', b'-', 0xc3, b'G', b'/'][round % 6];
                }
                let str = std::str::from_utf8(&text).unwrap_or("");
                let want = (1..=32)
                    .contains(&len)
                    .then(|| u128::from_str_radix(str, 16).ok())
                    .flatten();
                let want_lower = want.filter(|_| !text.iter().any(u8::is_ascii_uppercase));
                assert_eq!(parse_hex_u128(&text, Case::Any), want, "{str:?}");
                assert_eq!(parse_hex_u128(&text, Case::Lower), want_lower, "{str:?}");
                let want64 = want.filter(|_| len <= 16).map(|v| v as u64);
                assert_eq!(parse_hex_u64(&text, Case::Any), want64, "{str:?}");
            }
        }
    }

    #[test]
    fn hex_digits_are_lower_case_and_zero_padded() {
        assert_eq!(&hex_digits::<16>(0), b"0000000000000000");
        assert_eq!(&hex_digits::<16>(1), b"0000000000000001");
        assert_eq!(&hex_digits::<16>(u128::from(u64::MAX)), b"ffffffffffffffff");
        assert_eq!(&hex_digits::<16>(0xa2fb4a1d1a96d312), b"a2fb4a1d1a96d312");
        assert_eq!(&hex_digits::<4>(0xabcdef), b"cdef");
        for v in [1u64, 0xf0, 0x00f067aa0ba902b7, 1 << 63, u64::MAX - 1] {
            let s = SpanId::new(v).unwrap();
            assert_eq!(s.text().as_str(), format!("{v:016x}"));
        }
    }

    #[test]
    fn header_set_operations() {
        let mut s = HeaderSet::default();
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
        s.insert(Traceparent);
        s.insert(B3TraceId);
        s.insert(Traceparent);
        assert_eq!(s.len(), 2);
        assert!(s.contains(B3TraceId) && s.contains(Traceparent));
        assert!(!s.contains(B3SpanId));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![B3TraceId, Traceparent]);
        s.remove(B3TraceId);
        assert_eq!(s, set(&[Traceparent]));
        let all: HeaderSet = TraceHeader::ALL.into_iter().collect();
        assert_eq!(all.len(), 10);
        assert_eq!(all.iter().collect::<Vec<_>>(), TraceHeader::ALL.to_vec());
        let a = set(&[B3TraceId, B3SpanId, RequestId]);
        let b = set(&[B3SpanId, OtSpanContext]);
        assert_eq!(
            a.union(b),
            set(&[B3TraceId, B3SpanId, RequestId, OtSpanContext])
        );
        assert_eq!(a.difference(b), set(&[B3TraceId, RequestId]));
        assert_eq!(all.difference(all), HeaderSet::EMPTY);
    }

    // ---- id parsing -------------------------------------------------------

    #[test]
    fn trace_id_parsing() {
        let t = TraceId::parse_b3(B3_TRACE64.as_bytes()).expect("64-bit");
        assert_eq!(t.value(), 0x463ac35c9f6413ad);
        assert_eq!(t.wire().as_str(), B3_TRACE64);
        assert_eq!(t.to_string(), B3_TRACE64);
        let up = TraceId::parse_b3(b"463AC35C9F6413AD").expect("upper");
        assert_eq!(up.wire().as_str(), B3_TRACE64);
        assert_eq!(up, t);
        assert!(TraceId::parse_b3(b"463ac35c9f6413a").is_none());
        assert!(TraceId::parse_b3(b"+63ac35c9f6413ad").is_none());
        assert!(TraceId::parse_b3(b"0x63ac35c9f6413a").is_none());
        assert!(TraceId::parse_b3(b"0000000000000000").is_none());
        assert!(TraceId::parse_b3("0".repeat(32).as_bytes()).is_none());
        assert!(TraceId::parse_b3("a".repeat(24).as_bytes()).is_none());
        assert!(TraceId::parse_w3c(TP_TRACE.as_bytes()).is_some());
        assert!(TraceId::parse_w3c(TP_TRACE.to_ascii_uppercase().as_bytes()).is_none());
        assert!(TraceId::parse_w3c(B3_TRACE64.as_bytes()).is_none());
        assert!(TraceId::parse_w3c(b"").is_none());
        // multi-byte UTF-8 of the right byte length
        assert!(TraceId::parse_b3("ééééééééé".as_bytes()).is_none());
    }

    #[test]
    fn trace_id_eq_and_hash_by_value() {
        let short = TraceId::parse_b3(B3_TRACE64.as_bytes()).expect("short");
        let long = TraceId::parse_w3c(b"0000000000000000463ac35c9f6413ad").expect("long");
        assert_eq!(short, long);
        assert_ne!(short.wire().as_str(), long.wire().as_str());
        let mut h = HashSet::new();
        h.insert(short);
        assert!(h.contains(&long));
        assert!(!h.insert(long));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn span_id_parsing_and_display() {
        assert_eq!(SpanId::new(0), None);
        assert_eq!(SpanId::new(5).map(SpanId::value), Some(5));
        let s = SpanId::parse_hex(SPAN.as_bytes()).expect("span");
        assert_eq!(s.value(), 0xa2fb4a1d1a96d312);
        assert_eq!(s.to_string(), SPAN);
        assert_eq!(SpanId::parse_hex(b"A2FB4A1D1A96D312"), Some(s));
        assert_eq!(
            SpanId::new(1).map(|s| s.to_string()).as_deref(),
            Some("0000000000000001")
        );
        assert!(SpanId::parse_hex(b"0000000000000000").is_none());
        assert!(SpanId::parse_hex(b"a2fb4a1d1a96d31").is_none());
        assert!(SpanId::parse_hex(b"a2fb4a1d1a96d3120").is_none());
        assert!(SpanId::parse_hex(b"g2fb4a1d1a96d312").is_none());
        assert!(SpanId::parse_hex(b"-2fb4a1d1a96d312").is_none());
    }

    // ---- B3 multi ---------------------------------------------------------

    #[test]
    fn b3_multi_full() {
        let c = ctx(&[
            ("Host", "example.com"),
            ("X-B3-TraceId", B3_TRACE128),
            ("X-B3-SpanId", SPAN),
            ("X-B3-ParentSpanId", PARENT),
            ("X-B3-Sampled", "1"),
            ("Accept", "*/*"),
        ]);
        let m = c.b3_multi.as_ref().expect("carrier");
        assert_eq!(m.trace_id.wire().as_str(), B3_TRACE128);
        assert_eq!(m.span_id.map(|s| s.to_string()).as_deref(), Some(SPAN));
        assert_eq!(m.parent_span_id, SpanId::new(0x0020000000000001));
        assert_eq!(m.sampling, Some(Sampling::Accept));
        assert_eq!(
            c.present,
            set(&[B3TraceId, B3SpanId, B3ParentSpanId, B3Sampled])
        );
        assert!(c.invalid.is_empty());
        assert!(c.b3_single.is_none() && c.w3c.is_none());
        assert_eq!(c.b3_sampling, None);
        assert_eq!(c.primary(), Some(m));
        assert!(!c.b3_conflict);
    }

    #[test]
    fn b3_multi_trace_id_only() {
        let c = ctx(&[("x-b3-traceid", B3_TRACE64)]);
        let m = c.b3_multi.as_ref().expect("carrier");
        assert_eq!(m.span_id, None);
        assert_eq!(m.sampling, None);
        assert_eq!(c.present, set(&[B3TraceId]));
        assert!(c.carries_trace());
        assert!(!c.has_sampling());
        assert!(c.sampling_headers().is_empty());
    }

    #[test]
    fn b3_multi_uppercase_accepted_and_normalised() {
        let c = ctx(&[
            ("x-b3-traceid", "463AC35C9F6413AD48485A3953BB6124"),
            ("x-b3-spanid", "A2FB4A1D1A96D312"),
        ]);
        let m = c.b3_multi.as_ref().expect("carrier");
        assert_eq!(m.trace_id.wire().as_str(), B3_TRACE128);
        assert_eq!(m.trace_id.to_string(), B3_TRACE128);
        assert_eq!(m.span_id.map(|s| s.to_string()).as_deref(), Some(SPAN));
        assert!(c.invalid.is_empty());
    }

    #[test]
    fn b3_multi_sampled_values() {
        for (v, want) in [
            ("1", Sampling::Accept),
            ("true", Sampling::Accept),
            ("TRUE", Sampling::Accept),
            ("0", Sampling::Deny),
            ("false", Sampling::Deny),
        ] {
            let c = ctx(&[("x-b3-traceid", B3_TRACE64), ("x-b3-sampled", v)]);
            assert_eq!(
                c.b3_multi.as_ref().and_then(|m| m.sampling),
                Some(want),
                "{v}"
            );
            assert!(c.present.contains(B3Sampled), "{v}");
        }
        for v in ["2", "yes", "d", "", "01", "1 1"] {
            let c = ctx(&[("x-b3-traceid", B3_TRACE64), ("x-b3-sampled", v)]);
            assert_eq!(c.b3_multi.as_ref().and_then(|m| m.sampling), None, "{v:?}");
            assert_eq!(c.invalid, set(&[B3Sampled]), "{v:?}");
            assert!(c.b3_multi.is_some(), "{v:?}");
        }
    }

    #[test]
    fn b3_multi_flags_debug_wins() {
        let c = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]);
        assert_eq!(
            c.b3_multi.as_ref().and_then(|m| m.sampling),
            Some(Sampling::Debug)
        );
        assert_eq!(c.sampling_headers(), set(&[B3Sampled, B3Flags]));
        assert!(c.has_sampling());

        let only_flags = ctx(&[("x-b3-traceid", B3_TRACE64), ("x-b3-flags", "1")]);
        assert_eq!(
            only_flags.b3_multi.as_ref().and_then(|m| m.sampling),
            Some(Sampling::Debug)
        );
        assert_eq!(only_flags.sampling_headers(), set(&[B3Flags]));

        for v in ["0", "2", "true", "d"] {
            let bad = ctx(&[("x-b3-traceid", B3_TRACE64), ("x-b3-flags", v)]);
            assert_eq!(bad.invalid, set(&[B3Flags]), "{v}");
            assert_eq!(bad.b3_multi.as_ref().and_then(|m| m.sampling), None, "{v}");
        }
    }

    #[test]
    fn b3_multi_invalid_trace_id_distrusts_everything() {
        for bad in [
            "0000000000000000",
            "00000000000000000000000000000000",
            "463ac35c9f6413a",
            "463ac35c9f6413adz",
            "463ac35c9f6413ad48485a3953bb61",
            "xyz",
            "",
        ] {
            let c = ctx(&[
                ("x-b3-traceid", bad),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", PARENT),
                ("x-b3-sampled", "1"),
            ]);
            assert!(c.b3_multi.is_none(), "{bad:?}");
            assert!(c.present.is_empty(), "{bad:?}");
            assert_eq!(
                c.invalid,
                set(&[B3TraceId, B3SpanId, B3ParentSpanId, B3Sampled]),
                "{bad:?}"
            );
            assert_eq!(c.b3_sampling, None);
            assert!(!c.carries_trace() && !c.has_sampling());
        }
    }

    #[test]
    fn b3_multi_invalid_span_ids_are_dropped() {
        let c = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-spanid", "0000000000000000"),
            ("x-b3-parentspanid", "12345"),
        ]);
        let m = c.b3_multi.as_ref().expect("trace id is valid");
        assert_eq!(m.span_id, None);
        assert_eq!(m.parent_span_id, None);
        assert_eq!(c.present, set(&[B3TraceId]));
        assert_eq!(c.invalid, set(&[B3SpanId, B3ParentSpanId]));
    }

    #[test]
    fn b3_orphan_span_ids_are_invalid() {
        let c = ctx(&[("x-b3-spanid", SPAN), ("x-b3-parentspanid", PARENT)]);
        assert!(c.b3_multi.is_none());
        assert!(c.present.is_empty());
        assert_eq!(c.invalid, set(&[B3SpanId, B3ParentSpanId]));
        assert!(!c.carries_trace());
        assert!(c.trace_ids().is_empty());
    }

    #[test]
    fn b3_lone_sampled_and_flags() {
        let deny = ctx(&[("X-B3-Sampled", "0")]);
        assert_eq!(deny.b3_sampling, Some(Sampling::Deny));
        assert_eq!(deny.present, set(&[B3Sampled]));
        assert!(deny.b3_multi.is_none());
        assert!(deny.has_sampling());
        assert!(!deny.carries_trace());
        assert_eq!(deny.sampling_headers(), set(&[B3Sampled]));

        let debug = ctx(&[("x-b3-flags", "1"), ("x-b3-sampled", "0")]);
        assert_eq!(debug.b3_sampling, Some(Sampling::Debug));
        assert_eq!(debug.present, set(&[B3Sampled, B3Flags]));

        let orphan_and_sampled = ctx(&[("x-b3-spanid", SPAN), ("x-b3-sampled", "1")]);
        assert_eq!(orphan_and_sampled.b3_sampling, Some(Sampling::Accept));
        assert_eq!(orphan_and_sampled.present, set(&[B3Sampled]));
        assert_eq!(orphan_and_sampled.invalid, set(&[B3SpanId]));

        let bad = ctx(&[("x-b3-sampled", "maybe")]);
        assert_eq!(bad.b3_sampling, None);
        assert_eq!(bad.invalid, set(&[B3Sampled]));
        assert!(!bad.has_sampling());
    }

    // ---- B3 single --------------------------------------------------------

    #[test]
    fn b3_single_two_fields() {
        let c = ctx(&[("b3", &format!("{B3_TRACE128}-{SPAN}"))]);
        let s = c.b3_single.as_ref().expect("carrier");
        assert_eq!(s.trace_id.wire().as_str(), B3_TRACE128);
        assert_eq!(s.span_id, SpanId::parse_hex(SPAN.as_bytes()));
        assert_eq!(s.sampling, None);
        assert_eq!(s.parent_span_id, None);
        assert_eq!(c.present, set(&[B3Single]));
        assert!(!c.has_sampling());
        assert!(c.sampling_headers().is_empty());
        assert_eq!(c.b3_sampling, None);
    }

    #[test]
    fn b3_single_three_fields() {
        for (flag, want) in [
            ("0", Sampling::Deny),
            ("1", Sampling::Accept),
            ("d", Sampling::Debug),
        ] {
            let c = ctx(&[("B3", &format!("{B3_TRACE64}-{SPAN}-{flag}"))]);
            let s = c.b3_single.as_ref().expect("carrier");
            assert_eq!(s.sampling, Some(want));
            assert_eq!(c.sampling_headers(), set(&[B3Single]));
            assert!(c.has_sampling());
        }
    }

    #[test]
    fn b3_single_four_fields() {
        let c = ctx(&[("b3", &format!("{B3_TRACE128}-{SPAN}-1-{PARENT}"))]);
        let s = c.b3_single.as_ref().expect("carrier");
        assert_eq!(s.parent_span_id, SpanId::parse_hex(PARENT.as_bytes()));
        assert_eq!(s.sampling, Some(Sampling::Accept));
        assert_eq!(c.primary(), Some(s));
        assert_eq!(c.trace_ids().len(), 1);
    }

    #[test]
    fn b3_single_upper_case_normalised() {
        let c = ctx(&[("b3", "463AC35C9F6413AD-A2FB4A1D1A96D312-d")]);
        let s = c.b3_single.as_ref().expect("carrier");
        assert_eq!(s.trace_id.wire().as_str(), B3_TRACE64);
        assert_eq!(s.sampling, Some(Sampling::Debug));
    }

    #[test]
    fn b3_single_lone_sampling() {
        for (v, want) in [
            ("0", Sampling::Deny),
            ("1", Sampling::Accept),
            ("d", Sampling::Debug),
            (" d\t", Sampling::Debug),
        ] {
            let c = ctx(&[("b3", v)]);
            assert_eq!(c.b3_sampling, Some(want), "{v:?}");
            assert!(c.b3_single.is_none());
            assert_eq!(c.present, set(&[B3Single]));
            assert_eq!(c.sampling_headers(), set(&[B3Single]));
            assert!(c.has_sampling() && !c.carries_trace());
        }
    }

    #[test]
    fn b3_single_invalid_forms() {
        let t = B3_TRACE64;
        for v in [
            String::new(),
            "D".into(),
            "true".into(),
            "2".into(),
            t.to_string(),
            format!("{t}-"),
            format!("{t}-{SPAN}-"),
            format!("{t}-{SPAN}-2"),
            format!("{t}-{SPAN}-true"),
            format!("{t}-{SPAN}-1-"),
            format!("{t}-{SPAN}-1-0000000000000000"),
            format!("{t}-{SPAN}-1-{PARENT}-extra"),
            format!("{t}-{SPAN}-{PARENT}"),
            format!("{t}-0000000000000000"),
            format!("0000000000000000-{SPAN}"),
            format!("{t}x-{SPAN}"),
            format!("{t}-{SPAN}1"),
            format!("{t}--{SPAN}"),
            format!("-{t}-{SPAN}"),
            format!("{t} -{SPAN}"),
        ] {
            let c = ctx(&[("b3", &v)]);
            assert!(c.b3_single.is_none(), "{v:?}");
            assert_eq!(c.b3_sampling, None, "{v:?}");
            assert_eq!(c.invalid, set(&[B3Single]), "{v:?}");
            assert!(c.present.is_empty(), "{v:?}");
        }
    }

    #[test]
    fn b3_single_and_multi_agree() {
        let c = ctx(&[
            ("b3", &format!("{B3_TRACE64}-{SPAN}-1")),
            ("x-b3-traceid", &B3_TRACE64.to_ascii_uppercase()),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]);
        assert!(!c.b3_conflict);
        assert!(c.b3_single.is_some() && c.b3_multi.is_some());
        assert_eq!(c.present, set(&[B3TraceId, B3SpanId, B3Sampled, B3Single]));
        assert_eq!(c.primary(), c.b3_single.as_ref());
        assert_eq!(c.trace_ids().len(), 1);
        assert_eq!(c.sampling_headers(), set(&[B3Sampled, B3Single]));
    }

    #[test]
    fn b3_single_128_agrees_with_multi_64_padded() {
        let c = ctx(&[
            ("b3", &format!("0000000000000000{B3_TRACE64}-{SPAN}")),
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-spanid", SPAN),
        ]);
        assert!(!c.b3_conflict);
        assert_eq!(c.trace_ids().len(), 1);
        assert_eq!(
            c.trace_ids()[0].wire().as_str(),
            format!("0000000000000000{B3_TRACE64}")
        );
    }

    #[test]
    fn b3_single_and_multi_conflict_on_trace_id() {
        let c = ctx(&[
            ("b3", &format!("{B3_TRACE128}-{SPAN}-1")),
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "1"),
            ("x-b3-parentspanid", PARENT),
        ]);
        assert!(c.b3_conflict);
        assert!(c.b3_single.is_none() && c.b3_multi.is_none());
        assert!(c.present.is_empty());
        assert_eq!(
            c.invalid,
            set(&[
                B3TraceId,
                B3SpanId,
                B3ParentSpanId,
                B3Sampled,
                B3Flags,
                B3Single
            ])
        );
        assert!(!c.carries_trace());
        assert!(!c.has_sampling());
        assert!(c.sampling_headers().is_empty());
        assert_eq!(c.primary(), None);
    }

    #[test]
    fn b3_conflict_on_span_id_keeps_w3c() {
        let c = ctx(&[
            ("traceparent", TP),
            ("b3", &format!("{B3_TRACE64}-{SPAN}")),
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-spanid", PARENT),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]);
        assert!(c.b3_conflict);
        assert!(c.b3_single.is_none() && c.b3_multi.is_none());
        assert_eq!(c.present, set(&[Traceparent, Tracestate]));
        assert_eq!(c.invalid, set(&[B3TraceId, B3SpanId, B3Single]));
        assert_eq!(c.trace_ids().len(), 1);
        assert_eq!(c.trace_ids()[0].wire().as_str(), TP_TRACE);
    }

    #[test]
    fn b3_single_with_span_multi_without_span_is_not_conflict() {
        let c = ctx(&[
            ("b3", &format!("{B3_TRACE64}-{SPAN}")),
            ("x-b3-traceid", B3_TRACE64),
        ]);
        assert!(!c.b3_conflict);
        assert!(c.b3_multi.is_some() && c.b3_single.is_some());
    }

    #[test]
    fn b3_sampling_only_mixed_with_carrier() {
        // Lone `b3: 0` alongside a multi carrier: carrier kept, decision kept.
        let c = ctx(&[("b3", "0"), ("x-b3-traceid", B3_TRACE64)]);
        assert!(!c.b3_conflict);
        assert!(c.b3_multi.is_some());
        assert_eq!(c.b3_sampling, Some(Sampling::Deny));
        assert_eq!(c.sampling_headers(), set(&[B3Single]));

        // Both sampling-only: `b3` takes precedence.
        let c = ctx(&[("b3", "d"), ("x-b3-sampled", "0")]);
        assert_eq!(c.b3_sampling, Some(Sampling::Debug));
        assert_eq!(c.sampling_headers(), set(&[B3Sampled, B3Single]));

        // Single carrier + lone multi sampled.
        let c = ctx(&[
            ("b3", &format!("{B3_TRACE64}-{SPAN}")),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(c.b3_sampling, Some(Sampling::Accept));
        assert!(c.b3_single.is_some());
        assert_eq!(c.sampling_headers(), set(&[B3Sampled]));
    }

    // ---- W3C --------------------------------------------------------------

    #[test]
    fn traceparent_valid() {
        let c = ctx(&[("traceparent", TP)]);
        let w = c.w3c.as_ref().expect("carrier");
        assert_eq!(w.trace_id.wire().as_str(), TP_TRACE);
        assert_eq!(
            w.span_id.map(|s| s.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(w.parent_span_id, None);
        assert_eq!(w.sampling, Some(Sampling::Accept));
        assert_eq!(c.present, set(&[Traceparent]));
        assert!(c.invalid.is_empty());
        assert_eq!(c.sampling_headers(), set(&[Traceparent]));
        assert!(c.has_sampling() && c.carries_trace());
    }

    #[test]
    fn traceparent_flags() {
        for (flags, want) in [
            ("00", Sampling::Deny),
            ("01", Sampling::Accept),
            ("02", Sampling::Deny),
            ("03", Sampling::Accept),
            ("ff", Sampling::Accept),
            ("fe", Sampling::Deny),
        ] {
            let v = format!("00-{TP_TRACE}-00f067aa0ba902b7-{flags}");
            let c = ctx(&[("traceparent", &v)]);
            assert_eq!(
                c.w3c.as_ref().and_then(|w| w.sampling),
                Some(want),
                "{flags}"
            );
        }
        for flags in ["0g", "FF", "1", "001", "-1", "0x"] {
            let v = format!("00-{TP_TRACE}-00f067aa0ba902b7-{flags}");
            let c = ctx(&[("traceparent", &v)]);
            assert!(c.w3c.is_none(), "{flags}");
            assert_eq!(c.invalid, set(&[Traceparent]), "{flags}");
        }
    }

    #[test]
    fn traceparent_upper_case_rejected() {
        for v in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let c = ctx(&[("traceparent", v)]);
            assert!(c.w3c.is_none(), "{v}");
            assert_eq!(c.invalid, set(&[Traceparent]), "{v}");
        }
    }

    #[test]
    fn traceparent_zero_ids_rejected() {
        let zt = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zs = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        for v in [zt, zs] {
            let c = ctx(&[("traceparent", v)]);
            assert!(c.w3c.is_none(), "{v}");
            assert!(c.invalid.contains(Traceparent));
        }
    }

    #[test]
    fn traceparent_wrong_shapes_rejected() {
        for v in [
            "",
            "00",
            // too short / too long for version 00
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            // wrong separators
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            // non-hex
            "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // B3 ids in W3C clothing
            "00-463ac35c9f6413ad-00f067aa0ba902b7-01",
            // non-ASCII of the right byte length
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            let c = ctx(&[("traceparent", v)]);
            assert!(c.w3c.is_none(), "{v:?}");
            assert_eq!(c.invalid, set(&[Traceparent]), "{v:?}");
            assert!(c.present.is_empty());
        }
    }

    #[test]
    fn traceparent_version_ff_rejected() {
        let c = ctx(&[(
            "traceparent",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        assert!(c.w3c.is_none());
        assert_eq!(c.invalid, set(&[Traceparent]));
    }

    #[test]
    fn traceparent_future_version() {
        let exact = ctx(&[(
            "traceparent",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        assert_eq!(
            exact.w3c.as_ref().map(|w| w.trace_id.wire().to_string()),
            Some(TP_TRACE.to_owned())
        );
        let extra = ctx(&[(
            "traceparent",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-the-future-holds",
        )]);
        let w = extra.w3c.as_ref().expect("future version with extra field");
        assert_eq!(w.sampling, Some(Sampling::Deny));
        assert_eq!(extra.present, set(&[Traceparent]));
        let glued = ctx(&[(
            "traceparent",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        )]);
        assert!(glued.w3c.is_none());
        assert_eq!(glued.invalid, set(&[Traceparent]));
    }

    #[test]
    fn tracestate_rules() {
        let ok = ctx(&[
            ("traceparent", TP),
            ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ]);
        assert_eq!(ok.present, set(&[Traceparent, Tracestate]));
        assert!(ok.invalid.is_empty());

        let alone = ctx(&[("tracestate", "rojo=00f067aa0ba902b7")]);
        assert_eq!(alone.invalid, set(&[Tracestate]));
        assert!(alone.present.is_empty());

        let with_bad_tp = ctx(&[
            (
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "rojo=1"),
        ]);
        assert_eq!(with_bad_tp.invalid, set(&[Traceparent, Tracestate]));

        let empty = ctx(&[("traceparent", TP), ("tracestate", "  ")]);
        assert_eq!(empty.invalid, set(&[Tracestate]));
        assert_eq!(empty.present, set(&[Traceparent]));

        let max = "a".repeat(512);
        let big = "a".repeat(513);
        let at_max = ctx(&[("traceparent", TP), ("tracestate", &max)]);
        assert!(at_max.present.contains(Tracestate));
        let too_big = ctx(&[("traceparent", TP), ("tracestate", &big)]);
        assert!(too_big.invalid.contains(Tracestate));
    }

    // ---- request id / ot span context -------------------------------------

    #[test]
    fn request_id_rules() {
        let c = ctx(&[("X-Request-ID", "  f058ebd6-02f7-4d3f-942e-904344e8cde5 ")]);
        assert_eq!(
            c.request_id.as_deref(),
            Some("f058ebd6-02f7-4d3f-942e-904344e8cde5")
        );
        assert_eq!(c.present, set(&[RequestId]));
        assert!(!c.carries_trace());

        let spaced = ctx(&[("x-request-id", "abc def")]);
        assert_eq!(spaced.request_id.as_deref(), Some("abc def"));

        let max = "r".repeat(128);
        assert_eq!(
            ctx(&[("x-request-id", &max)]).request_id.as_deref(),
            Some(max.as_str())
        );
        for bad in ["", "   ", &"r".repeat(129), "caf\u{e9}", "a\tb", "a\u{7f}b"] {
            let c = ctx(&[("x-request-id", bad)]);
            assert_eq!(c.request_id, None, "{bad:?}");
            assert_eq!(c.invalid, set(&[RequestId]), "{bad:?}");
        }
    }

    #[test]
    fn ot_span_context_rules() {
        let v = "{\"trace_id\": 1, \"span_id\": 2}";
        let c = ctx(&[("x-ot-span-context", v)]);
        assert_eq!(c.ot_span_context.as_deref(), Some(v));
        assert_eq!(c.present, set(&[OtSpanContext]));
        assert!(c.carries_trace());
        assert!(c.trace_ids().is_empty());
        assert_eq!(c.primary(), None);

        let max = "o".repeat(512);
        let at_max = ctx(&[("x-ot-span-context", &max)]);
        assert_eq!(at_max.ot_span_context.as_deref(), Some(max.as_str()));
        for bad in ["", &"o".repeat(513), "\u{1F600}", "a\0b"] {
            let c = ctx(&[("x-ot-span-context", bad)]);
            assert_eq!(c.ot_span_context, None, "{bad:?}");
            assert_eq!(c.invalid, set(&[OtSpanContext]), "{bad:?}");
            assert!(!c.carries_trace());
        }
    }

    // ---- generic value rules ----------------------------------------------

    #[test]
    fn whitespace_trimmed() {
        let c = ctx(&[
            ("traceparent", &format!(" \t{TP}\t ")),
            ("x-b3-traceid", &format!("  {B3_TRACE64}")),
            ("b3", &format!("{B3_TRACE64}-{SPAN} ")),
        ]);
        assert!(c.w3c.is_some() && c.b3_multi.is_some() && c.b3_single.is_some());
        assert!(c.invalid.is_empty());
    }

    #[test]
    fn control_characters_invalidate() {
        let cases: [(&str, String); 5] = [
            ("traceparent", format!("{TP}\r")),
            ("x-b3-traceid", format!("{B3_TRACE64}\0")),
            ("b3", format!("\x0b{B3_TRACE64}-{SPAN}")),
            ("x-b3-sampled", "1\n".to_string()),
            ("x-request-id", "abc\u{85}def".to_string()),
        ];
        for (name, value) in &cases {
            let c = ctx(&[(name, value.as_str())]);
            let h = TraceHeader::from_name(name).expect("trace header");
            assert_eq!(c.invalid, set(&[h]), "{name}: {value:?}");
            assert!(c.present.is_empty(), "{name}");
        }
    }

    #[test]
    fn embedded_nul_in_every_header() {
        for h in TraceHeader::ALL {
            let c = ctx_bytes(&[(h.name(), b"1\0")]);
            assert_eq!(c.invalid, set(&[h]), "{h:?}");
            assert!(c.present.is_empty(), "{h:?}");
        }
    }

    #[test]
    fn non_utf8_values_are_invalid() {
        let mut tp = TP.as_bytes().to_vec();
        tp[10] = 0xff;
        let c = ctx_bytes(&[
            ("traceparent", &tp),
            ("x-b3-traceid", b"463ac35c9f6413\xc3\x28"),
            ("x-request-id", b"\xfe\xff"),
            ("cookie", b"\xff\xfe not ours"),
        ]);
        assert_eq!(c.invalid, set(&[Traceparent, B3TraceId, RequestId]));
        assert!(c.present.is_empty());
        assert!(c.w3c.is_none() && c.b3_multi.is_none() && c.request_id.is_none());
    }

    #[test]
    fn empty_values_are_invalid_for_every_header() {
        for h in TraceHeader::ALL {
            let c = ctx(&[(h.name(), "")]);
            assert_eq!(c.invalid, set(&[h]), "{h:?}");
            assert!(c.present.is_empty());
            assert_eq!(
                c,
                TraceContext {
                    invalid: set(&[h]),
                    ..TraceContext::default()
                }
            );
        }
    }

    #[test]
    fn huge_values_do_not_panic_and_are_invalid() {
        let huge = "a".repeat(100 * 1024);
        let huge_tp = format!("01-{TP_TRACE}-00f067aa0ba902b7-01-{huge}");
        for h in TraceHeader::ALL {
            let c = ctx(&[(h.name(), &huge)]);
            assert_eq!(c.invalid, set(&[h]), "{h:?}");
        }
        // A future-version traceparent is allowed to be long.
        let c = ctx(&[("traceparent", &huge_tp)]);
        assert!(c.w3c.is_some());
        let c = ctx(&[("traceparent", &huge_tp.replace("01-", "00-"))]);
        assert!(c.w3c.is_none());
        let many_dashes = "-".repeat(100 * 1024);
        assert!(ctx(&[("b3", &many_dashes)]).invalid.contains(B3Single));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic pseudo-random fuzz over all trace headers.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789abcdefABCDEF- \t\0\xff\xc3d";
        for round in 0..2000 {
            let len = (next() % 70) as usize;
            let value: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let h = TraceHeader::ALL[round % TraceHeader::ALL.len()];
            let c = ctx_bytes(&[(h.name(), &value)]);
            assert_eq!(c.present.union(c.invalid), set(&[h]));
            assert!(c.present.difference(c.invalid) == c.present);
        }
    }

    #[test]
    fn mixed_case_header_names() {
        let c = ctx(&[
            ("TRACEPARENT", TP),
            ("TraceState", "a=b"),
            ("x-B3-tRaCeId", B3_TRACE64),
            ("X-B3-SPANID", SPAN),
            ("X-Request-Id", "req-1"),
            ("X-OT-Span-Context", "ctx"),
        ]);
        assert_eq!(
            c.present,
            set(&[
                Traceparent,
                Tracestate,
                B3TraceId,
                B3SpanId,
                RequestId,
                OtSpanContext
            ])
        );
        assert!(c.invalid.is_empty());
    }

    #[test]
    fn non_trace_headers_are_ignored() {
        let c = ctx(&[
            ("Cookie", "session=traceparent"),
            ("Authorization", "Bearer secret"),
            ("x-b3-traceid-extra", B3_TRACE64),
            ("b3 ", "1"),
            ("uber-trace-id", "abc:def:0:1"),
        ]);
        assert_eq!(c, TraceContext::default());
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn duplicated_identical_headers_are_one() {
        let c = ctx(&[
            ("traceparent", TP),
            ("X-B3-TraceId", B3_TRACE64),
            ("x-b3-traceid", B3_TRACE64),
            ("Traceparent", &format!("{TP} ")),
            ("x-request-id", "r1"),
            ("x-request-id", "r1"),
        ]);
        assert!(c.w3c.is_some() && c.b3_multi.is_some());
        assert_eq!(c.request_id.as_deref(), Some("r1"));
        assert_eq!(c.present, set(&[Traceparent, B3TraceId, RequestId]));
        assert!(c.invalid.is_empty());
    }

    #[test]
    fn duplicated_different_headers_are_invalid() {
        let c = ctx(&[
            ("traceparent", TP),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "a=b"),
        ]);
        assert!(c.w3c.is_none());
        assert_eq!(c.invalid, set(&[Traceparent, Tracestate]));

        // Case differences are different bytes.
        let c = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-traceid", &B3_TRACE64.to_ascii_uppercase()),
            ("x-b3-spanid", SPAN),
        ]);
        assert!(c.b3_multi.is_none());
        assert_eq!(c.invalid, set(&[B3TraceId, B3SpanId]));

        // Third occurrence equal to the first does not rescue it.
        let c = ctx(&[("b3", "1"), ("b3", "0"), ("b3", "1")]);
        assert_eq!(c.b3_sampling, None);
        assert_eq!(c.invalid, set(&[B3Single]));

        let c = ctx(&[("x-b3-sampled", "1"), ("x-b3-sampled", "0")]);
        assert_eq!(c.b3_sampling, None);
        assert!(!c.has_sampling());
    }

    #[test]
    fn duplicated_span_id_different_only_drops_span() {
        let c = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-spanid", SPAN),
            ("x-b3-spanid", PARENT),
        ]);
        let m = c.b3_multi.as_ref().expect("carrier");
        assert_eq!(m.span_id, None);
        assert_eq!(c.invalid, set(&[B3SpanId]));
        assert_eq!(c.present, set(&[B3TraceId]));
    }

    // ---- cross-format behaviour -------------------------------------------

    #[test]
    fn b3_64_equals_w3c_128() {
        let w3c = ctx(&[(
            "traceparent",
            "00-0000000000000000463ac35c9f6413ad-a2fb4a1d1a96d312-01",
        )]);
        let b3 = ctx(&[("x-b3-traceid", B3_TRACE64), ("x-b3-spanid", SPAN)]);
        assert!(w3c.shares_trace_with(&b3));
        assert!(b3.shares_trace_with(&w3c));
        let both = ctx(&[
            (
                "traceparent",
                "00-0000000000000000463ac35c9f6413ad-a2fb4a1d1a96d312-01",
            ),
            ("x-b3-traceid", B3_TRACE64),
        ]);
        let ids = both.trace_ids();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].wire().as_str(), "0000000000000000463ac35c9f6413ad");
    }

    #[test]
    fn trace_ids_order_and_dedup() {
        let c = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("b3", &format!("{B3_TRACE64}-{SPAN}")),
            ("traceparent", TP),
        ]);
        let wires: Vec<String> = c.trace_ids().iter().map(|t| t.wire().to_string()).collect();
        assert_eq!(wires, vec![TP_TRACE, B3_TRACE64]);

        let three = ctx(&[
            ("x-b3-traceid", B3_TRACE128),
            ("b3", &format!("{B3_TRACE128}-{SPAN}")),
            ("traceparent", TP),
        ]);
        assert_eq!(three.trace_ids().len(), 2);
        assert_eq!(ctx(&[]).trace_ids(), Vec::<&TraceId>::new());
    }

    #[test]
    fn primary_precedence() {
        let all = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("b3", &format!("{B3_TRACE64}-{SPAN}-0")),
            ("traceparent", TP),
        ]);
        assert_eq!(
            all.primary().map(|c| c.trace_id.wire().to_string()),
            Some(TP_TRACE.to_owned())
        );
        let b3s = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("b3", &format!("{B3_TRACE64}-{SPAN}-0")),
        ]);
        assert_eq!(b3s.primary(), b3s.b3_single.as_ref());
        assert_eq!(b3s.primary().and_then(|c| c.sampling), Some(Sampling::Deny));
        let multi = ctx(&[("x-b3-traceid", B3_TRACE64)]);
        assert_eq!(multi.primary(), multi.b3_multi.as_ref());
        assert_eq!(ctx(&[("b3", "1")]).primary(), None);
    }

    #[test]
    fn carries_trace_cases() {
        assert!(!TraceContext::default().carries_trace());
        assert!(ctx(&[("traceparent", TP)]).carries_trace());
        assert!(ctx(&[("b3", &format!("{B3_TRACE64}-{SPAN}"))]).carries_trace());
        assert!(ctx(&[("x-ot-span-context", "opaque")]).carries_trace());
        assert!(!ctx(&[("b3", "1")]).carries_trace());
        assert!(!ctx(&[("x-request-id", "abc")]).carries_trace());
        assert!(!ctx(&[("tracestate", "a=b")]).carries_trace());
    }

    #[test]
    fn has_sampling_and_sampling_headers_across_formats() {
        let c = ctx(&[
            ("traceparent", TP),
            ("b3", "0"),
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-flags", "1"),
        ]);
        assert!(c.has_sampling());
        assert_eq!(c.sampling_headers(), set(&[B3Flags, B3Single, Traceparent]));
        let none = ctx(&[
            ("x-b3-traceid", B3_TRACE64),
            ("x-b3-spanid", SPAN),
            ("x-request-id", "r"),
        ]);
        assert!(!none.has_sampling());
        assert!(none.sampling_headers().is_empty());
        assert!(!TraceContext::default().has_sampling());
    }

    #[test]
    fn shares_trace_with_cases() {
        let a = ctx(&[("traceparent", TP)]);
        let b = ctx(&[("b3", &format!("{TP_TRACE}-{SPAN}-1"))]);
        let c = ctx(&[("x-b3-traceid", B3_TRACE64)]);
        let d = ctx(&[("x-b3-traceid", B3_TRACE64), ("traceparent", TP)]);
        assert!(a.shares_trace_with(&b));
        assert!(!a.shares_trace_with(&c));
        assert!(d.shares_trace_with(&a) && d.shares_trace_with(&c));
        assert!(!TraceContext::default().shares_trace_with(&TraceContext::default()));
        // Opaque OT contexts are not trace ids.
        let ot = ctx(&[("x-ot-span-context", "same")]);
        assert!(!ot.shares_trace_with(&ot));
        // Upper-case B3 equals lower-case W3C.
        let up = ctx(&[("x-b3-traceid", &TP_TRACE.to_ascii_uppercase())]);
        assert!(up.shares_trace_with(&a));
    }

    #[test]
    fn realistic_envoy_request() {
        let c = ctx(&[
            ("host", "api.internal"),
            ("user-agent", "curl/8.5.0"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "6a1b6bb3-1e5e-9a77-b1f2-1b0f37c2c7a5"),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
            ("x-b3-sampled", "1"),
            (
                "x-ot-span-context",
                "80f198ee56343ba8;e457b5a2e4d86bd1;05e3ac9a4f6e3b90;cs",
            ),
            ("cookie", "sid=abc"),
        ]);
        assert_eq!(
            c.present,
            set(&[
                B3TraceId,
                B3SpanId,
                B3ParentSpanId,
                B3Sampled,
                RequestId,
                OtSpanContext
            ])
        );
        assert!(c.invalid.is_empty());
        assert_eq!(c.trace_ids().len(), 1);
        assert_eq!(c.sampling_headers(), set(&[B3Sampled]));
        assert!(c.carries_trace() && c.has_sampling());
        assert_eq!(
            c.request_id.as_deref(),
            Some("6a1b6bb3-1e5e-9a77-b1f2-1b0f37c2c7a5")
        );
    }

    #[test]
    fn present_and_invalid_are_disjoint() {
        let c = ctx(&[
            ("traceparent", TP),
            ("tracestate", ""),
            ("b3", "x"),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
            ("x-request-id", "\u{1}"),
            ("x-ot-span-context", "ok"),
        ]);
        assert_eq!(c.present, set(&[Traceparent, B3Sampled, OtSpanContext]));
        assert_eq!(c.invalid, set(&[Tracestate, B3Single, B3SpanId, RequestId]));
        assert_eq!(c.present.difference(c.invalid), c.present);
        assert_eq!(c.b3_sampling, Some(Sampling::Accept));
    }
}
