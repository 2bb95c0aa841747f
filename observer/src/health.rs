//! `--listen ADDR`: `/healthz` (liveness), `/readyz` (readiness: the probes are attached) and
//! `/metrics` (the observer's own counters, Prometheus/OpenMetrics text) for the DaemonSet's
//! probes and for scraping.
//!
//! The main loop publishes a [`Snapshot`] of its counters on every tick ([`Health::publish`]); the
//! server only reads it, so a scrape never waits for, or slows, the capture.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::record::{Family, MetricKind, SUMMARY_COUNTERS, SummaryRecord};

/// Without a published snapshot for this long, the main loop is taken to be stuck: `/healthz` fails.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the main loop last published.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub summary: SummaryRecord,
    /// Processes with metadata in use (observed and seen).
    pub processes: u64,
    /// Of those, Go programs (attributed without the thread rule).
    pub go_processes: u64,
    /// OTLP export: items dropped and failed batches so far.
    pub export_dropped: u64,
    pub export_failures: u64,
}

#[derive(Debug)]
struct State {
    snapshot: Snapshot,
    published: Instant,
}

/// Shared between the main loop (writer) and the HTTP server (reader).
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    state: Mutex<State>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            ready: AtomicBool::new(false),
            state: Mutex::new(State {
                snapshot: Snapshot::default(),
                published: Instant::now(),
            }),
        }
    }
}

impl Health {
    /// The probes are attached: `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn publish(&self, snapshot: Snapshot) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.snapshot = snapshot;
        s.published = Instant::now();
    }

    fn read(&self) -> (Snapshot, Duration) {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (s.snapshot.clone(), s.published.elapsed())
    }

    /// The answer to one request: status, content type, body.
    pub fn answer(&self, method: &Method, path: &str) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        if method != Method::GET && method != Method::HEAD {
            return (StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n".into());
        }
        match path {
            "/healthz" => {
                let (_, age) = self.read();
                if age <= STALE_AFTER {
                    (StatusCode::OK, TEXT, "ok\n".into())
                } else {
                    let msg = format!("main loop silent for {} s\n", age.as_secs());
                    (StatusCode::SERVICE_UNAVAILABLE, TEXT, msg)
                }
            }
            "/readyz" if self.is_ready() => (StatusCode::OK, TEXT, "ready\n".into()),
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                "probes not attached yet\n".into(),
            ),
            "/metrics" => match render_metrics(&self.read().0, self.is_ready()) {
                Ok(body) => (
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n")),
            },
            _ => (
                StatusCode::NOT_FOUND,
                TEXT,
                "not found: /healthz, /readyz, /metrics\n".into(),
            ),
        }
    }
}

/// A snapshot as OpenMetrics text (pure).
pub fn render_metrics(s: &Snapshot, ready: bool) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector {
        s: s.clone(),
        ready,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct SnapshotCollector {
    s: Snapshot,
    ready: bool,
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

fn plain_counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

/// One family of the summary's counters: one sample per member, labelled when it has a label.
fn family(enc: &mut DescriptorEncoder, f: &Family, s: &SummaryRecord) -> std::fmt::Result {
    let metric_type = match f.kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
    };
    let mut m = enc.encode_descriptor(f.name, f.help, None, metric_type)?;
    let sample = |m: MetricEncoder, v: u64| match f.kind {
        MetricKind::Counter => ConstCounter::new(v).encode(m),
        MetricKind::Gauge => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m),
    };
    match (f.label, f.members) {
        (Some(label), members) => {
            for member in members {
                let labels = [(label, member.label)];
                sample(m.encode_family(&labels)?, (member.value)(s))?;
            }
            Ok(())
        }
        (None, [member]) => sample(m, (member.value)(s)),
        // An unlabelled family has one member (a test of the table holds it to that).
        (None, _) => Err(std::fmt::Error),
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            &mut enc,
            "observer_ready",
            "1 once the kernel probes are attached",
            u64::from(self.ready),
        )?;
        for f in SUMMARY_COUNTERS {
            family(&mut enc, f, &self.s.summary)?;
        }
        gauge(
            &mut enc,
            "observer_processes",
            "Processes with traffic seen and metadata cached",
            self.s.processes,
        )?;
        gauge(
            &mut enc,
            "observer_go_processes",
            "Of those, Go programs: their outbound calls are never attributed by thread",
            self.s.go_processes,
        )?;
        plain_counter(
            &mut enc,
            "observer_export_dropped",
            "OTLP items dropped (queue full or unsent at shutdown)",
            self.s.export_dropped,
        )?;
        plain_counter(
            &mut enc,
            "observer_export_failures",
            "OTLP batches that failed to send",
            self.s.export_failures,
        )
    }
}

/// Binds `addr` (before the capture loads, so a bad address fails fast).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, HealthError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HealthError::Bind { addr, source })
}

/// Serves until the runtime ends; one task per connection, HTTP/1.1.
pub async fn serve(listener: tokio::net::TcpListener, health: Arc<Health>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: wait a moment rather than spin.
                tracing::warn!("health server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (status, kind, body) = health.answer(req.method(), req.uri().path());
                let body = if req.method() == Method::HEAD {
                    Bytes::new()
                } else {
                    Bytes::from(body)
                };
                let resp = Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, kind)
                    .body(Full::new(body));
                async move { resp }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!("health server connection: {e}");
            }
        });
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
