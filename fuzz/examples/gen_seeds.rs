//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed-*`:
//! real request and response heads with B3 and W3C headers, a 6 KB cookie, pipelined requests,
//! split writes, chunked bodies, upgrades, lost and capped records, forks and exits, garbage.
//!
//! `cargo +nightly run --example gen_seeds` (from `fuzz/`); it also runs each pipeline seed
//! through the harness and prints what it produced, so a seed that stopped doing what it was
//! written for shows.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use observer::capture::record::{Origin, raw};
use observer_common::{
    HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_EXEC, KIND_EXIT, KIND_THREAD_EXIT, flags,
    sys,
};
use observer_fuzz::headers;
use observer_fuzz::script::{self, Op, Setup, fl};

const TRACE_A: &str = "0af7651916cd43dd8448eb211c80319c";
const SPAN_A: &str = "b7ad6b7169203331";
const TRACE_B: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const SPAN_B: &str = "e457b5a2e4d86bd1";
const PARENT_B: &str = "05e3ac9a4f6e3b90";
const TRACE_C: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CHILD: &str = "53995c3f42cd8ad8";

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    fs::write(corpus(target).join(format!("seed-{name}")), bytes).unwrap();
}

/// Pseudo-random bytes (xorshift), for garbage seeds.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn request(method: &str, path: &str, host: &str, extra: &[String]) -> Vec<u8> {
    let mut s = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
    );
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn response(status: u16, extra: &[&str], body: &str) -> Vec<u8> {
    let mut s =
        format!("HTTP/1.1 {status} OK\r\nServer: nginx/1.26.0\r\nContent-Type: text/plain\r\n");
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    if !extra
        .iter()
        .any(|h| h.starts_with("Transfer-Encoding") || h.starts_with("Content-Length"))
    {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

fn tp(trace: &str, span: &str) -> String {
    format!("traceparent: 00-{trace}-{span}-01")
}

fn b3_multi(trace: &str, span: &str, parent: &str) -> Vec<String> {
    vec![
        format!("X-B3-TraceId: {trace}"),
        format!("X-B3-SpanId: {span}"),
        format!("X-B3-ParentSpanId: {parent}"),
        "X-B3-Sampled: 1".to_owned(),
    ]
}

fn b3_single(trace: &str, span: &str) -> String {
    format!("b3: {trace}-{span}-1")
}

fn cookie(n: usize) -> String {
    let mut s = String::from("Cookie: session=");
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    for (i, b) in noise(7, n).into_iter().enumerate() {
        if i % 40 == 39 {
            s.push_str("; k=");
        } else {
            s.push(alphabet[usize::from(b) % alphabet.len()] as char);
        }
    }
    s
}

/// who byte: process index 0..=3, thread 0..=3, fd index 0..=7.
fn who(proc: u8, thread: u8, fd: u8) -> u8 {
    proc | thread << 2 | fd << 4
}

/// A script under construction: syscalls go through the harness's kernel model.
struct S {
    setup: Setup,
    ops: Vec<Op>,
}

impl S {
    fn new() -> Self {
        S {
            setup: Setup::default(),
            ops: Vec::new(),
        }
    }

    fn accept(&mut self, w: u8) -> &mut Self {
        self.ops.push(Op::Accept {
            who: w,
            peer: 2 | 5 << 2,
            dt: 0x11,
        });
        self
    }

    fn connect(&mut self, w: u8) -> &mut Self {
        self.ops.push(Op::Connect {
            who: w,
            peer: 3 | 9 << 2,
            dt: 0x11,
        });
        self
    }

    /// One syscall moving `bytes` (read or write).
    fn sys(&mut self, w: u8, write: bool, bytes: &[u8]) -> &mut Self {
        self.sys_flags(w, write, 0, bytes)
    }

    fn sys_flags(&mut self, w: u8, write: bool, extra: u8, bytes: &[u8]) -> &mut Self {
        self.ops.push(Op::Data {
            who: w,
            flags: fl::SYSCALL | extra | if write { fl::WRITE } else { 0 },
            sys: if write {
                sys::WRITE as u8
            } else {
                sys::READ as u8
            },
            dt: 0x23,
            extra: 0,
            payload: bytes.to_vec(),
        });
        self
    }

    /// The same bytes in syscalls of `chunk` bytes.
    fn split(&mut self, w: u8, write: bool, bytes: &[u8], chunk: usize) -> &mut Self {
        for c in bytes.chunks(chunk) {
            self.sys(w, write, c);
        }
        self
    }

    fn close(&mut self, w: u8) -> &mut Self {
        self.ops.push(Op::Close { who: w, dt: 0x11 });
        self
    }

    fn check(&mut self, counters: u8) -> &mut Self {
        self.ops.push(Op::DropCheck { counters });
        self
    }

    fn op(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    fn write(&self, name: &str) {
        let bytes = script::encode(self.setup, &self.ops);
        let o = script::run(&bytes);
        println!(
            "pipeline/{name}: {} bytes, {} events, {} spans, {} breaks",
            bytes.len(),
            o.events,
            o.spans,
            o.breaks
        );
        write("pipeline", name, &bytes);
    }
}

/// The usual shape: a server (process 0, fd 0 accepted) reads an inbound request, calls a
/// downstream service (fd 1 connected) with `out_headers`, gets its answer and answers.
fn serve_and_call(in_headers: &[String], out_headers: &[String]) -> S {
    let server = who(0, 0, 0);
    let client = who(0, 0, 1);
    let mut s = S::new();
    s.accept(server)
        .sys(
            server,
            false,
            &request("GET", "/checkout?cart=42", "shop.local", in_headers),
        )
        .connect(client)
        .sys(
            client,
            true,
            &request("GET", "/stock/42", "inventory:8080", out_headers),
        )
        .sys(client, false, &response(200, &[], "{\"stock\":3}"))
        .sys(server, true, &response(200, &[], "ok"))
        .check(0);
    s
}

fn pipeline_seeds() {
    let w3c = vec![
        tp(TRACE_A, SPAN_A),
        "tracestate: congo=t61rcWkgMzE".to_owned(),
    ];
    serve_and_call(
        &w3c,
        &[
            tp(TRACE_A, CHILD),
            "tracestate: congo=t61rcWkgMzE".to_owned(),
        ],
    )
    .write("w3c-propagated");
    serve_and_call(&w3c, &[]).write("w3c-missing");
    serve_and_call(&w3c, &[tp(TRACE_A, CHILD)]).write("w3c-partial-tracestate");
    serve_and_call(&w3c, &[tp(TRACE_C, CHILD)]).write("w3c-mismatch");
    serve_and_call(
        &b3_multi(TRACE_B, SPAN_B, PARENT_B),
        &b3_multi(TRACE_B, CHILD, SPAN_B),
    )
    .write("b3-multi-propagated");
    serve_and_call(
        &b3_multi(TRACE_B, SPAN_B, PARENT_B),
        &[b3_single(TRACE_B, CHILD)],
    )
    .write("b3-multi-to-single");
    serve_and_call(
        &[b3_single(TRACE_B, SPAN_B)],
        &["X-Request-Id: 7d0c0a58".to_owned()],
    )
    .write("b3-single-missing");
    serve_and_call(
        &[b3_single(TRACE_B, SPAN_B), tp(TRACE_A, SPAN_A)],
        &["b3: 0".to_owned()],
    )
    .write("b3-and-w3c-deny-only");
    serve_and_call(
        &["x-ot-span-context: 4bf92f3577b34da6;00f067aa0ba902b7;0000000000000000;sr".to_owned()],
        &[],
    )
    .write("ot-span-context-missing");

    // A 6 KB cookie before the trace headers, the inbound head read in MTU-sized pieces and the
    // outbound one written in 1 KiB pieces.
    {
        let server = who(0, 0, 0);
        let client = who(0, 0, 1);
        let mut in_h = vec![cookie(6 * 1024)];
        in_h.push(tp(TRACE_A, SPAN_A));
        let mut out_h = vec![cookie(6 * 1024)];
        out_h.extend(b3_multi(TRACE_A, CHILD, SPAN_A));
        let mut s = S::new();
        s.accept(server)
            .split(
                server,
                false,
                &request("POST", "/api/orders", "shop", &in_h),
                1448,
            )
            .connect(client)
            .split(
                client,
                true,
                &request("PUT", "/orders/1", "db", &out_h),
                1024,
            )
            .sys(client, false, &response(204, &[], ""))
            .sys(server, true, &response(201, &["Content-Length: 0"], ""))
            .check(0);
        s.write("cookie-6k-split");
    }

    // A head longer than the 16 KiB budget: capped, reported truncated.
    {
        let server = who(1, 0, 2);
        let mut s = S::new();
        s.accept(server)
            .split(
                server,
                false,
                &request(
                    "GET",
                    "/big",
                    "x",
                    &[cookie(20 * 1024), tp(TRACE_A, SPAN_A)],
                ),
                4096,
            )
            .sys(server, true, &response(431, &[], ""))
            .check(2);
        s.write("cookie-20k-capped");
    }

    // Pipelined requests in one read, their responses in one write; keep-alive after.
    {
        let server = who(1, 1, 0);
        let mut reqs = Vec::new();
        for (i, t) in [TRACE_A, TRACE_B, TRACE_C].iter().enumerate() {
            reqs.extend(request(
                "GET",
                &format!("/item/{i}"),
                "api",
                &[tp(t, SPAN_A)],
            ));
        }
        let mut resps = Vec::new();
        for i in 0..3 {
            resps.extend(response(200, &[], &format!("item {i}")));
        }
        let mut s = S::new();
        s.accept(server)
            .sys(server, false, &reqs)
            .sys(server, true, &resps)
            .sys(server, false, &request("HEAD", "/item/0", "api", &[]))
            .sys(server, true, &response(200, &["Content-Length: 1234"], ""))
            .sys(
                server,
                false,
                &request("GET", "/item/9", "api", &[b3_single(TRACE_B, SPAN_B)]),
            )
            .sys(
                server,
                true,
                &response(
                    200,
                    &["Transfer-Encoding: chunked"],
                    "5\r\nhello\r\n0\r\n\r\n",
                ),
            )
            .close(server)
            .check(0);
        s.write("pipelined-keepalive");
    }

    // A POST with a body in a second write, a chunked response split over reads, a 100 Continue.
    {
        let client = who(2, 0, 3);
        let body = "{\"order\":1,\"items\":[1,2,3]}";
        let head = request(
            "POST",
            "/orders",
            "orders:8080",
            &[
                tp(TRACE_C, CHILD),
                format!("Content-Length: {}", body.len()),
                "Expect: 100-continue".to_owned(),
            ],
        );
        let mut s = S::new();
        s.connect(client).sys(client, true, &head);
        s.sys(client, false, b"HTTP/1.1 100 Continue\r\n\r\n")
            .sys(client, true, body.as_bytes())
            .split(
                client,
                false,
                &response(
                    200,
                    &["Transfer-Encoding: chunked"],
                    "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n",
                ),
                17,
            );
        s.check(0);
        s.write("post-body-chunked-continue");
    }

    // One byte per syscall, the way some clients write.
    {
        let server = who(0, 1, 4);
        let mut s = S::new();
        s.accept(server)
            .split(
                server,
                false,
                &request("GET", "/slow", "s", &[tp(TRACE_A, SPAN_A)]),
                1,
            )
            .split(server, true, &response(200, &[], "x"), 3)
            .check(0);
        s.write("one-byte-writes");
    }

    // A worker thread spawned by the handler makes the call; the worker exits, the process forks,
    // execs, answers and ends with connections open.
    {
        let server = who(3, 0, 0);
        let worker = who(3, 2, 1);
        let mut s = S::new();
        s.accept(server)
            .sys(
                server,
                false,
                &request("GET", "/report", "r", &[tp(TRACE_A, SPAN_A)]),
            )
            .op(Op::Fork {
                who: server,
                child: 2,
                dt: 0x12,
            })
            .connect(worker)
            .sys(worker, true, &request("GET", "/data", "backend", &[]))
            .sys(worker, false, &response(200, &[], "d"))
            .op(Op::ThreadExit {
                who: worker,
                dt: 0x12,
            })
            .op(Op::Fork {
                who: server,
                child: 0x81,
                dt: 0x12,
            })
            .check(0)
            .op(Op::Exec {
                who: server,
                dt: 0x12,
            })
            .sys(server, true, &response(200, &[], ""))
            .op(Op::Exit {
                who: server,
                dt: 0x12,
            });
        s.write("spawned-thread-exit");
    }

    // Two concurrent traced requests and an untraced call: ambiguous, then unattributed.
    {
        let a = who(2, 0, 0);
        let b = who(2, 1, 1);
        let c = who(2, 3, 2);
        let mut s = S::new();
        s.accept(a)
            .accept(b)
            .sys(a, false, &request("GET", "/a", "h", &[tp(TRACE_A, SPAN_A)]))
            .sys(b, false, &request("GET", "/b", "h", &[tp(TRACE_C, SPAN_A)]))
            .connect(c)
            .sys(c, true, &request("GET", "/x", "down", &[]))
            .sys(c, false, &response(200, &[], ""))
            .sys(
                c,
                true,
                &request(
                    "POST",
                    "/v1/traces",
                    "otel-collector:4318",
                    &["Content-Length: 0".to_owned()],
                ),
            )
            .sys(c, false, &response(200, &[], ""))
            .sys(a, true, &response(200, &[], ""))
            .sys(b, true, &response(200, &[], ""))
            .check(0);
        s.write("ambiguous-and-telemetry");
    }

    // Lost records: a dropped inbound head and a drop check that withdraws a break.
    {
        let server = who(0, 0, 0);
        let client = who(0, 0, 1);
        let mut s = S::new();
        s.accept(server)
            .sys_flags(
                server,
                false,
                fl::DROP,
                &request("GET", "/lost", "h", &[tp(TRACE_A, SPAN_A)]),
            )
            .sys(server, true, &response(200, &[], ""))
            .sys(
                server,
                false,
                &request("GET", "/after", "h", &[tp(TRACE_B, SPAN_B)]),
            )
            .connect(client)
            .sys(client, true, &request("GET", "/down", "d", &[]))
            .check(1)
            .sys(client, false, &response(200, &[], ""))
            .sys(server, true, &response(200, &[], ""))
            .check(0);
        s.write("lost-records");
    }

    // Connections that existed before the observer attached (no accept/connect), some not
    // sockets, and a WebSocket upgrade followed by frames.
    {
        let mut s = S::new();
        s.setup.os = 5;
        let a = who(1, 0, 5);
        let b = who(1, 0, 6);
        s.sys(a, false, &request("GET", "/old", "h", &[tp(TRACE_A, SPAN_A)]))
            .sys(b, true, &request("GET", "/file", "h", &[]))
            .sys(a, true, &response(200, &[], "old"))
            .sys(a, false, &request("GET", "/ws", "h", &["Upgrade: websocket".to_owned(), "Connection: Upgrade".to_owned()]))
            .sys(a, true, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .sys(a, false, b"\x81\x85GET / HTTP/1.1\r\n")
            .check(0);
        s.write("preexisting-and-upgrade");
    }

    // Record flags as they are, not as the kernel model sets them: head starts on body bytes,
    // capped, iovec cut and faulted records, syscalls of every kind, odd totals.
    {
        let mut s = S::new();
        s.setup = Setup {
            cfg: 0x6b,
            os: 0,
            wall: 2,
        };
        let server = who(0, 0, 0);
        s.accept(server);
        for (i, f) in [
            fl::HEAD_START,
            fl::HEAD_START | fl::CAPPED,
            fl::IOV_CUT,
            fl::READ_FAULT | fl::BIG_TOTAL,
            fl::LOST_BEFORE,
            fl::HEAD_START | fl::WRITE,
        ]
        .into_iter()
        .enumerate()
        {
            s.op(Op::Data {
                who: server,
                flags: f,
                sys: i as u8,
                dt: 0x75,
                extra: 200,
                payload: request("GET", &format!("/r{i}?q=1#f"), "h", &[tp(TRACE_A, SPAN_A)]),
            });
        }
        s.check(0);
        s.write("raw-flags-and-long-gaps");
    }

    // Raw records, decoded as they are: valid ones, truncated ones and noise.
    {
        let o = Origin {
            pid: 1000,
            tid: 1000,
            ts_ns: script::START_NS,
        };
        let peer: SocketAddr = "[::1]:8080".parse().unwrap();
        let mut s = S::new();
        for rec in [
            raw::conn(KIND_ACCEPT, o, 3, Some(peer)),
            raw::data(o, 3, false, true, b"GET / HTTP/1.1\r\nb3: 1\r\n\r\n"),
            raw::data_with(o, 3, 99, flags::WRITE, 10, b"HTTP/1.1 2"),
            raw::conn(KIND_CONNECT, o, 4, None)[..30].to_vec(),
            raw::simple(KIND_CLOSE, o, 3),
            raw::simple(KIND_THREAD_EXIT, o, -1),
            raw::fork(o, 1001),
            raw::simple(KIND_EXIT, o, -1),
            noise(3, 64),
        ] {
            s.op(Op::Raw { bytes: rec });
        }
        s.write("raw-records");
    }

    // Garbage scripts.
    for (i, n) in [16usize, 200, 1500].into_iter().enumerate() {
        let bytes = noise(100 + i as u64, n);
        let o = script::run(&bytes);
        println!("pipeline/garbage-{i}: {} events", o.events);
        write("pipeline", &format!("garbage-{i}"), &bytes);
    }
    // Long heads of a single line kind, at the budget exactly.
    {
        let server = who(0, 0, 0);
        let pad = HEAD_MAX as usize - request("GET", "/", "h", &[String::from("X-Pad: ")]).len();
        let mut s = S::new();
        s.accept(server)
            .sys(
                server,
                false,
                &request("GET", "/", "h", &[format!("X-Pad: {}", "p".repeat(pad))]),
            )
            .sys(server, true, &response(200, &[], ""))
            .check(0);
        s.write("head-at-budget");
    }
}

fn decode_seeds() {
    let o = Origin {
        pid: 4242,
        tid: 4243,
        ts_ns: 123_456_789,
    };
    let v4: SocketAddr = "10.1.2.3:8080".parse().unwrap();
    let v6: SocketAddr = "[fd00::7]:443".parse().unwrap();
    let req = request(
        "GET",
        "/",
        "h",
        &[tp(TRACE_A, SPAN_A), b3_single(TRACE_B, SPAN_B)],
    );
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("data-request", raw::data(o, 7, false, true, &req)),
        (
            "data-response",
            raw::data(o, 7, true, true, &response(200, &[], "hi")),
        ),
        (
            "data-flags",
            raw::data_with(
                o,
                9,
                sys::SENDMSG,
                flags::WRITE
                    | flags::CAPPED
                    | flags::IOV_CUT
                    | flags::LOST_BEFORE
                    | flags::READ_FAULT,
                1 << 40,
                b"POST /x HTTP/1.1\r\n",
            ),
        ),
        ("data-empty", raw::data(o, 7, false, false, b"")),
        (
            "data-cookie-6k",
            raw::data(
                o,
                7,
                false,
                true,
                &request("GET", "/", "h", &[cookie(6 * 1024)]),
            ),
        ),
        ("connect-v4", raw::conn(KIND_CONNECT, o, 5, Some(v4))),
        ("accept-v6", raw::conn(KIND_ACCEPT, o, 6, Some(v6))),
        ("accept-none", raw::conn(KIND_ACCEPT, o, 6, None)),
        ("close", raw::simple(KIND_CLOSE, o, 5)),
        ("fork", raw::fork(o, 4300)),
        ("thread-exit", raw::simple(KIND_THREAD_EXIT, o, -1)),
        ("exit", raw::simple(KIND_EXIT, o, -1)),
        ("exec", raw::simple(KIND_EXEC, o, -1)),
        ("unknown-kind", raw::simple(99, o, 1)),
        ("unknown-syscall", raw::data_with(o, 1, 77, 0, 1, b"x")),
        ("garbage", noise(42, 96)),
    ];
    let mut padded = raw::data(o, 7, false, true, b"GET / HTTP/1.1\r\n\r\n");
    padded.extend_from_slice(&[0; 6]);
    seeds.push(("data-padded", padded));
    let mut long = raw::data(o, 7, false, true, b"x");
    long[40..44].copy_from_slice(&(HEAD_MAX + 1).to_ne_bytes());
    seeds.push(("data-len-too-long", long));
    let mut claims = raw::data(o, 7, false, true, b"abc");
    claims[40..44].copy_from_slice(&100u32.to_ne_bytes());
    seeds.push(("data-len-beyond", claims));
    seeds.push((
        "truncated",
        raw::conn(KIND_CONNECT, o, 5, Some(v4))[..40].to_vec(),
    ));
    for (name, bytes) in &seeds {
        write("decode", name, bytes);
    }
    // The structured target reads its input through `arbitrary`; any bytes do, these give it a
    // varied start.
    for (name, bytes) in seeds.iter().take(8) {
        write("decode_structured", name, bytes);
    }
}

/// Header (name, value) pairs of one request head.
type Headers = Vec<(&'static str, Vec<u8>)>;

fn tracectx_seeds() {
    let seeds: Vec<(&str, Headers)> = vec![
        (
            "w3c",
            vec![
                (
                    "traceparent",
                    format!("00-{TRACE_A}-{SPAN_A}-01").into_bytes(),
                ),
                (
                    "tracestate",
                    b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_vec(),
                ),
            ],
        ),
        (
            "w3c-future-version",
            vec![(
                "traceparent",
                format!("cc-{TRACE_A}-{SPAN_A}-00-what-the-future-holds").into_bytes(),
            )],
        ),
        (
            "b3-multi",
            vec![
                ("x-b3-traceid", TRACE_B.as_bytes().to_vec()),
                ("x-b3-spanid", SPAN_B.as_bytes().to_vec()),
                ("x-b3-parentspanid", PARENT_B.as_bytes().to_vec()),
                ("x-b3-sampled", b"1".to_vec()),
                ("x-b3-flags", b"1".to_vec()),
            ],
        ),
        (
            "b3-multi-64bit-upper",
            vec![
                ("x-b3-traceid", b"463AC35C9F6413AD".to_vec()),
                ("x-b3-spanid", b"A2FB4A1D1A96D312".to_vec()),
                ("x-b3-sampled", b"true".to_vec()),
            ],
        ),
        (
            "b3-single",
            vec![(
                "b3",
                format!("{TRACE_B}-{SPAN_B}-d-{PARENT_B}").into_bytes(),
            )],
        ),
        (
            "b3-single-deny",
            vec![("b3", b"0".to_vec()), ("x-b3-sampled", b"1".to_vec())],
        ),
        (
            "b3-conflict",
            vec![
                ("b3", format!("{TRACE_B}-{SPAN_B}-1").into_bytes()),
                ("x-b3-traceid", TRACE_A.as_bytes().to_vec()),
                ("x-b3-spanid", SPAN_A.as_bytes().to_vec()),
            ],
        ),
        (
            "all-formats",
            vec![
                (
                    "traceparent",
                    format!("00-{TRACE_A}-{SPAN_A}-01").into_bytes(),
                ),
                ("b3", format!("{TRACE_A}-{SPAN_A}").into_bytes()),
                ("x-b3-traceid", TRACE_A.as_bytes().to_vec()),
                (
                    "x-request-id",
                    b"f058ebd6-02f7-4d3f-942e-904344e8cde5".to_vec(),
                ),
                (
                    "x-ot-span-context",
                    b"4bf92f3577b34da6;00f067aa0ba902b7;0000000000000000;sr".to_vec(),
                ),
            ],
        ),
        (
            "duplicates",
            vec![
                (
                    "traceparent",
                    format!("00-{TRACE_A}-{SPAN_A}-01").into_bytes(),
                ),
                (
                    "traceparent",
                    format!(" 00-{TRACE_A}-{SPAN_A}-01\t").into_bytes(),
                ),
                ("x-b3-spanid", SPAN_A.as_bytes().to_vec()),
                ("x-b3-spanid", SPAN_B.as_bytes().to_vec()),
            ],
        ),
        (
            "invalid-values",
            vec![
                (
                    "traceparent",
                    format!("00-{}-{SPAN_A}-01", "0".repeat(32)).into_bytes(),
                ),
                ("x-b3-traceid", b"xyz".to_vec()),
                ("x-b3-sampled", b"yes".to_vec()),
                ("tracestate", b"a=b".to_vec()),
                ("x-request-id", vec![b'r'; 200]),
                ("b3", "é-\u{85}".as_bytes().to_vec()),
                ("x-ot-span-context", vec![0xff, 0xfe, b'\r']),
            ],
        ),
        (
            "with-cookie-6k",
            vec![
                ("host", b"shop.local".to_vec()),
                ("user-agent", b"Mozilla/5.0".to_vec()),
                ("cookie", cookie(6 * 1024).into_bytes()),
                (
                    "traceparent",
                    format!("00-{TRACE_C}-{CHILD}-00").into_bytes(),
                ),
                ("X-Custom", b"v".to_vec()),
            ],
        ),
    ];
    for (name, hs) in &seeds {
        let pairs: Vec<(&str, &[u8])> = hs.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let bytes = headers::encode(&pairs);
        headers::run(&bytes);
        write("tracectx", name, &bytes);
    }
    write("tracectx", "garbage", &noise(9, 300));
}

fn main() {
    decode_seeds();
    tracectx_seeds();
    pipeline_seeds();
}
