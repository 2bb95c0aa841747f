//! Safeguards against false alarms: telemetry exports, continued traces, B3 deny-only.

use super::*;

#[test]
fn telemetry_exports_are_never_breaks() {
    let mut sim = Sim::new();
    let _i = sim.inbound(10, 0, "GET /orders", &tp(A, A_SPAN));
    for path in [
        "/v1/traces",
        "/otlp/v1/metrics",
        "/v1/logs",
        "/api/v2/spans",
        "/api/traces",
    ] {
        let (_o, out) = sim.outbound(10, MS, &format!("POST {path}"), "");
        nothing(out);
    }
    // The same call to an ordinary path is a break.
    let (_o, out) = sim.outbound(10, 2 * MS, "POST /v1/tracesx", "");
    assert_eq!(one_break(out).reason, BreakReason::Missing);
    let st = sim.c.stats();
    assert_eq!((st.telemetry, st.breaks_missing, st.outbound), (5, 1, 6));
}

#[test]
fn outbound_continuing_an_earlier_trace_is_not_a_mismatch() {
    let mut sim = Sim::new();
    // Request A is served and answered; long after its grace period, request B is active and
    // the service sends a call that still carries A's trace (async work, a retry).
    let a = sim.inbound(10, 0, "GET /a", &tp(A, A_SPAN));
    let a_span = sim.respond(&a, 10, MS).span_id;
    let _b = sim.inbound(11, 10_000 * MS, "GET /b", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(12, 10_001 * MS, "GET /later", &tp(A, CHILD));
    nothing(out);
    let st = sim.c.stats();
    assert_eq!(
        (st.propagated, st.breaks_mismatch, st.by_trace_id),
        (1, 0, 1)
    );
    // Its client span hangs under the server span of A.
    let span = sim.respond(&o, 12, 10_002 * MS);
    assert_eq!(span.parent_span_id, Some(a_span));
    assert_eq!(span.attribution, Some(Attribution::TraceId));
}

#[test]
fn remembered_traces_expire() {
    let cfg = Config {
        recent_ns: 1_000 * MS,
        ..Config::default()
    };
    let mut sim = Sim::with(cfg);
    let a = sim.inbound(10, 0, "GET /a", &tp(A, A_SPAN));
    sim.respond(&a, 10, MS);
    let _b = sim.inbound(11, 5_000 * MS, "GET /b", &tp(B, B_SPAN));
    let (_o, out) = sim.outbound(11, 5_001 * MS, "GET /later", &tp(A, CHILD));
    let b = one_break(out);
    assert_eq!(
        (b.reason, b.attribution),
        (BreakReason::Mismatch, Attribution::Thread)
    );
}

#[test]
fn b3_deny_only_propagation_of_an_unsampled_trace_is_fine() {
    let mut sim = Sim::new();
    let _i = sim.inbound(
        10,
        0,
        "GET /a",
        &format!("x-b3-traceid: {C}\nx-b3-spanid: {C_SPAN}\nx-b3-sampled: 0"),
    );
    let (_o, out) = sim.outbound(10, MS, "GET /down", "b3: 0");
    nothing(out);
    assert_eq!(sim.c.stats().propagated, 1);
}

#[test]
fn b3_deny_only_for_a_sampled_trace_is_missing() {
    let mut sim = Sim::new();
    let _i = sim.inbound(10, 0, "GET /a", &b3m(C, C_SPAN));
    let (_o, out) = sim.outbound(10, MS, "GET /down", "b3: 0");
    let b = one_break(out);
    assert_eq!(b.reason, BreakReason::Missing);
}

#[test]
fn b3_deny_only_with_ambiguous_candidates() {
    let mut sim = Sim::new();
    let unsampled =
        |t: &str, s: &str| format!("x-b3-traceid: {t}\nx-b3-spanid: {s}\nx-b3-sampled: 0");
    let _i1 = sim.inbound(10, 0, "GET /a", &unsampled(C, C_SPAN));
    let _i2 = sim.inbound(11, 0, "GET /b", &unsampled(D64, D_SPAN));
    let (_o, out) = sim.outbound(12, MS, "GET /down", "x-b3-sampled: 0");
    nothing(out);
    assert_eq!(sim.c.stats().propagated, 1);
    // One sampled candidate among them: which request the decision belongs to is unknown.
    let _i3 = sim.inbound(13, 2 * MS, "GET /c", &b3m(N, N_SPAN));
    let (_o, out) = sim.outbound(12, 3 * MS, "GET /down", "b3: 0");
    nothing(out);
    assert_eq!(sim.c.stats().unknown, 1);
}

#[test]
fn withdrawn_break_counter_never_underflows() {
    let mut sim = Sim::new();
    sim.c.count_unknown_instead_of_break(BreakReason::Partial);
    let st = sim.c.stats();
    assert_eq!((st.breaks_partial, st.unknown), (0, 1));
}

/// Java's HttpClient writes from its own threads: with the previous request answered but still in
/// its grace period, the one unanswered request is the single active one.
#[test]
fn unanswered_request_wins_over_ones_in_grace() {
    let mut sim = Sim::new();
    let prev = sim.inbound(20, 0, "GET /prev", "");
    sim.respond(&prev, 20, 10 * MS);
    let cur = sim.inbound(21, 20 * MS, "GET /cur", &b3m(C, C_SPAN));
    let (o, out) = sim.outbound(99, 30 * MS, "GET /leaf", "");
    let b = one_break(out);
    assert_eq!(
        (b.reason, b.attribution),
        (BreakReason::Missing, Attribution::SingleActive)
    );
    assert_eq!(b.inbound.trace_id, Some(t(C)));
    assert_eq!(b.outbound, o);
    let _ = cur;
    // Two unanswered requests and an untraced one in grace: ambiguous over a traced/untraced
    // mix, so no alert.
    let _other = sim.inbound(22, 31 * MS, "GET /other", &b3m(D64, D_SPAN));
    let (_o, out) = sim.outbound(99, 32 * MS, "GET /leaf", "");
    nothing(out);
    let st = sim.c.stats();
    assert_eq!((st.by_ambiguous, st.unattributed), (1, 1));
}

/// More answered requests in their grace period than the window keeps: a verdict that rests on
/// the window (single_active here) becomes unknown; a trace id still decides.
#[test]
fn overflowing_grace_window_makes_heuristic_verdicts_unknown() {
    let mut sim = Sim::new();
    for n in 0..(MAX_ANSWERED as u64 + 10) {
        let r = sim.inbound(1000 + n as u32, n * 1000, "GET /bulk", "");
        sim.respond(&r, 1000 + n as u32, n * 1000 + 500);
    }
    let _traced = sim.inbound(7, MS, "GET /traced", &b3m(C, C_SPAN));
    let (_o, out) = sim.outbound(99, 2 * MS, "GET /leaf", "");
    nothing(out);
    assert_eq!(sim.c.stats().unknown, 1);
    // A forwarded trace id is still recognised, and a mismatch by trace-less rules is not claimed.
    let (_o, out) = sim.outbound(99, 3 * MS, "GET /leaf", &b3m(C, CHILD));
    nothing(out);
    let st = sim.c.stats();
    assert_eq!(
        (st.propagated, st.by_trace_id, st.breaks_missing),
        (1, 1, 0)
    );
}

/// The trace-id index is built at the process's first outbound request and then holds exactly the
/// trace values of the requests that can still be candidates: entries leave with their request
/// when its grace period ends, when the answered window overflows and when an unanswered request
/// passes `max_active_ns`.
#[test]
fn trace_index_follows_the_active_requests() {
    let mut sim = Sim::with(Config {
        max_active_ns: 10_000 * MS,
        ..Config::default()
    });
    fn check(sim: &Sim) -> (usize, usize) {
        let p = &sim.c.procs[&PID];
        let open = p.open.values().map(|i| (i, Place::Open));
        let answered = (p.first_answer..)
            .zip(&p.answered)
            .map(|(no, i)| (i, Place::Answered(no)));
        let want: BTreeMap<(u128, u64), Place> = open
            .chain(answered)
            .flat_map(|(i, place)| {
                i.traces
                    .iter()
                    .filter(|&&v| v != 0)
                    .map(move |&v| ((v, i.seq), place))
            })
            .collect();
        assert_eq!(p.by_trace.as_ref(), Some(&want));
        for (&(_, seq), &place) in &want {
            assert_eq!(p.at(seq, place).map(|i| i.seq), Some(seq));
        }
        (p.open.len() + p.answered.len(), want.len())
    }
    // Unanswered, traced in both formats (one value), and untraced.
    let stream = sim.inbound(
        11,
        MS,
        "GET /stream",
        &(tp(A, A_SPAN) + "\r\n" + &b3m(A, A_SPAN)),
    );
    sim.inbound(12, MS, "GET /plain", "");
    assert!(sim.c.procs[&PID].by_trace.is_none());
    sim.outbound(11, MS, "GET /first", "");
    assert_eq!(check(&sim), (2, 1));
    // More answered requests than the window keeps, each with its own trace.
    for n in 0..(MAX_ANSWERED as u64 + 10) {
        let trace = format!("{:032x}", 0x1000 + n);
        let r = sim.inbound(
            1000 + n as u32,
            2 * MS + n,
            "GET /bulk",
            &tp(&trace, A_SPAN),
        );
        sim.respond(&r, 1000 + n as u32, 2 * MS + n + 1);
    }
    assert_eq!(check(&sim), (2 + MAX_ANSWERED, 1 + MAX_ANSWERED));
    // The oldest bulk request left the window, and its index entry with it: an outbound request
    // carrying its trace is still propagation, through the traces seen lately.
    let (_, out) = sim.outbound(
        11,
        3 * MS,
        "GET /x",
        &tp(&format!("{:032x}", 0x1000), CHILD),
    );
    nothing(out);
    assert_eq!(sim.stats().propagated, 1);
    // The stream is still found by its trace id.
    let (o, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.c.clients[&o.seq].attribution,
        Some(Attribution::TraceId)
    );
    // Past the grace period of every bulk request: only the two unanswered ones are left.
    sim.outbound(11, 3 * MS + GRACE + MS, "GET /x", "");
    assert_eq!(check(&sim), (2, 1));
    // Past max_active (and the once-a-second sweep): nothing.
    sim.outbound(11, 20_000 * MS, "GET /x", "");
    assert_eq!(check(&sim), (0, 0));
    // Answering a swept request changes nothing.
    sim.respond(&stream, 11, 20_001 * MS);
    assert_eq!(check(&sim), (0, 0));
}
