//! Verdicts for one attributed inbound request.

use super::*;

#[test]
fn missing_lists_every_header_the_inbound_request_carried() {
    let mut sim = Sim::new();
    let all = lines(&[
        &b3m(A, A_SPAN),
        &format!("x-b3-parentspanid: {C_PARENT}"),
        &tp(A, A_SPAN),
        TRACESTATE,
        "x-request-id: 7f3c-11",
        OT,
    ]);
    sim.inbound(11, MS, "PUT /cart/9", &all);
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "PUT", "/cart/9"),
            Some(1),
            &[
                B3TraceId,
                B3SpanId,
                B3ParentSpanId,
                B3Sampled,
                Traceparent,
                Tracestate,
                RequestId,
                OtSpanContext,
            ],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            breaks_missing: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn missing_does_not_list_headers_the_outbound_request_has() {
    // (inbound, outbound without trace context, missing)
    let cases: [(String, &str, &[TraceHeader]); 4] = [
        // x-request-id forwarded, the trace context dropped.
        (
            lines(&[&tp(A, A_SPAN), "x-request-id: r-1"]),
            "x-request-id: r-1",
            &[Traceparent],
        ),
        // The sampling decision forwarded alone: the ids are missing.
        (b3m(C, C_SPAN), "x-b3-sampled: 1", &[B3TraceId, B3SpanId]),
        (
            lines(&[&b3m_ids(C, C_SPAN), "x-b3-flags: 1"]),
            "x-b3-flags: 1",
            &[B3TraceId, B3SpanId],
        ),
        // `b3: 1` is a b3 header, but not the context the inbound `b3` carried.
        (b3s(C, C_SPAN), "b3: 1", &[B3Single]),
    ];
    for (inbound, outbound, missing) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", outbound);
        let b = one_break(out);
        assert_eq!(
            (b.reason, b.attribution, &b.outbound, b.missing.as_slice()),
            (BreakReason::Missing, Attribution::Thread, &o, missing),
            "{inbound} -> {outbound}"
        );
    }
}

#[test]
fn partial_when_the_sampling_decision_is_dropped_in_each_format() {
    let deny = format!("traceparent: 00-{A}-{A_SPAN}-00");
    // (inbound, outbound sharing its trace id, missing, inbound trace and span)
    type Case = (
        String,
        String,
        &'static [TraceHeader],
        (&'static str, &'static str),
    );
    let cases: [Case; 9] = [
        (b3m(C, C_SPAN), b3m_ids(C, CHILD), &[B3Sampled], (C, C_SPAN)),
        (
            lines(&[&b3m_ids(C, C_SPAN), "x-b3-flags: 1"]),
            b3m_ids(C, CHILD),
            &[B3Flags],
            (C, C_SPAN),
        ),
        (
            b3s(C, C_SPAN),
            format!("b3: {C}-{CHILD}"),
            &[B3Single],
            (C, C_SPAN),
        ),
        (
            format!("b3: {C}-{C_SPAN}-d"),
            format!("b3: {C}-{CHILD}"),
            &[B3Single],
            (C, C_SPAN),
        ),
        // A lone `b3: 1` next to B3 multi ids.
        (
            lines(&[&b3m_ids(C, C_SPAN), "b3: 1"]),
            b3m_ids(C, CHILD),
            &[B3Single],
            (C, C_SPAN),
        ),
        (
            tp(A, A_SPAN),
            b3m_ids(A, CHILD),
            &[Traceparent],
            (A, A_SPAN),
        ),
        // A deny decision must travel too.
        (deny, b3m_ids(A, CHILD), &[Traceparent], (A, A_SPAN)),
        (
            lines(&[&tp(A, A_SPAN), TRACESTATE]),
            tp(A, CHILD),
            &[Tracestate],
            (A, A_SPAN),
        ),
        (
            lines(&[&tp(A, A_SPAN), TRACESTATE, &b3m(A, A_SPAN)]),
            b3m_ids(A, CHILD),
            &[B3Sampled, Traceparent, Tracestate],
            (A, A_SPAN),
        ),
    ];
    for (inbound, outbound, missing, (trace, span)) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        sim.inbound(12, MS, "GET /b", &tp(B, B_SPAN));
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Partial,
                Attribution::TraceId,
                &o,
                inbound_ref(trace, span, "GET", "/a"),
                Some(1),
                missing,
            ),
            "{inbound} -> {outbound}"
        );
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 2,
                outbound: 1,
                breaks_partial: 1,
                by_trace_id: 1,
                ..Default::default()
            }
        );
    }
}

#[test]
fn no_partial_when_the_sampling_decision_travels_in_another_format() {
    let cases: [(String, String); 5] = [
        (b3m(C, C_SPAN), tp(C, CHILD)),
        (tp(A, A_SPAN), b3m(A, CHILD)),
        (tp(A, A_SPAN), b3s(A, CHILD)),
        (
            b3s(C, C_SPAN),
            lines(&[&b3m_ids(C, CHILD), "x-b3-flags: 1"]),
        ),
        // The decision changed but travelled: not this tool's business.
        (tp(A, A_SPAN), format!("traceparent: 00-{A}-{CHILD}-00")),
    ];
    for (inbound, outbound) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 1,
                propagated: 1,
                by_trace_id: 1,
                ..Default::default()
            },
            "{inbound} -> {outbound}"
        );
    }
}

#[test]
fn sampling_is_not_required_when_the_profile_says_so() {
    let mut sim = Sim::with(Config {
        require_sampling: false,
        ..Config::default()
    });
    sim.inbound(11, MS, "GET /a", &b3m(C, C_SPAN));
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &b3m_ids(C, CHILD));
    nothing(out);
    // tracestate is still required.
    sim.inbound(12, MS, "GET /b", &lines(&[&tp(B, B_SPAN), TRACESTATE]));
    let (o, out) = sim.outbound(12, 2 * MS, "GET /y", &b3m_ids(B, CHILD));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Partial,
            Attribution::TraceId,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Tracestate],
        )
    );
    // Nothing required at all: same trace id is enough.
    let mut sim = Sim::with(Config {
        require_sampling: false,
        require: HeaderSet::default(),
        ..Config::default()
    });
    sim.inbound(12, MS, "GET /b", &lines(&[&tp(B, B_SPAN), TRACESTATE]));
    let (_, out) = sim.outbound(12, 2 * MS, "GET /y", &b3m_ids(B, CHILD));
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn require_adds_headers_such_as_x_request_id() {
    let mut require = Config::default().require;
    require.insert(RequestId);
    let cfg = Config {
        require,
        ..Config::default()
    };
    // (inbound, outbound, missing)
    let cases: [(String, String, &[TraceHeader]); 4] = [
        (
            lines(&[&tp(A, A_SPAN), "x-request-id: abc-123"]),
            tp(A, CHILD),
            &[RequestId],
        ),
        (
            lines(&[&b3m(C, C_SPAN), "x-request-id: abc-123"]),
            b3m_ids(C, CHILD),
            &[B3Sampled, RequestId],
        ),
        (
            lines(&[&tp(A, A_SPAN), "x-request-id: abc-123"]),
            lines(&[&tp(A, CHILD), "x-request-id: abc-123"]),
            &[],
        ),
        // Only when the inbound request carried it.
        (tp(A, A_SPAN), tp(A, CHILD), &[]),
    ];
    for (inbound, outbound, missing) in cases {
        let mut sim = Sim::with(cfg.clone());
        sim.inbound(11, MS, "GET /a", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        if missing.is_empty() {
            nothing(out);
            assert_eq!(sim.stats().propagated, 1);
        } else {
            let b = one_break(out);
            assert_eq!(
                (b.reason, &b.outbound, b.missing.as_slice()),
                (BreakReason::Partial, &o, missing),
                "{inbound} -> {outbound}"
            );
            assert_eq!(sim.stats().breaks_partial, 1);
        }
    }
    // The default profile does not require x-request-id.
    let mut sim = Sim::new();
    sim.inbound(
        11,
        MS,
        "GET /a",
        &lines(&[&tp(A, A_SPAN), "x-request-id: r"]),
    );
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &tp(A, CHILD));
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn mismatch_when_the_service_starts_a_new_trace() {
    // (inbound, outbound, attribution given by a same-thread call)
    let cases: [(String, String, (&str, &str)); 4] = [
        (tp(A, A_SPAN), tp(N, N_SPAN), (A, A_SPAN)),
        (b3m(C, C_SPAN), b3s(N, N_SPAN), (C, C_SPAN)),
        (b3s(D64, D_SPAN), b3m(N, N_SPAN), (D64, D_SPAN)),
        // The low 64 bits equal, the high ones not: another trace.
        (
            b3m(D64, D_SPAN),
            tp("0000000000000001463ac35c9f6413ad", CHILD),
            (D64, D_SPAN),
        ),
    ];
    for (inbound, outbound, (trace, span)) in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Mismatch,
                Attribution::Thread,
                &o,
                inbound_ref(trace, span, "GET", "/a"),
                Some(1),
                &[],
            ),
            "{inbound} -> {outbound}"
        );
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 1,
                breaks_mismatch: 1,
                by_thread: 1,
                ..Default::default()
            }
        );
    }
    // A new trace in one format, the inbound one in another: propagated.
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (_, out) = sim.outbound(
        11,
        2 * MS,
        "GET /x",
        &lines(&[&tp(N, N_SPAN), &b3m(A, CHILD)]),
    );
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn untraced_inbound_requests_have_nothing_to_propagate() {
    let bad_tp = "traceparent: 00-00000000000000000000000000000000-b7ad6b7169203331-01";
    for inbound in [
        "",
        "x-request-id: r-1",
        "b3: 0",
        "x-b3-sampled: 0",
        "tracestate: a=b",
        bad_tp,
    ] {
        let mut sim = Sim::new();
        let r = sim.inbound(11, MS, "GET /a", inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
        nothing(out);
        let (_, out) = sim.outbound(12, 3 * MS, "GET /y", &tp(N, N_SPAN));
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 2,
                untraced: 2,
                by_thread: 1,
                by_single_active: 1,
                ..Default::default()
            },
            "{inbound}"
        );
        let span = sim.respond(&r, 11, 4 * MS);
        assert_eq!((span.trace_id, span.parent_span_id), (None, None));
    }
}

#[test]
fn unreadable_inbound_request_is_unknown() {
    let mut sim = Sim::new();
    sim.inbound_head(PID, 11, MS, None);
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(50, 3 * MS, "GET /y", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            unknown: 2,
            by_thread: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn inbound_b3_single_and_multi_disagreeing_is_unknown_unless_w3c_is_there() {
    let trace_conflict = lines(&[&b3s(C, C_SPAN), &b3m(D64, D_SPAN)]);
    let span_conflict = lines(&[&b3s(C, C_SPAN), &b3m(C, CHILD2)]);
    for inbound in [&trace_conflict, &span_conflict] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
        nothing(out);
        // Forwarding one of the two does not make it trustworthy.
        let (_, out) = sim.outbound(11, 3 * MS, "GET /y", &b3s(C, CHILD));
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 2,
                unknown: 2,
                by_thread: 2,
                ..Default::default()
            },
            "{inbound}"
        );
    }
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &lines(&[&trace_conflict, &tp(A, A_SPAN)]));
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
    let (_, out) = sim.outbound(11, 3 * MS, "GET /y", &tp(A, CHILD));
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
}

#[test]
fn outbound_with_only_invalid_trace_context_is_unknown() {
    let long_ot = format!("x-ot-span-context: {}", "o".repeat(600));
    let cases = [
        format!("traceparent: 00-{}-{CHILD}-01", A.to_ascii_uppercase()),
        format!("traceparent: ff-{A}-{CHILD}-01"),
        "x-b3-traceid: 12345".to_owned(),
        format!("x-b3-traceid: {C}\nx-b3-traceid: {N}\nx-b3-spanid: {CHILD}"),
        "b3: not-a-context".to_owned(),
        // B3 single and multi disagreeing on the outbound side.
        lines(&[&b3s(N, N_SPAN), &b3m(C, CHILD)]),
        long_ot,
    ];
    for outbound in cases {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &b3m(C, C_SPAN));
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 1,
                outbound: 1,
                unknown: 1,
                by_thread: 1,
                ..Default::default()
            },
            "{outbound}"
        );
    }
}

#[test]
fn outbound_with_invalid_headers_that_cannot_hold_a_trace_id_is_missing() {
    let long_id = format!("x-request-id: {}", "r".repeat(200));
    // (outbound, missing) for an inbound request with W3C + tracestate + B3 multi.
    let cases: [(String, &[TraceHeader]); 4] = [
        (
            long_id,
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
        // tracestate without traceparent.
        (
            TRACESTATE.to_owned(),
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
        // A span id without a trace id, an invalid sampling flag.
        (
            format!("x-b3-spanid: {CHILD}"),
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
        (
            "x-b3-sampled: yes".to_owned(),
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent, Tracestate],
        ),
    ];
    for (outbound, missing) in cases {
        let mut sim = Sim::new();
        sim.inbound(
            11,
            MS,
            "GET /a",
            &lines(&[&tp(A, A_SPAN), TRACESTATE, &b3m(A, A_SPAN)]),
        );
        let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Missing,
                Attribution::Thread,
                &o,
                inbound_ref(A, A_SPAN, "GET", "/a"),
                Some(1),
                missing,
            ),
            "{outbound}"
        );
    }
}

#[test]
fn opaque_x_ot_span_context() {
    // Carried on: propagated.
    let mut sim = Sim::new();
    let r = sim.inbound(11, MS, "GET /a", OT);
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", OT);
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
    let span = sim.respond(&r, 11, 3 * MS);
    assert_eq!((span.trace_id, span.parent_span_id), (None, None));

    // Dropped: missing, the inbound fields without ids.
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", OT);
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            InboundRef {
                trace_id: None,
                span_id: None,
                method: Some("GET".into()),
                path: Some("/a".into()),
            },
            Some(1),
            &[OtSpanContext],
        )
    );

    // Opaque on one side, ids on the other: they cannot be compared; no alarm.
    for (inbound, outbound) in [
        (OT.to_owned(), tp(N, N_SPAN)),
        (tp(A, A_SPAN), OT.to_owned()),
    ] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &inbound);
        let (_, out) = sim.outbound(11, 2 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats().breaks_missing + sim.stats().breaks_mismatch,
            0,
            "{inbound} -> {outbound}"
        );
    }
}
