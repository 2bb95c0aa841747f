//! Harness of the privileged end-to-end tests: starts the real observer binary (`OBSERVER_BIN`,
//! set by `cargo xtask test`) against real servers and clients on loopback, and collects the JSON
//! records it prints.
//!
//! A test that cannot run here (not root, no BTF) says why and is skipped, except in CI (`CI` set),
//! where it fails: CI must run them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub use serde_json::Value;

pub fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn apps_dir() -> PathBuf {
    root_dir().join("tests/apps")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `true` when the privileged tests can run. Outside CI, a reason is printed and the caller returns
/// (skips); in CI the reason fails the test.
pub fn privileged() -> bool {
    let reason = if !is_root() {
        Some("not root (run `cargo xtask test`, which re-runs these tests with sudo)")
    } else if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        Some("the kernel has no BTF (/sys/kernel/btf/vmlinux)")
    } else if std::env::var_os("OBSERVER_BIN").is_none() {
        Some("OBSERVER_BIN is not set (run the suite with `cargo xtask test`)")
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("privileged test cannot run in CI: {r}")
        }
        Some(r) => {
            eprintln!("SKIPPED: {r}");
            false
        }
    }
}

/// The observer's kernel hooks in this run: `OBSERVER_HOOKS` (which the observer reads), else what
/// it picks on this kernel.
pub fn hooks_under_test() -> String {
    std::env::var("OBSERVER_HOOKS").unwrap_or_else(|_| {
        let socket = observer_common::socket_events_present(Path::new(observer_common::TRACEFS));
        if socket { "socket" } else { "syscall" }.into()
    })
}

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells a child that waits for a line on its (piped) stdin to go on.
    pub fn go(&mut self) {
        self.child
            .stdin
            .take()
            .expect("the child's stdin is piped and not yet used")
            .write_all(b"go\n")
            .expect("telling the child to go");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// Starts a program that prints `LISTENING <port>` as its first line (tests/apps contract).
pub fn listening(mut cmd: Command) -> (Proc, u16) {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{desc}: {e}"));
    let stdout = child.stdout.take().expect("stdout piped");
    let proc = Proc { child };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{desc} did not print LISTENING"));
    let port = line
        .trim()
        .strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{desc} printed {line:?} instead of LISTENING <port>"));
    (proc, port)
}

/// A test service of tests/apps: `runtime` is "py", "js", "java" or "otel".
pub fn svc(runtime: &str, downstream: Option<u16>, extra: &[&str]) -> (Proc, u16) {
    let apps = apps_dir();
    let mut cmd = match runtime {
        "py" => {
            let mut c = Command::new("python3");
            c.arg(apps.join("svc.py"));
            c
        }
        "otel" => {
            let mut c = Command::new(root_dir().join("target/otel-venv/bin/python"));
            c.arg(apps.join("otel_svc.py"));
            c
        }
        "js" => {
            let mut c = Command::new("node");
            c.arg(apps.join("svc.js"));
            c
        }
        "java" => {
            let mut c = Command::new("java");
            c.arg(apps.join("Svc.java"));
            c
        }
        other => panic!("unknown runtime {other}"),
    };
    cmd.args(["--port", "0"]);
    if let Some(p) = downstream {
        cmd.args(["--downstream", &format!("http://127.0.0.1:{p}")]);
    }
    cmd.args(extra);
    listening(cmd)
}

/// Builds tests/apps/svc.go with Debian's `golang-go` (installed by `cargo xtask setup`) into
/// `dir`, stripped of its symbol table and DWARF (`-ldflags=-s -w`) when `stripped`.
pub fn go_build(dir: &Path, stripped: bool) -> PathBuf {
    let out = dir.join(if stripped { "svc-stripped" } else { "svc" });
    let mut c = Command::new("go");
    c.arg("build");
    if stripped {
        c.arg("-ldflags=-s -w");
    }
    c.arg("-o")
        .arg(&out)
        .arg(apps_dir().join("svc.go"))
        .env("GOCACHE", root_dir().join("target/go-cache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GO111MODULE", "off");
    let status = c
        .status()
        .unwrap_or_else(|e| panic!("go build (golang-go, from cargo xtask setup): {e}"));
    assert!(status.success(), "{c:?}: {status}");
    out
}

/// A Go test service (tests/apps/svc.go) built by [`go_build`], with `GOMAXPROCS` threads.
pub fn go_svc(bin: &Path, downstream: Option<u16>, gomaxprocs: u32) -> (Proc, u16) {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", "0"])
        .env("GOMAXPROCS", gomaxprocs.to_string());
    if let Some(p) = downstream {
        cmd.args(["--downstream", &format!("http://127.0.0.1:{p}")]);
    }
    listening(cmd)
}

/// The observer, printing JSON lines.
pub struct Observer {
    proc: Proc,
    lines: Receiver<String>,
    stderr: Receiver<String>,
    /// Records read by `wait_for` while it ran; `stop` returns them first.
    seen: Vec<Value>,
    /// Its ready record.
    pub ready: Value,
}

impl Observer {
    /// Starts `observer --output json ARGS` and waits for its ready record.
    pub fn start(args: &[String]) -> Observer {
        Observer::start_with_env(args, &[])
    }

    /// Like `start`, with extra environment variables (e.g. `RUST_LOG`).
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Observer {
        let bin = std::env::var("OBSERVER_BIN").expect("OBSERVER_BIN");
        let mut child = Command::new(&bin)
            .args(["--output", "json"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let err_pipe = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(err_pipe).read_to_string(&mut s);
            let _ = etx.send(s);
        });
        let mut obs = Observer {
            proc: Proc { child },
            lines,
            stderr,
            seen: Vec::new(),
            ready: Value::Null,
        };
        let first = obs
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let err = obs
                    .stderr
                    .recv_timeout(Duration::from_secs(1))
                    .unwrap_or_default();
                panic!("observer did not become ready; stderr: {err}")
            });
        let v: Value =
            serde_json::from_str(&first).unwrap_or_else(|e| panic!("first line {first:?}: {e}"));
        assert_eq!(v["type"], "ready", "first record must be ready: {v}");
        // `cargo xtask test` runs the suite once per set of kernel hooks (OBSERVER_HOOKS, which
        // the observer reads): each run must be using the hooks it is meant to test.
        assert_eq!(v["hooks"], hooks_under_test().as_str(), "hooks in use: {v}");
        obs.ready = v;
        obs
    }

    pub fn for_pids(pids: &[u32], extra: &[&str]) -> Observer {
        let mut args: Vec<String> = Vec::new();
        for p in pids {
            args.push("--pid".into());
            args.push(p.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Observer::start(&args)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Waits up to `timeout` for a record, printed while the observer runs, that `pred` accepts.
    /// Every record read meanwhile is kept for `stop`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            let hit = pred(&v);
            self.seen.push(v);
            if hit {
                return self.seen.last().cloned();
            }
        }
        None
    }

    /// Stops with SIGTERM and returns every record printed after `ready`, checking that the
    /// observer exited 0 and ended with a summary.
    pub fn stop(mut self) -> Records {
        // Let in-flight records reach the ring buffer and the drop check release held breaks.
        std::thread::sleep(Duration::from_millis(600));
        signal(self.proc.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.proc.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "observer did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        assert!(
            status.success(),
            "observer exited with {status}; stderr: {stderr}"
        );
        let mut all = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            all.push(v);
        }
        let last = all.last().cloned().unwrap_or(Value::Null);
        assert_eq!(
            last["type"], "summary",
            "last record must be the summary; stderr: {stderr}"
        );
        // Shown with --nocapture: the figures behind the precision/recall notes.
        let breaks: Vec<String> = all
            .iter()
            .filter(|v| v["type"] == "break")
            .map(|b| format!("{}/{}", b["reason"], b["attribution"]))
            .collect();
        eprintln!("observer summary: {last} breaks: {breaks:?}");
        Records { all, stderr }
    }
}

/// What the observer printed.
#[derive(Debug)]
pub struct Records {
    pub all: Vec<Value>,
    pub stderr: String,
}

impl Records {
    pub fn of_type(&self, t: &str) -> Vec<&Value> {
        self.all.iter().filter(|v| v["type"] == t).collect()
    }
    pub fn spans(&self, kind: &str, pid: u32) -> Vec<&Value> {
        self.of_type("span")
            .into_iter()
            .filter(|v| v["kind"] == kind && v["pid"] == pid)
            .collect()
    }
    pub fn breaks(&self) -> Vec<&Value> {
        self.of_type("break")
    }
    pub fn summary(&self) -> &Value {
        self.all.last().expect("summary")
    }
    /// Everything printed, for leak searches and failure messages.
    pub fn dump(&self) -> String {
        let mut s: String = self.all.iter().map(|v| format!("{v}\n")).collect();
        s.push_str(&self.stderr);
        s
    }
}

/// `curl -s` to a loopback URL with headers; returns the HTTP status.
pub fn curl(url: &str, headers: &[(&str, &str)]) -> u16 {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "30",
    ]);
    for (k, v) in headers {
        c.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = c.arg(url).output().expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// An nginx reverse proxy to `backend` on loopback, started (with its workers) now. Dropping it
/// stops the master gracefully and kills any worker left, so no process outlives the test.
pub struct Nginx {
    pub master: Proc,
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = children(self.master.pid());
        signal(self.master.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !matches!(self.master.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for w in workers {
            signal(w, "KILL");
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn nginx(backend: u16) -> Nginx {
    let dir = TempDir::new("nginx");
    let port = free_port();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           large_client_header_buffers 4 32k;\n\
           upstream backend {{ server 127.0.0.1:{backend}; keepalive 8; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location = /fast {{ return 200 \"ok\"; }}\n    location / {{\n      proxy_pass http://backend;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n",
        d = dir.path.display()
    );
    let conf_path = dir.path.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("nginx.conf");
    let child = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(&dir.path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx (installed by `cargo xtask setup`)");
    let master = Proc { child };
    wait_port(port);
    Nginx {
        master,
        port,
        _dir: dir,
    }
}

pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Child pids of `pid` (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // Field 4 (ppid) after the parenthesised comm.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

/// A temporary directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "observer-e2e-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Values of `key` in `records`, for compact assertions.
pub fn field<'a>(records: &[&'a Value], key: &str) -> Vec<&'a Value> {
    records.iter().map(|r| &r[key]).collect()
}

/// Counts of `key` values.
pub fn tally(records: &[&Value], key: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        *m.entry(r[key].to_string()).or_insert(0) += 1;
    }
    m
}

/// A realistic cookie of about `n` bytes.
pub fn cookie(n: usize) -> String {
    let mut s = String::from("session=");
    while s.len() < n {
        s.push_str("a8f3k2m9q7w1e5r4t6y0u2i8o3p5;");
    }
    s
}
