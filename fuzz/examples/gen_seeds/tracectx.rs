//! Seeds of the `tracectx` target: the trace headers of one request head.

use observer_fuzz::headers;

use super::{CHILD, PARENT_B, SPAN_A, SPAN_B, TRACE_A, TRACE_B, TRACE_C, cookie, noise, write};

/// Header (name, value) pairs of one request head.
type Headers = Vec<(&'static str, Vec<u8>)>;

pub(crate) fn seeds() {
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
