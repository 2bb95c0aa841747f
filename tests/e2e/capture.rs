//! Capture on the real kernel: servers and clients observed by pid, spans with the trace ids the
//! clients sent, heads with multi-kilobyte cookies, keep-alive, pre-existing nginx workers, a
//! read already blocked when the observer attaches.

use std::io::Write;
use std::process::{Command, Stdio};

use observer_tests::*;

const TRACE: &str = "463ac35c9f6413ad48485a3953bb6124";
const SPAN: &str = "a2fb4a1d1a96d312";

fn python_http_server() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(apps_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    wait_port(port);
    (Proc { child }, port)
}

/// `python3 -c` with a listening socket `s` on a free loopback port (printed as `LISTENING
/// <port>`), then `body`; with `socket` and `threading` imported.
fn python_socket_server(body: &str) -> (Proc, u16) {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(format!(
        "import socket, threading\n\
         s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n\
         print('LISTENING', s.getsockname()[1], flush=True)\n\
         {body}"
    ));
    listening(cmd)
}

/// `python3 -c SCRIPT` with its stdin piped: the test tells the client when to send.
fn python_client(script: &str) -> Proc {
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3");
    Proc { child }
}

#[test]
fn python_http_server_spans_carry_the_trace_sent_by_curl() {
    if !privileged() {
        return;
    }
    let (server, port) = python_http_server();
    let obs = Observer::for_pids(&[server.pid()], &[]);
    let big_cookie = cookie(6 * 1024);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        curl(
            &format!("{base}/"),
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
                ("Cookie", &big_cookie)
            ]
        ),
        200
    );
    assert_eq!(curl(&format!("{base}/nope?token=hunter2"), &[]), 404);
    assert_eq!(
        curl(
            &format!("{base}/README.md"),
            &[(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            )]
        ),
        200
    );
    let r = obs.stop();
    let spans = r.spans("server", server.pid());
    assert_eq!(spans.len(), 3, "{}", r.dump());
    assert_eq!(
        r.of_type("span").len(),
        3,
        "only the observed server reports: {}",
        r.dump()
    );

    let s = spans[0];
    assert_eq!(
        (
            s["method"].as_str(),
            s["path"].as_str(),
            s["status"].as_u64()
        ),
        (Some("GET"), Some("/"), Some(200))
    );
    assert_eq!(s["trace_id"], TRACE);
    assert_eq!(s["parent_span_id"], SPAN);
    assert_ne!(s["span_id"], SPAN);
    assert_eq!(s["host"], format!("127.0.0.1:{port}"));
    assert_eq!(s["service"], "python3");
    assert!(s["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{s}");
    assert!(s["start"].as_str().unwrap().ends_with('Z'));
    assert!(s["duration_ms"].as_f64().unwrap() >= 0.0);

    let s = spans[1];
    assert_eq!(
        (s["path"].as_str(), s["status"].as_u64()),
        (Some("/nope"), Some(404))
    );
    assert!(s["trace_id"].is_null() && s["parent_span_id"].is_null());

    let s = spans[2];
    assert_eq!(s["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(s["parent_span_id"], "b7ad6b7169203331");

    let dump = r.dump();
    assert!(!dump.contains("hunter2"), "query string leaked: {dump}");
    assert!(!dump.contains("a8f3k2m9"), "cookie leaked: {dump}");
    assert_eq!(r.summary()["capture"]["ringbuf_drops"], 0);
    assert_eq!(r.summary()["inbound"], 3);
}

/// A Python client on one keep-alive connection and a threaded server, both observed.
#[test]
fn python_keepalive_client_and_server() {
    if !privileged() {
        return;
    }
    let (server, port) = svc("py", None, &[]);
    // The client waits for a line on stdin so that it is observed before it sends anything.
    let script = format!(
        "import http.client, sys\n\
         sys.stdin.readline()\n\
         c = http.client.HTTPConnection('127.0.0.1', {port})\n\
         for i in range(5):\n\
         \x20   tid = '%032x' % (0xabc0 + i)\n\
         \x20   c.request('GET', '/leaf?i=%d' % i, headers={{'traceparent': '00-%s-%016x-01' % (tid, 0x77 + i)}})\n\
         \x20   r = c.getresponse(); r.read()\n\
         \x20   assert r.status == 200, r.status\n\
         c.close()\n"
    );
    let mut client = python_client(&script);
    let obs = Observer::for_pids(&[server.pid(), client.pid()], &[]);
    client.go();
    assert!(client.child.wait().unwrap().success());
    let r = obs.stop();

    let expected: Vec<String> = (0..5).map(|i| format!("{:032x}", 0xabc0 + i)).collect();
    let server_spans = r.spans("server", server.pid());
    let client_spans = r.spans("client", client.pid());
    assert_eq!(
        field(&server_spans, "trace_id"),
        expected.iter().collect::<Vec<_>>(),
        "{}",
        r.dump()
    );
    assert_eq!(
        field(&client_spans, "trace_id"),
        expected.iter().collect::<Vec<_>>(),
        "{}",
        r.dump()
    );
    for (i, c) in client_spans.iter().enumerate() {
        assert_eq!(c["path"], "/leaf");
        assert_eq!(c["status"], 200);
        assert_eq!(c["peer"], format!("127.0.0.1:{port}"));
        // The client sent its own span id: the client span uses it, so the server span links to it.
        assert_eq!(c["span_id"], format!("{:016x}", 0x77 + i), "{c}");
        assert_eq!(server_spans[i]["parent_span_id"], c["span_id"]);
    }
    // One connection: every client span has the same peer and every server span the same peer port.
    let peers: std::collections::HashSet<_> =
        server_spans.iter().map(|s| s["peer"].to_string()).collect();
    assert_eq!(peers.len(), 1, "keep-alive uses one connection: {peers:?}");
    assert!(r.breaks().is_empty(), "{}", r.dump());
}

/// nginx whose workers existed before the observer attached, proxying to a Python backend:
/// `--pid <master>` covers the workers; server and client spans carry curl's trace ids, also when
/// a 6 KB cookie comes first; nginx forwards the headers, so there is no break.
#[test]
fn nginx_workers_started_before_attach_proxy_trace_ids() {
    if !privileged() {
        return;
    }
    let (backend, backend_port) = svc("py", None, &[]);
    let nginx = nginx(backend_port);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let workers = children(nginx.master.pid());
    assert_eq!(workers.len(), 2, "nginx workers: {workers:?}");
    let obs = Observer::for_pids(&[nginx.master.pid()], &[]);
    let url = format!("http://127.0.0.1:{}/leaf", nginx.port);
    let big_cookie = cookie(6 * 1024);
    assert_eq!(
        curl(
            &url,
            &[
                ("Cookie", &big_cookie),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1")
            ]
        ),
        200
    );
    assert_eq!(
        curl(
            &url,
            &[(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            )]
        ),
        200
    );
    let r = obs.stop();

    let server: Vec<&Value> = r
        .of_type("span")
        .into_iter()
        .filter(|s| s["kind"] == "server")
        .collect();
    let client: Vec<&Value> = r
        .of_type("span")
        .into_iter()
        .filter(|s| s["kind"] == "client")
        .collect();
    assert_eq!(
        field(&server, "trace_id"),
        [TRACE, "0af7651916cd43dd8448eb211c80319c"],
        "{}",
        r.dump()
    );
    assert_eq!(
        field(&client, "trace_id"),
        [TRACE, "0af7651916cd43dd8448eb211c80319c"],
        "{}",
        r.dump()
    );
    for s in server.iter().chain(client.iter()) {
        assert!(
            workers.contains(&(s["pid"].as_u64().unwrap() as u32)),
            "span from a non-worker: {s}"
        );
        assert_eq!(s["service"], "nginx");
        assert_eq!(s["status"], 200);
        assert_eq!(s["path"], "/leaf");
    }
    for c in &client {
        assert_eq!(c["peer"], format!("127.0.0.1:{backend_port}"));
        assert_eq!(c["attribution"], "trace_id", "{c}");
    }
    assert_eq!(server[0]["parent_span_id"], SPAN);
    assert!(
        r.breaks().is_empty(),
        "nginx forwards headers unchanged: {}",
        r.dump()
    );
    assert_eq!(r.summary()["propagated"], 2, "{}", r.dump());
    drop(backend);
}

/// Heads as real clients can send them: over 20 iovec segments in one `sendmsg`, split over
/// several `send` calls, with a 15 KB cookie before the trace headers, and one longer than the
/// 16 KiB budget, which must be reported as truncated (a span without a readable head), not guessed.
#[test]
fn heads_over_iovecs_split_writes_and_the_16k_budget() {
    if !privileged() {
        return;
    }
    let (server, port) = svc("py", None, &[]);
    let script = format!(
        r#"import socket, sys, time
sys.stdin.readline()
def head(trace, cookie_len):
    return ('GET /leaf HTTP/1.1\r\nHost: t\r\nCookie: c=' + 'k' * cookie_len + '\r\n'
            'traceparent: 00-' + trace + '-b7ad6b7169203331-01\r\n\r\n').encode()
def exchange(send):
    s = socket.create_connection(('127.0.0.1', {port}))
    send(s)
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    s.close()
    assert data.startswith(b'HTTP/1.1 200'), data[:40]
h = head('%032x' % 1, 2000)
exchange(lambda s: s.sendmsg([h[i::1][0:0] + h[i * len(h) // 20:(i + 1) * len(h) // 20] for i in range(20)]))
h = head('%032x' % 2, 3000)
def split(s):
    for part in (h[:7], h[7:900], h[900:]):
        s.send(part); time.sleep(0.05)
exchange(split)
exchange(lambda s: s.sendall(head('%032x' % 3, 15000)))
exchange(lambda s: s.sendall(head('%032x' % 4, 20000)))
"#
    );
    let mut client = Proc {
        child: Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let obs = Observer::for_pids(&[server.pid()], &[]);
    client.go();
    assert!(client.child.wait().unwrap().success(), "client failed");
    let r = obs.stop();
    let spans = r.spans("server", server.pid());
    let traces: Vec<String> = spans
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap_or("null").to_owned())
        .collect();
    let expected: Vec<String> = vec![
        format!("{:032x}", 1),
        format!("{:032x}", 2),
        format!("{:032x}", 3),
        "null".to_owned(),
    ];
    assert_eq!(traces, expected, "{}", r.dump());
    assert!(
        spans[3]["method"].is_null(),
        "the truncated head is not guessed: {}",
        spans[3]
    );
    let capture = &r.summary()["capture"];
    assert_eq!(capture["truncated_heads"], 1, "{}", r.dump());
    assert_eq!(capture["ringbuf_drops"], 0);
    assert!(capture["capped"].as_u64().unwrap() >= 1, "{}", r.dump());
}

/// After a read that empties the ring buffer the observer waits out its read interval: a record
/// written meanwhile must be read when the interval ends, not when a later record comes or at
/// exit. The client sends each request only once the observer has printed the span of the
/// previous one, so a missed wake-up stalls the exchange for good. Requests go out at once (into
/// the wait) and after a pause (when the reader waits on epoll), at the longest interval, the
/// default and none.
#[test]
fn records_written_while_the_reader_waits_are_read_when_it_wakes() {
    if !privileged() {
        return;
    }
    let (server, port) = svc("py", None, &[]);
    for interval in ["100", "5", "0"] {
        let script = format!(
            "import http.client, sys\n\
             c = http.client.HTTPConnection('127.0.0.1', {port})\n\
             for line in sys.stdin:\n\
             \x20   i = int(line)\n\
             \x20   c.request('GET', '/leaf', headers={{'traceparent': '00-%032x-%016x-01' % (0xfee0 + i, 0x99 + i)}})\n\
             \x20   r = c.getresponse(); r.read()\n\
             \x20   assert r.status == 200, r.status\n\
             c.close()\n"
        );
        let mut client = python_client(&script);
        let mut obs = Observer::for_pids(&[client.pid()], &["--read-interval-ms", interval]);
        let mut stdin = client.child.stdin.take().unwrap();
        for i in 0..8u32 {
            if i % 2 == 1 {
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
            writeln!(stdin, "{i}").unwrap();
            let want = format!("{:032x}", 0xfee0 + i);
            let span = obs.wait_for(std::time::Duration::from_secs(5), |v| {
                v["type"] == "span" && v["trace_id"] == want.as_str()
            });
            assert!(
                span.is_some(),
                "--read-interval-ms {interval}: no span for request {i} within 5 s"
            );
        }
        drop(stdin);
        assert!(client.child.wait().unwrap().success());
        let r = obs.stop();
        let spans = r.spans("client", client.pid());
        let expected: Vec<String> = (0..8).map(|i| format!("{:032x}", 0xfee0 + i)).collect();
        assert_eq!(
            field(&spans, "trace_id"),
            expected.iter().collect::<Vec<_>>(),
            "--read-interval-ms {interval}: {}",
            r.dump()
        );
    }
    drop(server);
}

/// A reader pacing itself (`--read-interval-ms 100`) is woken by the kernel once a quarter of the
/// ring buffer is unread: a burst of 30 MB/s of 15 KB request heads, three times what a 1 MiB ring
/// holds per interval, is read whole instead of overflowing it while the reader sleeps.
#[test]
fn a_burst_wakes_a_pacing_reader_before_the_ring_buffer_fills() {
    if !privileged() {
        return;
    }
    const REQUESTS: u64 = 2000;
    let (sink, port) = listening({
        let mut c = Command::new("python3");
        c.args([
            "-c",
            "import socket\n\
             s = socket.create_server(('127.0.0.1', 0))\n\
             print('LISTENING', s.getsockname()[1], flush=True)\n\
             c, _ = s.accept()\n\
             while c.recv(1 << 20): pass\n",
        ]);
        c
    });
    let script = format!(
        "import socket, sys, time\n\
         c = socket.create_connection(('127.0.0.1', {port}))\n\
         head = b'GET /burst HTTP/1.1\\r\\nHost: sink\\r\\nx-pad: ' + b'p' * 15000 + b'\\r\\n\\r\\n'\n\
         sys.stdin.readline()\n\
         for i in range({REQUESTS}):\n\
         \x20   c.sendall(head)\n\
         \x20   if i % 10 == 9: time.sleep(0.005)\n\
         c.close()\n"
    );
    let mut client = python_client(&script);
    let obs = Observer::for_pids(
        &[client.pid()],
        &["--read-interval-ms", "100", "--ring-buffer-mib", "1"],
    );
    let mut stdin = client.child.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    drop(stdin);
    assert!(client.child.wait().unwrap().success());
    let r = obs.stop();
    let capture = &r.summary()["capture"];
    assert_eq!(capture["ringbuf_drops"], 0, "{}", r.dump());
    assert!(
        capture["records"].as_u64().unwrap() >= REQUESTS,
        "every head read: {capture}"
    );
    drop(sink);
}

/// A server already blocked in `recv` when the observer attaches: the syscall entered before the
/// programs did, and its request head is still captured when it returns (the kernel side reads a
/// syscall's arguments at its exit, from the saved user registers).
#[test]
fn a_read_blocked_before_attach_is_captured_when_it_returns() {
    if !privileged() {
        return;
    }
    let (server, port) = python_socket_server(
        "c, _ = s.accept()\n\
         while True:\n\
         \x20   data = c.recv(65536)\n\
         \x20   if not data: break\n\
         \x20   c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok')\n",
    );
    let mut client = python_client(&format!(
        "import socket, sys\n\
         c = socket.create_connection(('127.0.0.1', {port}))\n\
         sys.stdin.readline()\n\
         c.sendall(b'GET /blocked HTTP/1.1\\r\\nHost: x\\r\\ntraceparent: 00-{TRACE}-{SPAN}-01\\r\\n\\r\\n')\n\
         assert c.recv(65536).startswith(b'HTTP/1.1 200')\n"
    ));
    // The server is in recvfrom(2) (/proc/PID/syscall starts with its number) before the
    // observer starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let sc =
            std::fs::read_to_string(format!("/proc/{}/syscall", server.pid())).unwrap_or_default();
        if sc.starts_with("45 ") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never blocked in recvfrom: {sc:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let obs = Observer::for_pids(&[server.pid()], &[]);
    client.go();
    assert!(client.child.wait().unwrap().success());
    let r = obs.stop();
    let spans = r.spans("server", server.pid());
    assert_eq!(spans.len(), 1, "{}", r.dump());
    assert_eq!(spans[0]["path"], "/blocked");
    assert_eq!(spans[0]["status"], 200);
    assert_eq!(spans[0]["trace_id"], TRACE);
    assert_eq!(spans[0]["parent_span_id"], SPAN);
}

/// A server that answers every request on a connection with 200 and never closes a connection:
/// a client that closes its side stays in FIN_WAIT2, so its TCP close comes much later.
fn server_that_never_closes() -> (Proc, u16) {
    python_socket_server(
        "held = []\n\
         def serve(c):\n\
         \x20   buf = b''\n\
         \x20   while True:\n\
         \x20       data = c.recv(65536)\n\
         \x20       if not data: break\n\
         \x20       buf += data\n\
         \x20       while b'\\r\\n\\r\\n' in buf:\n\
         \x20           _, buf = buf.split(b'\\r\\n\\r\\n', 1)\n\
         \x20           c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok')\n\
         \x20   held.append(c)\n\
         while True:\n\
         \x20   c, _ = s.accept()\n\
         \x20   threading.Thread(target=serve, args=(c,), daemon=True).start()\n",
    )
}

/// A client closes a connection and, before the TCP close of that connection has happened (the
/// server keeps its side open), makes a new connection that gets the same fd. The socket hooks
/// see no `close` syscall: the new socket behind the fd must still end the old connection, so
/// that the second request is a new connection with its own peer. (The syscall hooks see the
/// `close`.)
#[test]
fn a_reused_fd_is_a_new_connection_before_the_old_one_is_closed_by_tcp() {
    if !privileged() {
        return;
    }
    let (_first, port1) = server_that_never_closes();
    let (_second, port2) = server_that_never_closes();
    let mut client = python_client(&format!(
        "import socket, sys\n\
         sys.stdin.readline()\n\
         fds = []\n\
         for port, path in (({port1}, '/one'), ({port2}, '/two')):\n\
         \x20   c = socket.create_connection(('127.0.0.1', port))\n\
         \x20   fds.append(c.fileno())\n\
         \x20   c.sendall(('GET %s HTTP/1.1\\r\\nHost: x\\r\\ntraceparent: 00-{TRACE}-{SPAN}-01\\r\\n\\r\\n' % path).encode())\n\
         \x20   assert c.recv(65536).startswith(b'HTTP/1.1 200')\n\
         \x20   c.close()\n\
         assert fds[0] == fds[1], fds\n"
    ));
    let obs = Observer::for_pids(&[client.pid()], &[]);
    client.go();
    assert!(client.child.wait().unwrap().success());
    let r = obs.stop();
    let spans = r.spans("client", client.pid());
    assert_eq!(field(&spans, "path"), ["/one", "/two"], "{}", r.dump());
    assert_eq!(
        spans[0]["peer"],
        format!("127.0.0.1:{port1}"),
        "{}",
        r.dump()
    );
    assert_eq!(
        spans[1]["peer"],
        format!("127.0.0.1:{port2}"),
        "{}",
        r.dump()
    );
    for s in &spans {
        assert_eq!(s["status"], 200, "{s}");
        assert_eq!(s["trace_id"], TRACE, "{s}");
    }
}

/// Connections that end leave the observer's table, on both sides, while both processes live
/// on: the closes are seen (the `close` syscall with the syscall hooks; the TCP close, or the fd
/// naming a new socket, with the socket hooks). Python's `http.server` closes each connection
/// after its response; the client closes its side and makes the next one.
#[test]
fn closed_connections_leave_the_table_on_both_sides() {
    if !privileged() {
        return;
    }
    let (server, port) = python_http_server();
    let mut client = python_client(&format!(
        "import http.client, sys, time\n\
         sys.stdin.readline()\n\
         for i in range(20):\n\
         \x20   c = http.client.HTTPConnection('127.0.0.1', {port})\n\
         \x20   c.request('GET', '/c%d' % i, headers={{'traceparent': '00-{TRACE}-{SPAN}-01'}})\n\
         \x20   c.getresponse().read()\n\
         \x20   c.close()\n\
         time.sleep(120)\n"
    ));
    let mut obs = Observer::for_pids(&[server.pid(), client.pid()], &[]);
    client.go();
    for kind in ["server", "client"] {
        let last = obs.wait_for(std::time::Duration::from_secs(30), |v| {
            v["type"] == "span" && v["kind"] == kind && v["path"] == "/c19"
        });
        assert!(last.is_some(), "no {kind} span of the last request");
    }
    // The client is still alive (sleeping): its connections can only leave by their closes.
    let r = obs.stop();
    assert_eq!(r.spans("server", server.pid()).len(), 20, "{}", r.dump());
    assert_eq!(r.spans("client", client.pid()).len(), 20, "{}", r.dump());
    assert_eq!(
        r.summary()["capture"]["connections"],
        0,
        "connections left in the table: {}",
        r.dump()
    );
}

/// A request sent with `sendfile(2)` is not read by either set of hooks (the bytes come from a
/// file, not from the process's memory); the socket hooks see the call and count it, so the
/// summary says traffic went by unread. The syscall hooks do not see it at all.
#[test]
fn a_request_sent_by_sendfile_is_counted_as_unread_by_the_socket_hooks() {
    if !privileged() {
        return;
    }
    let (_server, port) = server_that_never_closes();
    let dir = TempDir::new("sendfile");
    let request = dir.path.join("request");
    std::fs::write(&request, "GET /sendfile HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut client = python_client(&format!(
        "import socket, sys\n\
         sys.stdin.readline()\n\
         c = socket.create_connection(('127.0.0.1', {port}))\n\
         with open({request:?}, 'rb') as f:\n\
         \x20   sent = c.sendfile(f)\n\
         assert sent > 0, sent\n\
         assert c.recv(65536).startswith(b'HTTP/1.1 200')\n"
    ));
    let obs = Observer::for_pids(&[client.pid()], &[]);
    client.go();
    assert!(client.child.wait().unwrap().success());
    let r = obs.stop();
    let unread = r.summary()["capture"]["unread_socket_calls"]
        .as_u64()
        .unwrap_or_else(|| panic!("no unread_socket_calls: {}", r.dump()));
    if hooks_under_test() == "socket" {
        assert!(unread >= 1, "{}", r.dump());
    } else {
        assert_eq!(unread, 0, "{}", r.dump());
    }
    assert!(r.breaks().is_empty(), "{}", r.dump());
}

/// A server that peeks at the first bytes of a connection before reading them (as TLS and
/// protocol sniffers do, e.g. Envoy's inspectors) sees one request, not two: peeked bytes are
/// read again by the next call and are not captured twice.
#[test]
fn a_peeked_request_is_captured_once() {
    if !privileged() {
        return;
    }
    let (server, port) = python_socket_server(
        "while True:\n\
         \x20   c, _ = s.accept()\n\
         \x20   first = c.recv(65536, socket.MSG_PEEK)\n\
         \x20   data = c.recv(65536)\n\
         \x20   assert first and data.startswith(first), (first, data)\n\
         \x20   c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok')\n\
         \x20   c.close()\n",
    );
    let obs = Observer::for_pids(&[server.pid()], &[]);
    assert_eq!(
        curl(
            &format!("http://127.0.0.1:{port}/peeked"),
            &[("traceparent", &format!("00-{TRACE}-{SPAN}-01"))]
        ),
        200
    );
    let r = obs.stop();
    let spans = r.spans("server", server.pid());
    assert_eq!(field(&spans, "path"), ["/peeked"], "{}", r.dump());
    assert_eq!(r.summary()["inbound"], 1, "{}", r.dump());
}
