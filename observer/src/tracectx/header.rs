//! The trace headers the observer reads, and sets of them.

use crate::text::is_name;

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
    pub(super) const B3: [TraceHeader; 6] = [
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

    pub(super) fn index(self) -> usize {
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
