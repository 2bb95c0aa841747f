//! Runtime models: event loops, thread pools, worker threads.

use super::*;

#[test]
fn node_event_loop_many_requests_in_flight_on_one_thread() {
    let mut sim = Sim::new();
    const LOOP: u32 = 7;
    sim.inbound(LOOP, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(LOOP, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.inbound(LOOP, 3 * MS, "GET /c", &b3s(C, C_SPAN));
    sim.inbound(LOOP, 4 * MS, "GET /d", &b3m(D64, D_SPAN));
    // /a and /c are forwarded (in whatever order the loop gets to them).
    let (oc, out) = sim.outbound(LOOP, 5 * MS, "GET /for-c", &b3s(C, CHILD));
    nothing(out);
    let (oa, out) = sim.outbound(LOOP, 6 * MS, "GET /for-a", &tp(A, CHILD2));
    nothing(out);
    // /b or /d dropped it: which one cannot be told.
    let (o, out) = sim.outbound(LOOP, 7 * MS, "GET /for-b-or-d", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[B3TraceId, B3SpanId, B3Sampled, B3Single, Traceparent],
        )
    );
    let (o, out) = sim.outbound(LOOP, 8 * MS, "GET /new", &tp(N, N_SPAN));
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
    assert_eq!(sim.respond(&oc, LOOP, 9 * MS).parent_span_id, Some(id(3)));
    assert_eq!(sim.respond(&oa, LOOP, 9 * MS).parent_span_id, Some(id(1)));
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 4,
            outbound: 4,
            propagated: 2,
            breaks_missing: 1,
            breaks_mismatch: 1,
            by_trace_id: 2,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

#[test]
fn java_selector_thread_writes_for_worker_threads() {
    let mut sim = Sim::new();
    const SELECTOR: u32 = 30;
    let a = sim.inbound(21, MS, "GET /a", &tp(A, A_SPAN));
    let b = sim.inbound(22, 2 * MS, "GET /b", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(SELECTOR, 3 * MS, "GET /x", &b3m(C, CHILD));
    nothing(out);
    assert_eq!(
        sim.respond(&o, SELECTOR, 4 * MS),
        Span {
            exchange: exchange(&o, SELECTOR, 4 * MS),
            trace_id: Some(t(C)),
            span_id: s(CHILD),
            parent_span_id: Some(id(2)),
            attribution: Some(Attribution::TraceId),
        }
    );
    sim.respond(&a, 21, 10 * MS);
    sim.respond(&b, 22, 11 * MS);
    // Later, one request in flight: the selector's call without context is its.
    sim.inbound(21, 500 * MS, "GET /c", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(SELECTOR, 501 * MS, "GET /y", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/c"),
            Some(3),
            &[Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 3,
            outbound: 2,
            propagated: 1,
            breaks_missing: 1,
            by_trace_id: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}
