//! Unreadable outbound heads, and the counters.

use super::*;

#[test]
fn unreadable_outbound_head_is_unknown_only_while_inbound_requests_are_active() {
    let mut sim = Sim::new();
    sim.unknown(Some(Role::Client), Direction::Egress, 11, MS);
    assert_eq!(sim.stats(), CorrelatorStats::default());
    sim.inbound(11, 2 * MS, "GET /a", &tp(A, A_SPAN));
    sim.unknown(Some(Role::Client), Direction::Egress, 50, 3 * MS);
    // Not outbound request heads: a response read, the server side, a connection of unknown role.
    sim.unknown(Some(Role::Client), Direction::Ingress, 11, 4 * MS);
    sim.unknown(Some(Role::Server), Direction::Ingress, 11, 4 * MS);
    sim.unknown(Some(Role::Server), Direction::Egress, 11, 4 * MS);
    sim.unknown(None, Direction::Egress, 11, 4 * MS);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            unknown: 1,
            ..Default::default()
        }
    );
}

#[test]
fn count_unknown_instead_of_break_moves_one_break_to_unknown() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &lines(&[&tp(A, A_SPAN), TRACESTATE]));
    let (_, out) = sim.outbound(11, 2 * MS, "GET /x", "");
    assert_eq!(one_break(out).reason, BreakReason::Missing);
    let (_, out) = sim.outbound(11, 3 * MS, "GET /x", &tp(A, CHILD));
    assert_eq!(one_break(out).reason, BreakReason::Partial);
    let (_, out) = sim.outbound(11, 4 * MS, "GET /x", &tp(N, N_SPAN));
    assert_eq!(one_break(out).reason, BreakReason::Mismatch);
    let before = CorrelatorStats {
        inbound: 1,
        outbound: 3,
        breaks_missing: 1,
        breaks_partial: 1,
        breaks_mismatch: 1,
        by_trace_id: 1,
        by_thread: 2,
        ..Default::default()
    };
    assert_eq!(sim.stats(), before);
    sim.c.count_unknown_instead_of_break(BreakReason::Partial);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            breaks_partial: 0,
            unknown: 1,
            ..before
        }
    );
    sim.c.count_unknown_instead_of_break(BreakReason::Missing);
    sim.c.count_unknown_instead_of_break(BreakReason::Mismatch);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            breaks_missing: 0,
            breaks_partial: 0,
            breaks_mismatch: 0,
            unknown: 3,
            ..before
        }
    );
}

#[test]
fn names() {
    assert_eq!(
        [
            Attribution::TraceId,
            Attribution::Thread,
            Attribution::SingleActive,
            Attribution::Ambiguous
        ]
        .map(Attribution::as_str),
        ["trace_id", "thread", "single_active", "ambiguous"]
    );
    assert_eq!(
        [
            BreakReason::Missing,
            BreakReason::Partial,
            BreakReason::Mismatch
        ]
        .map(BreakReason::as_str),
        ["missing", "partial", "mismatch"]
    );
    assert_eq!(
        serde_json::to_string(&Attribution::SingleActive).unwrap(),
        "\"single_active\""
    );
}

#[test]
fn ambiguous_with_opaque_inbound_contexts() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", OT);
    sim.inbound(12, 2 * MS, "GET /b", &tp(B, B_SPAN));
    let (o, out) = sim.outbound(50, 3 * MS, "GET /x", "");
    assert_eq!(
        one_break(out),
        brk(
            BreakReason::Missing,
            Attribution::Ambiguous,
            &o,
            no_inbound(),
            None,
            &[Traceparent, OtSpanContext],
        )
    );
    // The opaque context carried on: it cannot be told whose it is.
    let (_, out) = sim.outbound(50, 4 * MS, "GET /y", OT);
    nothing(out);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 2,
            outbound: 2,
            breaks_missing: 1,
            unknown: 1,
            by_ambiguous: 2,
            ..Default::default()
        }
    );
}
