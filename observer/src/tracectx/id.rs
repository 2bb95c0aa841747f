//! Trace and span ids, and the hex digits they are written in.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;

use crate::text::{InlineStr, inline_ascii};

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

    pub(super) fn parse_hex_case(b: &[u8], case: Case) -> Option<SpanId> {
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
pub(super) fn hex_digits<const N: usize>(v: u128) -> [u8; N] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; N];
    let mut v = v;
    for d in out.iter_mut().rev() {
        *d = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
    out
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.value())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
/// Which hex digits a field accepts.
pub(super) enum Case {
    Lower,
    Any,
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
pub(super) fn parse_hex_u64(b: &[u8], case: Case) -> Option<u64> {
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
pub(super) fn parse_hex_u128(b: &[u8], case: Case) -> Option<u128> {
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
