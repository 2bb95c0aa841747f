//! The tracectx fuzz input: header (name, value) pairs for `TraceContext::from_headers`.
//!
//! Format: entries of `[sel][len][value]` until the input ends; `len == 255` is followed by a
//! u16 LE length. `sel & 15` picks the name:
//! * 0..=9: the trace header `TraceHeader::ALL[i]`, letters at positions `k mod 4` upper-cased
//!   for each bit `k` of `sel >> 4` (names match case-insensitively);
//! * 10, 11, 12: `cookie`, `host`, `user-agent`;
//! * 13: a raw name: `[n][n bytes]` before the value (lossy UTF-8);
//! * 14: a trace header name with whitespace around it, 15: with a suffix (neither may match).
//!
//! Checked: the documented invariants of [`TraceContext`] (present and invalid are disjoint and
//! cover every trace header sent; a B3 conflict leaves no B3 carrier; ids are non-zero and in
//! their wire form; `primary()` is one of the carriers, in precedence order; ...), and that the
//! result does not depend on what must not matter: the case of names, the order of headers,
//! surrounding whitespace of values, repeated identical headers, other headers.

use observer::tracectx::{Carrier, HeaderSet, Sampling, TraceContext, TraceHeader};

use crate::Reader;

pub fn parse(input: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut r = Reader::new(input);
    let mut out = Vec::new();
    while !r.is_empty() {
        let sel = r.u8();
        let pick = TraceHeader::ALL[usize::from(sel >> 4) % 10].name();
        let name = match sel & 15 {
            i @ 0..=9 => {
                let mask = sel >> 4;
                TraceHeader::ALL[usize::from(i)]
                    .name()
                    .chars()
                    .enumerate()
                    .map(|(k, c)| {
                        if mask & (1 << (k % 4)) != 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            }
            10 => "cookie".to_owned(),
            11 => "host".to_owned(),
            12 => "user-agent".to_owned(),
            13 => {
                let n = usize::from(r.u8());
                String::from_utf8_lossy(r.bytes(n)).into_owned()
            }
            14 => format!(" {pick}\t"),
            _ => format!("{pick}-x"),
        };
        let mut n = usize::from(r.u8());
        if n == 255 {
            n = usize::from(r.u16());
        }
        out.push((name, r.bytes(n).to_vec()));
    }
    out
}

/// Writes entries with explicit names (`sel` 13) or trace header names (for the seed generator).
pub fn encode(headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in headers {
        match TraceHeader::ALL.iter().position(|h| h.name() == *name) {
            Some(i) => b.push(i as u8),
            None => match *name {
                "cookie" => b.push(10),
                "host" => b.push(11),
                "user-agent" => b.push(12),
                _ => {
                    b.push(13);
                    let n = name.len().min(255);
                    b.push(n as u8);
                    b.extend_from_slice(&name.as_bytes()[..n]);
                }
            },
        }
        let n = value.len().min(usize::from(u16::MAX));
        if n < 255 {
            b.push(n as u8);
        } else {
            b.push(255);
            b.extend_from_slice(&(n as u16).to_le_bytes());
        }
        b.extend_from_slice(&value[..n]);
    }
    b
}

fn ctx_of(headers: &[(String, Vec<u8>)]) -> TraceContext {
    TraceContext::from_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
}

fn lower_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_carrier(c: &Carrier, wire_lens: &[usize]) {
    assert_ne!(c.trace_id.value(), 0);
    let wire = &*c.trace_id.wire();
    assert!(lower_hex(wire, wire_lens), "trace id wire {wire:?}");
    assert_eq!(
        u128::from_str_radix(wire, 16).ok(),
        Some(c.trace_id.value())
    );
    for s in c.span_id.iter().chain(&c.parent_span_id) {
        assert_ne!(s.value(), 0);
        assert!(lower_hex(&s.to_string(), &[16]));
    }
}

fn printable(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The invariants of one extracted context, given the headers it came from.
pub fn check_invariants(ctx: &TraceContext, headers: &[(String, Vec<u8>)]) {
    use TraceHeader::*;
    let sent: HeaderSet = headers
        .iter()
        .filter_map(|(n, _)| TraceHeader::from_name(n))
        .collect();
    assert!(
        ctx.present.difference(ctx.invalid) == ctx.present,
        "present and invalid overlap: {ctx:?}"
    );
    assert_eq!(ctx.present.union(ctx.invalid), sent, "{ctx:?}");

    if ctx.b3_conflict {
        assert!(ctx.b3_multi.is_none() && ctx.b3_single.is_none(), "{ctx:?}");
        assert!(ctx.present.iter().all(|h| !h.is_b3()), "{ctx:?}");
    }
    assert_eq!(ctx.w3c.is_some(), ctx.present.contains(Traceparent));
    assert_eq!(ctx.b3_multi.is_some(), ctx.present.contains(B3TraceId));
    if ctx.b3_single.is_some() {
        assert!(ctx.present.contains(B3Single));
    }
    if ctx.present.contains(Tracestate) {
        assert!(ctx.w3c.is_some());
    }
    if ctx.b3_sampling.is_some() {
        assert!(
            ctx.present.contains(B3Sampled)
                || ctx.present.contains(B3Flags)
                || ctx.present.contains(B3Single),
            "{ctx:?}"
        );
    }
    assert_eq!(ctx.request_id.is_some(), ctx.present.contains(RequestId));
    assert_eq!(
        ctx.ot_span_context.is_some(),
        ctx.present.contains(OtSpanContext)
    );
    if let Some(id) = &ctx.request_id {
        assert!(printable(id, 128) && !id.starts_with(' ') && !id.ends_with(' '));
    }
    if let Some(ot) = &ctx.ot_span_context {
        assert!(printable(ot, 512));
    }

    if let Some(c) = &ctx.w3c {
        check_carrier(c, &[32]);
        assert!(c.span_id.is_some() && c.parent_span_id.is_none());
        assert!(matches!(
            c.sampling,
            Some(Sampling::Accept | Sampling::Deny)
        ));
    }
    if let Some(c) = &ctx.b3_single {
        check_carrier(c, &[16, 32]);
        assert!(c.span_id.is_some());
    }
    if let Some(c) = &ctx.b3_multi {
        check_carrier(c, &[16, 32]);
    }

    let carriers: Vec<&Carrier> = [&ctx.w3c, &ctx.b3_single, &ctx.b3_multi]
        .into_iter()
        .flatten()
        .collect();
    match ctx.primary() {
        None => assert!(carriers.is_empty()),
        Some(p) => assert!(
            std::ptr::eq(p, carriers[0]),
            "primary is not the first carrier"
        ),
    }
    let ids = ctx.trace_ids();
    assert!(ids.len() <= carriers.len());
    for (i, a) in ids.iter().enumerate() {
        assert!(carriers.iter().any(|c| c.trace_id.value() == a.value()));
        assert!(ids[..i].iter().all(|b| b.value() != a.value()));
    }
    for c in &carriers {
        assert!(ids.iter().any(|t| t.value() == c.trace_id.value()));
    }
    assert_eq!(
        ctx.carries_trace(),
        !carriers.is_empty() || ctx.ot_span_context.is_some()
    );
    assert_eq!(ctx.shares_trace_with(ctx), !carriers.is_empty());
    let sampling = ctx.sampling_headers();
    assert_eq!(sampling.difference(ctx.present), HeaderSet::EMPTY);
    assert_eq!(ctx.has_sampling(), !sampling.is_empty(), "{ctx:?}");
}

/// Extracts the context of the headers, checks its invariants and that it is unchanged by what
/// must not matter.
pub fn check(headers: &[(String, Vec<u8>)]) {
    let ctx = ctx_of(headers);
    check_invariants(&ctx, headers);

    let same = |variant: Vec<(String, Vec<u8>)>, what: &str| {
        let other = ctx_of(&variant);
        assert_eq!(other, ctx, "{what} changed the context");
        assert_eq!(
            other.primary().map(|c| c.trace_id.wire()),
            ctx.primary().map(|c| c.trace_id.wire()),
            "{what}"
        );
    };
    same(
        headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
        "lower-casing names",
    );
    same(
        headers.iter().rev().cloned().collect(),
        "reversing the order",
    );
    same(
        headers
            .iter()
            .map(|(n, v)| {
                let mut w = b" \t".to_vec();
                w.extend_from_slice(v);
                w.extend_from_slice(b"\t ");
                (n.clone(), w)
            })
            .collect(),
        "whitespace around values",
    );
    same(
        headers.iter().chain(headers).cloned().collect(),
        "sending every header twice",
    );
    same(
        headers
            .iter()
            .filter(|(n, _)| TraceHeader::from_name(n).is_some())
            .cloned()
            .collect(),
        "dropping other headers",
    );
}

pub fn run(input: &[u8]) {
    check(&parse(input));
}
