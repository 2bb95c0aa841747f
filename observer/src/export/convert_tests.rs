use super::*;
use std::sync::Arc;

use crate::record::{Attribution, BreakInbound, BreakOutbound, BreakReason, SpanKind};
use crate::text::inline_str;

const CONTAINER_ID: &str = "3f4bfa1e9d1c07d2b4d7a5e81c0f5e2ab8ad93e5ff0c1d9e4f1a2b3c4d5e6f70";

fn meta(pid: u32, service: &str) -> Arc<ProcessMeta> {
    Arc::new(ProcessMeta {
        pid,
        service: service.into(),
        executable: Some("python3.11".into()),
        command: Some("python3".into()),
        container_id: Some(CONTAINER_ID.into()),
        ..ProcessMeta::default()
    })
}

fn span_rec(pid: u32, kind: SpanKind, status: u16, span_id: &str) -> SpanRecord {
    SpanRecord {
        kind,
        pid,
        tid: pid + 1,
        service: "orders".into(),
        method: Some("GET".into()),
        path: Some("/stock".into()),
        host: Some("inventory:8080".into()),
        status,
        peer: Some(inline_str("10.1.2.3:8080")),
        trace_id: Some(inline_str("4bf92f3577b34da6a3ce929d0e0e4736")),
        span_id: inline_str(span_id),
        parent_span_id: Some(inline_str("00f067aa0ba902b7")),
        start: Default::default(),
        duration_ms: 1.0,
        attribution: (kind == SpanKind::Client).then_some(Attribution::Thread),
        user_agent: Some("curl/8".into()),
        cgroup: None,
        container_id: None,
        k8s: None,
        process: meta(pid, "orders"),
        start_unix_ns: 1_000,
        end_unix_ns: 2_000,
    }
}

fn break_rec(pid: u32, server_span: &str) -> BreakRecord {
    BreakRecord {
        reason: BreakReason::Missing,
        attribution: Attribution::Thread,
        pid,
        tid: pid + 1,
        service: "orders".into(),
        inbound: BreakInbound {
            trace_id: Some(inline_str("4bf92f3577b34da6a3ce929d0e0e4736")),
            span_id: Some(inline_str("00f067aa0ba902b7")),
            method: Some("GET".into()),
            path: Some("/orders".into()),
        },
        outbound: BreakOutbound {
            method: "GET".into(),
            path: "/stock".into(),
            host: Some("inventory:8080".into()),
            peer: Some(inline_str("10.1.2.3:8080")),
            trace_id: None,
        },
        missing: vec!["traceparent", "tracestate"],
        time: Default::default(),
        server_span_id: Some(inline_str(server_span)),
        cgroup: None,
        container_id: None,
        k8s: None,
        process: meta(pid, "orders"),
        time_unix_ns: 1_500,
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn host() -> HostInfo {
    HostInfo {
        host_name: "node-1".into(),
        extra: vec![
            ("deployment.environment".into(), "prod".into()),
            ("service.name".into(), "ignored".into()),
        ],
    }
}

#[test]
fn ids_as_bytes() {
    assert_eq!(
        trace_id_bytes("4bf92f3577b34da6a3ce929d0e0e4736")
            .unwrap()
            .len(),
        16
    );
    let short = trace_id_bytes("463ac35c9f6413ad").unwrap();
    assert_eq!(&short[..8], &[0; 8], "64-bit B3 ids are left-padded");
    assert_eq!(trace_id_bytes("0"), None);
    assert_eq!(trace_id_bytes("zz"), None);
    assert_eq!(
        span_id_bytes("00f067aa0ba902b7").unwrap(),
        vec![0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
}

#[test]
fn server_span_follows_http_semantic_conventions() {
    let sp = span(&span_rec(7, SpanKind::Server, 200, "53995c3f42cd8ad8"));
    assert_eq!(sp.name, "GET");
    assert_eq!(sp.kind, span::SpanKind::Server as i32);
    assert_eq!(
        sp.trace_id,
        trace_id_bytes("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        sp.parent_span_id,
        span_id_bytes("00f067aa0ba902b7").unwrap()
    );
    assert_eq!(
        (sp.start_time_unix_nano, sp.end_time_unix_nano),
        (1_000, 2_000)
    );
    let a = &sp.attributes;
    assert_eq!(
        attr(a, "http.request.method"),
        Some(&any_value::Value::StringValue("GET".into()))
    );
    assert_eq!(
        attr(a, "url.path"),
        Some(&any_value::Value::StringValue("/stock".into()))
    );
    assert_eq!(
        attr(a, "url.scheme"),
        Some(&any_value::Value::StringValue("http".into()))
    );
    assert_eq!(
        attr(a, "server.address"),
        Some(&any_value::Value::StringValue("inventory".into()))
    );
    assert_eq!(
        attr(a, "server.port"),
        Some(&any_value::Value::IntValue(8080))
    );
    assert_eq!(
        attr(a, "network.peer.address"),
        Some(&any_value::Value::StringValue("10.1.2.3".into()))
    );
    assert_eq!(
        attr(a, "network.peer.port"),
        Some(&any_value::Value::IntValue(8080))
    );
    assert_eq!(
        attr(a, "http.response.status_code"),
        Some(&any_value::Value::IntValue(200))
    );
    assert_eq!(
        attr(a, "user_agent.original"),
        Some(&any_value::Value::StringValue("curl/8".into()))
    );
    assert_eq!(sp.status.unwrap().code, status::StatusCode::Unset as i32);
}

#[test]
fn error_status_for_5xx_and_client_4xx_only() {
    let err = status::StatusCode::Error as i32;
    assert_eq!(
        span(&span_rec(1, SpanKind::Server, 503, "1111111111111111"))
            .status
            .unwrap()
            .code,
        err
    );
    assert_eq!(
        span(&span_rec(1, SpanKind::Client, 503, "1111111111111111"))
            .status
            .unwrap()
            .code,
        err
    );
    assert_eq!(
        span(&span_rec(1, SpanKind::Client, 404, "1111111111111111"))
            .status
            .unwrap()
            .code,
        err
    );
    assert_ne!(
        span(&span_rec(1, SpanKind::Server, 404, "1111111111111111"))
            .status
            .unwrap()
            .code,
        err
    );
}

#[test]
fn untraced_requests_start_new_traces() {
    let mut r = span_rec(1, SpanKind::Server, 200, "1111111111111111");
    r.trace_id = None;
    r.parent_span_id = None;
    let a = span(&r);
    let b = span(&r);
    assert_eq!(a.trace_id.len(), 16);
    assert_ne!(a.trace_id, vec![0; 16]);
    assert_ne!(a.trace_id, b.trace_id);
    assert!(a.parent_span_id.is_empty());
}

#[test]
fn one_resource_per_process_and_break_events_on_server_spans() {
    let spans = vec![
        span_rec(7, SpanKind::Server, 200, "53995c3f42cd8ad8"),
        span_rec(7, SpanKind::Client, 200, "1fe4c6b5d2a9c801"),
        span_rec(9, SpanKind::Server, 200, "2222222222222222"),
    ];
    let req = traces(&spans, &[break_rec(7, "53995c3f42cd8ad8")], &host());
    assert_eq!(req.resource_spans.len(), 2);
    let r7 = &req.resource_spans[0];
    let res = &r7.resource.as_ref().unwrap().attributes;
    assert_eq!(
        attr(res, "service.name"),
        Some(&any_value::Value::StringValue("orders".into())),
        "process wins over OTEL_RESOURCE_ATTRIBUTES"
    );
    assert_eq!(
        attr(res, "process.pid"),
        Some(&any_value::Value::IntValue(7))
    );
    assert_eq!(
        attr(res, "process.executable.name"),
        Some(&any_value::Value::StringValue("python3.11".into()))
    );
    assert_eq!(
        attr(res, "process.command"),
        Some(&any_value::Value::StringValue("python3".into()))
    );
    assert_eq!(
        attr(res, "host.name"),
        Some(&any_value::Value::StringValue("node-1".into()))
    );
    assert_eq!(
        attr(res, "deployment.environment"),
        Some(&any_value::Value::StringValue("prod".into()))
    );
    let spans7 = &r7.scope_spans[0].spans;
    assert_eq!(spans7.len(), 2);
    assert_eq!(
        spans7[0].events.len(),
        1,
        "the break is an event of its server span"
    );
    assert_eq!(spans7[0].events[0].name, EVENT_NAME);
    assert!(spans7[1].events.is_empty());
    assert_eq!(r7.scope_spans[0].scope.as_ref().unwrap().name, "observer");
}

#[test]
fn a_break_is_a_warn_event_log_record_linked_to_its_trace() {
    let b = break_rec(7, "53995c3f42cd8ad8");
    let req = logs(std::slice::from_ref(&b), &host(), 9_999);
    let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(rec.event_name, EVENT_NAME);
    assert_eq!(rec.severity_number, SeverityNumber::Warn as i32);
    assert_eq!(rec.severity_text, "WARN");
    assert_eq!(
        rec.trace_id,
        trace_id_bytes("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(rec.span_id, span_id_bytes("53995c3f42cd8ad8").unwrap());
    assert_eq!(
        (rec.time_unix_nano, rec.observed_time_unix_nano),
        (1_500, 9_999)
    );
    let body = match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        body,
        "orders (pid 7) called GET inventory:8080/stock without the trace headers of trace 4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let a = &rec.attributes;
    assert_eq!(
        attr(a, "observer.break.reason"),
        Some(&any_value::Value::StringValue("missing".into()))
    );
    assert_eq!(
        attr(a, "observer.break.attribution"),
        Some(&any_value::Value::StringValue("thread".into()))
    );
    assert_eq!(
        attr(a, "observer.inbound.trace_id"),
        Some(&any_value::Value::StringValue(
            "4bf92f3577b34da6a3ce929d0e0e4736".into()
        ))
    );
    assert_eq!(
        attr(a, "server.address"),
        Some(&any_value::Value::StringValue("inventory".into()))
    );
    assert_eq!(
        attr(a, "server.port"),
        Some(&any_value::Value::IntValue(8080))
    );
    match attr(a, "observer.break.missing") {
        Some(any_value::Value::ArrayValue(v)) => assert_eq!(v.values.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn partial_and_mismatch_bodies() {
    let mut b = break_rec(7, "53995c3f42cd8ad8");
    b.reason = BreakReason::Partial;
    b.missing = vec!["x-b3-sampled"];
    assert!(
        break_body(&b).ends_with("without x-b3-sampled of trace 4bf92f3577b34da6a3ce929d0e0e4736"),
        "{}",
        break_body(&b)
    );
    b.reason = BreakReason::Mismatch;
    b.outbound.trace_id = Some(inline_str("5b8efff798038103d269b633813fc60c"));
    assert!(
        break_body(&b).contains("with trace 5b8efff798038103d269b633813fc60c instead"),
        "{}",
        break_body(&b)
    );
}

#[test]
fn metrics_are_cumulative_counters_with_attributes() {
    let mut c = Counters::default();
    c.inbound.insert("orders".into(), 5);
    c.breaks.insert(
        ("orders".into(), "inventory:8080".into(), "missing".into()),
        2,
    );
    c.capture.insert("ringbuf_drops", 3);
    c.export_failures.insert("traces", 1);
    c.queue_depth.insert("traces", 4);
    let req = metrics(&c, &host(), 10, 20);
    let ms = &req.resource_metrics[0].scope_metrics[0].metrics;
    let find = |n: &str| {
        ms.iter()
            .find(|m| m.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    match find("observer.propagation.breaks").data.as_ref() {
        Some(metric::Data::Sum(s)) => {
            assert!(s.is_monotonic);
            assert_eq!(
                s.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
            assert_eq!(
                s.data_points[0].value,
                Some(number_data_point::Value::AsInt(2))
            );
            assert_eq!(
                attr(&s.data_points[0].attributes, "observer.break.reason"),
                Some(&any_value::Value::StringValue("missing".into()))
            );
            assert_eq!(
                (
                    s.data_points[0].start_time_unix_nano,
                    s.data_points[0].time_unix_nano
                ),
                (10, 20)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        find("observer.export.queue_depth").data,
        Some(metric::Data::Gauge(_))
    ));
    for n in [
        "observer.requests.inbound",
        "observer.requests.outbound",
        "observer.capture",
        "observer.events",
        "observer.export.failures",
        "observer.export.dropped",
    ] {
        find(n);
    }
}

/// The summary's counters under `observer.capture` and `observer.events`: these names, these
/// values, and no others.
#[test]
fn summary_counters_exported_as_metrics() {
    let mut s = crate::record::SummaryRecord {
        inbound: 1,
        outbound: 2,
        propagated: 3,
        unknown: 4,
        unattributed: 5,
        untraced: 6,
        background: 7,
        telemetry: 8,
        ..Default::default()
    };
    let cap = &mut s.capture;
    cap.records = 10;
    cap.decode_errors = 11;
    cap.ringbuf_drops = 12;
    cap.capped = 13;
    cap.iov_cut = 14;
    cap.read_faults = 15;
    cap.unread_socket_calls = 16;
    cap.truncated_heads = 17;
    cap.unparsable_heads = 18;
    cap.lost_heads = 19;
    cap.connections = 20;
    cap.connections_evicted_idle = 21;
    cap.connections_evicted_overflow = 22;
    s.breaks.missing = 30;
    let mut c = Counters::default();
    c.set_summary(&s);
    assert_eq!(c.events, 10);
    let want: BTreeMap<&str, u64> = [
        ("ringbuf_drops", 12),
        ("truncated_heads", 17),
        ("unparsable_heads", 18),
        ("lost_heads", 19),
        ("capped", 13),
        ("iov_cut", 14),
        ("decode_errors", 11),
        ("unknown", 4),
        ("unattributed", 5),
        ("connections_evicted_idle", 21),
        ("connections_evicted_overflow", 22),
    ]
    .into_iter()
    .collect();
    assert_eq!(c.capture, want);
}

#[test]
fn kubernetes_resource_attributes_of_a_pod_process() {
    use crate::k8s::{K8sMeta, PodMeta, Workload, WorkloadKind};
    let uid = "1fa938dc-45eb-4328-8b9c-7414c40e8b1f";
    let pod = PodMeta {
        uid: uid.into(),
        namespace: "shop".into(),
        name: "checkout-7d9f8b6c5d-x2x7q".into(),
        node: Some("node-a".into()),
        controller: Some(Workload {
            kind: WorkloadKind::ReplicaSet,
            name: "checkout-7d9f8b6c5d".into(),
        }),
        workload: Some(Workload {
            kind: WorkloadKind::Deployment,
            name: "checkout".into(),
        }),
        ..PodMeta::default()
    };
    let mut m = (*meta(7, "checkout")).clone();
    m.pod_uid = Some(uid.into());
    m.k8s = Some(Arc::new(K8sMeta {
        pod: Arc::new(pod),
        container: Some("checkout".into()),
    }));
    let mut rec = span_rec(7, SpanKind::Server, 200, "53995c3f42cd8ad8");
    rec.process = Arc::new(m);
    let req = traces(&[rec], &[], &host());
    let res = &req.resource_spans[0].resource.as_ref().unwrap().attributes;
    for (key, value) in [
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "checkout-7d9f8b6c5d-x2x7q"),
        ("k8s.pod.uid", uid),
        ("k8s.container.name", "checkout"),
        ("k8s.node.name", "node-a"),
        ("k8s.replicaset.name", "checkout-7d9f8b6c5d"),
        ("k8s.deployment.name", "checkout"),
        ("container.id", CONTAINER_ID),
    ] {
        assert_eq!(
            attr(res, key),
            Some(&any_value::Value::StringValue(value.into())),
            "{key}"
        );
    }
    assert_eq!(res.iter().filter(|a| a.key == "k8s.pod.uid").count(), 1);
    for absent in ["k8s.statefulset.name", "k8s.job.name", "k8s.cronjob.name"] {
        assert_eq!(attr(res, absent), None, "{absent}");
    }
}
