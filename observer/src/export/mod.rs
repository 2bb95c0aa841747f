//! OTLP export of spans, break alerts (log records) and metrics.
//!
//! The capture path hands records over with [`Exporter::record`], which only pushes into bounded
//! queues (dropping the oldest item beyond the bound, counted) and never waits on the network.
//! A task batches them (up to `BATCH` items or every `INTERVAL`), converts them
//! ([`convert`]) and sends them over gRPC or http/protobuf ([`transport`]). A failed batch goes
//! back to the front of its queue and is retried with exponential backoff (1 s .. 30 s); while
//! the backend is down the queues keep the newest items. [`Exporter::shutdown`] flushes what it
//! can before a deadline.

pub mod config;
pub mod convert;
pub mod transport;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use self::config::{ExportConfig, Signal};
use self::convert::{Counters, HostInfo};
use self::transport::Transport;
use crate::record::{BreakRecord, PeerText, Record, SpanKind, SpanRecord, SummaryRecord};
use crate::text::SharedStr;

/// Items per export request.
pub const BATCH: usize = 512;
/// Items kept per signal while the backend cannot take them.
pub const QUEUE_CAP: usize = 20_000;
pub const INTERVAL: Duration = Duration::from_secs(1);
pub const METRICS_INTERVAL: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Breaks kept to attach as events to server spans that are exported after them.
const RECENT_BREAKS: usize = 1024;
/// How long a span waits before export: breaks reach the exporter only after the pipeline's
/// drop check (every 200 ms), and they become events of their server span.
const SPAN_DELAY: Duration = Duration::from_millis(600);

/// A FIFO that drops its oldest item when full, and counts what it dropped.
#[derive(Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<T>,
    cap: usize,
    pub dropped: u64,
}

impl<T> BoundedQueue<T> {
    pub fn new(cap: usize) -> Self {
        BoundedQueue {
            items: VecDeque::new(),
            cap,
            dropped: 0,
        }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() >= self.cap {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
    }

    pub fn take(&mut self, n: usize) -> Vec<T> {
        self.take_while(n, |_| true)
    }

    /// Up to `n` items from the front, stopping at the first that `ready` refuses.
    pub fn take_while(&mut self, n: usize, ready: impl Fn(&T) -> bool) -> Vec<T> {
        let n = self.items.iter().take(n).take_while(|i| ready(i)).count();
        self.items.drain(..n).collect()
    }

    /// Puts a batch that could not be sent back in front, keeping the bound (the oldest go).
    pub fn put_back(&mut self, batch: Vec<T>) {
        for item in batch.into_iter().rev() {
            if self.items.len() >= self.cap {
                self.dropped += 1;
                continue;
            }
            self.items.push_front(item);
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[derive(Debug)]
struct Shared {
    /// With the time each was queued: spans wait `SPAN_DELAY` for the breaks that concern them.
    spans: BoundedQueue<(tokio::time::Instant, SpanRecord)>,
    breaks: BoundedQueue<BreakRecord>,
    recent_breaks: VecDeque<BreakRecord>,
    counters: Counters,
    closing: bool,
}

impl Shared {
    /// (dropped, failed attempts); with `unsent`, what is still queued counts as dropped.
    fn losses(&self, unsent: bool) -> (u64, u64) {
        let queued = if unsent {
            (self.spans.len() + self.breaks.len()) as u64
        } else {
            0
        };
        let failures = self.counters.export_failures.values().sum();
        (self.spans.dropped + self.breaks.dropped + queued, failures)
    }
}

/// Handle of the export task.
pub struct Exporter {
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic elsewhere must not stop the export: the data is still consistent enough to send.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The peer a metric counts an outbound request under: its Host, else its peer address.
fn peer_label(host: &Option<SharedStr>, peer: &Option<PeerText>) -> String {
    host.as_deref()
        .or(peer.as_deref())
        .unwrap_or_default()
        .to_owned()
}

impl Exporter {
    /// Starts the export task on the current tokio runtime.
    pub fn start(cfg: ExportConfig, host: HostInfo) -> Exporter {
        let shared = Arc::new(Mutex::new(Shared {
            spans: BoundedQueue::new(QUEUE_CAP),
            breaks: BoundedQueue::new(QUEUE_CAP),
            recent_breaks: VecDeque::new(),
            counters: Counters::default(),
            closing: false,
        }));
        let wake = Arc::new(Notify::new());
        let transport = Transport::new(&cfg);
        let task = tokio::spawn(run(Arc::clone(&shared), Arc::clone(&wake), transport, host));
        Exporter { shared, wake, task }
    }

    /// Queues a record for export; never waits.
    pub fn record(&self, r: &Record) {
        let mut sh = lock(&self.shared);
        match r {
            Record::Span(s) => {
                let c = &mut sh.counters;
                if s.kind == SpanKind::Server {
                    *c.inbound.entry(s.process.service.clone()).or_default() += 1;
                } else {
                    *c.outbound
                        .entry((s.process.service.clone(), peer_label(&s.host, &s.peer)))
                        .or_default() += 1;
                }
                sh.spans.push((tokio::time::Instant::now(), s.clone()));
            }
            Record::Break(b) => {
                let peer = peer_label(&b.outbound.host, &b.outbound.peer);
                *sh.counters
                    .breaks
                    .entry((b.service.to_string(), peer, b.reason.as_str().to_owned()))
                    .or_default() += 1;
                sh.breaks.push(b.clone());
                if sh.recent_breaks.len() >= RECENT_BREAKS {
                    sh.recent_breaks.pop_front();
                }
                sh.recent_breaks.push_back(b.clone());
            }
            Record::Ready { .. } | Record::Summary(_) => {}
        }
        let full = sh.breaks.len() >= BATCH;
        drop(sh);
        if full {
            self.wake.notify_one();
        }
    }

    /// Latest capture counters (from the pipeline's summary) for the metrics.
    pub fn capture_stats(&self, s: &SummaryRecord) {
        let mut sh = lock(&self.shared);
        sh.counters.set_summary(s);
    }

    /// What was dropped and failed so far, per signal: (dropped, failures).
    pub fn losses(&self) -> (u64, u64) {
        lock(&self.shared).losses(false)
    }

    /// Flushes what is queued (and final metrics) until `deadline`, then stops the task.
    /// Returns the final (dropped, failures); what was still queued at the deadline counts as
    /// dropped.
    pub async fn shutdown(self, deadline: Duration) -> (u64, u64) {
        lock(&self.shared).closing = true;
        self.wake.notify_one();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(deadline, self.task).await.is_err() {
            abort.abort();
            tracing::warn!("OTLP export did not finish within {deadline:?}; the rest is dropped");
        }
        lock(&self.shared).losses(true)
    }
}

struct Backoff {
    delay: Duration,
    until: Option<tokio::time::Instant>,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            delay: Duration::from_secs(1),
            until: None,
        }
    }
    fn ready(&self) -> bool {
        self.until.is_none_or(|u| tokio::time::Instant::now() >= u)
    }
    fn failed(&mut self) {
        self.until = Some(tokio::time::Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
    }
    fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}

async fn run(
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    mut transport: Transport,
    host: HostInfo,
) {
    let start = now_ns();
    let mut span_backoff = Backoff::new();
    let mut log_backoff = Backoff::new();
    let mut last_metrics = tokio::time::Instant::now();
    loop {
        let closing = lock(&shared).closing;
        if !closing {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(INTERVAL) => {}
            }
        }
        // Spans, with the breaks that concern them as events.
        while span_backoff.ready() {
            let (batch, breaks) = {
                let mut sh = lock(&shared);
                let closing = sh.closing;
                let batch = sh
                    .spans
                    .take_while(BATCH, |(at, _)| closing || at.elapsed() >= SPAN_DELAY);
                // Only the breaks of server spans in this batch become its events.
                let ids: std::collections::HashSet<&str> =
                    batch.iter().map(|(_, s)| s.span_id.as_str()).collect();
                let breaks: Vec<BreakRecord> = sh
                    .recent_breaks
                    .iter()
                    .filter(|b| {
                        b.server_span_id
                            .as_deref()
                            .is_some_and(|id| ids.contains(id))
                    })
                    .cloned()
                    .collect();
                (batch, breaks)
            };
            if batch.is_empty() {
                break;
            }
            let req = convert::traces(batch.iter().map(|(_, s)| s), &breaks, &host);
            match transport.traces(req).await {
                Ok(()) => span_backoff.succeeded(),
                Err(e) => {
                    tracing::warn!("OTLP traces export failed: {e}");
                    span_backoff.failed();
                    let mut sh = lock(&shared);
                    *sh.counters
                        .export_failures
                        .entry(Signal::Traces.as_str())
                        .or_default() += 1;
                    sh.spans.put_back(batch);
                }
            }
        }
        while log_backoff.ready() {
            let batch = lock(&shared).breaks.take(BATCH);
            if batch.is_empty() {
                break;
            }
            match transport.logs(convert::logs(&batch, &host, now_ns())).await {
                Ok(()) => log_backoff.succeeded(),
                Err(e) => {
                    tracing::warn!("OTLP logs export failed: {e}");
                    log_backoff.failed();
                    let mut sh = lock(&shared);
                    *sh.counters
                        .export_failures
                        .entry(Signal::Logs.as_str())
                        .or_default() += 1;
                    sh.breaks.put_back(batch);
                }
            }
        }
        let closing = lock(&shared).closing;
        if closing || last_metrics.elapsed() >= METRICS_INTERVAL {
            last_metrics = tokio::time::Instant::now();
            let req = {
                let mut sh = lock(&shared);
                let (sd, bd, sl, bl) = (
                    sh.spans.dropped,
                    sh.breaks.dropped,
                    sh.spans.len() as u64,
                    sh.breaks.len() as u64,
                );
                let c = &mut sh.counters;
                c.export_dropped.insert(Signal::Traces.as_str(), sd);
                c.export_dropped.insert(Signal::Logs.as_str(), bd);
                c.queue_depth.insert(Signal::Traces.as_str(), sl);
                c.queue_depth.insert(Signal::Logs.as_str(), bl);
                convert::metrics(&sh.counters, &host, start, now_ns())
            };
            if let Err(e) = transport.metrics(req).await {
                tracing::warn!("OTLP metrics export failed: {e}");
                *lock(&shared)
                    .counters
                    .export_failures
                    .entry(Signal::Metrics.as_str())
                    .or_default() += 1;
            }
        }
        if closing {
            let sh = lock(&shared);
            let done = (sh.spans.is_empty() || !span_backoff.ready())
                && (sh.breaks.is_empty() || !log_backoff.ready());
            if done {
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
