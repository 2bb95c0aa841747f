//! `cargo xtask bench`: the overhead budget of issue 6, measured side by side in one run.
//!
//! Items (each can be picked with `--only NAME`):
//! * `app` (1 and 6): nginx + wrk, arms none / `--pid` / `--all` interleaved: req/s, p99, the
//!   observer's CPU per 10k requests, ring-buffer drops at the highest rate ([`app`]);
//! * `syscall` (2): ns added per write/read on loopback TCP, observed, unobserved and without an
//!   observer, plus the kernel programs' own run time from bpf_stats ([`syscall`]);
//! * `pipeline` (3): criterion bench of decode + reassembly + parsing + correlation on recorded
//!   traffic, records/s on one core and allocations per record ([`pipeline`]);
//! * `loss` (4): offered-rate sweep with a small and the default ring buffer, and a stalled
//!   observer to show that drops are counted and reported ([`loss`]);
//! * `memory` (5): observer RSS with 10,000 open keep-alive connections, and after ([`memory`]).
//!
//! Prints a table (metric, value, target, pass/fail/—), writes `target/bench/results-<time>.json`,
//! `target/bench/latest.json` and `target/bench/latest.md`. Nothing here asserts: these are
//! benchmarks, not tests.

mod app;
mod loss;
mod memory;
mod parse;
mod pipeline;
mod procs;
mod report;
pub mod syscall;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::{build_observer, is_root, root_dir, run, setup};

pub const ITEMS: &[&str] = &["app", "syscall", "pipeline", "loss", "memory"];

/// Host steal above which an item's figures say more about the host's other guests than about
/// the observer: time the VM was ready to run and the host ran another guest instead.
const DISTURBED_STEAL_PCT: f64 = 5.0;

/// The observer's `--ring-buffer-mib` default, which items 1, 4 and 5 run with.
pub const DEFAULT_RING_MIB: u32 = 8;

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Short arms and fewer rounds (for development; the figures are noisier).
    #[arg(long)]
    pub quick: bool,
    /// Run only these items (repeatable): app, syscall, pipeline, loss, memory.
    #[arg(long = "only", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(ITEMS))]
    pub only: Vec<String>,
    /// Where to write the results (default: target/bench).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Measure this observer binary instead of building target/release/observer.
    #[arg(long, value_name = "PATH")]
    pub observer_bin: Option<PathBuf>,
    /// The observer's kernel hooks (its `--hooks`): socket or syscall. Default: what the
    /// observer picks on this kernel (socket from 6.3 on).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(HOOKS))]
    pub hooks: Option<String>,
}

/// The observer's `--hooks` values.
const HOOKS: [&str; 2] = ["socket", "syscall"];

/// What every item needs.
pub struct Ctx {
    pub observer: PathBuf,
    pub quick: bool,
    /// The observer's kernel hooks, one of `HOOKS`.
    pub hooks: &'static str,
}

/// The hooks the observer picks by itself: the socket hooks where tracefs has their events.
fn default_hooks() -> &'static str {
    if observer_common::socket_events_present(Path::new(observer_common::TRACEFS)) {
        HOOKS[0]
    } else {
        HOOKS[1]
    }
}

/// A line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub item: &'static str,
    pub metric: String,
    pub value: String,
    pub target: String,
    /// `None` where there is no target (or no figure).
    pub pass: Option<bool>,
}

impl Row {
    pub fn info(item: &'static str, metric: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            item,
            metric: metric.into(),
            value: value.into(),
            target: String::new(),
            pass: None,
        }
    }

    /// A figure against its target; `fmt` is (decimals, unit suffix).
    pub fn check(
        item: &'static str,
        metric: impl Into<String>,
        value: f64,
        fmt: (usize, &str),
        target: &str,
        ok: impl Fn(f64) -> bool,
    ) -> Row {
        Row {
            item,
            metric: metric.into(),
            value: if value.is_finite() {
                format!("{value:.*}{}", fmt.0, fmt.1)
            } else {
                "n/a".into()
            },
            target: target.into(),
            pass: value.is_finite().then(|| ok(value)),
        }
    }
}

pub fn bench(opts: Options) -> anyhow::Result<()> {
    if !is_root() {
        // Build as the invoking user, then measure as root (eBPF, nginx as root, rlimits).
        setup::setup()?;
        let bin = match &opts.observer_bin {
            Some(b) => b.clone(),
            None => build_observer(true)?,
        };
        eprintln!("not root: re-running the benchmarks with sudo");
        let mut c = Command::new("sudo");
        c.args(["--preserve-env=PATH,RUSTUP_HOME,CARGO_HOME,HOME", "--"])
            .arg(std::env::current_exe()?)
            .arg("bench")
            .arg("--observer-bin")
            .arg(&bin);
        if opts.quick {
            c.arg("--quick");
        }
        for o in &opts.only {
            c.args(["--only", o]);
        }
        if let Some(o) = &opts.out {
            c.arg("--out").arg(o);
        }
        if let Some(h) = &opts.hooks {
            c.args(["--hooks", h]);
        }
        return run(c.current_dir(root_dir()));
    }
    setup::setup()?;
    let observer = match &opts.observer_bin {
        Some(b) => b.clone(),
        None => build_observer(true)?,
    };
    let ctx = Ctx {
        observer,
        quick: opts.quick,
        hooks: match opts.hooks.as_deref() {
            Some(h) => HOOKS.into_iter().find(|&k| k == h).unwrap_or(HOOKS[1]),
            None => default_hooks(),
        },
    };
    let machine = machine(&ctx);
    eprintln!("bench: {machine}");
    if machine["bpf_stats_enabled_at_start"] == "1" {
        eprintln!(
            "bench: warning: kernel.bpf_stats_enabled is 1 (set outside this run): every program run \
             pays for two clock reads, the syscall and app figures include that"
        );
    }
    let wanted = |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == name);
    let mut rows = Vec::new();
    let mut results = serde_json::Map::new();
    catch_interrupts();
    for &item in ITEMS {
        if !wanted(item) {
            continue;
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            eprintln!("bench: interrupted, writing what was measured");
            rows.push(Row::info(
                report::item_label(item),
                "interrupted",
                "not run",
            ));
            break;
        }
        eprintln!("== bench {item}");
        let started = std::time::Instant::now();
        let cpu_before = host_cpu_times();
        let res = match item {
            "app" => app::run(&ctx),
            "syscall" => syscall::run(&ctx),
            "pipeline" => pipeline::run(&ctx),
            "loss" => loss::run(&ctx),
            _ => memory::run(&ctx),
        };
        // A VM's figures are only as steady as its host: the share of CPU time the hypervisor gave
        // to other guests during the item tells a quiet run from a disturbed one.
        let steal = steal_since(cpu_before);
        match res {
            Ok((mut r, mut v)) => {
                if let Some(pct) = steal {
                    r.push(Row::info(
                        report::item_label(item),
                        "host: CPU time stolen by the hypervisor during this item",
                        if pct > DISTURBED_STEAL_PCT {
                            format!("{pct:.1} % (disturbed: figures not comparable)")
                        } else {
                            format!("{pct:.1} %")
                        },
                    ));
                    if let Some(o) = v.as_object_mut() {
                        o.insert("host_steal_pct".into(), json!(pct));
                    }
                }
                rows.extend(r);
                results.insert(item.into(), v);
            }
            Err(e) => {
                eprintln!("bench {item} failed: {e:#}");
                rows.push(Row::info(
                    report::item_label(item),
                    "error",
                    format!("{e:#}").replace('\n', " "),
                ));
                results.insert(item.into(), json!({ "error": format!("{e:#}") }));
            }
        }
        eprintln!("== bench {item}: {:.0} s", started.elapsed().as_secs_f64());
    }
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| root_dir().join("target/bench"));
    report::write(
        &out_dir,
        &machine,
        opts.quick,
        &rows,
        Value::Object(results),
    )
}

/// Set by SIGINT/SIGTERM. The children of a run get the signal too (same process group) and
/// end; what was waiting on them fails, the guards clean up (and restore bpf_stats), and no
/// further item starts.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn catch_interrupts() {
    // SIGINT and SIGTERM set the flag (a handler thread, not SIG_IGN: children keep the default).
    if let Err(e) = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed)) {
        eprintln!("bench: cannot catch Ctrl-C ({e}); an interrupted run leaves no partial results");
    }
}

/// The machine's CPU times now (`/proc/stat`), to measure host steal from.
fn host_cpu_times() -> Option<parse::CpuTimes> {
    parse::cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Per cent of the machine's CPU time stolen since `before` (a `host_cpu_times` reading).
fn steal_since(before: Option<parse::CpuTimes>) -> Option<f64> {
    parse::steal_pct(before?, host_cpu_times()?)
}

/// The machine's busy CPU time (all CPUs, ms) since `before` (a `host_cpu_times` reading).
fn busy_ms_since(before: Option<parse::CpuTimes>) -> Option<f64> {
    parse::busy_ticks(before?, host_cpu_times()?).map(procs::ticks_ms)
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(root_dir())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Facts of the machine and the build the figures belong to.
fn machine(ctx: &Ctx) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let dirty = !sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    json!({
        "date": sh("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "kernel": sh("uname", &["-r"]),
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "mem_total_kib": parse::status_kib(&meminfo, "MemTotal"),
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        // When on, every BPF program run also reads the clock twice (slow in a VM): it inflates
        // the per-syscall and app figures.
        "bpf_stats_enabled_at_start": std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
            .unwrap_or_default().trim(),
        "git_commit": sh("git", &["rev-parse", "HEAD"]),
        "git_dirty": dirty,
        "observer": ctx.observer.display().to_string(),
        "observer_hooks": ctx.hooks,
        "observer_version": sh(&ctx.observer.display().to_string(), &["--version"]),
        "nginx": String::from_utf8_lossy(
            &Command::new("/usr/sbin/nginx").arg("-v").output().map(|o| o.stderr).unwrap_or_default()
        ).trim(),
        "wrk": sh("sh", &["-c", "wrk -v 2>&1 | head -1"]),
    })
}

/// `cargo bench`-style commands for the pipeline item (run as the current user).
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root_dir());
    c
}
