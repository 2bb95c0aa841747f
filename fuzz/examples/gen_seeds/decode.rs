//! Seeds of the `decode` and `decode_structured` targets: ring-buffer records of every kind.

use std::net::SocketAddr;

use observer::capture::record::{Origin, raw};
use observer_common::{
    HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_EXEC, KIND_EXIT, KIND_THREAD_EXIT, flags,
    sys,
};

use super::{
    SPAN_A, SPAN_B, TRACE_A, TRACE_B, b3_single, cookie, noise, request, response, tp, write,
};

pub(crate) fn seeds() {
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
