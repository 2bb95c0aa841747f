//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed-*`:
//! real request and response heads with B3 and W3C headers, a 6 KB cookie, pipelined requests,
//! split writes, chunked bodies, upgrades, lost and capped records, forks and exits, garbage.
//!
//! `cargo +nightly run --example gen_seeds` (from `fuzz/`); it also runs each pipeline seed
//! through the harness and prints what it produced, so a seed that stopped doing what it was
//! written for shows.

mod decode;
mod pipeline;
mod tracectx;

use std::fs;
use std::path::{Path, PathBuf};

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

fn main() {
    decode::seeds();
    tracectx::seeds();
    pipeline::seeds();
}
