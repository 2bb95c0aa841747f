//! Seeds of the `pipeline` target: scripts of syscalls through the harness's kernel model.

use std::net::SocketAddr;

use observer::capture::record::{Origin, raw};
use observer_common::{
    HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_EXIT, KIND_THREAD_EXIT, flags, sys,
};
use observer_fuzz::script::{self, Op, Setup, fl};

use super::{
    CHILD, PARENT_B, SPAN_A, SPAN_B, TRACE_A, TRACE_B, TRACE_C, b3_multi, b3_single, cookie, noise,
    request, response, tp, write,
};

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

pub(crate) fn seeds() {
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
