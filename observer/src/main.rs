//! `observer`: the command line. Everything here is the edge (I/O, signals, errors to the user).

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
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
use observer::output::{self, Format};
use observer::pipeline::{Pipeline, ProcessFilter};
use observer::procinfo::Procfs;
use observer::record::{ExportCounts, Record};
use observer::tracectx::{HeaderSet, TraceHeader};
use tokio::signal::unix::{SignalKind, signal};

/// jemalloc instead of glibc malloc, so that memory freed after a burst of connections goes back
/// to the kernel (see `observer::allocator`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Watches processes' HTTP/1.1 traffic with eBPF and reports services that drop trace context.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Process to observe, with all its threads and descendants (repeatable).
    #[arg(long = "pid", value_name = "PID", required_unless_present = "all")]
    pids: Vec<u32>,
    /// Observe every process on the host except the observer itself, including those started later.
    #[arg(long)]
    all: bool,
    /// Leave out processes with this name (repeatable).
    #[arg(long, value_name = "NAME")]
    exclude_comm: Vec<String>,
    /// Only processes whose cgroup path starts with PATH (e.g. /kubepods.slice).
    #[arg(long, value_name = "PATH")]
    cgroup: Option<String>,
    /// Only processes of the container whose id starts with ID.
    #[arg(long, value_name = "ID")]
    container: Option<String>,
    /// Where the host's /proc is (e.g. /host/proc in a container).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    proc_root: std::path::PathBuf,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "pretty")]
    output: Format,
    /// Print only the ready record, breaks and the summary on stdout, not every span (spans are
    /// still exported over OTLP). For node-wide use, where stdout becomes the pod's log.
    #[arg(long)]
    no_spans: bool,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Also require this trace header on outbound requests when the inbound one carried it
    /// (repeatable), e.g. `--require x-request-id` for Istio.
    #[arg(long, value_name = "HEADER", value_parser = parse_header)]
    require: Vec<TraceHeader>,
    /// Keep query strings in reported paths (they are dropped by default: they may hold secrets).
    #[arg(long)]
    capture_query: bool,
    /// How long after its response an inbound request still counts as active, in milliseconds.
    #[arg(long, default_value_t = 100)]
    grace_ms: u64,
    /// OTLP endpoint (e.g. http://localhost:4318); the OTEL_EXPORTER_OTLP_* variables apply too.
    /// Without any endpoint nothing is exported.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// service.name for everything observed (default: each process's name).
    #[arg(long, value_name = "NAME")]
    service_name: Option<String>,
    /// Connections tracked at most, all processes together (the least recently used go first).
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Connections tracked at most per process.
    #[arg(long, default_value_t = Limits::default().max_per_process)]
    max_connections_per_process: usize,
    /// A connection with no traffic for this many seconds is forgotten.
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::default().idle_ns / 1_000_000_000)]
    idle_timeout: u64,
    /// Serve /healthz, /readyz (probes attached) and /metrics (Prometheus) on this address,
    /// e.g. 0.0.0.0:9464.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Add each process's pod, namespace, container and workload from the Kubernetes API (this
    /// node's pods only) and name services by them.
    #[arg(long, env = "OBSERVER_KUBERNETES")]
    kubernetes: bool,
    /// This node's name, for --kubernetes (e.g. from the downward API's spec.nodeName).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    node_name: Option<String>,
    /// Ring buffer size in MiB (a power of two). It only absorbs bursts: beyond the rate user
    /// space drains, records are dropped whatever its size.
    #[arg(long, default_value_t = 8, value_parser = parse_ring_mib)]
    ring_buffer_mib: u32,
    /// Read the ring buffer every MS ms: after a read that emptied it, the reader waits this
    /// long, and the records written meanwhile are read together (the work per read costs more
    /// than the records below tens of thousands per second: docs/benchmarks.md). A quarter-full
    /// ring wakes it sooner, and a busy reader never waits. 0: read each record as soon as the
    /// kernel signals it.
    #[arg(long, value_name = "MS", env = "OBSERVER_READ_INTERVAL_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
    read_interval_ms: u64,
    /// Which kernel hooks capture the traffic: `socket` (the socket tracepoints of kernel 6.3
    /// and later: the other syscalls of the machine pay nothing) or `syscall` (every syscall
    /// pays a little; any kernel). Default: socket where the kernel has it.
    #[arg(long, value_enum, env = "OBSERVER_HOOKS")]
    hooks: Option<Hooks>,
}

fn parse_header(s: &str) -> Result<TraceHeader, String> {
    TraceHeader::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = TraceHeader::ALL.iter().map(|h| h.name()).collect();
        format!("unknown trace header {s:?}; one of: {}", names.join(", "))
    })
}

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

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if v == 0 || !v.is_power_of_two() || v > 1024 {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(v)
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

/// Room kept in the sink's buffer for the next line: a span is ~400 bytes.
const LINE_CAPACITY: usize = 1024;

/// Records on stdout, rendered into one buffer that is written straight to stdout's fd (no
/// `Stdout` lock or line buffering) when it fills and after each drained batch.
struct Sink {
    out: std::fs::File,
    format: Format,
    colour: bool,
    /// `--no-spans`: spans are not printed (they still go to OTLP).
    spans: bool,
    /// Rendered lines not yet written.
    buf: Vec<u8>,
    /// The first write error; records after it are dropped and it is returned by [`Sink::write`].
    failed: Option<std::io::Error>,
}

impl Sink {
    fn new(out: std::fs::File, format: Format, colour: bool, spans: bool) -> Sink {
        Sink {
            out,
            format,
            colour,
            spans,
            buf: Vec::with_capacity(SINK_BUFFER),
            failed: None,
        }
    }

    /// Renders records, writing the buffer out when it fills; a write error is kept for
    /// [`Sink::write`]. Records are rendered while a batch is read, not after it, so that each
    /// is rendered while what it is made of is still in the cache.
    fn render(&mut self, records: &mut Vec<Record>) {
        for r in records.drain(..) {
            if self.failed.is_some() || (!self.spans && matches!(r, Record::Span(_))) {
                continue;
            }
            output::render_into(&r, self.format, self.colour, &mut self.buf);
            self.buf.push(b'\n');
            if self.buf.len() + LINE_CAPACITY > SINK_BUFFER {
                self.write_out();
            }
        }
    }

    fn write_out(&mut self) {
        if let Err(e) = self.out.write_all(&self.buf) {
            self.failed = Some(e);
        }
        self.buf.clear();
    }

    /// Renders `records` and writes out what is buffered; `Ok(false)` when stdout is gone (a
    /// closed pipe ends the run quietly).
    fn write(&mut self, records: &mut Vec<Record>) -> anyhow::Result<bool> {
        self.render(records);
        if !self.buf.is_empty() && self.failed.is_none() {
            self.write_out();
        }
        match self.failed.take() {
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Some(e) => Err(e).context("writing to stdout"),
            None => Ok(true),
        }
    }
}

/// Hands records to the exporter (if any) and renders them into the sink.
fn emit(exporter: Option<&Exporter>, sink: &mut Sink, records: &mut Vec<Record>) {
    if let Some(x) = exporter {
        records.iter().for_each(|r| x.record(r));
    }
    sink.render(records);
}

/// `--kubernetes`: the index of this node's pods, kept up to date by a watcher task from now on.
async fn kubernetes(node: Option<&str>) -> anyhow::Result<SharedIndex> {
    let node = node
        .filter(|n| !n.is_empty())
        .ok_or(k8s::Error::NoNodeName)?;
    let client = k8s::watch::client().await?;
    let index = SharedIndex::default();
    k8s::watch::spawn(client, node.to_owned(), index.clone());
    Ok(index)
}

/// Most bytes of rendered records buffered before a write to stdout: a pipe's default capacity,
/// so that a write to a pipe being read does not wait for the reader.
const SINK_BUFFER: usize = 64 << 10;

/// Records made while a batch is read that are handed to the exporter and rendered at once.
const STREAM_RECORDS: usize = 32;

/// Records drained from the ring buffer before other work (signals, drop checks) gets a turn.
const DRAIN_BATCH: usize = 8192;

async fn run(args: Args) -> anyhow::Result<()> {
    let export =
        export::config::from_env(args.otlp_endpoint.as_deref(), &|k| std::env::var(k).ok())?;
    let pods = if args.kubernetes {
        Some(kubernetes(args.node_name.as_deref()).await?)
    } else {
        None
    };
    preflight::check(&LinuxHost, &args.pids)?;
    let health = Arc::new(Health::default());
    if let Some(addr) = args.listen {
        let listener = health::bind(addr).await?;
        tokio::spawn(health::serve(listener, Arc::clone(&health)));
    }
    let mut procfs = Procfs::new(&args.proc_root);
    if let Some(p) = &pods {
        procfs = procfs.with_pods(p.clone());
    }
    let mut pids = Vec::new();
    for &pid in &args.pids {
        pids.extend(procfs.with_descendants(pid));
    }
    let mut pacer = Pacer::new(Duration::from_millis(args.read_interval_ms));
    let ring_buffer_bytes = args.ring_buffer_mib << 20;
    let cfg = CaptureConfig {
        pids: pids.clone(),
        all: args.all,
        ring_buffer_bytes,
        wake_at_bytes: Pacer::wake_at_bytes(pacer.as_ref(), ring_buffer_bytes),
        hooks: hooks(args.hooks)?,
    };
    let mut capture = Capture::load(&cfg)?;
    let mut reader = RingReader::new(capture.ring()?).context("watching the ring buffer")?;

    let mut require = HeaderSet::default();
    require.insert(TraceHeader::Tracestate);
    for h in &args.require {
        require.insert(*h);
    }
    let corr = correlate::Config {
        grace_ns: args.grace_ms * 1_000_000,
        require,
        ..correlate::Config::default()
    };
    let mut pipeline = Pipeline::new(
        ParseOptions {
            keep_query: args.capture_query,
        },
        Limits {
            max_connections: args.max_connections,
            max_per_process: args.max_connections_per_process,
            idle_ns: args.idle_timeout.saturating_mul(1_000_000_000),
        },
        corr,
        Box::new(RandomIds),
        wall_offset_ns()?,
    );
    pipeline.set_service_name(args.service_name.clone());
    pipeline.set_filter(ProcessFilter {
        exclude_comm: args.exclude_comm.clone(),
        cgroup: args.cgroup.clone(),
        container: args.container.clone(),
    });
    let mut os = procfs;
    let exporter = export.map(|cfg| {
        let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let host = export::convert::HostInfo {
            host_name,
            extra: cfg.resource.clone(),
        };
        Exporter::start(cfg, host)
    });
    let mut sink = Sink::new(
        std::fs::File::from(
            std::io::stdout()
                .as_fd()
                .try_clone_to_owned()
                .context("duplicating stdout")?,
        ),
        args.output,
        args.output == Format::Pretty && std::io::stdout().is_terminal(),
        !args.no_spans,
    );
    let go_pids = pids
        .iter()
        .copied()
        .filter(|&pid| os.runtime_of(pid).is_go())
        .collect();
    let mut records = vec![Record::Ready {
        pids: args.pids.clone(),
        all: args.all,
        probes: capture.probes(),
        hooks: cfg.hooks,
        go_pids,
        version: env!("CARGO_PKG_VERSION"),
    }];
    if !sink.write(&mut records)? {
        return Ok(());
    }
    health.set_ready();

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut idle_tick = tokio::time::interval(Duration::from_secs(5));
    let deadline = args
        .duration
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
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
        if args.all && !excluded.is_empty() {
            capture.exclude_pids(&excluded)?;
        }
        if args.all && !included.is_empty() {
            capture.include_pids(&included)?;
        }
        emit(exporter.as_ref(), &mut sink, &mut records);
        if !sink.write(&mut records)? {
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
        let losses = x.shutdown(Duration::from_secs(5)).await;
        summary.export = Some(ExportCounts {
            failures: losses.1,
            dropped: losses.0,
        });
    }
    records.push(Record::Summary(summary));
    sink.write(&mut records)?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    if let Err(e) = observer::allocator::return_freed_memory() {
        tracing::warn!("{e}; memory freed after bursts may stay resident");
    }
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("observer: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("observer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
