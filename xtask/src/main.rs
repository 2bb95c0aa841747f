//! `cargo xtask`: set-up, tests, demo and install for observer.
//!
//! * `setup`   installs what the build and the tests need (idempotent, quiet when present);
//! * `test`    runs everything: fmt check, clippy (-D warnings), unit tests, a 30 s run of each
//!   fuzz target, privileged end-to-end tests on the real kernel (re-run under sudo when not root);
//! * `demo`    starts small local services that call each other, observes them, drives traffic;
//! * `install` puts `observer` in /usr/local/bin so that `sudo observer --pid N` works;
//! * `bench`   measures the overhead budget (docs/benchmarks.md): prints a table, writes JSON.

mod bench;
mod demo;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Developer tasks for observer")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the eBPF toolchain and the test programs (idempotent).
    Setup,
    /// Build the observer (release).
    Build,
    /// Run the whole test suite: fmt, clippy, unit tests, privileged end-to-end tests.
    Test {
        /// Only the unprivileged part (fmt, clippy, unit tests).
        #[arg(long)]
        no_privileged: bool,
        /// Run only the privileged end-to-end tests (used when re-running under sudo).
        #[arg(long, hide = true)]
        privileged_only: bool,
        /// Passed to the end-to-end test binary as a name filter.
        filter: Option<String>,
    },
    /// Start demo services, observe them and drive traffic with trace headers.
    Demo,
    /// Install the observer binary into /usr/local/bin.
    Install,
    /// Measure the overhead budget: app overhead, per-syscall cost, pipeline, loss, memory, CPU.
    Bench(bench::Options),
    /// The per-syscall benchmark's loop process (started by `bench`).
    #[command(hide = true)]
    BenchLoop {
        #[arg(long)]
        iters: u64,
        /// HTTP heads instead of plain bytes.
        #[arg(long)]
        http: bool,
        /// A syscall the programs do not hook (getppid) instead of the exchange.
        #[arg(long, conflicts_with = "http")]
        other: bool,
        /// Calls that return at once (EAGAIN reads, empty writes) instead of the exchange.
        #[arg(long, conflicts_with_all = ["http", "other"])]
        quick_calls: bool,
    },
}

pub fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs a command to completion, failing with its description when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let desc = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {desc}"))?;
    if !status.success() {
        bail!("{desc} failed: {status}");
    }
    Ok(())
}

/// Passed and failed test counts, summed over `cargo test` runs.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Runs a `cargo test` command, echoing its output and adding up its `test result:` lines.
    /// Reading stops once the command has exited, even if a stray grandchild still holds its
    /// stdout open.
    fn run(&mut self, cmd: &mut Command) -> anyhow::Result<()> {
        use std::io::{BufRead, BufReader};
        use std::sync::mpsc;
        use std::time::Duration;
        let desc = format!("{cmd:?}");
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {desc}"))?;
        let stdout = child.stdout.take().context("test stdout")?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let status = loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => self.line(&line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break child.wait()?,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = child.try_wait()? {
                        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
                            self.line(&line);
                        }
                        break status;
                    }
                }
            }
        };
        if !status.success() {
            bail!("{desc} failed: {status}");
        }
        Ok(())
    }

    fn line(&mut self, line: &str) {
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| {
                        let n = part.trim().strip_suffix(word)?;
                        n.trim()
                            .trim_start_matches("ok.")
                            .trim_start_matches("FAILED.")
                            .trim()
                            .parse()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            self.passed += count("passed");
            self.failed += count("failed");
        }
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root_dir());
    c
}

/// Builds the observer binary and returns its path.
pub fn build_observer(release: bool) -> anyhow::Result<PathBuf> {
    let mut c = cargo();
    c.args(["build", "--package", "observer", "--bin", "observer"]);
    if release {
        c.arg("--release");
    }
    run(&mut c)?;
    // Where cargo put it: `CARGO_TARGET_DIR` (relative to the workspace, where cargo ran) when set.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root_dir().join("target"), |d| root_dir().join(d));
    let bin = target
        .join(if release { "release" } else { "debug" })
        .join("observer");
    if !bin.is_file() {
        bail!("built observer not found at {}", bin.display());
    }
    Ok(bin)
}

fn test(no_privileged: bool, privileged_only: bool, filter: Option<String>) -> anyhow::Result<()> {
    let mut tally = Tally::default();
    let result = test_steps(&mut tally, no_privileged, privileged_only, filter);
    // One plain closing line with the totals of every test binary that ran.
    println!("{} passed, {} failed", tally.passed, tally.failed);
    result
}

/// The cargo-fuzz targets in fuzz/ (nightly).
const FUZZ_TARGETS: &[&str] = &["decode", "decode_structured", "pipeline", "tracectx"];

/// Runs each fuzz target for 30 s from its committed corpus. New inputs go to a scratch corpus
/// under target/ (the committed one is only read); a crash fails the step and is saved in
/// fuzz/artifacts/.
fn fuzz_smoke() -> anyhow::Result<()> {
    eprintln!("== fuzz smoke run (30 s per target)");
    let fuzz = root_dir().join("fuzz");
    for target in FUZZ_TARGETS {
        let scratch = root_dir().join("target/fuzz-corpus").join(target);
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        // `cargo` here is the real cargo binary, not rustup's proxy: `+nightly` would not work.
        run(Command::new("rustup")
            .current_dir(&fuzz)
            .args(["run", "nightly", "cargo", "fuzz", "run", target])
            // The kernel programs of the observer crate it links are built as everywhere else,
            // not with the nightly (observer/build.rs).
            .env("OBSERVER_EBPF_TOOLCHAIN", setup::ebpf_toolchain())
            .arg(&scratch)
            .arg(fuzz.join("corpus").join(target))
            .args(["--", "-max_total_time=30"]))?;
    }
    Ok(())
}

fn test_steps(
    tally: &mut Tally,
    no_privileged: bool,
    privileged_only: bool,
    filter: Option<String>,
) -> anyhow::Result<()> {
    if !privileged_only {
        setup::setup()?;
        eprintln!("== cargo fmt --check");
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        eprintln!("== cargo clippy (warnings are errors)");
        run(cargo()
            .args([
                "clippy",
                "--workspace",
                "--exclude",
                "observer-ebpf",
                "--all-targets",
            ])
            .args(["--", "-D", "warnings"]))?;
        // The kernel crate only builds for the BPF target, with build-std (RUSTC_BOOTSTRAP on
        // the stable toolchain, as observer/build.rs does), and with the architecture it will
        // run on (which aya-build sets for a real build).
        run(Command::new("rustup")
            .current_dir(root_dir().join("observer-ebpf"))
            .env("CARGO_TARGET_DIR", root_dir().join("target/bpf-clippy"))
            .env("RUSTC_BOOTSTRAP", "1")
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
            )
            .args([
                "run",
                &setup::ebpf_toolchain(),
                "cargo",
                "clippy",
                "--target",
                "bpfel-unknown-none",
            ])
            .args(["-Z", "build-std=core", "--bins", "--", "-D", "warnings"]))?;
        eprintln!("== unit tests");
        tally.run(cargo().args(["test", "--workspace", "--exclude", "observer-tests"]))?;
        fuzz_smoke()?;
        if no_privileged {
            return Ok(());
        }
    }
    eprintln!("== privileged end-to-end tests (real kernel, real servers and clients)");
    let bin = build_observer(true)?;
    // Build the test binary as the invoking user, then run it as root.
    run(cargo().args([
        "test",
        "--package",
        "observer-tests",
        "--test",
        "e2e",
        "--no-run",
    ]))?;
    let mut c = if is_root() {
        cargo()
    } else {
        eprintln!("not root: re-running the privileged tests with sudo");
        let mut s = Command::new("sudo");
        s.args([
            "--preserve-env=PATH,CI,RUSTUP_HOME,CARGO_HOME,HOME,OBSERVER_BIN,OBSERVER_HOOKS",
            "--",
        ]);
        s.arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        s.current_dir(root_dir());
        s
    };
    c.args([
        "test",
        "--package",
        "observer-tests",
        "--test",
        "e2e",
        "--",
        "--test-threads=1",
    ]);
    if let Some(f) = &filter {
        c.arg(f);
    }
    c.env("OBSERVER_BIN", &bin);
    // Once with the hooks the observer picks on this kernel (the socket hooks from 6.3 on, which
    // the tests expect), once with the syscall hooks that older kernels get.
    tally.run(&mut c)?;
    eprintln!("== privileged end-to-end tests again, with the syscall hooks (OBSERVER_HOOKS)");
    c.env("OBSERVER_HOOKS", "syscall");
    tally.run(&mut c)
}

fn install() -> anyhow::Result<()> {
    setup::setup()?;
    let bin = build_observer(true)?;
    let dest = Path::new("/usr/local/bin/observer");
    if is_root() {
        std::fs::copy(&bin, dest).with_context(|| format!("copying to {}", dest.display()))?;
    } else {
        eprintln!("not root: installing with sudo");
        run(Command::new("sudo")
            .args(["install", "-m", "0755"])
            .arg(&bin)
            .arg(dest))?;
    }
    eprintln!(
        "installed {}; run it as `sudo observer --pid <PID>`",
        dest.display()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Setup => setup::setup(),
        Cmd::Build => {
            setup::setup()?;
            build_observer(true).map(|p| eprintln!("built {}", p.display()))
        }
        Cmd::Test {
            no_privileged,
            privileged_only,
            filter,
        } => test(no_privileged, privileged_only, filter),
        Cmd::Demo => demo::demo(),
        Cmd::Install => install(),
        Cmd::Bench(opts) => bench::bench(opts),
        Cmd::BenchLoop {
            iters,
            http,
            other,
            quick_calls,
        } => {
            use bench::syscall::LoopCalls;
            let what = match (http, other, quick_calls) {
                (true, _, _) => LoopCalls::Http,
                (_, true, _) => LoopCalls::Other,
                (_, _, true) => LoopCalls::Quick,
                _ => LoopCalls::Plain,
            };
            bench::syscall::bench_loop(iters, what)
        }
    }
}
