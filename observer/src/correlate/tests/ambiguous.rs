//! Ambiguous attribution.

use super::*;

#[test]
fn ambiguous_all_traced_distinct_traces_is_missing_without_inbound_fields() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /c", &b3s(C, C_SPAN));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[B3Single, Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            breaks_missing: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_candidates_of_one_trace_fill_the_inbound_trace() {
    let mut sim = Sim::new();
    sim.inbound(
        11,
        MS,
        "GET /a",
        &lines(&[&tp(A, A_SPAN), "x-request-id: r1"]),
    );
    sim.inbound(12, 2 * MS, "GET /b", &b3s(A, CHILD2));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", "x-request-id: r1");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            InboundRef {
                trace_id: Some(t(A)),
                span_id: Some(s(A_SPAN)),
                method: None,
                path: None,
            },
            None,
            &[B3Single, Traceparent],
        )
    );
    let (o, out) = sim.outbound(50, 4 * MS, "GET /y", &tp(N, N_SPAN));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Mismatch,
            Attribution::Ambiguous,
            &o,
            InboundRef {
                trace_id: Some(t(A)),
                span_id: Some(s(A_SPAN)),
                method: None,
                path: None,
            },
            None,
            &[],
        )
    );
}

#[test]
fn ambiguous_new_trace_is_mismatch() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /c", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", &tp(N, N_SPAN));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Mismatch,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            breaks_mismatch: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_mix_of_traced_and_untraced_is_unattributed_and_silent() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /health", "x-request-id: k8s");
    let (_, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(50, 4 * MS, "GET /y", &tp(N, N_SPAN));
    nothing(out);
    // The traced one forwarded: attributed by trace id.
    let (_, out) = sim.outbound(50, 5 * MS, "GET /z", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 3,
            propagated: 1,
            unattributed: 2,
            by_trace_id: 1,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_all_untraced_is_untraced() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", "");
    sim.inbound(12, 2 * MS, "GET /b", "b3: 0");
    let (_, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(50, 4 * MS, "GET /x", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            untraced: 2,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_with_an_unreadable_candidate_is_unknown() {
    for unreadable in [
        None,
        Some(head(
            "GET /u",
            &lines(&[&b3s(C, C_SPAN), &b3m(D64, D_SPAN)]),
        )),
    ] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
        sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
        sim.inbound_head(PID, 13, 3 * MS, unreadable);
        let (_, out) = sim.outbound(50, 4 * MS, "GET /x", "");
        nothing(out);
        let (_, out) = sim.outbound(50, 5 * MS, "GET /y", &tp(N, N_SPAN));
        nothing(out);
        // A readable one whose trace id travelled is still found.
        let (o, out) = sim.outbound(50, 6 * MS, "GET /z", &tp(B, CHILD));
        nothing(out);
        assert_eq!(sim.respond(&o, 50, 7 * MS).parent_span_id, Some(id(2)));
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 3,
                outbound: 3,
                propagated: 1,
                unknown: 2,
                by_trace_id: 1,
                by_ambiguous: 2,
                ..Default::default()
            }
        );
    }
}

#[test]
fn ambiguous_with_invalid_or_opaque_outbound_context_is_unknown() {
    for outbound in [
        format!("traceparent: 00-{}-{CHILD}-01", N.to_ascii_uppercase()),
        OT.to_owned(),
    ] {
        let mut sim = Sim::new();
        sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
        sim.inbound(12, 2 * MS, "GET /c", &b3m(C, C_SPAN));
        let (_, out) = sim.outbound(50, 3 * MS, "GET /x", &outbound);
        nothing(out);
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 2,
                outbound: 1,
                unknown: 1,
                by_ambiguous: 1,
                ..Default::default()
            },
            "{outbound}"
        );
    }
}
