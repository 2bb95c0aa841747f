//! Attribution by the thread that read the inbound request, or one it spawned.

use super::*;

#[test]
fn thread_attribution_same_thread() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let c = sim.inbound(12, 2 * MS, "POST /pay?card=1", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(12, 3 * MS, "GET /fraud", "");
    let b = one_break(out);
    assert_eq!(
        b,
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(C, C_SPAN, "POST", "/pay"),
            Some(2),
            &[B3TraceId, B3SpanId, B3Sampled],
        )
    );
    // The break names the server span that is emitted for the inbound request.
    assert_eq!(Some(sim.respond(&c, 12, 4 * MS).span_id), b.server_span_id);
    assert_eq!(sim.respond(&a, 11, 5 * MS).span_id, id(1));
    let client = sim.respond(&o, 12, 6 * MS);
    assert_eq!(
        (client.parent_span_id, client.attribution, client.trace_id),
        (Some(id(2)), Some(Attribution::Thread), None)
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 1,
            breaks_missing: 1,
            by_thread: 1,
            ..Default::default()
        }
    );
}

#[test]
fn thread_attribution_follows_spawned_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.fork(12, 21);
    sim.fork(21, 22);
    sim.fork(11, 23);
    let (o, out) = sim.outbound(22, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    let (o, out) = sim.outbound(23, 4 * MS, "GET /y", &tp(N, N_SPAN));
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Mismatch,
            Attribution::Thread,
            &o,
            inbound_ref(A, A_SPAN, "GET", "/a"),
            Some(1),
            &[],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            breaks_missing: 1,
            breaks_mismatch: 1,
            by_thread: 2,
            ..Default::default()
        }
    );
}

#[test]
fn thread_parentage_is_followed_up_to_max_thread_depth() {
    assert_eq!(MAX_THREAD_DEPTH, 5);
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    // 12 -> 31 -> 32 -> 33 -> 34 -> 35 -> 36
    let mut parent = 12;
    for tid in 31..=36 {
        sim.fork(parent, tid);
        parent = tid;
    }
    for (tid, ts) in [(31, 3), (33, 4), (35, 5)] {
        let (o, out) = sim.outbound(tid, ts * MS, "GET /x", "");
        assert_eq!(
            one_break(out),
            brk(
                BreakReason::Missing,
                Attribution::Thread,
                &o,
                inbound_ref(B, B_SPAN, "GET", "/b"),
                Some(2),
                &[Traceparent],
            ),
            "tid {tid}"
        );
    }
    // Six levels down: no longer related, two candidates.
    let (o, out) = sim.outbound(36, 6 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 4,
            breaks_missing: 4,
            by_thread: 3,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn thread_exit_cuts_the_lineage_and_a_reused_tid_gets_its_new_parent() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.fork(12, 31);
    sim.fork(31, 32);
    sim.fork(12, 40);
    sim.c.on_thread_exit(PID, 31);
    // 32's parent exited: its lineage ends there.
    let (o, out) = sim.outbound(32, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent],
        )
    );
    // Thread 40 exits, its id is reused by a thread that 11 creates.
    sim.c.on_thread_exit(PID, 40);
    sim.fork(11, 40);
    let (o, out) = sim.outbound(40, 4 * MS, "GET /y", "");
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
}

#[test]
fn a_fork_naming_the_process_leader_as_child_is_ignored() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.fork(12, PID);
    let (_, out) = sim.outbound(PID, 3 * MS, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
    assert_eq!(sim.stats().by_ambiguous, 1);
}

#[test]
fn forks_in_another_process_do_not_relate_threads() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    sim.c.on_fork(PID + 1, 12, 21);
    let (_, out) = sim.outbound(21, 3 * MS, "GET /x", "");
    assert_eq!(one_break(out).attribution, Attribution::Ambiguous);
}

#[test]
fn keep_alive_on_one_thread_the_open_request_wins() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 11, 10 * MS);
    // Next request on the same keep-alive connection and thread, while /a is in its grace period.
    let b = sim.inbound(11, 20 * MS, "GET /b", &tp(B, B_SPAN));
    sim.inbound(12, 21 * MS, "POST /c", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(11, 30 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    // Both answered and in their grace period: the thread cannot tell.
    sim.respond(&b, 11, 40 * MS);
    let (o, out) = sim.outbound(11, 50 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[B3TraceId, B3SpanId, B3Sampled, Traceparent],
        )
    );
    // Once /a's grace period is over, /b is the thread's only one.
    let (o, out) = sim.outbound(11, 10 * MS + GRACE + 1, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Thread,
            &o,
            inbound_ref(B, B_SPAN, "GET", "/b"),
            Some(2),
            &[Traceparent],
        )
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 3,
            outbound: 3,
            breaks_missing: 3,
            by_thread: 2,
            by_ambiguous: 1,
            ..Default::default()
        }
    );
}

#[test]
fn a_threads_answered_request_in_grace_is_still_its_own() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 11, 10 * MS);
    sim.inbound(12, 5 * MS, "GET /b", &tp(B, B_SPAN));
    // Work finishing after the response (fire and forget) on the thread that read /a.
    let (o, out) = sim.outbound(11, 20 * MS, "POST /audit", "");
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
}

#[test]
fn two_open_requests_on_one_thread_are_ambiguous() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(11, 2 * MS, "GET /b", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent],
        )
    );
}
