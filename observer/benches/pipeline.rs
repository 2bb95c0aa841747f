//! The user-space pipeline on recorded traffic: raw ring-buffer records -> `record::decode_ref` ->
//! connection tracker (reassembly, head parsing) -> correlator -> records, on one core.
//!
//! The traffic is what a middle service produces: keep-alive inbound connections whose requests
//! carry W3C and B3 headers, and for each of them a call downstream on a keep-alive connection,
//! with the trace headers passed on for three calls in four (the fourth is a propagation break),
//! the downstream response and the inbound response; connections open and close. Records are
//! built with `record::raw`, byte for byte what the kernel writes, and decoded in place as
//! the ring-buffer reader does.
//!
//! Besides criterion's time per batch (throughput in records), the bench counts allocations per
//! record with a counting global allocator and writes them to `$CRITERION_HOME/allocs.json` (and
//! prints an `ALLOCS` line), read by `cargo xtask bench`.

use std::alloc::System;
use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use observer::capture::hooks::KernelCounters;
use observer::capture::record::{Origin, decode_ref, raw};
use observer::correlate::{Config, IdSource};
use observer::http::head::ParseOptions;
use observer::http::table::Limits;
use observer::http::tracker::{FdKind, SocketLookup};
use observer::output::{Format, render_into};
use observer::pipeline::{Pipeline, ProcView};
use observer_common::{KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts allocations (and reallocations) made by the bench binary (atomic counters around the
/// system allocator).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The observed service.
const PID: u32 = 4242;
/// Inbound keep-alive connections, requests on each.
const CONNS: u32 = 50;
const REQUESTS_PER_CONN: u32 = 50;
/// A drop check (kernel counters) every this many records, as the reader's 200 ms tick would.
const CHECK_EVERY: usize = 1000;

struct FakeOs;

impl SocketLookup for FakeOs {
    fn lookup(&mut self, _pid: u32, fd: i32) -> FdKind {
        FdKind::Socket {
            peer: Some(SocketAddr::from(([10, 0, 0, 7], 30_000 + fd as u16))),
        }
    }
}

impl ProcView for FakeOs {
    fn service_name(&mut self, _pid: u32) -> String {
        "orders".to_owned()
    }
}

struct Ids(u64);

impl IdSource for Ids {
    fn next_id(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// The recorded traffic: raw records in ring-buffer order.
fn traffic() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut ts = 1_000_000_000_000u64;
    let mut at = |tid: u32| {
        ts += 20_000;
        Origin {
            pid: PID,
            tid,
            ts_ns: ts,
        }
    };
    let downstream = SocketAddr::from(([10, 0, 0, 9], 8080));
    for c in 0..CONNS {
        let tid = PID + 1 + c % 4;
        let fd_in = 10 + c as i32;
        let fd_out = 200 + c as i32;
        let client = SocketAddr::from(([10, 0, 1, (c % 250) as u8], 40_000 + c as u16));
        out.push(raw::conn(KIND_ACCEPT, at(tid), fd_in, Some(client)));
        out.push(raw::conn(KIND_CONNECT, at(tid), fd_out, Some(downstream)));
        for r in 0..REQUESTS_PER_CONN {
            let n = c * REQUESTS_PER_CONN + r;
            let trace = format!("{:016x}{:016x}", 0x4bf9_2f35_77b3_4da6u64, n + 1);
            let span = format!("{:016x}", 0x00f0_67aa_0ba9_02b7u64 + u64::from(n));
            let child = format!("{:016x}", 0x0a0b_0c0d_0e0f_0001u64 + u64::from(n));
            let inbound = format!(
                "GET /api/orders/{n}?expand=items HTTP/1.1\r\nHost: orders.svc:8080\r\n\
                 User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench/1.0\r\nAccept: application/json\r\n\
                 Accept-Encoding: gzip, deflate\r\ntraceparent: 00-{trace}-{span}-01\r\n\
                 tracestate: vendor=opaque\r\nx-b3-traceid: {trace}\r\nx-b3-spanid: {span}\r\n\
                 x-b3-sampled: 1\r\nx-request-id: 7f1c2a9e-{n:08x}\r\n\r\n"
            );
            let propagated = if n % 4 == 3 {
                String::new()
            } else {
                format!(
                    "traceparent: 00-{trace}-{child}-01\r\ntracestate: vendor=opaque\r\n\
                     x-b3-traceid: {trace}\r\nx-b3-spanid: {child}\r\nx-b3-parentspanid: {span}\r\n\
                     x-b3-sampled: 1\r\n"
                )
            };
            let outbound = format!(
                "POST /stock/reserve HTTP/1.1\r\nHost: inventory:8080\r\nContent-Type: application/json\r\n\
                 Content-Length: 17\r\n{propagated}\r\n{{\"item\":{n:>7}}}"
            );
            let down_resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
            let up_resp =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
            out.push(raw::data(at(tid), fd_in, false, true, inbound.as_bytes()));
            out.push(raw::data(at(tid), fd_out, true, true, outbound.as_bytes()));
            out.push(raw::data(
                at(tid),
                fd_out,
                false,
                true,
                down_resp.as_bytes(),
            ));
            out.push(raw::data(at(tid), fd_in, true, true, up_resp.as_bytes()));
        }
        out.push(raw::simple(KIND_CLOSE, at(tid), fd_out));
        out.push(raw::simple(KIND_CLOSE, at(tid), fd_in));
    }
    out
}

/// Runs the whole batch through a fresh pipeline; with `json`, renders every record as the
/// observer's `--output json` does. Returns the number of output records.
fn run(records: &[Vec<u8>], json: bool) -> usize {
    let mut pipeline = Pipeline::new(
        ParseOptions::default(),
        Limits::default(),
        Config::default(),
        Box::new(Ids(0)),
        1_700_000_000_000_000_000,
    );
    let mut os = FakeOs;
    let mut out = Vec::new();
    let mut emitted = 0;
    let mut line = Vec::new();
    let mut bytes = 0;
    for (i, rec) in records.iter().enumerate() {
        match decode_ref(rec) {
            Ok(ev) => pipeline.on_event(&ev, &mut os, &mut out),
            Err(_) => pipeline.count_decode_error(),
        }
        if (i + 1) % CHECK_EVERY == 0 {
            pipeline.on_drop_check(KernelCounters::default(), &mut out);
        }
        if json {
            for r in &out {
                line.clear();
                render_into(r, Format::Json, false, &mut line);
                bytes += line.len();
            }
        }
        emitted += out.len();
        out.clear();
    }
    pipeline.on_drop_check(KernelCounters::default(), &mut out);
    emitted += out.len();
    black_box(bytes);
    black_box(pipeline.summary());
    emitted
}

/// Allocations and allocated bytes per record of one run.
fn allocs_per_record(records: &[Vec<u8>], json: bool) -> (f64, f64) {
    let (a0, b0) = (
        GLOBAL.stats().allocations + GLOBAL.stats().reallocations,
        GLOBAL.stats().bytes_allocated,
    );
    black_box(run(records, json));
    let (a1, b1) = (
        GLOBAL.stats().allocations + GLOBAL.stats().reallocations,
        GLOBAL.stats().bytes_allocated,
    );
    let n = records.len() as f64;
    ((a1 - a0) as f64 / n, (b1 - b0) as f64 / n)
}

fn bench(c: &mut Criterion) {
    let records = traffic();
    let n = records.len();
    let outputs = run(&records, false);
    assert!(outputs > n / 4, "the traffic must produce spans and breaks");

    let mut report = Vec::new();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(n as u64));
    for (id, json) in [("decode_to_findings", false), ("decode_to_json", true)] {
        let (allocs, bytes) = allocs_per_record(&records, json);
        println!("ALLOCS pipeline/{id} {allocs:.3} allocs/record {bytes:.1} bytes/record");
        report.push(format!(
            "\"pipeline/{id}\":{{\"records\":{n},\"outputs\":{outputs},\"allocs_per_record\":{allocs:.4},\"bytes_per_record\":{bytes:.2}}}"
        ));
        group.bench_function(id, |b| b.iter(|| run(black_box(&records), json)));
    }
    group.finish();
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        let path = std::path::Path::new(&home).join("allocs.json");
        let _ = std::fs::create_dir_all(&home);
        if let Err(e) = std::fs::write(&path, format!("{{{}}}\n", report.join(","))) {
            eprintln!("writing {}: {e}", path.display());
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
