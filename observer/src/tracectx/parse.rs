//! Reading the trace headers of one request head into a [`TraceContext`], by the rules of
//! [`super`].

use super::id::{Case, SpanId, TraceId, parse_hex_u64};
use super::{Carrier, REQUEST_ID_MAX, Sampling, TraceContext, TraceHeader};
use crate::text::inline_ascii;

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
pub(super) fn printable(b: &[u8]) -> bool {
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

/// Bytes checked to be ASCII (hex digits, [`printable`] values) as text.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
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
