//! Node-wide mode: `observer --all` on processes it was not told about.

use observer_tests::*;

const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";

fn cgroup_path(pid: u32) -> String {
    let c = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    // The same rule as the observer: the v2 path unless it is the root, else a named v1 path.
    let v2 = c
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| *p != "/");
    v2.map(str::to_owned)
        .or_else(|| {
            c.lines()
                .filter_map(|l| l.splitn(3, ':').nth(2))
                .find(|p| *p != "/")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "/".into())
}

/// Started after the observer, never named to it: its break is reported, attributed to the right
/// process and cgroup.
#[test]
fn all_mode_reports_a_break_in_a_process_started_later() {
    if !privileged() {
        return;
    }
    let obs = Observer::start(&["--all".into()]);
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &["--name", "latecomer"]);
    let b3 = [
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
    ];
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/drop"), &b3), 200);
    let r = obs.stop();
    let breaks: Vec<&Value> = r
        .breaks()
        .into_iter()
        .filter(|b| b["inbound"]["trace_id"] == TRACE)
        .collect();
    assert_eq!(breaks.len(), 1, "{}", r.dump());
    let b = breaks[0];
    assert_eq!(b["pid"], middle.pid());
    assert_eq!(b["service"], "latecomer");
    assert_eq!(b["reason"], "missing");
    assert_eq!(b["cgroup"], cgroup_path(middle.pid()), "{b}");
    // The leaf, also unnamed, shows up as the server of the dropped call.
    assert!(
        r.spans("server", leaf.pid())
            .iter()
            .any(|s| s["path"] == "/leaf"),
        "{}",
        r.dump()
    );
}

/// `--exclude-comm` leaves a process out entirely.
#[test]
fn all_mode_excludes_by_process_name() {
    if !privileged() {
        return;
    }
    let obs = Observer::start(&["--all".into(), "--exclude-comm".into(), "latecomer".into()]);
    let (_leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &["--name", "latecomer"]);
    let b3 = [("x-b3-traceid", TRACE), ("x-b3-spanid", "e457b5a2e4d86bd1")];
    for _ in 0..3 {
        assert_eq!(curl(&format!("http://127.0.0.1:{port}/drop"), &b3), 200);
    }
    let r = obs.stop();
    assert!(
        r.all.iter().all(|v| v["pid"] != middle.pid()),
        "nothing from the excluded process: {}",
        r.dump()
    );
}

/// The least-privilege set of the DaemonSet is enough: with exactly CAP_BPF, CAP_PERFMON,
/// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (setpriv drops every other one) the observer still
/// finds a break; without one of them it stops at start with a message naming it.
#[test]
fn least_privilege_capabilities_suffice_and_each_is_named_when_missing() {
    if !privileged() {
        return;
    }
    let bin = std::env::var("OBSERVER_BIN").expect("OBSERVER_BIN");
    let (_leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &[]);
    let setpriv = |caps: &str| {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            &format!("--bounding-set=-all,{caps}"),
            "--inh-caps=-all",
            "--",
            &bin,
        ]);
        c
    };
    let mut cmd = setpriv("+bpf,+perfmon,+sys_ptrace,+dac_read_search");
    cmd.args(["--pid", &middle.pid().to_string(), "--output", "json"])
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("setpriv (util-linux)");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        ready.contains("\"ready\""),
        "not ready with the least-privilege set: {ready}"
    );
    let b3 = [("x-b3-traceid", TRACE), ("x-b3-spanid", "e457b5a2e4d86bd1")];
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/drop"), &b3), 200);
    std::thread::sleep(std::time::Duration::from_millis(800));
    signal(child.id(), "TERM");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        rest.iter()
            .filter(|l| l.contains("\"type\":\"break\""))
            .count(),
        1,
        "{rest:?}"
    );

    for (caps, missing) in [
        ("+perfmon,+sys_ptrace,+dac_read_search", "CAP_BPF"),
        ("+bpf,+sys_ptrace,+dac_read_search", "CAP_PERFMON"),
        ("+bpf,+perfmon,+dac_read_search", "CAP_SYS_PTRACE"),
        ("+bpf,+perfmon,+sys_ptrace", "CAP_DAC_READ_SEARCH"),
    ] {
        let out = setpriv(caps)
            .args(["--pid", &middle.pid().to_string(), "--duration", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started without {missing}");
        assert!(
            err.contains(&format!("missing capabilities: {missing}.")),
            "{missing}: {err}"
        );
    }
}

/// `curl -s URL` and its body (for the health server).
fn fetch(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--listen`: ready once the probes are attached, and /metrics counts the traffic and the break.
/// With `--no-spans` (the DaemonSet's setting) stdout carries the break but no span.
#[test]
fn health_server_is_ready_after_attach_and_metrics_count_a_break() {
    if !privileged() {
        return;
    }
    let (_leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &[]);
    let listen = free_port();
    let obs = Observer::for_pids(
        &[middle.pid()],
        &["--listen", &format!("127.0.0.1:{listen}"), "--no-spans"],
    );
    let base = format!("http://127.0.0.1:{listen}");
    assert_eq!(curl(&format!("{base}/readyz"), &[]), 200);
    assert_eq!(curl(&format!("{base}/healthz"), &[]), 200);
    assert_eq!(curl(&format!("{base}/nope"), &[]), 404);
    let b3 = [
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
    ];
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/drop"), &b3), 200);
    // The counters are published on the observer's 200 ms tick: wait for them, bounded.
    let want = "observer_propagation_breaks_total{reason=\"missing\"} 1";
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = fetch(&format!("{base}/metrics"));
        if metrics.lines().any(|l| l == want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(metrics.lines().any(|l| l == want), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "observer_requests_total{direction=\"inbound\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l == "observer_ready 1"),
        "{metrics}"
    );
    let r = obs.stop();
    assert_eq!(r.breaks().len(), 1, "{}", r.dump());
    assert!(r.of_type("span").is_empty(), "{}", r.dump());
    assert_eq!(r.summary()["inbound"], 1, "{}", r.dump());
}
