use super::id::{Case, hex_digits, parse_hex_u64, parse_hex_u128};
use super::parse::printable;
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

/// The candidate picked by length and a letter, compared case-insensitively, is exactly
/// what a case-insensitive scan of every name finds.
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
