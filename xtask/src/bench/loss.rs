//! Item 4: ring-buffer loss. nginx driven by wrk at increasing offered rates (wrk's `delay()` hook
//! holds each connection 1 ms between requests, so the rate is set by the number of connections),
//! then unthrottled, observed with `--all` (nginx and wrk: four records per request) with a 1 MiB
//! and the default 8 MiB ring buffer. Per step: offered and achieved req/s, records, drops.
//! Then the observer is stopped (SIGSTOP) for 1.5 s under full load with the 1 MiB ring: the
//! drops must show in its summary (`ringbuf_drops`, and breaks turned into `unknown`).

use std::time::Duration;

use serde_json::{Value, json};

use super::app::{Throttle, Wrk};
use super::parse;
use super::procs::{Nginx, Observer, signal};
use super::{Ctx, DEFAULT_RING_MIB, Row};

struct Step {
    ring_mib: u32,
    /// wrk connections with a 1 ms delay per request; `None`: unthrottled (32 connections).
    throttled: Option<u32>,
    rps: f64,
    capture: parse::Capture,
}

fn offered(c: Option<u32>) -> String {
    c.map(|c| format!("~{} req/s", c * 1000))
        .unwrap_or_else(|| "max".into())
}

pub fn run(ctx: &Ctx) -> anyhow::Result<(Vec<Row>, Value)> {
    let (rates, seconds): (&[u32], u32) = if ctx.quick {
        (&[16, 64], 3)
    } else {
        (&[8, 16, 32, 48, 64, 96, 128], 5)
    };
    let nginx = Nginx::start(4096)?;
    let url = nginx.url();
    let throttle = Throttle::new()?;
    let mut steps = Vec::new();
    for ring_mib in [1, DEFAULT_RING_MIB] {
        for throttled in rates.iter().copied().map(Some).chain([None]) {
            let obs = Observer::start(
                ctx,
                &[
                    "--all".into(),
                    "--ring-buffer-mib".into(),
                    ring_mib.to_string(),
                ],
            )?;
            let report = Wrk {
                url: &url,
                threads: 2,
                connections: throttled.unwrap_or(32),
                seconds,
                script: throttled.map(|_| throttle.script.as_path()),
            }
            .run()?;
            let c = parse::capture(&obs.stop()?);
            eprintln!(
                "bench loss: ring {ring_mib} MiB, offered {}: {:.0} req/s, {} records ({:.0}/s), \
                 {} drops, {} lost heads",
                offered(throttled),
                report.rps,
                c.records,
                c.records as f64 / f64::from(seconds),
                c.ringbuf_drops,
                c.lost_heads
            );
            steps.push(Step {
                ring_mib,
                throttled,
                rps: report.rps,
                capture: c,
            });
        }
    }
    let stall = stalled(ctx, &url, seconds.max(4))?;
    drop(nginx);

    let mut rows = Vec::new();
    for ring in [1, DEFAULT_RING_MIB] {
        let of: Vec<&Step> = steps.iter().filter(|s| s.ring_mib == ring).collect();
        let max = of.iter().map(|s| s.rps).fold(0.0, f64::max);
        let first = of
            .iter()
            .filter(|s| s.capture.ringbuf_drops > 0)
            .min_by(|a, b| a.rps.total_cmp(&b.rps));
        rows.push(Row::info(
            "4 loss",
            format!("--all, ring {ring} MiB: drops begin between"),
            match first {
                Some(s) => {
                    let clean = of
                        .iter()
                        .filter(|c| c.capture.ringbuf_drops == 0 && c.rps < s.rps)
                        .map(|c| c.rps)
                        .fold(0.0, f64::max);
                    format!(
                        "{clean:.0}..{:.0} req/s ({} drops at {:.0})",
                        s.rps, s.capture.ringbuf_drops, s.rps
                    )
                }
                None => format!("none up to {max:.0} req/s"),
            },
        ));
    }
    let drops = stall.1.ringbuf_drops;
    rows.push(Row::check(
        "4 loss",
        "observer stopped 1.5 s at max rate (1 MiB): drops in its summary",
        drops as f64,
        (0, ""),
        "> 0, reported",
        |v| v > 0.0,
    ));
    let steps_json: Vec<Value> = steps
        .iter()
        .map(|s| {
            json!({"ring_mib": s.ring_mib, "offered": offered(s.throttled),
                   "wrk_connections": s.throttled.unwrap_or(32), "delay_ms": s.throttled.map(|_| 1),
                   "achieved_rps": s.rps, "records": s.capture.records,
                   "ringbuf_drops": s.capture.ringbuf_drops, "lost_heads": s.capture.lost_heads,
                   "unknown": s.capture.unknown})
        })
        .collect();
    let v = json!({
        "mode": "--all", "seconds_per_step": seconds, "steps": steps_json,
        "stalled": {"ring_mib": 1, "stop_seconds": 1.5, "rps": stall.0,
                     "records": stall.1.records, "ringbuf_drops": drops,
                     "unknown": stall.1.unknown, "lost_heads": stall.1.lost_heads},
    });
    Ok((rows, v))
}

/// Full load with the observer stopped for 1.5 s: (req/s, its summary figures).
fn stalled(ctx: &Ctx, url: &str, seconds: u32) -> anyhow::Result<(f64, parse::Capture)> {
    let obs = Observer::start(
        ctx,
        &["--all".into(), "--ring-buffer-mib".into(), "1".into()],
    )?;
    let pid = obs.pid();
    let pauser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        signal(pid, nix::sys::signal::Signal::SIGSTOP);
        std::thread::sleep(Duration::from_millis(1500));
        signal(pid, nix::sys::signal::Signal::SIGCONT);
    });
    let report = Wrk {
        url,
        threads: 2,
        connections: 32,
        seconds,
        script: None,
    }
    .run();
    // Never leave it stopped, whatever wrk did.
    let _ = pauser.join();
    signal(pid, nix::sys::signal::Signal::SIGCONT);
    let report = report?;
    let c = parse::capture(&obs.stop()?);
    eprintln!(
        "bench loss: stalled observer: {:.0} req/s, {} records, {} drops, {} unknown, {} lost heads",
        report.rps, c.records, c.ringbuf_drops, c.unknown, c.lost_heads
    );
    Ok((report.rps, c))
}
