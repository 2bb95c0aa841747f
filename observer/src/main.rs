//! `observer`: the command line. It parses the arguments into the daemon's configuration and
//! starts the daemon ([`daemon`]) on a single-threaded tokio runtime; everything here is the edge
//! (I/O, signals, errors to the user).

mod daemon;

use std::time::Duration;

use clap::Parser;
use observer::capture::hooks::Hooks;
use observer::correlate;
use observer::http::head::ParseOptions;
use observer::http::table::Limits;
use observer::output::Format;
use observer::pipeline::ProcessFilter;
use observer::tracectx::{HeaderSet, TraceHeader};

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

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let v: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if v == 0 || !v.is_power_of_two() || v > 1024 {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(v)
}

impl Args {
    /// What the daemon is to do.
    fn daemon_config(self) -> daemon::Config {
        let mut require = HeaderSet::default();
        require.insert(TraceHeader::Tracestate);
        for h in &self.require {
            require.insert(*h);
        }
        daemon::Config {
            pids: self.pids,
            all: self.all,
            filter: ProcessFilter {
                exclude_comm: self.exclude_comm,
                cgroup: self.cgroup,
                container: self.container,
            },
            proc_root: self.proc_root,
            output: self.output,
            spans: !self.no_spans,
            duration: self.duration.map(|s| Duration::from_secs_f64(s.max(0.0))),
            parse: ParseOptions {
                keep_query: self.capture_query,
            },
            correlate: correlate::Config {
                grace_ns: self.grace_ms * 1_000_000,
                require,
                ..correlate::Config::default()
            },
            limits: Limits {
                max_connections: self.max_connections,
                max_per_process: self.max_connections_per_process,
                idle_ns: self.idle_timeout.saturating_mul(1_000_000_000),
            },
            otlp_endpoint: self.otlp_endpoint,
            service_name: self.service_name,
            listen: self.listen,
            kubernetes: self.kubernetes,
            node_name: self.node_name,
            ring_buffer_bytes: self.ring_buffer_mib << 20,
            read_interval: Duration::from_millis(self.read_interval_ms),
            hooks: self.hooks,
        }
    }
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
    let cfg = Args::parse().daemon_config();
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
    match rt.block_on(daemon::run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("observer: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
