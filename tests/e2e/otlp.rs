//! OTLP export to a real OpenTelemetry collector (rotel, installed by `cargo xtask setup`) on
//! loopback: what a user's backend receives for a propagation break, and an outage in the middle
//! of traffic.

use std::process::Command;
use std::time::{Duration, Instant};

use observer_tests::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// A rotel collector receiving OTLP on `grpc`/`http` ports and writing what it got, in detail,
/// to a log file.
struct Collector {
    /// Killed when the collector is dropped.
    _proc: Proc,
    log: std::path::PathBuf,
    _dir: TempDir,
}

fn collector(grpc: u16, http: u16) -> Collector {
    let dir = TempDir::new("rotel");
    let agent = std::fs::read_to_string(root_dir().join("target/rotel-venv/bin/rotel-agent-path"))
        .expect("rotel is installed by `cargo xtask setup`");
    let log = dir.path.join("rotel.log");
    let out = std::fs::File::create(&log).expect("rotel log");
    let child = Command::new(agent.trim())
        .args([
            "start",
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log",
            "logs",
        ])
        .args(["--debug-log-verbosity", "detailed"])
        .args([
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
        ])
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("rotel-agent");
    wait_port(http);
    wait_port(grpc);
    Collector {
        _proc: Proc { child },
        log,
        _dir: dir,
    }
}

impl Collector {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.text();
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "collector never received {needle:?}; it got:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The block of the collector's log that starts at `header` and contains `needle`.
fn block<'a>(text: &'a str, header: &str, needle: &str) -> &'a str {
    text.split(header)
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("no {header} with {needle}:\n{text}"))
}

#[test]
fn break_alert_and_its_trace_reach_a_real_collector() {
    if !privileged() {
        return;
    }
    let (grpc, http) = (free_port(), free_port());
    let col = collector(grpc, http);
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &["--name", "orders"]);
    let endpoint = format!("http://127.0.0.1:{http}");
    let obs = Observer::for_pids(&[middle.pid()], &["--otlp-endpoint", &endpoint]);
    let tp = format!("00-{TRACE}-{PARENT}-01");
    assert_eq!(
        curl(
            &format!("http://127.0.0.1:{port}/drop"),
            &[("traceparent", &tp)]
        ),
        200
    );
    let r = obs.stop();
    let server = r.spans("server", middle.pid());
    assert_eq!(server.len(), 1, "{}", r.dump());
    let server_span = server[0]["span_id"].as_str().unwrap().to_owned();
    assert_eq!(r.breaks().len(), 1);
    assert_eq!(r.summary()["export"]["dropped"], 0, "{}", r.dump());

    let text = col.wait_for("EventName: observer.propagation_break", 30);
    // The alert: a WARN event log record linked to the inbound trace and the server span.
    let log = block(
        &text,
        "LogRecord #",
        "EventName: observer.propagation_break",
    );
    assert!(
        log.contains("SeverityNumber: SEVERITY_NUMBER_WARN(13)"),
        "{log}"
    );
    assert!(log.contains(&format!("orders (pid {}) called GET 127.0.0.1:{leaf_port}/leaf without the trace headers of trace {TRACE}", middle.pid())), "{log}");
    assert!(log.contains(&format!("Trace ID       : {TRACE}")), "{log}");
    assert!(
        log.contains(&format!("Span ID        : {server_span}")),
        "{log}"
    );
    assert!(log.contains("observer.break.reason: Str(missing)"), "{log}");
    assert!(
        log.contains("observer.break.attribution: Str(thread)"),
        "{log}"
    );
    assert!(
        log.contains(&format!("server.port: Int({leaf_port})")),
        "{log}"
    );
    assert!(
        log.contains("observer.break.missing: Slice(Str(traceparent))"),
        "{log}"
    );
    // Its trace: the server span joins the caller's trace, carries the alert as an event, and the
    // resource names the process.
    let text = col.wait_for(&format!("ID             : {server_span}"), 30);
    let span = block(&text, "Span #", &format!("ID             : {server_span}"));
    assert!(
        span.contains(&format!("Trace ID       : {TRACE}")),
        "{span}"
    );
    assert!(
        span.contains(&format!("Parent ID      : {PARENT}")),
        "{span}"
    );
    assert!(span.contains("Kind           : SPAN_KIND_SERVER"), "{span}");
    assert!(span.contains("url.path: Str(/drop)"), "{span}");
    assert!(
        span.contains("http.response.status_code: Int(200)"),
        "{span}"
    );
    assert!(
        span.contains("Name: observer.propagation_break"),
        "the span event: {span}"
    );
    assert!(text.contains("service.name: Str(orders)"), "{text}");
    assert!(
        text.contains(&format!("process.pid: Int({})", middle.pid())),
        "{text}"
    );
    drop((leaf, col));
}

/// The collector goes away for 30 s in the middle of traffic and comes back: the observer keeps
/// running with bounded memory, export resumes, and what could not be kept is counted.
#[test]
fn collector_outage_in_the_middle_of_traffic() {
    if !privileged() {
        return;
    }
    let (grpc, http) = (free_port(), free_port());
    let col = collector(grpc, http);
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &[]);
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let obs = Observer::start_with_env(
        &["--pid".into(), middle.pid().to_string()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    let send = |n: u32| {
        let tp = format!("00-{:032x}-{PARENT}-01", 0xa000 + n);
        assert_eq!(
            curl(
                &format!("http://127.0.0.1:{port}/forward"),
                &[("traceparent", &tp)]
            ),
            200
        );
    };
    send(0);
    col.wait_for(&format!("{:032x}", 0xa000), 30);
    drop(col);
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let rss_before = rss(obs.pid());
    // 30 s without a collector, traffic going on.
    let outage = Instant::now();
    let mut n = 1;
    while outage.elapsed() < Duration::from_secs(30) {
        send(n);
        n += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let rss_during = rss(obs.pid());
    let col = collector(grpc, http);
    send(n);
    // Export resumes: the request sent after the collector came back arrives, and so do the ones
    // queued during the outage.
    col.wait_for(&format!("{:032x}", 0xa000 + n), 60);
    col.wait_for(&format!("{:032x}", 0xa000 + n / 2), 30);
    let r = obs.stop();
    assert!(
        r.summary()["export"]["failures"].as_u64().unwrap() >= 1,
        "the outage was noticed: {}",
        r.dump()
    );
    assert_eq!(
        r.summary()["export"]["dropped"],
        0,
        "a few hundred spans fit in the queue: {}",
        r.dump()
    );
    assert!(
        rss_during < rss_before + 50 * 1024,
        "memory stays bounded: {rss_before} kB -> {rss_during} kB"
    );
    drop((leaf, col));
}
