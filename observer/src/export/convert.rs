//! Records -> OTLP requests. Pure.
//!
//! * Spans: one resource per observed process (`service.name`, `process.pid`,
//!   `process.executable.name`, `process.command`, `process.runtime.{name,version}` (Go),
//!   `container.id`, the `k8s.*` attributes of its pod, `host.name`, plus
//!   OTEL_RESOURCE_ATTRIBUTES),
//!   attributes per the OpenTelemetry HTTP semantic conventions, name = method (no route is
//!   known), status Error for 5xx and, on client spans, 4xx. A span whose request carried no
//!   trace id starts a new trace (random id). Breaks attributed to a server span become span
//!   events on it.
//! * Break alerts: log records (event `observer.propagation_break`, severity WARN) with the
//!   inbound trace id and the server span id, so a backend links the alert to its trace.
//! * Metrics: cumulative counters on one resource, the observer's own.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

use crate::record::{
    BreakReason, BreakRecord, Otlp, ProcessMeta, SUMMARY_COUNTERS, SpanKind, SpanRecord,
    SummaryRecord,
};

pub const EVENT_NAME: &str = "observer.propagation_break";
const SCOPE: &str = "observer";

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    })
}

/// Host-wide facts added to every resource.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    pub host_name: String,
    /// OTEL_RESOURCE_ATTRIBUTES.
    pub extra: Vec<(String, String)>,
}

fn resource(p: &ProcessMeta, host: &HostInfo) -> Resource {
    let mut attributes = vec![
        s("service.name", p.service.clone()),
        i("process.pid", i64::from(p.pid)),
    ];
    if let Some(e) = &p.executable {
        attributes.push(s("process.executable.name", e.clone()));
    }
    if let Some(c) = &p.command {
        attributes.push(s("process.command", c.clone()));
    }
    if let Some(name) = p.runtime.name() {
        attributes.push(s("process.runtime.name", name.to_owned()));
    }
    if let Some(v) = p.runtime.version() {
        attributes.push(s("process.runtime.version", v.to_owned()));
    }
    if let Some(c) = &p.container_id {
        attributes.push(s("container.id", c.clone()));
    }
    if let Some(k) = &p.k8s {
        attributes.extend(k.attributes().into_iter().map(|(k, v)| s(k, v)));
    } else if let Some(u) = &p.pod_uid {
        attributes.push(s("k8s.pod.uid", u.clone()));
    }
    attributes.push(s("host.name", host.host_name.clone()));
    for (k, v) in &host.extra {
        // The process's own facts win over configured ones.
        if !attributes.iter().any(|a| &a.key == k) {
            attributes.push(s(k, v.clone()));
        }
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

/// 16 bytes of a trace id in hex (32 or, for 64-bit B3 ids, 16 digits, left-padded).
pub fn trace_id_bytes(hex: &str) -> Option<Vec<u8>> {
    let v = u128::from_str_radix(hex, 16)
        .ok()
        .filter(|v| *v != 0 && hex.len() <= 32)?;
    Some(v.to_be_bytes().to_vec())
}

pub fn span_id_bytes(hex: &str) -> Option<Vec<u8>> {
    let v = u64::from_str_radix(hex, 16)
        .ok()
        .filter(|v| *v != 0 && hex.len() <= 16)?;
    Some(v.to_be_bytes().to_vec())
}

fn host_port(host: &str) -> (String, Option<i64>) {
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => match p.parse::<u16>() {
            Ok(port) => (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                Some(i64::from(port)),
            ),
            Err(_) => (host.to_owned(), None),
        },
        _ => (host.to_owned(), None),
    }
}

fn span_attributes(r: &SpanRecord) -> Vec<KeyValue> {
    let mut a = Vec::new();
    if let Some(m) = &r.method {
        a.push(s("http.request.method", m.clone()));
    }
    if let Some(p) = &r.path {
        a.push(s("url.path", p.clone()));
    }
    a.push(s("url.scheme", "http"));
    let peer: Option<SocketAddr> = r.peer.as_deref().and_then(|p| p.parse().ok());
    // server.address: the Host header, else (client side) the address dialled.
    let server = match (&r.host, r.kind, peer) {
        (Some(h), _, _) => Some(host_port(h)),
        (None, SpanKind::Client, Some(p)) => Some((p.ip().to_string(), Some(i64::from(p.port())))),
        _ => None,
    };
    if let Some((host, port)) = server {
        a.push(s("server.address", host));
        if let Some(port) = port {
            a.push(i("server.port", port));
        }
    }
    if let Some(p) = peer {
        a.push(s("network.peer.address", p.ip().to_string()));
        a.push(i("network.peer.port", i64::from(p.port())));
    }
    a.push(i("http.response.status_code", i64::from(r.status)));
    if let Some(ua) = &r.user_agent {
        a.push(s("user_agent.original", ua.clone()));
    }
    if let Some(att) = r.attribution {
        a.push(s("observer.attribution", att.as_str()));
    }
    a
}

fn break_attributes(b: &BreakRecord) -> Vec<KeyValue> {
    let mut a = vec![
        s("observer.break.reason", b.reason.as_str()),
        s("observer.break.attribution", b.attribution.as_str()),
    ];
    if let Some(t) = &b.inbound.trace_id {
        a.push(s("observer.inbound.trace_id", t.as_str()));
    }
    if let Some(sp) = &b.inbound.span_id {
        a.push(s("observer.inbound.span_id", sp.as_str()));
    }
    a.push(s("http.request.method", b.outbound.method.clone()));
    a.push(s("url.path", b.outbound.path.clone()));
    let peer: Option<SocketAddr> = b.outbound.peer.as_deref().and_then(|p| p.parse().ok());
    match (&b.outbound.host, peer) {
        (Some(h), _) => {
            let (host, port) = host_port(h);
            a.push(s("server.address", host));
            if let Some(port) = port {
                a.push(i("server.port", port));
            }
        }
        (None, Some(p)) => {
            a.push(s("server.address", p.ip().to_string()));
            a.push(i("server.port", i64::from(p.port())));
        }
        _ => {}
    }
    if let Some(t) = &b.outbound.trace_id {
        a.push(s("observer.outbound.trace_id", t.as_str()));
    }
    let missing = b
        .missing
        .iter()
        .map(|m| AnyValue {
            value: Some(any_value::Value::StringValue((*m).into())),
        })
        .collect();
    a.push(kv(
        "observer.break.missing",
        any_value::Value::ArrayValue(ArrayValue { values: missing }),
    ));
    a
}

/// The alert text.
pub fn break_body(b: &BreakRecord) -> String {
    let dest = format!(
        "{} {}{}",
        b.outbound.method,
        b.outbound
            .host
            .as_deref()
            .or(b.outbound.peer.as_deref())
            .unwrap_or("?"),
        b.outbound.path
    );
    let trace = b
        .inbound
        .trace_id
        .as_deref()
        .map(|t| format!(" of trace {t}"))
        .unwrap_or_default();
    match b.reason {
        BreakReason::Missing => format!(
            "{} (pid {}) called {dest} without the trace headers{trace}",
            b.service, b.pid
        ),
        BreakReason::Mismatch => format!(
            "{} (pid {}) called {dest} with trace {} instead of the trace headers{trace}",
            b.service,
            b.pid,
            b.outbound.trace_id.as_deref().unwrap_or("?")
        ),
        BreakReason::Partial => format!(
            "{} (pid {}) called {dest} without {}{trace}",
            b.service,
            b.pid,
            b.missing.join(", ")
        ),
    }
}

/// A random non-zero id of `n` bytes.
fn random_id(n: usize) -> Vec<u8> {
    loop {
        let v: u128 = rand::random();
        if v != 0 {
            return v.to_be_bytes()[16 - n..].to_vec();
        }
    }
}

/// One span (without events).
pub fn span(r: &SpanRecord) -> Span {
    let trace_id = r
        .trace_id
        .as_deref()
        .and_then(trace_id_bytes)
        .unwrap_or_else(|| random_id(16));
    let status_error =
        r.status >= 500 || (r.kind == SpanKind::Client && (400..500).contains(&r.status));
    Span {
        trace_id,
        span_id: span_id_bytes(&r.span_id).unwrap_or_else(|| random_id(8)),
        parent_span_id: r
            .parent_span_id
            .as_deref()
            .and_then(span_id_bytes)
            .unwrap_or_default(),
        name: r.method.as_deref().unwrap_or("HTTP").to_owned(),
        kind: if r.kind == SpanKind::Server {
            span::SpanKind::Server as i32
        } else {
            span::SpanKind::Client as i32
        },
        start_time_unix_nano: r.start_unix_ns,
        end_time_unix_nano: r.end_unix_ns,
        attributes: span_attributes(r),
        status: Some(Status {
            code: if status_error {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// Spans grouped by process into one request; `events` are the breaks to attach to server spans
/// (by their span id).
pub fn traces<'a>(
    spans: impl IntoIterator<Item = &'a SpanRecord>,
    breaks: &[BreakRecord],
    host: &HostInfo,
) -> ExportTraceServiceRequest {
    let mut by_pid: BTreeMap<u32, (&ProcessMeta, Vec<Span>)> = BTreeMap::new();
    for r in spans {
        let mut sp = span(r);
        if r.kind == SpanKind::Server {
            for b in breaks
                .iter()
                .filter(|b| b.server_span_id.as_deref() == Some(r.span_id.as_str()))
            {
                sp.events.push(span::Event {
                    time_unix_nano: b.time_unix_ns,
                    name: EVENT_NAME.into(),
                    attributes: break_attributes(b),
                    ..Default::default()
                });
            }
        }
        by_pid
            .entry(r.pid)
            .or_insert_with(|| (&r.process, Vec::new()))
            .1
            .push(sp);
    }
    ExportTraceServiceRequest {
        resource_spans: by_pid
            .into_values()
            .map(|(p, spans)| ResourceSpans {
                resource: Some(resource(p, host)),
                scope_spans: vec![ScopeSpans {
                    scope: scope(),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Break alerts grouped by process into one request.
pub fn logs(breaks: &[BreakRecord], host: &HostInfo, observed_ns: u64) -> ExportLogsServiceRequest {
    let mut by_pid: BTreeMap<u32, (&ProcessMeta, Vec<LogRecord>)> = BTreeMap::new();
    for b in breaks {
        let record = LogRecord {
            time_unix_nano: b.time_unix_ns,
            observed_time_unix_nano: observed_ns,
            severity_number: SeverityNumber::Warn as i32,
            severity_text: "WARN".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(break_body(b))),
            }),
            attributes: break_attributes(b),
            trace_id: b
                .inbound
                .trace_id
                .as_deref()
                .and_then(trace_id_bytes)
                .unwrap_or_default(),
            span_id: b
                .server_span_id
                .as_deref()
                .and_then(span_id_bytes)
                .unwrap_or_default(),
            event_name: EVENT_NAME.into(),
            ..Default::default()
        };
        by_pid
            .entry(b.pid)
            .or_insert_with(|| (&b.process, Vec::new()))
            .1
            .push(record);
    }
    ExportLogsServiceRequest {
        resource_logs: by_pid
            .into_values()
            .map(|(p, log_records)| ResourceLogs {
                resource: Some(resource(p, host)),
                scope_logs: vec![ScopeLogs {
                    scope: scope(),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Cumulative counters, keyed by attribute sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// service -> inbound requests (server spans).
    pub inbound: BTreeMap<String, u64>,
    /// (service, peer) -> outbound requests (client spans).
    pub outbound: BTreeMap<(String, String), u64>,
    /// (service, peer, reason) -> breaks.
    pub breaks: BTreeMap<(String, String, String), u64>,
    /// Capture health and results, by name (`ringbuf_drops`, `truncated_heads`, `unknown`, ...).
    pub capture: BTreeMap<&'static str, u64>,
    /// Records handled by the pipeline.
    pub events: u64,
    /// signal -> failed export attempts / items dropped because the queue was full.
    pub export_failures: BTreeMap<&'static str, u64>,
    pub export_dropped: BTreeMap<&'static str, u64>,
    /// signal -> items waiting (a gauge).
    pub queue_depth: BTreeMap<&'static str, u64>,
}

impl Counters {
    /// Takes the summary's counters that OTLP exports (see [`SUMMARY_COUNTERS`]).
    pub fn set_summary(&mut self, s: &SummaryRecord) {
        for m in SUMMARY_COUNTERS.iter().flat_map(|f| f.members) {
            match m.otlp {
                Otlp::Capture(name) => {
                    self.capture.insert(name, (m.value)(s));
                }
                Otlp::Events => self.events = (m.value)(s),
                Otlp::No => {}
            }
        }
    }
}

fn point(attrs: Vec<KeyValue>, start: u64, now: u64, v: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsInt(v as i64)),
        ..Default::default()
    }
}

fn sum(name: &str, description: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "{count}".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

pub fn metrics(c: &Counters, host: &HostInfo, start: u64, now: u64) -> ExportMetricsServiceRequest {
    let mut m = vec![
        sum(
            "observer.requests.inbound",
            "Inbound HTTP requests seen, by service",
            c.inbound
                .iter()
                .map(|(svc, v)| point(vec![s("service.name", svc.clone())], start, now, *v))
                .collect(),
        ),
        sum(
            "observer.requests.outbound",
            "Outbound HTTP requests seen, by service and peer",
            c.outbound
                .iter()
                .map(|((svc, peer), v)| {
                    point(
                        vec![
                            s("service.name", svc.clone()),
                            s("server.address", peer.clone()),
                        ],
                        start,
                        now,
                        *v,
                    )
                })
                .collect(),
        ),
        sum(
            "observer.propagation.breaks",
            "Outbound requests that lost the trace context, by service, peer and reason",
            c.breaks
                .iter()
                .map(|((svc, peer, reason), v)| {
                    point(
                        vec![
                            s("service.name", svc.clone()),
                            s("server.address", peer.clone()),
                            s("observer.break.reason", reason.clone()),
                        ],
                        start,
                        now,
                        *v,
                    )
                })
                .collect(),
        ),
        sum(
            "observer.capture",
            "Capture health and result counters (ring-buffer drops, truncated heads, unknown, unattributed, ...)",
            c.capture
                .iter()
                .map(|(k, v)| point(vec![s("observer.counter", *k)], start, now, *v))
                .collect(),
        ),
        sum(
            "observer.events",
            "Kernel records handled",
            vec![point(Vec::new(), start, now, c.events)],
        ),
        sum(
            "observer.export.failures",
            "Failed export attempts, by signal",
            c.export_failures
                .iter()
                .map(|(k, v)| point(vec![s("signal", *k)], start, now, *v))
                .collect(),
        ),
        sum(
            "observer.export.dropped",
            "Items dropped because the export queue was full, by signal",
            c.export_dropped
                .iter()
                .map(|(k, v)| point(vec![s("signal", *k)], start, now, *v))
                .collect(),
        ),
    ];
    m.push(Metric {
        name: "observer.export.queue_depth".into(),
        description: "Items waiting to be exported, by signal".into(),
        unit: "{item}".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: c
                .queue_depth
                .iter()
                .map(|(k, v)| point(vec![s("signal", *k)], start, now, *v))
                .collect(),
        })),
        ..Default::default()
    });
    let me = ProcessMeta {
        pid: std::process::id(),
        service: "observer".into(),
        executable: Some("observer".into()),
        ..ProcessMeta::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(&me, host)),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: m,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
