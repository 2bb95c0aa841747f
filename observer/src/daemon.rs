//! The observer at work (the binary's part, behind its command line): start-up (export and
//! Kubernetes set-up, preflight checks, the health server, the kernel programs), the loop that
//! reads the ring buffer and ticks, and the end (flush, summary).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use observer::capture::hooks::Hooks;
use observer::capture::loader::{Capture, CaptureConfig};
use observer::capture::pace::Pacer;
use observer::capture::preflight::{self, LinuxHost};
use observer::capture::reader::RingReader;
use observer::capture::record;
use observer::correlate::{self, RandomIds};
use observer::export::{self, Exporter};
use observer::health::{self, Health};
use observer::http::head::ParseOptions;
use observer::http::table::Limits;
use observer::k8s::{self, SharedIndex};
use observer::output::{Format, Sink};
use observer::pipeline::{Pipeline, ProcessFilter};
use observer::procinfo::Procfs;
use observer::record::{ExportCounts, Record};
use tokio::signal::unix::{SignalKind, signal};

/// What the daemon is asked to do (from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    /// Processes to observe, each with its threads and descendants.
    pub pids: Vec<u32>,
    /// Every process of the host but the observer.
    pub all: bool,
    /// Processes left out (node-wide mode).
    pub filter: ProcessFilter,
    /// Where the host's /proc is.
    pub proc_root: std::path::PathBuf,
    pub output: Format,
    /// Print spans on stdout (they are exported over OTLP either way).
    pub spans: bool,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    pub parse: ParseOptions,
    pub correlate: correlate::Config,
    pub limits: Limits,
    /// `--otlp-endpoint`; the OTEL_EXPORTER_OTLP_* variables apply too.
    pub otlp_endpoint: Option<String>,
    /// `service.name` for everything observed.
    pub service_name: Option<String>,
    /// Where to serve /healthz, /readyz and /metrics.
    pub listen: Option<std::net::SocketAddr>,
    /// Add the pods of this node from the Kubernetes API (`node_name` is needed then).
    pub kubernetes: bool,
    pub node_name: Option<String>,
    /// Ring buffer size in bytes.
    pub ring_buffer_bytes: u32,
    /// How long the reader waits after a read that emptied the ring buffer (0: it reads each
    /// record as soon as the kernel signals it).
    pub read_interval: Duration,
    /// The kernel hooks asked for; by default the best this kernel has.
    pub hooks: Option<Hooks>,
}

/// Records made while a batch is read that are handed to the exporter and rendered at once.
const STREAM_RECORDS: usize = 32;

/// Records drained from the ring buffer before other work (signals, drop checks) gets a turn.
const DRAIN_BATCH: usize = 8192;

/// The kernel hooks asked for, or the best this kernel has.
fn hooks(asked: Option<Hooks>) -> anyhow::Result<Hooks> {
    let here = Hooks::detect(std::path::Path::new(preflight::TRACEFS));
    match asked {
        None => Ok(here),
        Some(Hooks::Socket) if here != Hooks::Socket => anyhow::bail!(
            "--hooks socket needs the tracepoints sock_send_length, sock_recv_length and \
             inet_sock_set_state (kernel 6.3 and later), and this kernel lacks one of them under \
             {}/events/sock; use --hooks syscall",
            preflight::TRACEFS
        ),
        Some(h) => Ok(h),
    }
}

/// CLOCK_MONOTONIC in ns: the kernel's record timestamps (`bpf_ktime_get_ns`) are on this clock.
fn monotonic_ns() -> anyhow::Result<u64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    Ok(u64::try_from(t.tv_sec())? * 1_000_000_000 + u64::try_from(t.tv_nsec())?)
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC: turns the kernel's timestamps into wall-clock time.
fn wall_offset_ns() -> anyhow::Result<i128> {
    use nix::time::{ClockId, clock_gettime};
    let ns = |t: nix::sys::time::TimeSpec| {
        i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
    };
    let mono = clock_gettime(ClockId::CLOCK_MONOTONIC)?;
    let real = clock_gettime(ClockId::CLOCK_REALTIME)?;
    Ok(ns(real) - ns(mono))
}

/// Renders records into the sink and writes them out; `false` when stdout is gone.
fn write(sink: &mut Sink, records: &mut Vec<Record>) -> anyhow::Result<bool> {
    sink.write(records).context("writing to stdout")
}

/// Hands records to the exporter (if any) and renders them into the sink.
fn emit(exporter: Option<&Exporter>, sink: &mut Sink, records: &mut Vec<Record>) {
    if let Some(x) = exporter {
        records.iter().for_each(|r| x.record(r));
    }
    sink.render(records);
}

/// The exporter, started on the current runtime.
fn start_exporter(cfg: export::config::ExportConfig) -> Exporter {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = export::convert::HostInfo {
        host_name,
        extra: cfg.resource.clone(),
    };
    Exporter::start(cfg, host)
}

/// Runs until a signal, the configured duration, or stdout closing.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let export =
        export::config::from_env(cfg.otlp_endpoint.as_deref(), &|k| std::env::var(k).ok())?;
    let pods = if cfg.kubernetes {
        Some(k8s::watch::start(cfg.node_name.as_deref()).await?)
    } else {
        None
    };
    preflight::check(&LinuxHost, &cfg.pids)?;
    let health = Arc::new(Health::default());
    if let Some(addr) = cfg.listen {
        let listener = health::bind(addr).await?;
        tokio::spawn(health::serve(listener, Arc::clone(&health)));
    }
    let mut procfs = Procfs::new(&cfg.proc_root);
    if let Some(p) = &pods {
        procfs = procfs.with_pods(p.clone());
    }
    let mut pids = Vec::new();
    for &pid in &cfg.pids {
        pids.extend(procfs.with_descendants(pid));
    }
    let mut pacer = Pacer::new(cfg.read_interval);
    let capture_cfg = CaptureConfig {
        pids: pids.clone(),
        all: cfg.all,
        ring_buffer_bytes: cfg.ring_buffer_bytes,
        wake_at_bytes: Pacer::wake_at_bytes(pacer.as_ref(), cfg.ring_buffer_bytes),
        hooks: hooks(cfg.hooks)?,
    };
    let mut capture = Capture::load(&capture_cfg)?;
    let mut reader = RingReader::new(capture.ring()?).context("watching the ring buffer")?;

    let mut pipeline = Pipeline::new(
        cfg.parse,
        cfg.limits,
        cfg.correlate.clone(),
        Box::new(RandomIds),
        wall_offset_ns()?,
    );
    pipeline.set_service_name(cfg.service_name.clone());
    pipeline.set_filter(cfg.filter.clone());
    let mut os = procfs;
    let exporter = export.map(start_exporter);
    let mut sink = Sink::stdout(cfg.output, cfg.spans).context("duplicating stdout")?;
    let go_pids = pids
        .iter()
        .copied()
        .filter(|&pid| os.runtime_of(pid).is_go())
        .collect();
    let mut records = vec![Record::Ready {
        pids: cfg.pids.clone(),
        all: cfg.all,
        probes: capture.probes(),
        hooks: capture_cfg.hooks,
        go_pids,
        version: env!("CARGO_PKG_VERSION"),
    }];
    if !write(&mut sink, &mut records)? {
        return Ok(());
    }
    health.set_ready();

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut idle_tick = tokio::time::interval(Duration::from_secs(5));
    let deadline = cfg.duration.map(|d| tokio::time::Instant::now() + d);
    let until = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let mut pods_seen = 0;

    let on_record = |r: Result<record::Event, record::DecodeError>,
                     pipeline: &mut Pipeline,
                     os: &mut Procfs,
                     records: &mut Vec<Record>| match r {
        Ok(ev) => pipeline.on_event(&ev, os, records),
        Err(e) => {
            pipeline.count_decode_error();
            tracing::warn!("undecodable ring-buffer record: {e}");
        }
    };

    // With an interval, the kernel wakes the reader only past the watermark (`wake_at_bytes`):
    // otherwise it reads when the pacer says.
    let mut next_read = pacer.as_ref().map(|_| tokio::time::Instant::now());
    loop {
        let read = reader.read(next_read, DRAIN_BATCH, |r| {
            on_record(r, &mut pipeline, &mut os, &mut records);
            if records.len() >= STREAM_RECORDS {
                emit(exporter.as_ref(), &mut sink, &mut records);
            }
        });
        tokio::select! {
            read = read => {
                let read = read.context("reading the ring buffer")?;
                if let Some(p) = pacer.as_mut() {
                    next_read = Some(tokio::time::Instant::now() + p.after(read));
                }
            }
            _ = tick.tick() => {
                pipeline.on_drop_check(capture.counters()?, &mut records);
                capture.flush_kernel_log();
                // Pods came or went: processes seen before their pod was known get its metadata.
                if let Some(generation) = pods.as_ref().map(SharedIndex::generation)
                    && generation != pods_seen
                {
                    pods_seen = generation;
                    pipeline.refresh_metadata(&mut os);
                }
                let summary = pipeline.summary();
                let (export_dropped, export_failures) =
                    exporter.as_ref().map_or((0, 0), Exporter::losses);
                if let Some(x) = &exporter {
                    x.capture_stats(&summary);
                }
                health.publish(health::Snapshot {
                    summary,
                    processes: pipeline.processes() as u64,
                    go_processes: pipeline.go_processes() as u64,
                    export_dropped,
                    export_failures,
                });
            }
            _ = idle_tick.tick() => {
                pipeline.on_idle_check(monotonic_ns()?, &mut os, &mut records);
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = &mut until => break,
        }
        let (excluded, included) = pipeline.take_excluded();
        if cfg.all && !excluded.is_empty() {
            capture.exclude_pids(&excluded)?;
        }
        if cfg.all && !included.is_empty() {
            capture.include_pids(&included)?;
        }
        emit(exporter.as_ref(), &mut sink, &mut records);
        if !write(&mut sink, &mut records)? {
            return Ok(());
        }
    }
    // Flush what is pending: the rest of the ring buffer, held breaks, then the summary.
    reader.read_all_now(|r| on_record(r, &mut pipeline, &mut os, &mut records));
    pipeline.on_drop_check(capture.counters()?, &mut records);
    let mut summary = pipeline.summary();
    if let Some(x) = exporter {
        records.iter().for_each(|r| x.record(r));
        x.capture_stats(&summary);
        let (dropped, failures) = x.shutdown(Duration::from_secs(5)).await;
        summary.export = Some(ExportCounts { failures, dropped });
    }
    records.push(Record::Summary(summary));
    write(&mut sink, &mut records)?;
    Ok(())
}
