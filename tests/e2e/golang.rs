//! Go `net/http` services (tests/apps/svc.go, built with Debian's golang-go): goroutines share a
//! few OS threads and the HTTP client writes from its connection's own goroutine, so an OS thread
//! is no evidence of which request made a call. Every request carries its own trace id and its
//! downstream call carries the request's number (`/leaf/<n>`), so each break is checked against
//! the request that really made the call: never another request's trace, never a break for a call
//! that forwarded the context or served an untraced request.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use observer_tests::*;

/// The handler's behaviour per request, in turn.
const ROUTES: [&str; 5] = ["forward", "drop", "partial", "spawn-drop", "spawn-forward"];
/// Requests in all, and at once.
const REQUESTS: u32 = 160;
const IN_FLIGHT: u32 = 16;

#[derive(Debug, Clone)]
struct Call {
    route: &'static str,
    /// None: sent without trace headers.
    trace: Option<String>,
}

impl Call {
    fn drops(&self) -> bool {
        self.trace.is_some() && ["drop", "partial", "spawn-drop"].contains(&self.route)
    }
}

/// Request `n`: the route in turn; every fifth group of five untraced (20 % of each route);
/// B3 and W3C in turn.
fn plan(n: u32) -> Call {
    let route = ROUTES[(n % 5) as usize];
    let traced = !(n / 5).is_multiple_of(5);
    Call {
        route,
        trace: traced.then(|| format!("{:08x}{:024x}", 0x60d0_0000u32 + n, 0xabcdef + n)),
    }
}

fn headers(n: u32, trace: &str) -> Vec<(&'static str, String)> {
    let span = format!("{:016x}", 0x5a00 + n);
    if n.is_multiple_of(2) {
        vec![
            ("traceparent", format!("00-{trace}-{span}-01")),
            ("tracestate", "congo=t61rcWkgMzE".into()),
        ]
    } else {
        vec![
            ("x-b3-traceid", trace.into()),
            ("x-b3-spanid", span),
            ("x-b3-sampled", "1".into()),
        ]
    }
}

/// Drives the plan through `port`, `IN_FLIGHT` at a time; every call must answer 200.
fn drive(port: u16, calls: &Arc<Vec<Call>>) {
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| {
            let calls = Arc::clone(calls);
            std::thread::spawn(move || {
                for n in (w..REQUESTS).step_by(IN_FLIGHT as usize) {
                    let c = &calls[n as usize];
                    let h = c
                        .trace
                        .as_deref()
                        .map(|t| headers(n, t))
                        .unwrap_or_default();
                    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let url = format!("http://127.0.0.1:{port}/{}/{n}?delay_ms=30", c.route);
                    assert_eq!(curl(&url, &h), 200, "GET {url}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("driver thread");
    }
}

/// What became of the calls that dropped context, for the figures.
#[derive(Debug, Default)]
struct Tally {
    dropping: usize,
    reported: usize,
    named: usize,
}

/// Runs the scenario against `bin` and checks every break against the request behind its call.
fn scenario(bin: &Path) -> Tally {
    let (leaf, leaf_port) = go_svc(bin, None, 2);
    let (middle, port) = go_svc(bin, Some(leaf_port), 2);
    let obs = Observer::for_pids(&[middle.pid()], &[]);
    assert_eq!(
        obs.ready["go_pids"],
        serde_json::json!([middle.pid()]),
        "the ready record names the Go program: {}",
        obs.ready
    );
    let calls: Arc<Vec<Call>> = Arc::new((0..REQUESTS).map(plan).collect());
    drive(port, &calls);
    let r = obs.stop();
    let mut t = Tally {
        dropping: calls.iter().filter(|c| c.drops()).count(),
        ..Tally::default()
    };
    let mut per_call: HashMap<u32, usize> = HashMap::new();
    for b in r.breaks() {
        let path = b["outbound"]["path"].as_str().unwrap_or_default();
        let n: u32 = path
            .strip_prefix("/leaf/")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a break on an unknown call: {b}"));
        let c = &calls[n as usize];
        assert!(
            c.drops(),
            "a break on a call that did not drop context ({c:?}): {b}"
        );
        assert_ne!(b["attribution"], "thread", "no thread rule in Go: {b}");
        *per_call.entry(n).or_default() += 1;
        t.reported += 1;
        if let Some(named) = b["inbound"]["trace_id"].as_str() {
            assert_eq!(
                Some(named),
                c.trace.as_deref(),
                "the break names another request's trace: {b}"
            );
            t.named += 1;
        }
        let want = if c.route == "partial" {
            "partial"
        } else {
            "missing"
        };
        assert_eq!(b["reason"], want, "{b}");
    }
    assert!(
        per_call.values().all(|&k| k == 1),
        "one break per call: {per_call:?}"
    );
    let s = r.summary();
    assert_eq!(
        (s["inbound"].as_u64(), s["outbound"].as_u64()),
        (Some(u64::from(REQUESTS)), Some(u64::from(REQUESTS))),
        "{}",
        r.dump()
    );
    // A partial call carries its request's trace id: always named.
    let partial = calls
        .iter()
        .filter(|c| c.drops() && c.route == "partial")
        .count();
    assert!(
        t.named >= partial,
        "{t:?}: the {partial} partial calls are named by trace id"
    );
    eprintln!(
        "Go scenario {}: {} dropped-context calls, {} reported, {} named (0 wrong, 0 false)",
        bin.display(),
        t.dropping,
        t.reported,
        t.named
    );
    drop(middle);
    drop(leaf);
    t
}

#[test]
fn go_net_http_breaks_never_name_another_request() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("go");
    scenario(&go_build(&dir.path, false));
}

#[test]
fn go_stripped_binary_is_still_go_and_never_names_another_request() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("go-stripped");
    scenario(&go_build(&dir.path, true));
}
