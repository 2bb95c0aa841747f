//! Processes of the benchmarks, each cleaned up on every path: a child is killed and reaped when
//! its guard drops, nginx is stopped gracefully with its workers reaped, the observer is stopped
//! with SIGINT so that it prints its summary. Every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use nix::sys::signal::Signal;

use super::parse;

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Guard(pub Child);

impl Guard {
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<Guard> {
        let desc = format!("{cmd:?}");
        cmd.spawn()
            .map(Guard)
            .with_context(|| format!("starting {desc}"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `timeout` for the process to exit; `None` when it is still running.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.0.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// Runs a command to completion within `timeout` (killed after it), returning its stdout.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> anyhow::Result<String> {
    let desc = format!("{cmd:?}");
    let mut g = Guard::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))?;
    let mut out = g.0.stdout.take().context("stdout")?;
    let mut err = g.0.stderr.take().context("stderr")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let Some(status) = g.wait_for(timeout)? else {
        bail!("{desc} did not finish within {timeout:?}");
    };
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{desc} failed ({status}): {err}");
    }
    Ok(out)
}

/// The lines of a pipe, read by a thread, to wait for with a timeout.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Child pids of `pid`, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(p)
        })
        .collect()
}

/// CPU time (user + system) a process has used so far, in milliseconds.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse::stat_cpu_ticks(&stat)?;
    Some(ticks_ms(ticks))
}

/// Clock ticks (the unit of /proc/PID/stat and /proc/stat) in milliseconds.
pub fn ticks_ms(ticks: u64) -> f64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1);
    ticks as f64 * 1000.0 / hz as f64
}

/// A `kB` field of /proc/PID/status, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse::status_kib(&s, field)
}

/// A temporary directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "observer-bench-{tag}-{}-{}",
            std::process::id(),
            free_port()?
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub fn wait_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            bail!("nothing listens on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// nginx serving `ok\n` on a free loopback port, from a generated config in a temp dir. Dropping
/// it stops the master gracefully (SIGQUIT, then SIGTERM), kills any worker left and reaps.
pub struct Nginx {
    master: Guard,
    pub port: u16,
    _dir: TempDir,
}

impl Nginx {
    /// `connections`: worker_connections per worker (the file limit is raised to twice that).
    pub fn start(connections: u32) -> anyhow::Result<Nginx> {
        let dir = TempDir::new("nginx")?;
        let port = free_port()?;
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 2;\nuser root;\n\
             worker_rlimit_nofile {files};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections {connections}; }}\n\
             http {{\n  access_log off;\n  keepalive_timeout 300s;\n  keepalive_requests 100000000;\n\
               client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port} backlog=16384;\n\
                 location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n",
            files = connections * 2,
            d = dir.path.display()
        );
        let conf_path = dir.path.join("nginx.conf");
        std::fs::write(&conf_path, conf).context("writing nginx.conf")?;
        let master = Guard::spawn(
            Command::new("/usr/sbin/nginx")
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(&dir.path)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .context("nginx (installed by `cargo xtask setup`)")?;
        let nginx = Nginx {
            master,
            port,
            _dir: dir,
        };
        wait_port(port, Duration::from_secs(20))?;
        Ok(nginx)
    }

    pub fn pid(&self) -> u32 {
        self.master.pid()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = children(self.pid());
        signal(self.pid(), Signal::SIGQUIT);
        if !matches!(self.master.wait_for(Duration::from_secs(5)), Ok(Some(_))) {
            signal(self.pid(), Signal::SIGTERM);
            let _ = self.master.wait_for(Duration::from_secs(3));
        }
        // Workers are the master's children: once it is gone, any left over are orphans.
        for w in workers {
            if Path::new(&format!("/proc/{w}")).exists() {
                signal(w, Signal::SIGKILL);
            }
        }
    }
}

/// The observer with `--output json`: started and waited for until ready, stopped with SIGINT.
/// Its stdout is read by a thread that keeps only the summary line (spans are dropped unparsed).
pub struct Observer {
    proc: Guard,
    summary: Receiver<String>,
    stderr: Receiver<String>,
}

impl Observer {
    /// With the run's kernel hooks (`--hooks`).
    pub fn start(ctx: &super::Ctx, args: &[String]) -> anyhow::Result<Observer> {
        let mut proc = Guard::spawn(
            Command::new(&ctx.observer)
                .args(["--output", "json", "--hooks", ctx.hooks])
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )?;
        let stdout = proc.0.stdout.take().context("observer stdout")?;
        let err_pipe = proc.0.stderr.take().context("observer stderr")?;
        let (tx, summary) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 16, stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.starts_with(b"{\"type\":\"ready\"")
                    || line.starts_with(b"{\"type\":\"summary\"")
                {
                    let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
                }
            }
        });
        let (etx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(err_pipe).read_to_string(&mut s);
            let _ = etx.send(s);
        });
        let obs = Observer {
            proc,
            summary,
            stderr,
        };
        match obs.summary.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.starts_with("{\"type\":\"ready\"") => Ok(obs),
            _ => {
                let err = obs
                    .stderr
                    .recv_timeout(Duration::from_secs(2))
                    .unwrap_or_default();
                bail!("observer {args:?} did not become ready: {err}")
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn cpu_ms(&self) -> f64 {
        cpu_ms(self.pid()).unwrap_or(f64::NAN)
    }

    /// Stops with SIGINT and returns the summary record.
    pub fn stop(mut self) -> anyhow::Result<Value> {
        // Let the last records reach the ring buffer and a drop check run.
        std::thread::sleep(Duration::from_millis(400));
        signal(self.pid(), Signal::SIGINT);
        let status = self.proc.wait_for(Duration::from_secs(30))?;
        let line = self.summary.recv_timeout(Duration::from_secs(5));
        let Some(status) = status else {
            bail!("observer did not exit within 30 s of SIGINT");
        };
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(2))
            .unwrap_or_default();
        if !status.success() {
            bail!("observer exited with {status}: {stderr}");
        }
        match line.ok().as_deref().and_then(parse::summary) {
            Some(v) => Ok(v),
            None => bail!("observer printed no summary; stderr: {stderr}"),
        }
    }
}

/// Attaches the floor's empty programs (`xtask/bench/empty_probes.py`) to the tracepoints of
/// the observer's data hooks; they stay attached until the guard kills the helper.
pub fn empty_probes(hooks: &str) -> anyhow::Result<Guard> {
    let tracepoints: [&str; 2] = if hooks == "socket" {
        ["sock_send_length", "sock_recv_length"]
    } else {
        ["sys_enter", "sys_exit"]
    };
    let mut helper = Guard::spawn(
        Command::new("python3")
            .arg(crate::root_dir().join("xtask/bench/empty_probes.py"))
            .args(tracepoints)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    )?;
    let lines = lines_of(helper.0.stdout.take().context("empty_probes stdout")?);
    match lines.recv_timeout(Duration::from_secs(30)) {
        Ok(l) if l.starts_with("READY") => Ok(helper),
        Ok(l) => bail!("empty_probes printed {l:?}"),
        Err(_) => bail!("empty_probes did not attach (its error is above)"),
    }
}
