//! Helpers shared by the unit tests.

use std::sync::Arc;
use std::time::Duration;

use crate::record::{ProcessMeta, SpanKind, SpanRecord};
use crate::text::inline_str;

/// Waits (polling) until `f` holds; fails the test after `secs` seconds.
pub async fn eventually(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server span of `orders` (pid 42) whose span id is 0x1000 + `n`.
pub fn server_span(n: u64) -> SpanRecord {
    SpanRecord {
        kind: SpanKind::Server,
        pid: 42,
        tid: 43,
        service: "orders".into(),
        method: Some("GET".into()),
        path: Some("/x".into()),
        host: None,
        status: 200,
        peer: Some(inline_str("127.0.0.1:5000")),
        trace_id: Some(inline_str("4bf92f3577b34da6a3ce929d0e0e4736")),
        span_id: inline_str(&format!("{:016x}", 0x1000 + n)),
        parent_span_id: None,
        start: Default::default(),
        duration_ms: 1.0,
        attribution: None,
        user_agent: None,
        cgroup: None,
        container_id: None,
        k8s: None,
        process: Arc::new(ProcessMeta {
            pid: 42,
            service: "orders".into(),
            ..ProcessMeta::default()
        }),
        start_unix_ns: 1,
        end_unix_ns: 2,
    }
}
