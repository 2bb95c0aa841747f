//! Span ids: new ones, ids taken from the traffic, never one twice.

use super::*;

#[test]
fn server_span_takes_the_inbound_trace_its_span_as_parent_and_a_new_id() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /orders?id=7", &tp(A, A_SPAN));
    let c = sim.inbound(
        12,
        2 * MS,
        "POST /pay",
        &lines(&[&b3m(C, C_SPAN), &format!("x-b3-parentspanid: {C_PARENT}")]),
    );
    let u = sim.inbound(13, 3 * MS, "GET /health", "");
    let x = sim.inbound_head(PID, 14, 4 * MS, None);
    let o = sim.inbound(15, 5 * MS, "GET /ot", OT);

    assert_eq!(
        sim.respond(&a, 11, 10 * MS),
        Span {
            exchange: exchange(&a, 11, 10 * MS),
            trace_id: Some(t(A)),
            span_id: id(1),
            parent_span_id: Some(s(A_SPAN)),
            attribution: None,
        }
    );
    // B3: the parent is the caller's span (x-b3-spanid), not x-b3-parentspanid.
    assert_eq!(
        sim.respond(&c, 12, 11 * MS),
        Span {
            exchange: exchange(&c, 12, 11 * MS),
            trace_id: Some(t(C)),
            span_id: id(2),
            parent_span_id: Some(s(C_SPAN)),
            attribution: None,
        }
    );
    for (r, n) in [(&u, 3), (&x, 4), (&o, 5)] {
        let tid = r.origin.tid;
        assert_eq!(
            sim.respond(r, tid, 12 * MS),
            Span {
                exchange: exchange(r, tid, 12 * MS),
                trace_id: None,
                span_id: id(n),
                parent_span_id: None,
                attribution: None,
            }
        );
    }
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 5,
            ..Default::default()
        }
    );
}

#[test]
fn client_span_keeps_the_apps_child_span_id_and_points_at_the_server_span() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /orders", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(11, 2 * MS, "GET /stock", &tp(A, CHILD));
    nothing(out);
    assert_eq!(
        sim.respond(&o, 11, 3 * MS),
        Span {
            exchange: exchange(&o, 11, 3 * MS),
            trace_id: Some(t(A)),
            span_id: s(CHILD),
            parent_span_id: Some(id(1)),
            attribution: Some(Attribution::TraceId),
        }
    );
    assert_eq!(sim.respond(&a, 11, 4 * MS).span_id, id(1));
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            propagated: 1,
            by_trace_id: 1,
            ..Default::default()
        }
    );
}

#[test]
fn client_span_gets_a_new_id_when_the_inbound_span_id_is_forwarded_unchanged() {
    for (inbound, outbound, trace) in [
        (tp(A, A_SPAN), tp(A, A_SPAN), A),
        (b3m(C, C_SPAN), b3m(C, C_SPAN), C),
        (b3s(C, C_SPAN), b3m(C, C_SPAN), C),
    ] {
        let mut sim = Sim::new();
        let a = sim.inbound(11, MS, "GET /in", &inbound);
        let (o, out) = sim.outbound(11, 2 * MS, "GET /out", &outbound);
        nothing(out);
        assert_eq!(
            sim.respond(&o, 11, 3 * MS),
            Span {
                exchange: exchange(&o, 11, 3 * MS),
                trace_id: Some(t(trace)),
                span_id: id(2),
                parent_span_id: Some(id(1)),
                attribution: Some(Attribution::TraceId),
            },
            "{inbound} -> {outbound}"
        );
        assert_eq!(sim.respond(&a, 11, 4 * MS).span_id, id(1));
    }
}

#[test]
fn span_ids_are_never_emitted_twice_even_when_the_app_reuses_them() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /orders", &tp(A, A_SPAN)); // server span 1
    // Two calls under one child span (an HTTP client retry re-sends the same headers).
    let (o1, out) = sim.outbound(11, 2 * MS, "GET /stock", &tp(A, CHILD));
    nothing(out);
    let (o2, out) = sim.outbound(11, 3 * MS, "GET /stock", &tp(A, CHILD));
    nothing(out);
    // A third call under a child span of its own.
    let (o3, out) = sim.outbound(11, 4 * MS, "GET /price", &tp(A, CHILD2));
    nothing(out);
    assert_eq!(sim.respond(&o1, 11, 5 * MS).span_id, s(CHILD));
    assert_eq!(sim.respond(&o2, 11, 6 * MS).span_id, id(2));
    assert_eq!(sim.respond(&o3, 11, 7 * MS).span_id, s(CHILD2));
    assert_eq!(sim.respond(&a, 11, 8 * MS).span_id, id(1));
    // Background traffic reusing both child span ids, in another process.
    let (o4, out) = sim.outbound_in(7, 70, 9 * MS, "GET /config", &tp(N, CHILD));
    nothing(out);
    let (o5, out) = sim.outbound_in(7, 70, 10 * MS, "GET /config", &tp(N, CHILD2));
    nothing(out);
    assert_eq!(sim.respond(&o5, 70, 11 * MS).span_id, id(3));
    assert_eq!(
        sim.respond(&o4, 70, 12 * MS),
        Span {
            exchange: exchange(&o4, 70, 12 * MS),
            trace_id: Some(t(N)),
            span_id: id(4),
            parent_span_id: None,
            attribution: None,
        }
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 5,
            propagated: 3,
            background: 2,
            by_trace_id: 3,
            ..Default::default()
        }
    );
}

#[test]
fn zero_ids_from_the_source_are_skipped() {
    let ids = Scripted([7, 0, 9, 0, 0, 11].into());
    let mut sim = Sim::with_ids(Config::default(), Box::new(ids));
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let b = sim.inbound(12, 2 * MS, "GET /b", "");
    let (o, out) = sim.outbound(11, 3 * MS, "GET /c", &tp(A, A_SPAN));
    nothing(out);
    let client = sim.respond(&o, 11, 4 * MS);
    assert_eq!(
        (client.span_id, client.parent_span_id),
        (id(11), Some(id(7)))
    );
    assert_eq!(sim.respond(&a, 11, 5 * MS).span_id, id(7));
    assert_eq!(sim.respond(&b, 12, 6 * MS).span_id, id(9));
}

#[test]
fn background_client_spans_have_no_parent_and_no_attribution() {
    let mut sim = Sim::new();
    let (o1, out) = sim.outbound(11, MS, "GET /config", "");
    nothing(out);
    let (o2, out) = sim.outbound(11, 2 * MS, "GET /config", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.respond(&o1, 11, 3 * MS),
        Span {
            exchange: exchange(&o1, 11, 3 * MS),
            trace_id: None,
            span_id: id(1),
            parent_span_id: None,
            attribution: None,
        }
    );
    assert_eq!(
        sim.respond(&o2, 11, 4 * MS),
        Span {
            exchange: exchange(&o2, 11, 4 * MS),
            trace_id: Some(t(N)),
            span_id: s(N_SPAN),
            parent_span_id: None,
            attribution: None,
        }
    );
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            outbound: 2,
            background: 2,
            ..Default::default()
        }
    );
}

#[test]
fn ambiguous_client_spans_have_no_parent() {
    let mut sim = Sim::new();
    sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    sim.inbound(12, MS, "GET /health", "");
    let (o, out) = sim.outbound(13, 2 * MS, "GET /x", &tp(N, N_SPAN));
    nothing(out);
    assert_eq!(
        sim.respond(&o, 13, 3 * MS),
        Span {
            exchange: exchange(&o, 13, 3 * MS),
            trace_id: Some(t(N)),
            span_id: s(N_SPAN),
            parent_span_id: None,
            attribution: Some(Attribution::Ambiguous),
        }
    );
}

#[test]
fn abandoned_requests_get_no_span() {
    let mut sim = Sim::new();
    let a = sim.inbound(11, MS, "GET /a", &tp(A, A_SPAN));
    let (o, out) = sim.outbound(11, 2 * MS, "GET /x", &tp(A, CHILD));
    nothing(out);
    sim.abandon(&o, 11, 3 * MS);
    sim.abandon(&a, 11, 4 * MS);
    // The link was dropped: a late exchange for it (the tracker never sends one) is unattributed.
    assert_eq!(sim.respond(&o, 11, 5 * MS).attribution, None);
    assert_eq!(
        sim.stats(),
        CorrelatorStats {
            inbound: 1,
            outbound: 1,
            propagated: 1,
            by_trace_id: 1,
            ..Default::default()
        }
    );
}
