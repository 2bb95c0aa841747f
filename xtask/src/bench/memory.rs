//! Item 5: the observer's memory with 10,000 open keep-alive connections under observation.
//! nginx (worker_connections 20000) observed with `--pid <master>`; a Python asyncio client
//! (`xtask/bench/conns.py`) opens the connections, sends one request with trace headers on each,
//! keeps them open 5 s, then closes them. VmRSS is sampled every 100 ms: idle after ready, the
//! peak while they are open, and 5 s after they closed (steady state); VmHWM at the end. The cycle
//! runs twice: memory that stays after the first but does not grow in the second is kept by the
//! allocator for reuse, growth is a leak.
//!
//! VmRSS includes the ring buffer's mapping (the kernel maps its data pages twice, eagerly: 16 MiB
//! of `RssFile` for the default 8 MiB ring, counted twice but backed once); `RssAnon` is the
//! observer's own memory, sampled alongside.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::procs::{Guard, Nginx, Observer, lines_of, status_kib};
use super::{Ctx, Row};
use crate::root_dir;

const CONNS: u32 = 10_000;
const HOLD_SECONDS: u32 = 5;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// VmRSS and RssAnon of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss: u64,
    anon: u64,
}

impl Mem {
    fn of(pid: u32) -> Mem {
        Mem {
            rss: status_kib(pid, "VmRSS").unwrap_or(0),
            anon: status_kib(pid, "RssAnon").unwrap_or(0),
        }
    }

    fn max(self, o: Mem) -> Mem {
        Mem {
            rss: self.rss.max(o.rss),
            anon: self.anon.max(o.anon),
        }
    }

    fn json(self) -> Value {
        json!({"rss_kib": self.rss, "rss_anon_kib": self.anon})
    }
}

/// One open-hold-close cycle of the client: (connections opened, peak, 5 s after closing).
fn cycle(port: u16, observer: u32) -> anyhow::Result<(u64, Mem, Mem)> {
    let mut client = Guard::spawn(
        Command::new("python3")
            .arg(root_dir().join("xtask/bench/conns.py"))
            .args(["--port", &port.to_string(), "--conns", &CONNS.to_string()])
            .args(["--hold", &HOLD_SECONDS.to_string()])
            .stdout(Stdio::piped()),
    )?;
    let lines = lines_of(client.0.stdout.take().context("client stdout")?);
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut peak, mut opened) = (Mem::default(), 0);
    loop {
        peak = peak.max(Mem::of(observer));
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(l) if l.starts_with("OPEN ") => {
                opened = l[5..].trim().parse().unwrap_or(0);
                eprintln!(
                    "bench memory: {l} (observer RSS {:.1} MiB)",
                    mib(Mem::of(observer).rss)
                );
            }
            Ok(l) if l == "CLOSED" => break,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the client ended before closing"),
        }
        if Instant::now() > deadline {
            bail!("the client did not finish within 180 s");
        }
    }
    let _ = client.wait_for(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(5));
    Ok((opened, peak, Mem::of(observer)))
}

pub fn run(ctx: &Ctx) -> anyhow::Result<(Vec<Row>, Value)> {
    let nginx = Nginx::start(2 * CONNS)?;
    let obs = Observer::start(ctx, &["--pid".into(), nginx.pid().to_string()])?;
    let pid = obs.pid();
    std::thread::sleep(Duration::from_secs(1));
    let idle = Mem::of(pid);
    let (opened, peak1, after1) = cycle(nginx.port, pid)?;
    let (_, peak2, after2) = cycle(nginx.port, pid)?;
    let hwm = status_kib(pid, "VmHWM").unwrap_or(0);
    let summary = obs.stop()?;
    drop(nginx);
    let peak = peak1.max(peak2);
    eprintln!(
        "bench memory: VmRSS idle {:.1}, peak {:.1}, after 1st {:.1}, after 2nd {:.1}, hwm {:.1} MiB; \
         RssAnon idle {:.1}, peak {:.1}, after 1st {:.1}, after 2nd {:.1} MiB",
        mib(idle.rss),
        mib(peak.rss),
        mib(after1.rss),
        mib(after2.rss),
        mib(hwm),
        mib(idle.anon),
        mib(peak.anon),
        mib(after1.anon),
        mib(after2.anon)
    );
    let rows = vec![
        Row::info(
            "5 memory",
            "observer RSS idle (after ready)",
            format!("{:.1} MiB", mib(idle.rss)),
        ),
        Row::check(
            "5 memory",
            format!("observer RSS peak, {opened} connections open"),
            mib(peak.rss.max(hwm)),
            (1, " MiB"),
            "<= 50 MiB",
            |v| v <= 50.0,
        ),
        Row::info(
            "5 memory",
            "observer RssAnon (own memory, no ring mapping): idle / peak",
            format!("{:.1} / {:.1} MiB", mib(idle.anon), mib(peak.anon)),
        ),
        Row::check(
            "5 memory",
            "observer RSS 5 s after they closed, minus idle",
            mib(after1.rss) - mib(idle.rss),
            (1, " MiB"),
            "back to idle (<= +2 MiB)",
            |v| v <= 2.0,
        ),
        Row::check(
            "5 memory",
            "observer RSS growth over a 2nd open/close cycle",
            mib(after2.rss) - mib(after1.rss),
            (1, " MiB"),
            "steady (<= +1 MiB)",
            |v| v <= 1.0,
        ),
    ];
    let v = json!({
        "connections": opened, "hold_seconds": HOLD_SECONDS, "cycles": 2,
        "idle": idle.json(), "hwm_kib": hwm,
        "first": {"peak": peak1.json(), "after_close_5s": after1.json()},
        "second": {"peak": peak2.json(), "after_close_5s": after2.json()},
        "summary": {"inbound": summary["inbound"], "capture": summary["capture"]},
    });
    Ok((rows, v))
}
