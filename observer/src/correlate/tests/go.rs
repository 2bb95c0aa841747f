//! Go: OS threads are not request contexts.

use super::*;

/// Go's scheduler runs a handler's goroutine, and the Transport's writeLoop goroutine that
/// writes its outbound request, on whichever thread is free: the thread that read another
/// request is no evidence.
#[test]
fn go_a_call_written_on_the_thread_that_read_another_request_is_not_attributed_to_it() {
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID, true);
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &b3m(C, C_SPAN));
    // /a's call without context, written on thread 12 (which read /b).
    let (o, out) = sim.outbound(12, 3 * MS, "GET /from-a", "");
    let b = one_break(out);
    assert_eq!(
        (b.attribution, b.inbound.trace_id, b.server_span_id),
        (Attribution::Ambiguous, None, None),
        "{b:?}"
    );
    assert_eq!(b.outbound, o);
    // A thread spawned by 11 is no evidence either.
    sim.fork(11, 21);
    let (_, out) = sim.outbound(21, 4 * MS, "GET /from-b", &tp(N, N_SPAN));
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            breaks_missing: 1,
            breaks_mismatch: 1,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}

/// The thread rule would tie a traced request's dropped call to the untraced request its thread
/// read (untraced: a silent miss). Without it the candidates are mixed: unattributed, counted.
#[test]
fn go_a_mix_of_traced_and_untraced_candidates_is_unattributed_not_untraced() {
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID, true);
    sim.inbound(11, MS, "GET /traced", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /untraced", "");
    let (_, out) = sim.outbound(12, 3 * MS, "GET /x", "");
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            unattributed: 1,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

/// What needs no thread still works in Go: a shared trace id, and the only active request.
#[test]
fn go_trace_id_and_single_active_still_attribute() {
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID, true);
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(12, 2 * MS, "GET /x", "");
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
    sim.inbound(12, 3 * MS, "GET /b", &tp(B, B_SPAN));
    let (_, out) = sim.outbound(11, 4 * MS, "GET /y", &tp(B, CHILD));
    nothing(out);
    sim.respond(&a, 11, 5 * MS);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            propagated: 1,
            breaks_missing: 1,
            by_trace_id: 1,
            by_single_active: 1,
            ..Default::default()
        }
    );
}

/// The same timeline in a process whose threads are request contexts is attributed by thread;
/// a process that exec'd into another program is told again.
#[test]
fn the_thread_rule_applies_again_when_a_process_is_not_go() {
    let timeline = |shared: bool| {
        let mut sim = Sim::new();
        sim.c.set_threads_shared(PID, true);
        sim.c.set_threads_shared(PID, shared);
        sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
        sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
        let (_, out) = sim.outbound(12, 3 * MS, "GET /x", "");
        one_break(out).attribution
    };
    assert_eq!(timeline(false), Attribution::Thread);
    assert_eq!(timeline(true), Attribution::Ambiguous);
    // Unknown processes are not created by a `false`.
    let mut sim = Sim::new();
    sim.c.set_threads_shared(PID + 1, false);
    assert!(sim.c.procs.is_empty());
}
