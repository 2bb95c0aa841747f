//! Attribution by a shared trace id.

use super::*;

#[test]
fn trace_id_attribution_across_formats_and_id_widths() {
    let upper_b3 = format!(
        "x-b3-traceid: {}\nx-b3-spanid: {C_SPAN}\nx-b3-sampled: 1",
        C.to_ascii_uppercase()
    );
    let cases: [(&str, String, String, &str); 9] = [
        ("w3c -> w3c", tp(A, A_SPAN), tp(A, CHILD), A),
        ("b3 multi -> b3 single", b3m(C, C_SPAN), b3s(C, CHILD), C),
        ("b3 single -> b3 multi", b3s(C, C_SPAN), b3m(C, CHILD), C),
        (
            "b3 multi 64 -> w3c 128",
            b3m(D64, D_SPAN),
            tp(D128, CHILD),
            D128,
        ),
        (
            "w3c 128 -> b3 multi 64",
            tp(D128, D_SPAN),
            b3m(D64, CHILD),
            D64,
        ),
        (
            "b3 single 64 -> b3 single 128",
            b3s(D64, D_SPAN),
            b3s(D128, CHILD),
            D128,
        ),
        (
            "b3 multi 128 -> b3 multi 64",
            b3m(D128, D_SPAN),
            b3m(D64, CHILD),
            D64,
        ),
        ("upper-case b3 -> w3c", upper_b3, tp(C, CHILD), C),
        ("b3 -> w3c", b3m(C, C_SPAN), tp(C, CHILD), C),
    ];
    for (name, inbound, outbound, out_trace) in cases {
        let mut sim = Sim::new();
        // Decoys on other threads: an untraced request and another trace. Without the trace id
        // rule this would be ambiguous (and unattributed).
        sim.inbound(11, MS, "GET /health", "");
        sim.inbound(12, 2 * MS, "GET /other", &tp(B, B_SPAN));
        sim.inbound(13, 3 * MS, "GET /real", &inbound);
        sim.inbound(14, 4 * MS, "GET /late", &tp(N, N_SPAN));
        // Written by a thread none of them is related to (a pool or selector thread).
        let (o, out) = sim.outbound(30, 5 * MS, "GET /down", &outbound);
        nothing(out);
        assert_eq!(
            sim.respond(&o, 30, 6 * MS),
            Span {
                exchange: exchange(&o, 30, 6 * MS),
                trace_id: Some(t(out_trace)),
                span_id: s(CHILD),
                parent_span_id: Some(id(3)),
                attribution: Some(Attribution::TraceId),
            },
            "{name}"
        );
        assert_eq!(
            sim.stats(),
            CorrelatorStats {
                inbound: 4,
                outbound: 1,
                propagated: 1,
                by_trace_id: 1,
                ..Default::default()
            },
            "{name}"
        );
    }
}

#[test]
fn trace_id_wins_over_thread() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    // Thread 11 writes the call that belongs to the request thread 12 read.
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(B, CHILD));
    nothing(out);
    let span = sim.respond(&o, 11, 4 * MS);
    assert_eq!(
        (span.parent_span_id, span.attribution),
        (Some(id(2)), Some(Attribution::TraceId))
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            propagated: 1,
            by_trace_id: 1,
            ..Default::default()
        }
    );
}

#[test]
fn trace_id_prefers_the_most_recent_inbound_of_that_trace() {
    let mut sim = Sim::new();
    // The same trace arrives twice (a retry by the caller); only the second carries tracestate.
    sim.inbound(11, MS, "GET /first", &tp(A, A_SPAN));
    sim.inbound(
        12,
        2 * MS,
        "GET /second",
        &lines(&[&tp(A, CHILD2), TRACESTATE]),
    );
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(A, CHILD));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Partial,
            Attribution::TraceId,
            &o,
            inbound_ref(A, CHILD2, "GET", "/second"),
            Some(2),
            &[Tracestate],
        )
    );
}
