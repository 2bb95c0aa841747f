//! The JSON line of a span, written field by field: spans are nearly every line the observer
//! prints, and serde_json's generic path (a map serializer, and an escape-table lookup and a
//! separate append for every byte run of every string) cost more than the pipeline's
//! correlation. The line is the one serde_json makes from [`SpanRecord`]'s `Serialize` (same
//! keys, order and number forms); strings that need escaping, floats and the pod go through
//! serde_json itself. A test holds the two equal.

use serde::Serialize;

use crate::record::SpanRecord;

/// Room for a typical span line (~400 bytes), reserved once.
const SPAN_LINE: usize = 512;

/// Appends `{"type":"span",...}` for `s` to `out`.
pub(super) fn span(s: &SpanRecord, out: &mut Vec<u8>) {
    out.reserve(SPAN_LINE);
    out.extend_from_slice(b"{\"type\":\"span\"");
    let mut w = Fields(out);
    w.str("kind", s.kind.as_str());
    w.uint("pid", s.pid.into());
    w.uint("tid", s.tid.into());
    w.str("service", &s.service);
    w.opt_str("method", s.method.as_deref());
    w.opt_str("path", s.path.as_deref());
    w.opt_str("host", s.host.as_deref());
    w.uint("status", s.status.into());
    w.opt_str("peer", s.peer.as_deref());
    w.opt_str("trace_id", s.trace_id.as_deref());
    w.str("span_id", &s.span_id);
    w.opt_str("parent_span_id", s.parent_span_id.as_deref());
    w.str("start", &s.start);
    w.key("duration_ms");
    w.serde(&s.duration_ms);
    if let Some(a) = s.attribution {
        w.str("attribution", a.as_str());
    }
    if let Some(c) = &s.cgroup {
        w.str("cgroup", c);
    }
    if let Some(c) = &s.container_id {
        w.str("container_id", c);
    }
    if let Some(k) = &s.k8s {
        w.key("k8s");
        w.serde(k);
    }
    out.push(b'}');
}

/// Writes `,"key":value` pairs.
struct Fields<'a>(&'a mut Vec<u8>);

impl Fields<'_> {
    /// `key` is a field name: ASCII letters and underscores, nothing to escape.
    fn key(&mut self, key: &str) {
        self.0.extend_from_slice(b",\"");
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &str, v: &str) {
        self.key(key);
        self.string(v);
    }

    fn opt_str(&mut self, key: &str, v: Option<&str>) {
        self.key(key);
        match v {
            Some(v) => self.string(v),
            None => self.0.extend_from_slice(b"null"),
        }
    }

    fn uint(&mut self, key: &str, v: u64) {
        self.key(key);
        self.0
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// A JSON string: copied whole when nothing in it is escaped (control characters, `"` and
    /// `\`, as serde_json escapes), else through serde_json.
    fn string(&mut self, v: &str) {
        // Without an early exit, so that the check is vectorised.
        let escaped = v
            .bytes()
            .fold(false, |e, b| e | (b < 0x20) | (b == b'"') | (b == b'\\'));
        if !escaped {
            self.0.push(b'"');
            self.0.extend_from_slice(v.as_bytes());
            self.0.push(b'"');
        } else {
            self.serde(v);
        }
    }

    /// A value through serde_json (writing to a `Vec` cannot fail; were it to, `null` keeps the
    /// line valid JSON).
    fn serde<T: Serialize + ?Sized>(&mut self, v: &T) {
        let start = self.0.len();
        if serde_json::to_writer(&mut *self.0, v).is_err() {
            self.0.truncate(start);
            self.0.extend_from_slice(b"null");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::k8s::{K8sMeta, PodMeta, Workload, WorkloadKind};
    use crate::record::{Attribution, ProcessMeta, Record, SpanKind};
    use crate::text::inline_str;

    /// Texts serde_json copies as they are, and texts it escapes.
    const TEXTS: [&str; 9] = [
        "",
        "/api/orders/7?expand=items",
        "say \"hi\"",
        "C:\\path",
        "\u{1}\u{8}\t\n\u{c}\r\u{1f}",
        "caf\u{e9} \u{fc} \u{4e2d}",
        "del \u{7f} is not escaped",
        "</script>",
        "a\u{2028}b",
    ];

    fn record(n: usize, some: bool) -> SpanRecord {
        let text = |k: usize| TEXTS[(n + k) % TEXTS.len()];
        let pod = PodMeta {
            uid: "1fa938dc-45eb-4328-8b9c-7414c40e8b1f".into(),
            namespace: text(7).into(),
            name: "checkout-7d9f8b6c5d-x2x7q".into(),
            workload: Some(Workload {
                kind: WorkloadKind::Deployment,
                name: text(8).into(),
            }),
            ..PodMeta::default()
        };
        SpanRecord {
            kind: if n.is_multiple_of(2) {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            pid: [0, 1, 4_294_967_295][n % 3],
            tid: 40_000 + n as u32,
            service: text(0).into(),
            method: some.then(|| text(1).into()),
            path: some.then(|| text(2).into()),
            host: some.then(|| text(3).into()),
            status: [0, 200, 599, u16::MAX][n % 4],
            peer: some.then(|| inline_str(text(4))),
            trace_id: some.then(|| inline_str("4bf92f3577b34da6a3ce929d0e0e4736")),
            span_id: inline_str("00f067aa0ba902b7"),
            parent_span_id: some.then(|| inline_str("b7ad6b7169203331")),
            start: inline_str("2026-11-22T12:44:04.885411Z"),
            duration_ms: [0.0, 0.098361, 1e-7, 12_345.678, 1e300, f64::NAN][n % 6],
            attribution: some.then_some(
                [
                    Attribution::TraceId,
                    Attribution::Thread,
                    Attribution::SingleActive,
                    Attribution::Ambiguous,
                ][n % 4],
            ),
            cgroup: some.then(|| text(5).into()),
            container_id: some.then(|| text(6).into()),
            k8s: some.then(|| {
                Arc::new(K8sMeta {
                    pod: Arc::new(pod),
                    container: Some(text(1).into()),
                })
            }),
            user_agent: None,
            process: Arc::new(ProcessMeta::default()),
            start_unix_ns: 0,
            end_unix_ns: 0,
        }
    }

    #[test]
    fn span_lines_are_serde_json_s() {
        for n in 0..3 * TEXTS.len() * 4 {
            for some in [false, true] {
                let s = record(n, some);
                let mut ours = b"previous line".to_vec();
                span(&s, &mut ours);
                let theirs = serde_json::to_vec(&Record::Span(s.clone())).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&ours[13..]),
                    String::from_utf8_lossy(&theirs),
                    "{s:?}"
                );
                assert_eq!(&ours[..13], b"previous line");
            }
        }
    }
}
