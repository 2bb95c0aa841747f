//! Item 5: the observer's memory with 10,000 open keep-alive connections under observation.
//! nginx (worker_connections 20000) observed with `--pid <master>`; a Python asyncio client
//! (`xtask/bench/conns.py`) opens the connections, sends one request with trace headers on each,
//! keeps them open, then closes them. VmRSS is sampled every 100 ms: idle after ready, the peak
//! while they are open, and 5 s after they closed (steady state); VmHWM at the end.
//!
//! VmRSS includes the ring buffer's mapping (the kernel maps its data pages twice, eagerly: 32 MiB
//! of `RssFile` for the default 16 MiB ring); `RssAnon` is the observer's own memory, sampled
//! alongside.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::procs::{Guard, Nginx, Observer, status_kib};
use super::{Ctx, Row};
use crate::root_dir;

const CONNS: u32 = 10_000;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn run(ctx: &Ctx) -> anyhow::Result<(Vec<Row>, Value)> {
    let hold = 5;
    let nginx = Nginx::start(2 * CONNS)?;
    let obs = Observer::start(&ctx.observer, &["--pid".into(), nginx.pid().to_string()])?;
    let pid = obs.pid();
    let rss = || status_kib(pid, "VmRSS").unwrap_or(0);
    let anon = || status_kib(pid, "RssAnon").unwrap_or(0);
    std::thread::sleep(Duration::from_secs(1));
    let (idle, idle_anon) = (rss(), anon());

    let mut client = Guard::spawn(
        Command::new("python3")
            .arg(root_dir().join("xtask/bench/conns.py"))
            .args(["--port", &nginx.port.to_string()])
            .args(["--conns", &CONNS.to_string(), "--hold", &hold.to_string()])
            .stdout(Stdio::piped()),
    )?;
    let stdout = client.0.stdout.take().context("client stdout")?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut peak, mut peak_anon, mut opened, mut at_open) = (0, 0, None, 0);
    loop {
        peak = peak.max(rss());
        peak_anon = peak_anon.max(anon());
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(l) if l.starts_with("OPEN ") => {
                opened = l[5..].trim().parse::<u64>().ok();
                eprintln!("bench memory: {l} (observer RSS {:.1} MiB)", mib(rss()));
            }
            Ok(l) if l == "CLOSED" => break,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the client ended before closing"),
        }
        if opened.is_some() && at_open == 0 {
            // One second into the hold: every connection's head has been processed.
            std::thread::sleep(Duration::from_secs(1));
            at_open = rss();
        }
        if Instant::now() > deadline {
            bail!("the client did not finish within 180 s");
        }
    }
    let _ = client.wait_for(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(5));
    let (after, after_anon) = (rss(), anon());
    let hwm = status_kib(pid, "VmHWM").unwrap_or(0);
    let summary = obs.stop()?;
    drop(nginx);
    eprintln!(
        "bench memory: VmRSS idle {:.1} MiB, open {:.1} MiB, peak {:.1} MiB, after {:.1} MiB, \
         hwm {:.1} MiB; RssAnon idle {:.1} MiB, peak {:.1} MiB, after {:.1} MiB",
        mib(idle),
        mib(at_open),
        mib(peak),
        mib(after),
        mib(hwm),
        mib(idle_anon),
        mib(peak_anon),
        mib(after_anon)
    );
    let rows = vec![
        Row::info(
            "5 memory",
            "observer RSS idle (after ready)",
            format!("{:.1} MiB", mib(idle)),
        ),
        Row::check(
            "5 memory",
            format!(
                "observer RSS peak, {} connections open",
                opened.unwrap_or(0)
            ),
            mib(peak.max(hwm)),
            (1, " MiB"),
            "<= 50 MiB",
            |v| v <= 50.0,
        ),
        Row::info(
            "5 memory",
            "observer RssAnon (own memory, no ring mapping): idle / peak",
            format!("{:.1} / {:.1} MiB", mib(idle_anon), mib(peak_anon)),
        ),
        Row::check(
            "5 memory",
            "observer RSS 5 s after they closed (minus idle)",
            mib(after) - mib(idle),
            (1, " MiB"),
            "back to idle (<= +2 MiB)",
            |v| v <= 2.0,
        ),
    ];
    let v = json!({
        "connections": opened, "hold_seconds": hold,
        "rss_kib": {"idle": idle, "open": at_open, "peak": peak, "after_close_5s": after, "hwm": hwm},
        "rss_anon_kib": {"idle": idle_anon, "peak": peak_anon, "after_close_5s": after_anon},
        "summary": {"inbound": summary["inbound"], "capture": summary["capture"]},
    });
    Ok((rows, v))
}
