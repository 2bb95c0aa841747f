//! Items 1 and 6: nginx serving a small response, driven by wrk on loopback with trace headers,
//! arms interleaved: no observer / `observer --pid <nginx>` / `observer --all`. Per arm: requests
//! per second and p99 latency (medians over rounds), and the observer's own CPU time per 10,000
//! requests (utime + stime over the wrk run, from /proc/PID/stat), at the highest rate and at
//! ~10k req/s offered.
//!
//! Two more arms take the observed arms' cost apart: `floor`, no observer but programs that
//! return at once on the tracepoints of the observer's data hooks (`xtask/bench/empty_probes.py`,
//! as item 2's floor): what any program on those hooks costs nginx and wrk, which no observer
//! using them can go below; and `unobserved`, an observer watching an idle process: its
//! programs run on every nginx and wrk call and return at the process filter, and user space has
//! nothing to do.
//!
//! Every arm also runs paced at ~10k req/s offered, where the machine has CPU to spare, with the
//! machine's busy CPU time per request (/proc/stat, all CPUs and processes) beside the
//! observer's own: there an arm's cost would show as CPU rather than as requests lost to the
//! scheduler's sharing of two saturated CPUs. On this VM both views move by ±10-20 % from round
//! to round (the none arm alone spans 81-118k req/s saturated, 2.2-3.0 s busy paced), far more
//! than the 1 % the target asks to resolve: the rows show them, the stable figures are the
//! observer's CPU (item 6) and the programs' run time (item 2).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::parse::{self, WrkReport, median};
use super::procs::{Guard, Nginx, Observer, TempDir, empty_probes, output_within};
use super::{Ctx, DEFAULT_RING_MIB, Row};

/// Trace headers on every request, as a traced client would send them.
pub const TRACE_HEADERS: &[&str] = &[
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "x-b3-traceid: 4bf92f3577b34da6a3ce929d0e0e4736",
    "x-b3-spanid: 00f067aa0ba902b7",
    "x-b3-sampled: 1",
];

/// One wrk run.
pub struct Wrk<'a> {
    pub url: &'a str,
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
    /// A Lua script (e.g. the rate limiter of the loss sweep).
    pub script: Option<&'a Path>,
}

impl Wrk<'_> {
    pub fn run(&self) -> anyhow::Result<WrkReport> {
        let mut c = Command::new("wrk");
        c.arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.seconds))
            .args(["--latency", "--timeout", "5s"]);
        for h in TRACE_HEADERS {
            c.arg("-H").arg(h);
        }
        if let Some(s) = self.script {
            c.arg("-s").arg(s);
        }
        c.arg(self.url);
        let out = output_within(&mut c, Duration::from_secs(u64::from(self.seconds) + 30))?;
        parse::wrk(&out).ok_or_else(|| anyhow::anyhow!("unreadable wrk output:\n{out}"))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arm {
    None,
    Floor,
    Unobserved,
    Pid,
    All,
}

impl Arm {
    pub fn name(self) -> &'static str {
        match self {
            Arm::None => "none",
            Arm::Floor => "floor",
            Arm::Unobserved => "unobserved",
            Arm::Pid => "pid",
            Arm::All => "all",
        }
    }

    /// The arm's name with what it runs, for the table.
    pub fn label(self) -> &'static str {
        match self {
            Arm::None => "none, no observer",
            Arm::Floor => "floor, empty programs on the same hooks",
            Arm::Unobserved => "unobserved, observer watching an idle process",
            Arm::Pid => "pid, observer --pid <nginx>",
            Arm::All => "all, observer --all",
        }
    }

    /// The observer's arguments for this arm, `None` for no observer; `idle` is the process the
    /// unobserved arm's observer watches.
    pub fn args(self, target: u32, idle: u32) -> Option<Vec<String>> {
        match self {
            Arm::None | Arm::Floor => None,
            Arm::Unobserved => Some(vec!["--pid".into(), idle.to_string()]),
            Arm::Pid => Some(vec!["--pid".into(), target.to_string()]),
            Arm::All => Some(vec!["--all".into()]),
        }
    }
}

/// One arm's run: wrk's report and, when observed, the observer's CPU and summary.
struct Run {
    wrk: WrkReport,
    cpu_ms: Option<f64>,
    capture: Option<parse::Capture>,
    /// Per cent of the machine's CPU time the hypervisor gave to other guests during the arm.
    steal_pct: Option<f64>,
    /// The machine's busy CPU time over the wrk run (all CPUs, every process), in ms.
    busy_ms: Option<f64>,
}

/// A wrk script whose `delay()` holds each connection 1 ms between requests: the offered rate is
/// then about 1,000 req/s per connection.
pub struct Throttle {
    _dir: TempDir,
    pub script: PathBuf,
}

impl Throttle {
    pub fn new() -> anyhow::Result<Throttle> {
        let dir = TempDir::new("wrk")?;
        let script = dir.path.join("delay.lua");
        std::fs::write(&script, "function delay()\n  return 1\nend\n")?;
        Ok(Throttle { _dir: dir, script })
    }
}

fn run_arm(ctx: &Ctx, nginx: &Nginx, idle: u32, arm: Arm, wrk: &Wrk) -> anyhow::Result<Run> {
    let _probes = match arm {
        Arm::Floor => Some(empty_probes(ctx.hooks)?),
        _ => None,
    };
    // The observer (if the arm has one) with its CPU time before the run.
    let obs = match arm.args(nginx.pid(), idle) {
        Some(args) => {
            let obs = Observer::start(ctx, &args)?;
            let before = obs.cpu_ms();
            Some((obs, before))
        }
        None => None,
    };
    let host_before = super::host_cpu_times();
    let report = wrk.run()?;
    let steal_pct = super::steal_since(host_before);
    let busy_ms = super::busy_ms_since(host_before);
    let (cpu_ms, capture) = match obs {
        Some((obs, before)) => {
            let cpu = obs.cpu_ms() - before;
            (Some(cpu), Some(parse::capture(&obs.stop()?)))
        }
        None => (None, None),
    };
    Ok(Run {
        wrk: report,
        cpu_ms,
        capture,
        steal_pct,
        busy_ms,
    })
}

const ARMS: [Arm; 5] = [Arm::None, Arm::Floor, Arm::Unobserved, Arm::Pid, Arm::All];

pub fn run(ctx: &Ctx) -> anyhow::Result<(Vec<Row>, Value)> {
    let (rounds, paced_rounds, seconds) = if ctx.quick { (1, 1, 3) } else { (3, 2, 10) };
    let nginx = Nginx::start(4096)?;
    let idle = Guard::spawn(Command::new("sleep").arg("100000"))?;
    let url = nginx.url();
    let full = Wrk {
        url: &url,
        threads: 2,
        connections: 32,
        seconds,
        script: None,
    };
    // Warm nginx and the page cache up once.
    Wrk { seconds: 1, ..full }.run()?;
    let mut runs: Vec<(Arm, Run)> = Vec::new();
    for round in 0..rounds {
        // Rotate the order so that no arm always runs first (drift, thermal, neighbours).
        for i in 0..ARMS.len() {
            let arm = ARMS[(i + round) % ARMS.len()];
            eprintln!(
                "bench app: round {}/{rounds}, arm {} ({seconds} s)",
                round + 1,
                arm.name()
            );
            let r = run_arm(ctx, &nginx, idle.pid(), arm, &full)?;
            eprintln!(
                "  {:.0} req/s, p99 {:.0} us{}{}",
                r.wrk.rps,
                r.wrk.p99_us,
                r.cpu_ms
                    .map(|c| format!(", observer cpu {c:.0} ms"))
                    .unwrap_or_default(),
                steal_text(r.steal_pct),
            );
            runs.push((arm, r));
        }
    }
    // At the budget's own rate, ~10k req/s offered (10 connections, 1 ms apart), where the
    // observer keeps up: item 6, and item 1 as the machine's busy CPU time per request rather
    // than as lost requests (see the module's documentation for how steady either is here).
    let throttle = Throttle::new()?;
    let paced = Wrk {
        connections: 10,
        script: Some(&throttle.script),
        ..full
    };
    let mut at_10k: Vec<(Arm, Run)> = Vec::new();
    for round in 0..paced_rounds {
        for i in 0..ARMS.len() {
            let arm = ARMS[(i + round) % ARMS.len()];
            let r = run_arm(ctx, &nginx, idle.pid(), arm, &paced)?;
            eprintln!(
                "bench app: {} at ~10k req/s offered: {:.0} req/s, machine busy {:.0} ms{}{}",
                arm.name(),
                r.wrk.rps,
                r.busy_ms.unwrap_or(f64::NAN),
                r.cpu_ms
                    .map(|c| format!(", observer cpu {c:.0} ms"))
                    .unwrap_or_default(),
                steal_text(r.steal_pct),
            );
            at_10k.push((arm, r));
        }
    }
    drop(nginx);
    let (mut rows, mut v) = summarise(&runs, rounds, seconds);
    let (paced_rows, paced_json) = summarise_paced(&at_10k, paced_rounds);
    rows.extend(paced_rows);
    v["at_10k_rps"] = paced_json;
    Ok((rows, v))
}

/// The paced runs: the machine's busy CPU per request per arm (item 1) and the observer's own
/// CPU per 10,000 requests (item 6), medians over rounds.
fn summarise_paced(runs: &[(Arm, Run)], rounds: usize) -> (Vec<Row>, Value) {
    let of = |arm: Arm| runs_of(runs, arm);
    let med = |arm: Arm, f: &dyn Fn(&Run) -> Option<f64>| arm_median(runs, arm, f);
    // Busy CPU of the whole machine per request, in µs.
    let busy_us = |r: &Run| Some(r.busy_ms? * 1000.0 / r.wrk.requests as f64);
    let base = med(Arm::None, &busy_us);
    // One row: the arms side by side. On this VM the paced figures move by ±10-15 % between
    // rounds (idle exits and wake-ups are a large share of a request at this rate), so they are
    // shown, not judged.
    let per_arm: Vec<String> = ARMS
        .iter()
        .map(|&a| format!("{:.1}", med(a, &busy_us)))
        .collect();
    let names: Vec<&str> = ARMS.iter().map(|a| a.name()).collect();
    let mut rows = vec![Row::info(
        "1 app",
        format!(
            "at ~10k req/s offered ({:.0} req/s): machine busy CPU per request, {}",
            med(Arm::None, &|r| Some(r.wrk.rps)),
            names.join(" / ")
        ),
        format!("{} us", per_arm.join(" / ")),
    )];
    let mut json_arms = serde_json::Map::new();
    for arm in ARMS {
        let busy = med(arm, &busy_us);
        let rps = med(arm, &|r| Some(r.wrk.rps));
        let cpu = med(arm, &|r| r.cpu_ms);
        let per_10k = med(arm, &|r| Some(r.cpu_ms? / r.wrk.requests as f64 * 10_000.0));
        let cores = med(arm, &|r| Some(r.cpu_ms? / (r.wrk.seconds * 1000.0)));
        // What the saturated req/s ratio would be if CPU were all that limited it.
        let ratio = base / busy;
        if matches!(arm, Arm::Pid | Arm::All) {
            rows.push(Row::check(
                "6 cpu",
                format!(
                    "{}: observer CPU per 10k requests at {rps:.0} req/s ({cores:.3} core)",
                    arm.name()
                ),
                per_10k,
                (1, " ms"),
                "<= 50 ms",
                |v| v <= 50.0,
            ));
        }
        let all: Vec<Value> = of(arm)
            .map(|r| {
                json!({"rps": r.wrk.rps, "requests": r.wrk.requests, "seconds": r.wrk.seconds,
                       "machine_busy_ms": r.busy_ms, "observer_cpu_ms": r.cpu_ms,
                       "ringbuf_drops": r.capture.map(|c| c.ringbuf_drops),
                       "p99_us": r.wrk.p99_us, "host_steal_pct": r.steal_pct})
            })
            .collect();
        json_arms.insert(
            arm.name().into(),
            json!({"rps": rps, "machine_busy_us_per_request": busy,
                   "machine_busy_added_us_per_request": busy - base, "busy_ratio": ratio,
                   "observer_cpu_ms": cpu, "cpu_ms_per_10k_requests": per_10k, "cores": cores,
                   "runs": all}),
        );
    }
    (rows, json!({"rounds": rounds, "arms": json_arms}))
}

fn steal_text(pct: Option<f64>) -> String {
    pct.map(|p| format!(", host steal {p:.1} %"))
        .unwrap_or_default()
}

/// The runs of one arm.
fn runs_of(runs: &[(Arm, Run)], arm: Arm) -> impl Iterator<Item = &Run> {
    runs.iter().filter(move |(a, _)| *a == arm).map(|(_, r)| r)
}

/// The median of a figure over one arm's runs (NaN when no run has it).
fn arm_median(runs: &[(Arm, Run)], arm: Arm, f: &dyn Fn(&Run) -> Option<f64>) -> f64 {
    median(&runs_of(runs, arm).filter_map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

fn summarise(runs: &[(Arm, Run)], rounds: usize, seconds: u32) -> (Vec<Row>, Value) {
    let of = |arm: Arm| runs_of(runs, arm);
    let med = |arm: Arm, f: &dyn Fn(&Run) -> Option<f64>| arm_median(runs, arm, f);
    let base_rps = med(Arm::None, &|r| Some(r.wrk.rps));
    let base_p99 = med(Arm::None, &|r| Some(r.wrk.p99_us));
    let mut rows = vec![
        Row::info("1 app", "none: req/s (median)", format!("{base_rps:.0}")),
        Row::info("1 app", "none: p99", format!("{base_p99:.0} us")),
    ];
    let mut arms = serde_json::Map::new();
    for arm in ARMS {
        let rps = med(arm, &|r| Some(r.wrk.rps));
        let p99 = med(arm, &|r| Some(r.wrk.p99_us));
        let per_10k = med(arm, &|r| Some(r.cpu_ms? / r.wrk.requests as f64 * 10_000.0));
        let all: Vec<Value> = of(arm)
            .map(|r| {
                json!({
                    "rps": r.wrk.rps, "p50_us": r.wrk.p50_us, "p99_us": r.wrk.p99_us,
                    "requests": r.wrk.requests, "seconds": r.wrk.seconds, "errors": r.wrk.errors,
                    "observer_cpu_ms": r.cpu_ms,
                    "records": r.capture.map(|c| c.records),
                    "ringbuf_drops": r.capture.map(|c| c.ringbuf_drops),
                    "host_steal_pct": r.steal_pct,
                })
            })
            .collect();
        arms.insert(
            arm.name().into(),
            json!({
                "rps_median": rps, "p99_us_median": p99,
                "rps_ratio": rps / base_rps, "p99_ratio": p99 / base_p99,
                "cpu_ms_per_10k_requests": (arm != Arm::None).then_some(per_10k),
                "runs": all,
            }),
        );
        let n = arm.name();
        match arm {
            Arm::None => continue,
            Arm::Floor | Arm::Unobserved => {
                rows.push(Row::info(
                    "1 app",
                    format!(
                        "{}: req/s ratio ({rps:.0} req/s) / p99 ratio ({p99:.0} us)",
                        arm.label()
                    ),
                    format!("{:.3} / {:.3}", rps / base_rps, p99 / base_p99),
                ));
                continue;
            }
            Arm::Pid | Arm::All => {}
        }
        rows.push(Row::check(
            "1 app",
            format!("{n}: req/s ratio ({rps:.0} req/s)"),
            rps / base_rps,
            (3, ""),
            ">= 0.99",
            |v| v >= 0.99,
        ));
        rows.push(Row::check(
            "1 app",
            format!("{n}: p99 ratio ({p99:.0} us)"),
            p99 / base_p99,
            (3, ""),
            "<= 1.05",
            |v| v <= 1.05,
        ));
        rows.push(Row::check(
            "6 cpu",
            format!("{n}: observer CPU per 10k requests at max rate"),
            per_10k,
            (1, " ms"),
            "<= 50 ms",
            |v| v <= 50.0,
        ));
        let drops: u64 = of(arm)
            .filter_map(|r| r.capture.map(|c| c.ringbuf_drops))
            .sum();
        rows.push(Row::check(
            "4 loss",
            format!("{n}: ring-buffer drops at max wrk rate ({DEFAULT_RING_MIB} MiB ring)"),
            drops as f64,
            (0, ""),
            "0",
            |v| v == 0.0,
        ));
    }
    let v = json!({
        "rounds": rounds, "seconds_per_arm": seconds,
        "wrk": {"threads": 2, "connections": 32, "headers": TRACE_HEADERS},
        "arms": arms,
    });
    (rows, v)
}
