//! `cargo xtask demo`: two small Python services (tests/apps/svc.py) — `orders` calls `inventory` —
//! observed by `observer`, with traffic carrying B3 and W3C trace headers. Some routes of `orders`
//! forward the headers, some drop them: the observer prints spans, and an alert for each break.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::{build_observer, is_root, root_dir, setup};

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a service and waits for its `LISTENING <port>` line.
fn service(name: &str, downstream: Option<u16>) -> anyhow::Result<(Guard, u16)> {
    let mut c = Command::new("python3");
    c.arg(root_dir().join("tests/apps/svc.py"))
        .args(["--port", "0", "--name", name]);
    if let Some(p) = downstream {
        c.args(["--downstream", &format!("http://127.0.0.1:{p}")]);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let stdout = child.stdout.take().context("service stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok());
    match port {
        Some(p) => Ok((Guard(child), p)),
        None => bail!("{name} did not start: {line:?}"),
    }
}

fn curl(port: u16, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "/dev/null", "-w", ""]);
    for (k, v) in headers {
        c.arg("-H").arg(format!("{k}: {v}"));
    }
    c.arg(format!("http://127.0.0.1:{port}{path}"));
    crate::run(&mut c)
}

pub fn demo() -> anyhow::Result<()> {
    setup::setup()?;
    let bin = build_observer(true)?;
    let (inventory, inv_port) = service("inventory", None)?;
    let (orders, ord_port) = service("orders", Some(inv_port))?;
    eprintln!("demo: orders on 127.0.0.1:{ord_port} calls inventory on 127.0.0.1:{inv_port}");

    let mut obs = if is_root() {
        Command::new(&bin)
    } else {
        Command::new("sudo")
    };
    if !is_root() {
        eprintln!("demo: not root, starting the observer with sudo");
        obs.arg(&bin);
    }
    obs.args([
        "--pid",
        &orders.0.id().to_string(),
        "--pid",
        &inventory.0.id().to_string(),
        "--output",
        "pretty",
    ]);
    let mut observer = Guard(
        obs.stdout(Stdio::piped())
            .spawn()
            .context("starting the observer")?,
    );
    let stdout = observer.0.stdout.take().context("observer stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first line says every probe is attached.
    rx.recv_timeout(Duration::from_secs(60))
        .context("the observer did not become ready")?;

    let b3 = [
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
    ];
    let w3c = [
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=demo"),
    ];
    eprintln!("demo: GET /forward (orders copies the trace headers)");
    curl(ord_port, "/forward", &b3)?;
    curl(ord_port, "/forward", &w3c)?;
    eprintln!("demo: GET /drop (orders calls inventory without them)");
    curl(ord_port, "/drop", &b3)?;
    eprintln!("demo: GET /partial (orders forwards the ids but drops the sampling decision)");
    curl(ord_port, "/partial", &b3)?;
    eprintln!("demo: GET /newtrace (orders starts a new trace)");
    curl(ord_port, "/newtrace", &w3c)?;
    std::thread::sleep(Duration::from_millis(700));

    // Stop the observer: it flushes and prints its summary.
    let pid = observer.0.id().to_string();
    let mut kill = if is_root() {
        Command::new("kill")
    } else {
        Command::new("sudo")
    };
    if !is_root() {
        kill.arg("kill");
    }
    crate::run(kill.args(["-TERM", &pid]))?;
    let status = observer.0.wait()?;
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {}
    drop((orders, inventory));
    if !status.success() {
        bail!("the observer exited with {status}");
    }
    Ok(())
}
