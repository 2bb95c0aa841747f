//! The observer on hostile or broken traffic: it must not crash, must not raise a false alarm from
//! garbage, must not leak what it sees, and must leave nothing attached when killed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use observer_tests::*;

const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const SPAN: &str = "e457b5a2e4d86bd1";

/// Sends raw bytes on a new connection (optionally one byte per write) and reads what comes back.
fn raw(port: u16, bytes: &[u8], bytewise: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    if bytewise {
        for b in bytes {
            let _ = s.write_all(std::slice::from_ref(b));
            std::thread::sleep(Duration::from_millis(1));
        }
    } else {
        let _ = s.write_all(bytes);
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Authorization, Cookie, Set-Cookie and a query-string secret go through observed services; they
/// must appear nowhere in what the observer prints, at any log level.
#[test]
fn secrets_never_leave_the_observer() {
    if !privileged() {
        return;
    }
    // A leaf that sets a cookie, so Set-Cookie crosses the observed middle's downstream connection.
    let leaf_script = "import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        self.send_response(200)
        self.send_header('Set-Cookie', 'sid=CANARY-SETCOOKIE-7d1f; HttpOnly')
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print('LISTENING %d' % s.server_address[1], flush=True)
s.serve_forever()
";
    let mut leaf_cmd = Command::new("python3");
    leaf_cmd.args(["-c", leaf_script]);
    let (leaf, leaf_port) = listening(leaf_cmd);
    let (middle, port) = svc("py", Some(leaf_port), &[]);
    let args: Vec<String> = [
        "--pid",
        &middle.pid().to_string(),
        "--pid",
        &leaf.pid().to_string(),
    ]
    .map(String::from)
    .to_vec();
    // Trace logging shows every record the observer handles.
    let obs = Observer::start_with_env(&args, &[("RUST_LOG", "observer=trace")]);
    for path in [
        "/forward?token=CANARY-QUERY-91ab",
        "/drop?token=CANARY-QUERY-91ab",
    ] {
        let status = curl(
            &format!("http://127.0.0.1:{port}{path}"),
            &[
                ("Authorization", "Bearer CANARY-AUTH-5e2c"),
                ("Cookie", "session=CANARY-COOKIE-03fa"),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
        );
        assert_eq!(status, 200);
    }
    let r = obs.stop();
    let everything = r.dump();
    assert!(
        r.of_type("span").len() >= 4,
        "the traffic was seen: {everything}"
    );
    assert_eq!(
        r.breaks().len(),
        1,
        "the /drop call is a break: {everything}"
    );
    assert!(
        everything.contains("TRACE") || everything.contains("data record"),
        "trace logging was on"
    );
    for canary in [
        "CANARY-QUERY",
        "CANARY-AUTH",
        "CANARY-COOKIE",
        "CANARY-SETCOOKIE",
        "Bearer",
        "session=",
    ] {
        assert!(
            !everything.contains(canary),
            "{canary} leaked:\n{everything}"
        );
    }
}

/// Garbage, other protocols, broken and odd heads on an observed server that forwards what it
/// gets: no crash, no false break, and what cannot be read is counted as unknown.
#[test]
fn bad_input_on_real_sockets_raises_no_false_alarm() {
    if !privileged() {
        return;
    }
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &[]);
    let obs = Observer::for_pids(&[middle.pid()], &[]);

    // Random bytes, a TLS ClientHello, Redis and PostgreSQL wire messages.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    raw(port, &random, false);
    raw(
        port,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03\x04\x05\x06\x07",
        false,
    );
    raw(port, b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", false);
    raw(port, b"\x00\x00\x00\x08\x04\xd2\x16\x2f", false);
    // GET-looking garbage, and a head longer than 16 KiB.
    raw(port, b"GET \x01\x02\x03 not http at all\r\n\r\n", false);
    let mut huge = b"GET /forward HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'p', 17 * 1024));
    huge.extend_from_slice(
        format!("\r\nx-b3-traceid: {TRACE}\r\nx-b3-spanid: {SPAN}\r\n\r\n").as_bytes(),
    );
    raw(port, &huge, false);
    // A connection closed in the middle of a head.
    raw(
        port,
        b"GET /forward HTTP/1.1\r\nHost: x\r\nx-b3-trace",
        false,
    );
    // One byte per write, forwarded correctly by the service: no break.
    let one = format!(
        "GET /forward HTTP/1.1\r\nHost: x\r\nx-b3-traceid: {TRACE}\r\nx-b3-spanid: {SPAN}\r\nx-b3-sampled: 1\r\nConnection: close\r\n\r\n"
    );
    assert!(raw(port, one.as_bytes(), true).starts_with(b"HTTP/1.1 200"));
    // Pipelined requests on one connection, both forwarded.
    let pipelined = format!(
        "GET /forward HTTP/1.1\r\nHost: x\r\ntraceparent: 00-{TRACE}-{SPAN}-01\r\n\r\nGET /forward HTTP/1.1\r\nHost: x\r\ntraceparent: 00-{TRACE}-{SPAN}-01\r\nConnection: close\r\n\r\n"
    );
    raw(port, pipelined.as_bytes(), false);

    // Trace headers that cannot be trusted, on requests whose downstream calls drop everything:
    // invalid ids (wrong length, not hex, all zeros), B3 single and multi disagreeing, duplicated
    // headers with different values, control characters. None of them is a break.
    let untrusted: [&[(&str, &str)]; 6] = [
        &[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3ef"),
            ("x-b3-spanid", SPAN),
        ],
        &[(
            "traceparent",
            "00-zzf198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
        )],
        &[(
            "traceparent",
            "00-00000000000000000000000000000000-e457b5a2e4d86bd1-01",
        )],
        &[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1"),
        ],
        &[
            ("x-b3-traceid", TRACE),
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", SPAN),
        ],
        &[("x-b3-traceid", "80f198ee56343ba8\x0764fe8b2a57d3eff7")],
    ];
    for headers in untrusted {
        let h: Vec<(&str, &str)> = headers.to_vec();
        curl(&format!("http://127.0.0.1:{port}/drop"), &h);
    }
    // Duplicated identical trace headers are fine: dropping them is a break.
    let dup = [
        ("x-b3-traceid", TRACE),
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
    ];
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/drop"), &dup), 200);

    let r = obs.stop();
    let breaks = r.breaks();
    assert_eq!(
        breaks.len(),
        1,
        "only the request with valid duplicated ids is a break: {}",
        r.dump()
    );
    assert_eq!(breaks[0]["inbound"]["trace_id"], TRACE);
    assert_eq!(breaks[0]["reason"], "missing");
    let s = r.summary();
    let c = &s["capture"];
    assert!(c["truncated_heads"].as_u64().unwrap() >= 1, "{}", r.dump());
    assert!(c["unparsable_heads"].as_u64().unwrap() >= 1, "{}", r.dump());
    assert_eq!(s["capture"]["decode_errors"], 0);
    // The one-byte-per-write and pipelined requests were read and forwarded: propagated.
    assert!(s["propagated"].as_u64().unwrap() >= 3, "{}", r.dump());
    drop(leaf);
}

/// SIGKILL gives the observer no chance to clean up; the kernel must still detach everything.
/// The observer's own programs are told by the `prog_id` of its fds, so other BPF users on the
/// machine do not disturb the count.
#[test]
fn sigkill_leaves_no_program_attached() {
    if !privileged() {
        return;
    }
    let loaded = || -> Vec<u64> {
        let out = Command::new("bpftool")
            .args(["prog", "show", "--json"])
            .stderr(Stdio::null())
            .output()
            .expect("bpftool (installed by cargo xtask setup)");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect())
            .unwrap_or_default()
    };
    let obs = Observer::for_pids(&[std::process::id()], &[]);
    let mut own: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fdinfo", obs.pid()))
        .expect("fdinfo of the observer")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|id| id.trim().parse().ok())
        })
        .collect();
    own.sort();
    own.dedup();
    // The two data hooks, their tail-called iovec programs, the three sched tracepoints, and
    // with the socket hooks the TCP state changes: 2 + 2 + 3 with the syscall hooks (one tail
    // array), 2 + 4 + 3 + 1 with the socket hooks (one tail array per data hook).
    let expected = if hooks_under_test() == "socket" {
        10
    } else {
        7
    };
    assert_eq!(
        own.len(),
        expected,
        "the observer holds its programs while it runs: {own:?}"
    );
    assert!(own.iter().all(|id| loaded().contains(id)));
    signal(obs.pid(), "KILL");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = loaded();
        let left: Vec<&u64> = own.iter().filter(|id| now.contains(id)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "programs {left:?} still loaded 10 s after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(obs);
}

/// The observed process is killed in the middle of requests, and forks many children: the
/// observer keeps going and ends cleanly.
#[test]
fn target_killed_mid_request_and_fork_storm() {
    if !privileged() {
        return;
    }
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &[]);
    let script = "import os, sys\nsys.stdin.readline()\nfor _ in range(2000):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n";
    let mut forker = Proc {
        child: Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let obs = Observer::for_pids(&[middle.pid(), forker.pid()], &[]);
    forker.go();
    // Requests in flight (the leaf holds them), then the middle is killed.
    let handles: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                curl(
                    &format!("http://127.0.0.1:{port}/forward?delay_ms=2000"),
                    &[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)],
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    signal(middle.pid(), "KILL");
    for h in handles {
        let _ = h.join();
    }
    assert!(forker.child.wait().unwrap().success());
    let r = obs.stop();
    assert!(r.breaks().is_empty(), "{}", r.dump());
    assert_eq!(r.summary()["capture"]["decode_errors"], 0);
    drop((leaf, middle));
}

/// A burst that overflows the ring buffer while the observer cannot read (it is stopped): the
/// loss is counted, nothing false is claimed from the gaps, and capture recovers afterwards.
#[test]
fn ring_buffer_overflow_is_reported_and_capture_recovers() {
    if !privileged() {
        return;
    }
    let (backend, backend_port) = svc("py", None, &[]);
    let nginx = nginx(backend_port);
    let obs = Observer::for_pids(&[nginx.master.pid()], &["--ring-buffer-mib", "1"]);
    signal(obs.pid(), "STOP");
    let burst = Command::new("wrk")
        .args([
            "-t1",
            "-c8",
            "-d3s",
            "-H",
            &format!("x-b3-traceid: {TRACE}"),
            "-H",
            &format!("x-b3-spanid: {SPAN}"),
        ])
        .arg(format!("http://127.0.0.1:{}/fast", nginx.port))
        .stdout(Stdio::null())
        .status()
        .expect("wrk (installed by cargo xtask setup)");
    assert!(burst.success());
    signal(obs.pid(), "CONT");
    std::thread::sleep(Duration::from_millis(1500));
    // After the burst: an ordinary request is seen whole.
    let after = "0af7651916cd43dd8448eb211c80319c";
    let tp = format!("00-{after}-b7ad6b7169203331-01");
    assert_eq!(
        curl(
            &format!("http://127.0.0.1:{}/leaf", nginx.port),
            &[("traceparent", &tp)]
        ),
        200
    );
    let r = obs.stop();
    let s = r.summary();
    assert!(
        s["capture"]["ringbuf_drops"].as_u64().unwrap() > 0,
        "the burst must overflow 1 MiB: {s}"
    );
    assert!(
        r.breaks().is_empty(),
        "no break from the gaps: {:?}",
        r.breaks()
    );
    let spans = r.of_type("span");
    for kind in ["server", "client"] {
        assert!(
            spans
                .iter()
                .any(|x| x["kind"] == kind && x["trace_id"] == after),
            "capture recovered ({kind} span of the request after the burst): {s}"
        );
    }
    drop(backend);
}

/// A reader that goes away (`observer ... | head -n 1`): the observer's next write finds the
/// pipe closed, and the run ends quietly and with success, not with an error or a panic.
#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    if !privileged() {
        return;
    }
    let (server, port) = svc("py", None, &[]);
    let bin = std::env::var("OBSERVER_BIN").expect("OBSERVER_BIN");
    let child = Command::new(&bin)
        .args(["--output", "json", "--pid", &server.pid().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let mut obs = Proc { child };
    let mut stdout = std::io::BufReader::new(obs.child.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("the ready line");
    assert!(first.starts_with("{\"type\":\"ready\""), "{first:?}");
    drop(stdout);
    // Each request makes a span, whose write finds the pipe closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        assert_eq!(curl(&format!("http://127.0.0.1:{port}/leaf"), &[]), 200);
        if let Some(status) = obs.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the observer still runs 30 s after its stdout was closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    let _ = obs
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    assert!(status.success(), "exited with {status}; stderr: {stderr}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}
