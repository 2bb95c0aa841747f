//! Propagation-break detection on real runtimes: each scenario knows exactly which of its requests
//! drop, cut or replace the trace context, and the observer must report exactly those breaks.

use std::process::{Command, Stdio};

use observer_tests::*;

const B3_128: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_64: &str = "463ac35c9f6413ad";
const W3C: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "e457b5a2e4d86bd1";

fn b3(trace: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-b3-traceid", trace.into()),
        ("x-b3-spanid", SPAN.into()),
        ("x-b3-sampled", "1".into()),
    ]
}

fn get(port: u16, path: &str, headers: &[(&'static str, String)]) {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}{path}"), &h),
        200,
        "GET {path}"
    );
}

/// What a break record says, compactly: (reason, inbound trace id, outbound path, missing).
fn summary_of(b: &Value) -> (String, String, String, Vec<String>) {
    (
        b["reason"].as_str().unwrap_or("").into(),
        b["inbound"]["trace_id"].as_str().unwrap_or("null").into(),
        b["outbound"]["path"].as_str().unwrap_or("").into(),
        b["missing"]
            .as_array()
            .map(|a| a.iter().map(|m| m.as_str().unwrap_or("").into()).collect())
            .unwrap_or_default(),
    )
}

fn owned(
    reason: &str,
    trace: &str,
    path: &str,
    missing: &[&str],
) -> (String, String, String, Vec<String>) {
    (
        reason.into(),
        trace.into(),
        path.into(),
        missing.iter().map(|m| m.to_string()).collect(),
    )
}

/// The sequential scenario: every route and every id format through one middle service.
/// Returns the records and the middle's pid.
fn sequential(runtime: &str, extra: &[&str]) -> (Records, u32) {
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc(runtime, Some(leaf_port), extra);
    let obs = Observer::for_pids(&[middle.pid()], &[]);
    let tp = |trace: &str| {
        vec![
            ("traceparent", format!("00-{trace}-{SPAN}-01")),
            ("tracestate", "congo=t61rcWkgMzE".to_string()),
        ]
    };
    get(port, "/forward", &b3(B3_128));
    get(port, "/forward", &b3(B3_64));
    get(port, "/forward", &[("b3", format!("{B3_128}-{SPAN}-1"))]);
    get(port, "/forward", &tp(W3C));
    get(port, "/forward", &[]);
    get(port, "/drop", &b3(B3_128));
    get(port, "/drop", &tp(W3C));
    get(port, "/partial", &b3(B3_64));
    get(port, "/partial", &tp(W3C));
    get(port, "/newtrace", &tp(W3C));
    get(port, "/drop", &[]);
    let r = obs.stop();
    drop(leaf);
    (r, middle.pid())
}

/// The breaks every runtime must report for `sequential`, in order.
fn expected_sequential() -> Vec<(String, String, String, Vec<String>)> {
    vec![
        owned(
            "missing",
            B3_128,
            "/leaf",
            &["x-b3-traceid", "x-b3-spanid", "x-b3-sampled"],
        ),
        owned("missing", W3C, "/leaf", &["traceparent", "tracestate"]),
        owned("partial", B3_64, "/leaf", &["x-b3-sampled"]),
        owned("partial", W3C, "/leaf", &["tracestate"]),
        owned("mismatch", W3C, "/leaf", &[]),
    ]
}

fn check_sequential(r: &Records, pid: u32, attributions: &[&str]) {
    let breaks = r.breaks();
    let got: Vec<_> = breaks.iter().map(|b| summary_of(b)).collect();
    assert_eq!(got, expected_sequential(), "{}", r.dump());
    for b in &breaks {
        assert_eq!(b["pid"], pid);
        assert!(
            attributions.contains(&b["attribution"].as_str().unwrap_or("")),
            "unexpected attribution: {b}"
        );
        assert!(
            b["outbound"]["peer"]
                .as_str()
                .is_some_and(|p| p.contains("127.0.0.1")),
            "{b}"
        );
    }
    let s = r.summary();
    assert_eq!(s["inbound"], 11, "{}", r.dump());
    assert_eq!(s["outbound"], 11, "{}", r.dump());
    assert_eq!(s["propagated"], 4, "{}", r.dump());
    assert_eq!(s["untraced"], 2, "{}", r.dump());
    assert_eq!(
        (s["unknown"].as_u64(), s["unattributed"].as_u64()),
        (Some(0), Some(0)),
        "{}",
        r.dump()
    );
    // Server spans carry the inbound trace; client spans of the forwarded calls carry it on.
    let server = r.spans("server", pid);
    assert_eq!(server.len(), 11);
    assert_eq!(server[0]["trace_id"], B3_128);
    assert_eq!(server[1]["trace_id"], B3_64);
    assert_eq!(server[3]["trace_id"], W3C);
    let client = r.spans("client", pid);
    assert_eq!(client.len(), 11);
    assert_eq!(
        client[0]["parent_span_id"], server[0]["span_id"],
        "client span hangs under its server span"
    );
}

#[test]
fn python_threading_server_urllib_every_route_and_id_format() {
    if !privileged() {
        return;
    }
    let (r, pid) = sequential("py", &[]);
    check_sequential(&r, pid, &["thread", "trace_id"]);
}

#[test]
fn python_keepalive_both_sides() {
    if !privileged() {
        return;
    }
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("py", Some(leaf_port), &["--keepalive"]);
    // One inbound keep-alive connection carrying four requests; one persistent downstream connection.
    let script = format!(
        "import http.client, sys\n\
         sys.stdin.readline()\n\
         c = http.client.HTTPConnection('127.0.0.1', {port})\n\
         for i, path in enumerate(['/forward', '/drop', '/forward', '/drop']):\n\
         \x20   c.request('GET', path, headers={{'x-b3-traceid': '%032x' % (0xfeed0 + i), 'x-b3-spanid': '%016x' % (0x51 + i), 'x-b3-sampled': '1'}})\n\
         \x20   r = c.getresponse(); r.read(); assert r.status == 200, r.status\n"
    );
    let mut client = Proc {
        child: Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let obs = Observer::for_pids(&[middle.pid()], &[]);
    client.go();
    assert!(client.child.wait().unwrap().success());
    let r = obs.stop();
    let got: Vec<_> = r.breaks().iter().map(|b| summary_of(b)).collect();
    let all = ["x-b3-traceid", "x-b3-spanid", "x-b3-sampled"];
    assert_eq!(
        got,
        vec![
            owned("missing", &format!("{:032x}", 0xfeed1), "/leaf", &all),
            owned("missing", &format!("{:032x}", 0xfeed3), "/leaf", &all)
        ],
        "{}",
        r.dump()
    );
    let server = r.spans("server", middle.pid());
    let inbound_peers: std::collections::HashSet<_> =
        server.iter().map(|s| s["peer"].to_string()).collect();
    assert_eq!(
        (server.len(), inbound_peers.len()),
        (4, 1),
        "four requests on one inbound connection: {}",
        r.dump()
    );
    assert_eq!(r.summary()["propagated"], 2);
    drop(leaf);
}

#[test]
fn node_event_loop_many_requests_in_flight() {
    if !privileged() {
        return;
    }
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("js", Some(leaf_port), &["--keepalive"]);
    let obs = Observer::for_pids(&[middle.pid()], &[]);
    // Six requests in flight at once on Node's single thread: three forward, three drop.
    let handles: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let trace = format!("{:032x}", 0xdead00 + i);
                let path = if i % 2 == 0 {
                    "/mixed?delay_ms=400"
                } else {
                    "/mixed?drop=1&delay_ms=400"
                };
                get(port, path, &b3(&trace));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let r = obs.stop();
    let breaks = r.breaks();
    assert_eq!(
        breaks.len(),
        3,
        "exactly the three dropped calls: {}",
        r.dump()
    );
    for b in &breaks {
        assert_eq!(b["reason"], "missing", "{b}");
        // With several traced requests in flight the inbound one cannot be told: ambiguous, unless
        // it was alone at that moment.
        let a = b["attribution"].as_str().unwrap();
        assert!(["ambiguous", "single_active", "thread"].contains(&a), "{b}");
        if a != "ambiguous" {
            let t = b["inbound"]["trace_id"].as_str().unwrap();
            let i = u32::from_str_radix(t, 16).unwrap() - 0xdead00;
            assert_eq!(i % 2, 1, "attributed to a request that was dropped: {b}");
        }
    }
    let s = r.summary();
    assert_eq!(
        (
            s["inbound"].as_u64(),
            s["outbound"].as_u64(),
            s["propagated"].as_u64()
        ),
        (Some(6), Some(6), Some(3)),
        "{}",
        r.dump()
    );
    assert_eq!(s["unknown"], 0);
    // Every forwarded call was recognised by its trace id.
    let forwarded: Vec<_> = r
        .spans("client", middle.pid())
        .into_iter()
        .filter(|c| !c["trace_id"].is_null())
        .collect();
    assert_eq!(forwarded.len(), 3);
    assert!(
        forwarded.iter().all(|c| c["attribution"] == "trace_id"),
        "{}",
        r.dump()
    );
    drop(leaf);
}

#[test]
fn java_httpserver_pool_with_httpclient_selector_threads() {
    if !privileged() {
        return;
    }
    let (r, pid) = sequential("java", &[]);
    check_sequential(&r, pid, &["thread", "single_active", "trace_id"]);
    assert!(
        r.spans("server", pid)
            .iter()
            .all(|s| s["service"] == "java")
    );
}

#[test]
fn node_sequential_every_route_and_id_format() {
    if !privileged() {
        return;
    }
    let (r, pid) = sequential("js", &[]);
    check_sequential(&r, pid, &["thread", "trace_id"]);
}

/// An app instrumented with the OpenTelemetry SDK and its B3 propagator makes a child span for its
/// call: a new span id, same trace. That is propagation, and the client span takes the app's id so
/// the downstream server span links to it.
#[test]
fn opentelemetry_sdk_child_spans_are_not_breaks() {
    if !privileged() {
        return;
    }
    let (leaf, leaf_port) = svc("py", None, &[]);
    let (middle, port) = svc("otel", Some(leaf_port), &[]);
    let obs = Observer::for_pids(&[middle.pid(), leaf.pid()], &[]);
    get(port, "/forward", &b3(B3_128));
    get(port, "/forward", &b3(B3_64));
    let r = obs.stop();
    assert!(r.breaks().is_empty(), "{}", r.dump());
    assert_eq!(r.summary()["propagated"], 2, "{}", r.dump());
    let client = r.spans("client", middle.pid());
    let leaf_server = r.spans("server", leaf.pid());
    assert_eq!(client.len(), 2);
    for (c, l) in client.iter().zip(&leaf_server) {
        assert_ne!(c["span_id"], SPAN, "the SDK made a child span");
        assert_eq!(
            l["parent_span_id"], c["span_id"],
            "downstream server span links to the client span"
        );
        assert_eq!(l["trace_id"], c["trace_id"]);
        assert_eq!(c["attribution"], "trace_id");
    }
}
