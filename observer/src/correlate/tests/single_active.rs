//! Attribution to the single active request; background traffic; time limits.

use super::*;

#[test]
fn single_active_inbound_takes_calls_from_unrelated_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(50, 2 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[Traceparent],
        )
    );
    let (o, out) = sim.outbound(50, 3 * MS, "GET /y", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.respond(&o, 50, 4 * MS).attribution,
        Some(Attribution::TraceId)
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            propagated: 1,
            breaks_missing: 1,
            by_trace_id: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn no_active_inbound_is_background_never_a_break() {
    let mut sim = Sim::new();
    // Another process's traced request is not a candidate.
    sim.inbound_head(PID + 1, 11, MS, Some(head("GET /a", &tp(A, A_SPAN))));
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 3 * MS, "GET /y", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            background: 2,
            ..Default::default()
        }
    );
}

#[test]
fn an_inbound_request_is_active_from_its_first_byte() {
    let mut sim = Sim::new();
    sim.inbound(11, 10 * MS, "GET /a", &tp(A, A_SPAN));
    let (_, out) = sim.outbound(11, 10 * MS - 1, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 10 * MS, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Thread);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            breaks_missing: 1,
            background: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn grace_period_boundaries() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 11, 10 * MS);
    let (o, out) = sim.outbound(11, 10 * MS + GRACE, "GET /x", "");
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
    let (_, out) = sim.outbound(11, 10 * MS + GRACE + 1, "GET /x", "");
    nothing(out);
    // A later inbound request (which forgets /a) is the only candidate then.
    sim.inbound(12, 500 * MS, "GET /b", "");
    let (_, out) = sim.outbound(11, 600 * MS, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 3,
            breaks_missing: 1,
            untraced: 1,
            background: 1,
            by_thread: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn grace_period_of_zero_ends_with_the_response() {
    let mut sim = Sim::with(Config {
        grace_ns: 0,
        ..Config::default()
    });
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 12, 10 * MS);
    let (_, out) = sim.outbound(11, 10 * MS, "GET /x", "");
    assert_eq!(one_break(out).reason, BreakReason::Missing);
    let (_, out) = sim.outbound(11, 10 * MS + 1, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            breaks_missing: 1,
            background: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn an_abandoned_inbound_request_ends_when_abandoned() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.abandon(&a, 11, 20 * MS);
    let (_, out) = sim.outbound(11, 20 * MS + GRACE, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Thread);
    let (_, out) = sim.outbound(11, 20 * MS + GRACE + 1, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 2,
            breaks_missing: 1,
            background: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn an_unanswered_inbound_request_is_active_at_most_max_active() {
    let mut sim = Sim::with(Config {
        max_active_ns: 1000 * MS,
        ..Config::default()
    });
    sim.inbound(11, 5 * MS, "GET /stream", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(50, 1005 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/stream"),
            Some(1),
            &[Traceparent],
        )
    );
    let (_, out) = sim.outbound(50, 1005 * MS + 1, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 1005 * MS + 1, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 3,
            breaks_missing: 1,
            background: 2,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

#[test]
fn process_exit_clears_requests_and_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound_head(PID + 1, 21, MS, Some(head("GET /b", &tp(B, B_SPAN))));
    sim.fork(11, 12);
    sim.c.on_exit(PID);
    // The pid is reused by a new process: nothing of the old one counts.
    let (_, out) = sim.outbound(12, 2 * MS, "GET /x", "");
    nothing(out);
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    nothing(out);
    // Another process is untouched.
    let (o, out) = sim.outbound_in(PID + 1, 22, 3 * MS, "GET /y", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::SingleActive,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    // New requests of the reused pid have no lineage from before either (12 was 11's child).
    sim.inbound(11, 4 * MS, "GET /c", &tp(C, C_SPAN));
    sim.inbound(14, 4 * MS, "GET /d", &tp(N, N_SPAN));
    let (_, out) = sim.outbound(12, 5 * MS, "GET /z", "");
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 4,
            outbound: 4,
            breaks_missing: 2,
            background: 2,
            by_single_active: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}
