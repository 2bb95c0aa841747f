//! Items 1 and 6: nginx serving a small response, driven by wrk on loopback with trace headers,
//! arms interleaved: no observer / `observer --pid <nginx>` / `observer --all`. Per arm: requests
//! per second and p99 latency (medians over rounds), and the observer's own CPU time per 10,000
//! requests (utime + stime over the wrk run, from /proc/PID/stat), at the highest rate and at
//! ~10k req/s offered.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::parse::{self, WrkReport, median};
use super::procs::{Nginx, Observer, TempDir, output_within};
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
    Pid,
    All,
}

impl Arm {
    pub fn name(self) -> &'static str {
        match self {
            Arm::None => "none",
            Arm::Pid => "pid",
            Arm::All => "all",
        }
    }

    /// The observer's arguments for this arm, `None` for no observer.
    pub fn args(self, target: u32) -> Option<Vec<String>> {
        match self {
            Arm::None => None,
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

fn run_arm(ctx: &Ctx, nginx: &Nginx, arm: Arm, wrk: &Wrk) -> anyhow::Result<Run> {
    // The observer (if the arm has one) with its CPU time before the run.
    let obs = match arm.args(nginx.pid()) {
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
    })
}

const ARMS: [Arm; 3] = [Arm::None, Arm::Pid, Arm::All];

pub fn run(ctx: &Ctx) -> anyhow::Result<(Vec<Row>, Value)> {
    let (rounds, seconds) = if ctx.quick { (1, 3) } else { (3, 10) };
    let nginx = Nginx::start(4096)?;
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
            let r = run_arm(ctx, &nginx, arm, &full)?;
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
    // Item 6 at the budget's own rate: ~10k req/s offered (10 connections, 1 ms apart), where
    // the observer keeps up (at the highest rate, dropped records cost it nothing).
    let throttle = Throttle::new()?;
    let paced = Wrk {
        connections: 10,
        script: Some(&throttle.script),
        ..full
    };
    let mut at_10k = Vec::new();
    for arm in [Arm::Pid, Arm::All] {
        let r = run_arm(ctx, &nginx, arm, &paced)?;
        eprintln!(
            "bench app: {} at ~10k req/s offered: {:.0} req/s, observer cpu {:.0} ms{}",
            arm.name(),
            r.wrk.rps,
            r.cpu_ms.unwrap_or(f64::NAN),
            steal_text(r.steal_pct),
        );
        at_10k.push((arm, r));
    }
    drop(nginx);
    let (mut rows, mut v) = summarise(&runs, rounds, seconds);
    let mut paced_json = serde_json::Map::new();
    for (arm, r) in &at_10k {
        let cpu = r.cpu_ms.unwrap_or(f64::NAN);
        let per_10k = cpu / r.wrk.requests as f64 * 10_000.0;
        let cores = cpu / (r.wrk.seconds * 1000.0);
        rows.push(Row::check(
            "6 cpu",
            format!(
                "{}: observer CPU per 10k requests at {:.0} req/s ({cores:.3} core)",
                arm.name(),
                r.wrk.rps
            ),
            per_10k,
            (1, " ms"),
            "<= 50 ms",
            |v| v <= 50.0,
        ));
        let drops = r.capture.map(|c| c.ringbuf_drops);
        paced_json.insert(
            arm.name().into(),
            json!({"rps": r.wrk.rps, "requests": r.wrk.requests, "seconds": r.wrk.seconds,
                   "observer_cpu_ms": cpu, "cpu_ms_per_10k_requests": per_10k, "cores": cores,
                   "ringbuf_drops": drops, "p99_us": r.wrk.p99_us,
                   "host_steal_pct": r.steal_pct}),
        );
    }
    v["at_10k_rps"] = Value::Object(paced_json);
    Ok((rows, v))
}

fn steal_text(pct: Option<f64>) -> String {
    pct.map(|p| format!(", host steal {p:.1} %"))
        .unwrap_or_default()
}

fn summarise(runs: &[(Arm, Run)], rounds: usize, seconds: u32) -> (Vec<Row>, Value) {
    let of = |arm: Arm| runs.iter().filter(move |(a, _)| *a == arm).map(|(_, r)| r);
    let med = |arm: Arm, f: &dyn Fn(&Run) -> Option<f64>| {
        median(&of(arm).filter_map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
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
        if arm == Arm::None {
            continue;
        }
        let n = arm.name();
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
