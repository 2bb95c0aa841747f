//! Item 2: the cost the kernel programs add to a syscall. A loop process (`xtask bench-loop`, a
//! hidden subcommand of this binary) holds both ends of a loopback TCP connection and repeats an
//! exchange of four syscalls: write(client), read(server), write(server), read(client), with
//! either 64 plain bytes each way or an HTTP request head with trace headers and a response head
//! (the capture path: a record per syscall). Arms, interleaved over rounds:
//!
//! * `none`: no observer;
//! * `unobserved`: an observer watching another (idle) process: every syscall still runs the
//!   programs' process filter;
//! * `observed`: `observer --pid <loop>`, plain bytes (filter, arguments read from the saved
//!   registers, head test);
//! * `observed-http`: the same with HTTP heads (the bytes are copied into the ring buffer);
//! * `none-quick` and `unobserved-quick`: the loop makes calls that return at once (a read of an
//!   empty non-blocking socket, a write of nothing) through the same hooks, so that the few ns an
//!   unobserved process pays are not lost in the exchange's own variation;
//! * `none-other` and `other`: getppid, a syscall the programs do not hook but still see
//!   (they hook every syscall and return at once for the others);
//! * `empty-quick` and `empty-other`: the quick calls and getppid with no observer, but two
//!   programs that return at once attached to the tracepoints of the observer's data hooks
//!   (`xtask/bench/empty_probes.py`): `sock_send_length` and `sock_recv_length` (socket hooks),
//!   or `sys_enter` and `sys_exit` (syscall hooks). The floor of that kind of hook on this kernel
//!   (for the syscall tracepoints, the slow path every task takes once one is on, and two program
//!   dispatches), which the observer's programs cannot go below; what they add is the rest.
//!
//! The loop prints its pid and waits for a line on stdin, so the observer is attached before it
//! starts. Wall time per syscall is measured with the monotonic clock; "added" is the median of
//! an arm minus the median of `none`. Then, once, the same arms run with
//! `kernel.bpf_stats_enabled=1` to read the programs' own run time (bpftool): the run time of all
//! the observer's programs over the loop, divided by the loop's syscalls. The programs run for
//! whatever else the machine does meanwhile (every syscall with the syscall hooks, every socket
//! call with the socket hooks), which is charged to the loop too, so the figure is an upper bound.
//! One more arm there, `other`, has the loop call a syscall the programs do not hook (`getppid`):
//! what every other syscall pays.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::parse::median;
use super::procs::{Guard, Observer, empty_probes, lines_of, output_within};
use super::{Ctx, Row};

const PLAIN: &[u8] = &[b'x'; 64];
const REQUEST: &[u8] = b"GET /api/items HTTP/1.1\r\nHost: x\r\n\
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

fn full(n: nix::Result<usize>, want: usize, what: &str) -> anyhow::Result<usize> {
    let n = n.map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if n == 0 {
        bail!("{what} returned 0 (closed)");
    }
    if n > want {
        bail!("{what} returned {n} > {want}");
    }
    Ok(n)
}

/// Reads exactly `want` bytes with read(2); returns the number of read calls made.
fn read_exact(fd: BorrowedFd, buf: &mut [u8], want: usize) -> anyhow::Result<u64> {
    let mut got = 0;
    let mut calls = 0;
    while got < want {
        let n = nix::unistd::read(fd, &mut buf[got..want]);
        got += full(n, want - got, "read")?;
        calls += 1;
    }
    Ok(calls)
}

fn write_all(fd: BorrowedFd, data: &[u8]) -> anyhow::Result<u64> {
    let n = nix::unistd::write(fd, data);
    if full(n, data.len(), "write")? != data.len() {
        bail!("short write on loopback");
    }
    Ok(1)
}

/// What the loop process repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopCalls {
    /// write → read → write → read of 64 plain bytes on a loopback TCP connection ...
    Plain,
    /// ... or of an HTTP request head and a response head.
    Http,
    /// getppid, a syscall the programs do not hook.
    Other,
    /// Calls that return at once: reads of an empty non-blocking socket, writes of nothing.
    Quick,
}

/// The loop process (`xtask bench-loop`): prints `READY <pid>`, waits for a line on stdin, runs
/// `iters` exchanges (or 4 × `iters` of the other calls) and prints
/// `RESULT <elapsed ns> <syscalls>`.
pub fn bench_loop(iters: u64, what: LoopCalls) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (c, s) = (client.as_fd(), server.as_fd());
    let (req, resp) = if what == LoopCalls::Http {
        (REQUEST, RESPONSE)
    } else {
        (PLAIN, PLAIN)
    };
    let mut buf = [0u8; 512];
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", std::process::id())?;
    out.flush()?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let start = Instant::now();
    let calls = match what {
        LoopCalls::Other => {
            for _ in 0..4 * iters {
                std::hint::black_box(nix::unistd::getppid());
            }
            4 * iters
        }
        LoopCalls::Quick => {
            server.set_nonblocking(true)?;
            for _ in 0..2 * iters {
                match nix::unistd::read(s, &mut buf) {
                    Err(nix::errno::Errno::EAGAIN) => {}
                    r => bail!("read of an empty non-blocking socket: {r:?}"),
                }
                full(nix::unistd::write(c, &[]).map(|_| 1), 1, "empty write")?;
            }
            4 * iters
        }
        LoopCalls::Plain | LoopCalls::Http => {
            let mut calls = 0;
            for _ in 0..iters {
                calls += write_all(c, req)?;
                calls += read_exact(s, &mut buf, req.len())?;
                calls += write_all(s, resp)?;
                calls += read_exact(c, &mut buf, resp.len())?;
            }
            calls
        }
    };
    let ns = start.elapsed().as_nanos();
    writeln!(out, "RESULT {ns} {calls}")?;
    out.flush()?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arm {
    None,
    Unobserved,
    Observed,
    ObservedHttp,
    /// getppid (a syscall the programs do not hook), no observer ...
    NoneOther,
    /// ... and with an observer attached: what every other syscall on the machine pays.
    Other,
    /// EAGAIN reads and empty writes, no observer ...
    NoneQuick,
    /// ... and in an unobserved process: the added cost without the exchange's own noise.
    UnobservedQuick,
    /// The quick calls under empty programs on the data hooks' tracepoints, no observer: the floor ...
    EmptyQuick,
    /// ... and getppid under them.
    EmptyOther,
}

const ARMS: [Arm; 10] = [
    Arm::None,
    Arm::Unobserved,
    Arm::Observed,
    Arm::ObservedHttp,
    Arm::NoneQuick,
    Arm::UnobservedQuick,
    Arm::NoneOther,
    Arm::Other,
    Arm::EmptyQuick,
    Arm::EmptyOther,
];

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::None => "none",
            Arm::Unobserved => "unobserved",
            Arm::Observed => "observed",
            Arm::ObservedHttp => "observed-http",
            Arm::NoneOther => "none-other",
            Arm::Other => "other",
            Arm::NoneQuick => "none-quick",
            Arm::UnobservedQuick => "unobserved-quick",
            Arm::EmptyQuick => "empty-quick",
            Arm::EmptyOther => "empty-other",
        }
    }

    /// The arm without an observer that makes the same calls: what this arm's "added" is
    /// measured against.
    fn baseline(self) -> Arm {
        match self {
            Arm::None | Arm::Unobserved | Arm::Observed | Arm::ObservedHttp => Arm::None,
            Arm::NoneQuick | Arm::UnobservedQuick | Arm::EmptyQuick => Arm::NoneQuick,
            Arm::NoneOther | Arm::Other | Arm::EmptyOther => Arm::NoneOther,
        }
    }

    /// The pid the arm's observer is given (`--pid`): the idle process when the loop is
    /// unobserved, the loop itself when observed; `None` for the arms without an observer.
    fn observed_pid(self, idle: u32, loop_pid: u32) -> Option<u32> {
        match self {
            Arm::None | Arm::NoneQuick | Arm::NoneOther | Arm::EmptyQuick | Arm::EmptyOther => None,
            Arm::Unobserved | Arm::Other | Arm::UnobservedQuick => Some(idle),
            Arm::Observed | Arm::ObservedHttp => Some(loop_pid),
        }
    }
}

/// The loop, started and waiting for its go.
struct Loop {
    proc: Guard,
    lines: Receiver<String>,
    pid: u32,
}

impl Loop {
    fn start(iters: u64, arm: Arm) -> anyhow::Result<Loop> {
        let mut c = Command::new(std::env::current_exe()?);
        c.args(["bench-loop", "--iters", &iters.to_string()]);
        match arm {
            Arm::ObservedHttp => {
                c.arg("--http");
            }
            Arm::Other | Arm::NoneOther | Arm::EmptyOther => {
                c.arg("--other");
            }
            Arm::NoneQuick | Arm::UnobservedQuick | Arm::EmptyQuick => {
                c.arg("--quick-calls");
            }
            _ => {}
        }
        let mut proc = Guard::spawn(c.stdin(Stdio::piped()).stdout(Stdio::piped()))?;
        let lines = lines_of(proc.0.stdout.take().context("loop stdout")?);
        let first = lines
            .recv_timeout(Duration::from_secs(30))
            .context("the loop printed nothing")?;
        let pid = first
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("loop printed {first:?}"))?;
        Ok(Loop { proc, lines, pid })
    }

    /// Starts the loop and waits for its result: (ns per syscall, syscalls).
    fn go(mut self) -> anyhow::Result<(f64, f64)> {
        writeln!(self.proc.0.stdin.as_mut().context("loop stdin")?, "go")?;
        // A wedged loop is given up on (and killed by the guard).
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(600))
            .context("the loop printed no result within 600 s")?;
        let mut w = line.split_whitespace().skip(1);
        let ns: f64 = w.next().context("result")?.parse()?;
        let calls: f64 = w.next().context("result")?.parse()?;
        let _ = self.proc.wait_for(Duration::from_secs(5));
        Ok((ns / calls, calls))
    }
}

/// Runs one arm; `idle` is the pid the unobserved arm's observer watches.
fn run_arm(ctx: &Ctx, arm: Arm, iters: u64, idle: u32) -> anyhow::Result<f64> {
    let lp = Loop::start(iters, arm)?;
    if matches!(arm, Arm::EmptyQuick | Arm::EmptyOther) {
        let _probes = empty_probes(ctx.hooks)?;
        return Ok(lp.go()?.0);
    }
    let Some(target) = arm.observed_pid(idle, lp.pid) else {
        return Ok(lp.go()?.0);
    };
    let obs = Observer::start(ctx, &["--pid".into(), target.to_string()])?;
    let (ns, _) = lp.go()?;
    obs.stop()?;
    Ok(ns)
}

pub fn run(ctx: &Ctx) -> anyhow::Result<(Vec<Row>, Value)> {
    let (rounds, iters) = if ctx.quick {
        (2, 100_000)
    } else {
        (5, 500_000)
    };
    let idle = Guard::spawn(Command::new("sleep").arg("100000"))?;
    let mut ns: Vec<(Arm, f64)> = Vec::new();
    for round in 0..rounds {
        for i in 0..ARMS.len() {
            let arm = ARMS[(i + round) % ARMS.len()];
            let v = run_arm(ctx, arm, iters, idle.pid())?;
            eprintln!(
                "bench syscall: round {}/{rounds}, {}: {v:.0} ns/syscall",
                round + 1,
                arm.name()
            );
            ns.push((arm, v));
        }
    }
    let med = |arm: Arm| {
        median(
            &ns.iter()
                .filter(|(a, _)| *a == arm)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>(),
        )
        .unwrap_or(f64::NAN)
    };
    let base = med(Arm::None);
    let mut rows = vec![Row::info(
        "2 syscall",
        "none: ns per syscall (write/read 64 B, loopback TCP)",
        format!("{base:.0} ns"),
    )];
    let mut arms = serde_json::Map::new();
    for arm in ARMS {
        let m = med(arm);
        let runs: Vec<f64> = ns
            .iter()
            .filter(|(a, _)| *a == arm)
            .map(|(_, v)| *v)
            .collect();
        // The minimum too: on a busy machine it is the least disturbed run.
        let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
        let added = m - med(arm.baseline());
        arms.insert(
            arm.name().into(),
            json!({"ns_per_syscall_median": m, "added_ns": added,
                   "ns_per_syscall_min": min, "runs": runs}),
        );
        let (target, limit, what) = match arm {
            Arm::None | Arm::NoneQuick | Arm::NoneOther => continue,
            Arm::EmptyQuick | Arm::EmptyOther => {
                let what = if arm == Arm::EmptyQuick {
                    "EAGAIN read / empty write"
                } else {
                    "getppid"
                };
                rows.push(Row::info(
                    "2 syscall",
                    format!("floor, empty programs on the same hooks: ns added (wall, {what})"),
                    format!("{added:.0} ns"),
                ));
                continue;
            }
            Arm::Other => {
                rows.push(Row::info(
                    "2 syscall",
                    "other: ns added per other syscall (wall, getppid)",
                    format!("{added:.0} ns"),
                ));
                continue;
            }
            Arm::Unobserved => ("<= 20 ns", 20.0, ""),
            Arm::UnobservedQuick => ("<= 20 ns", 20.0, ", EAGAIN read / empty write"),
            _ => ("<= 100 ns", 100.0, ""),
        };
        rows.push(Row::check(
            "2 syscall",
            format!("{}: ns added per syscall (wall{what})", arm.name()),
            added,
            (0, " ns"),
            target,
            |v| v <= limit,
        ));
    }
    let stats = match bpf_stats(ctx, iters, idle.pid()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench syscall: bpf_stats not measured: {e:#}");
            json!({"error": format!("{e:#}")})
        }
    };
    for arm in [
        Arm::Unobserved,
        Arm::Observed,
        Arm::ObservedHttp,
        Arm::Other,
    ] {
        let v = stats[arm.name()]["ns_per_syscall"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let what = format!(
            "{}: BPF run time per {} (all its programs, bpf_stats)",
            arm.name(),
            if arm == Arm::Other {
                "other syscall (getppid)"
            } else {
                "write or read"
            }
        );
        let (target, limit) = match arm {
            Arm::Unobserved => ("<= 20 ns", 20.0),
            Arm::Other => {
                rows.push(Row::info("2 syscall", what, format!("{v:.0} ns")));
                continue;
            }
            _ => ("<= 100 ns", 100.0),
        };
        rows.push(Row::check("2 syscall", what, v, (0, " ns"), target, |x| {
            x <= limit
        }));
    }
    let v = json!({
        "rounds": rounds, "iterations": iters, "syscalls_per_iteration": 4,
        "payload_plain_bytes": PLAIN.len(), "request_bytes": REQUEST.len(), "response_bytes": RESPONSE.len(),
        "arms": arms, "bpf_stats": stats,
    });
    Ok((rows, v))
}

/// (name, run_time_ns, run_cnt) of the programs held by process `owner` (all programs when
/// bpftool does not list owners), from `bpftool prog show --json`.
fn prog_stats(owner: u32) -> anyhow::Result<Vec<(String, u64, u64)>> {
    let out = output_within(
        Command::new("bpftool").args(["prog", "show", "--json"]),
        Duration::from_secs(20),
    )?;
    let v: Value = serde_json::from_str(&out).context("bpftool prog show --json")?;
    Ok(super::parse::bpf_prog_stats(&v, owner))
}

/// Per arm: the run time of all the observer's programs over the loop, per loop syscall (ns).
fn bpf_stats(ctx: &Ctx, iters: u64, idle: u32) -> anyhow::Result<Value> {
    const KNOB: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let old = std::fs::read_to_string(KNOB).context(KNOB)?;
    std::fs::write(KNOB, "1").context("enabling bpf_stats")?;
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::write(KNOB, self.0.trim());
        }
    }
    let _restore = Restore(old);
    let mut res = serde_json::Map::new();
    for arm in [
        Arm::Unobserved,
        Arm::Observed,
        Arm::ObservedHttp,
        Arm::Other,
    ] {
        let lp = Loop::start(iters, arm)?;
        let target = arm
            .observed_pid(idle, lp.pid)
            .context("an arm with an observer")?;
        let obs = Observer::start(ctx, &["--pid".into(), target.to_string()])?;
        let before = prog_stats(obs.pid())?;
        let (_, calls) = lp.go()?;
        let after = prog_stats(obs.pid())?;
        obs.stop()?;
        let (ns, runs) = super::parse::total_run(&before, &after);
        let per = ns as f64 / calls;
        res.insert(
            arm.name().into(),
            json!({"ns_per_syscall": per, "loop_syscalls": calls, "program_runs": runs,
                   "run_time_ns": ns, "programs": super::parse::deltas(&before, &after)}),
        );
        eprintln!(
            "bench syscall: bpf_stats {}: {per:.0} ns per loop syscall ({runs} program runs for {calls} syscalls)",
            arm.name()
        );
    }
    Ok(Value::Object(res))
}
