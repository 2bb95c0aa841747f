use super::*;
use crate::text::inline_str;

use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::{Protocol, SignalConfig};
use crate::record::{Attribution, BreakInbound, BreakOutbound, BreakReason, ProcessMeta};
use crate::testutil::{eventually, server_span};

/// What an in-process OTLP receiver got.
#[derive(Clone, Default)]
struct Received {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    auth: Arc<Mutex<Vec<String>>>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Received {
    fn spans(&self) -> usize {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
    fn log_records(&self) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum()
    }
    fn note_auth<T>(&self, r: &tonic::Request<T>) {
        if let Some(v) = r
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            self.auth.lock().unwrap().push(v.to_owned());
        }
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.note_auth(&r);
        self.traces.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.note_auth(&r);
        self.logs.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(r.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

fn serve_grpc(addr: SocketAddr, rx: Received) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(rx.clone()))
            .add_service(LogsServiceServer::new(rx.clone()))
            .add_service(MetricsServiceServer::new(rx))
            .serve(addr)
            .await;
    })
}

/// A minimal OTLP/HTTP receiver: decodes the protobuf body by path, answers 200 (or `status`).
fn serve_http(
    listener: tokio::net::TcpListener,
    rx: Received,
    status: u16,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut req = httparse::Request::new(&mut headers);
                    let Ok(httparse::Status::Complete(n)) = req.parse(&buf) else {
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                        continue;
                    };
                    let len: usize = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                        .unwrap_or(0);
                    let path = req.path.unwrap_or("").to_owned();
                    if let Some(a) = req
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    {
                        rx.auth
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(a.value).into_owned());
                    }
                    while buf.len() < n + len {
                        let mut chunk = [0u8; 8192];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..n + len).skip(n).collect();
                    rx.paths.lock().unwrap().push(path.clone());
                    if status == 200 {
                        match path.as_str() {
                            "/v1/traces" => rx
                                .traces
                                .lock()
                                .unwrap()
                                .push(ExportTraceServiceRequest::decode(&body[..]).unwrap()),
                            "/v1/logs" => rx
                                .logs
                                .lock()
                                .unwrap()
                                .push(ExportLogsServiceRequest::decode(&body[..]).unwrap()),
                            "/v1/metrics" => rx
                                .metrics
                                .lock()
                                .unwrap()
                                .push(ExportMetricsServiceRequest::decode(&body[..]).unwrap()),
                            _ => {}
                        }
                    }
                    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn cfg(protocol: Protocol, base: &str) -> ExportConfig {
    let sig = |path: &str| SignalConfig {
        endpoint: match protocol {
            Protocol::Grpc => base.to_owned(),
            Protocol::HttpProtobuf => format!("{base}{path}"),
        },
        protocol,
        headers: vec![("authorization".into(), "Bearer test-token".into())],
        timeout: Duration::from_secs(2),
    };
    ExportConfig {
        traces: sig("/v1/traces"),
        logs: sig("/v1/logs"),
        metrics: sig("/v1/metrics"),
        resource: Vec::new(),
    }
}

fn meta() -> Arc<ProcessMeta> {
    Arc::new(ProcessMeta {
        pid: 42,
        service: "orders".into(),
        ..ProcessMeta::default()
    })
}

fn span_record(n: u64) -> Record {
    Record::Span(server_span(n))
}

fn break_record() -> Record {
    Record::Break(BreakRecord {
        reason: BreakReason::Missing,
        attribution: Attribution::Thread,
        pid: 42,
        tid: 43,
        service: "orders".into(),
        inbound: BreakInbound {
            trace_id: Some(inline_str("4bf92f3577b34da6a3ce929d0e0e4736")),
            span_id: None,
            method: None,
            path: None,
        },
        outbound: BreakOutbound {
            method: "GET".into(),
            path: "/stock".into(),
            host: None,
            peer: Some(inline_str("127.0.0.1:9")),
            trace_id: None,
        },
        missing: vec!["traceparent"],
        time: Default::default(),
        server_span_id: Some(inline_str(&format!("{:016x}", 0x1000))),
        cgroup: None,
        container_id: None,
        k8s: None,
        process: meta(),
        time_unix_ns: 1,
    })
}

#[tokio::test]
async fn grpc_export_of_spans_alerts_and_metrics() {
    let addr = free_addr();
    let rx = Received::default();
    let server = serve_grpc(addr, rx.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let x = Exporter::start(
        cfg(Protocol::Grpc, &format!("http://{addr}")),
        HostInfo::default(),
    );
    x.record(&span_record(0));
    x.record(&span_record(1));
    x.record(&break_record());
    x.shutdown(Duration::from_secs(10)).await;
    assert_eq!(rx.spans(), 2);
    assert_eq!(rx.log_records(), 1);
    assert!(
        !rx.metrics.lock().unwrap().is_empty(),
        "final metrics on shutdown"
    );
    assert!(
        rx.auth
            .lock()
            .unwrap()
            .iter()
            .all(|a| a == "Bearer test-token")
            && !rx.auth.lock().unwrap().is_empty()
    );
    // The server span carries the break as an event.
    let traces = rx.traces.lock().unwrap();
    let events: usize = traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.events.len())
        .sum();
    assert_eq!(events, 1);
    server.abort();
}

#[tokio::test]
async fn http_protobuf_export_to_signal_paths() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rx = Received::default();
    let server = serve_http(listener, rx.clone(), 200);
    let x = Exporter::start(
        cfg(Protocol::HttpProtobuf, &format!("http://{addr}")),
        HostInfo::default(),
    );
    x.record(&span_record(0));
    x.record(&break_record());
    x.shutdown(Duration::from_secs(10)).await;
    assert_eq!(rx.spans(), 1);
    assert_eq!(rx.log_records(), 1);
    let paths = rx.paths.lock().unwrap().clone();
    for p in ["/v1/traces", "/v1/logs", "/v1/metrics"] {
        assert!(paths.iter().any(|x| x == p), "{p} in {paths:?}");
    }
    assert!(
        rx.auth
            .lock()
            .unwrap()
            .iter()
            .any(|a| a == "Bearer test-token")
    );
    server.abort();
}

/// The backend is down at first, then comes up: failures are counted, nothing is lost within the
/// queue bound, and export resumes.
#[tokio::test]
async fn backend_outage_then_recovery() {
    let addr = free_addr();
    let x = Exporter::start(
        cfg(Protocol::Grpc, &format!("http://{addr}")),
        HostInfo::default(),
    );
    for n in 0..5 {
        x.record(&span_record(n));
    }
    x.record(&break_record());
    eventually("failed attempts", 10, || x.losses().1 >= 2).await;
    let rx = Received::default();
    let server = serve_grpc(addr, rx.clone());
    eventually("export after recovery", 40, || {
        rx.spans() == 5 && rx.log_records() == 1
    })
    .await;
    assert_eq!(x.losses().0, 0, "nothing dropped within the bound");
    x.shutdown(Duration::from_secs(10)).await;
    server.abort();
}

/// A backend that refuses (HTTP 503): retried, counted, never blocking the caller.
#[tokio::test]
async fn refusing_backend_is_counted_and_never_blocks() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rx = Received::default();
    let server = serve_http(listener, rx.clone(), 503);
    let x = Exporter::start(
        cfg(Protocol::HttpProtobuf, &format!("http://{addr}")),
        HostInfo::default(),
    );
    let started = std::time::Instant::now();
    for n in 0..(QUEUE_CAP as u64 + 100) {
        x.record(&span_record(n));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "record() must not wait on the network"
    );
    eventually("refused attempts", 10, || x.losses().1 >= 1).await;
    assert!(
        x.losses().0 >= 100,
        "the oldest beyond the bound are dropped and counted: {:?}",
        x.losses()
    );
    assert!(rx.paths.lock().unwrap().iter().any(|p| p == "/v1/traces"));
    x.shutdown(Duration::from_millis(500)).await;
    server.abort();
}

#[test]
fn bounded_queue_drops_oldest_and_keeps_order() {
    let mut q = BoundedQueue::new(3);
    for i in 0..5 {
        q.push(i);
    }
    assert_eq!(q.dropped, 2);
    let batch = q.take(2);
    assert_eq!(batch, vec![2, 3]);
    q.push(5);
    q.push(6);
    // Putting a failed batch back keeps the bound: what does not fit is dropped and counted.
    q.put_back(batch);
    assert_eq!(q.len(), 3);
    assert_eq!(q.take(10), vec![4, 5, 6]);
    assert_eq!(q.dropped, 4);
}

/// A backend that accepts connections and never answers: each attempt times out, is counted, and
/// the capture path is never held up.
#[tokio::test]
async fn stalling_backend_times_out_and_never_blocks() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let mut c = cfg(Protocol::HttpProtobuf, &format!("http://{addr}"));
    for s in [&mut c.traces, &mut c.logs, &mut c.metrics] {
        s.timeout = Duration::from_millis(300);
    }
    let x = Exporter::start(c, HostInfo::default());
    let started = std::time::Instant::now();
    for n in 0..1000 {
        x.record(&span_record(n));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "record() must not wait on the backend"
    );
    eventually("timed-out attempts", 10, || x.losses().1 >= 1).await;
    let (dropped, failures) = x.shutdown(Duration::from_millis(500)).await;
    assert!(failures >= 1);
    assert_eq!(
        dropped, 1000,
        "what never got out is counted as dropped at shutdown"
    );
    hold.abort();
}
