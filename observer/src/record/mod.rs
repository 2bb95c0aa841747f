//! The records the observer reports: what [`crate::pipeline`] makes of the correlator's findings,
//! and what [`crate::output`] renders, [`crate::export`] sends over OTLP and [`crate::health`]
//! counts. Their `Serialize` form is the JSON line of `--output json`, a stable contract: field
//! names, their order and the texts of the enums do not change.
//!
//! Texts that every record carries (ids, times, peer addresses) are kept inline
//! ([`InlineStr`]), so that a record costs no allocation for them.

use std::sync::Arc;

use serde::Serialize;

use crate::capture::hooks::Hooks;
use crate::k8s::K8sMeta;
use crate::text::{InlineStr, SharedStr, inline_ascii, inline_display};

mod summary;

pub use self::summary::{
    BreakCounts, CaptureCounts, ExportCounts, Family, Member, MetricKind, Otlp, SUMMARY_COUNTERS,
    SummaryRecord,
};
/// How an outbound request was attributed, and why a break is one: the correlator's verdicts,
/// reported as they are.
pub use crate::correlate::{Attribution, BreakReason};

/// A trace id's text (16 or 32 hex digits), kept inline.
pub type TraceIdText = InlineStr<32>;
/// A span id's text (16 hex digits), kept inline.
pub type SpanIdText = InlineStr<16>;
/// An RFC 3339 timestamp (27 bytes until the year 9999), kept inline.
pub type TimeText = InlineStr<32>;
/// A peer address's text (`SocketAddr`'s `Display`: at most 58 bytes), kept inline.
pub type PeerText = InlineStr<64>;

/// What is known of an observed process, for OTLP resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessMeta {
    pub pid: u32,
    /// `service.name`: `--service-name`, else the Kubernetes rule (see [`crate::k8s::pod`]),
    /// else the process name.
    pub service: String,
    /// The executable's file name (`/proc/PID/exe`).
    pub executable: Option<String>,
    /// The command it was started with (argv[0]).
    pub command: Option<String>,
    /// Its cgroup (see [`crate::cgroup`]).
    pub cgroup: Option<SharedStr>,
    pub container_id: Option<SharedStr>,
    pub pod_uid: Option<String>,
    /// Its pod and container (`--kubernetes`).
    pub k8s: Option<Arc<K8sMeta>>,
    /// The language runtime of its executable (Go programs are attributed without the thread
    /// rule).
    pub runtime: crate::runtime::Runtime,
}

/// Which side of an exchange a span is: the process served it, or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Server,
    Client,
}

impl SpanKind {
    /// Its text in the records (`server`, `client`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Server => "server",
            SpanKind::Client => "client",
        }
    }
}

/// A complete exchange seen by one process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanRecord {
    pub kind: SpanKind,
    pub pid: u32,
    pub tid: u32,
    pub service: SharedStr,
    pub method: Option<SharedStr>,
    pub path: Option<SharedStr>,
    pub host: Option<SharedStr>,
    pub status: u16,
    pub peer: Option<PeerText>,
    pub trace_id: Option<TraceIdText>,
    pub span_id: SpanIdText,
    pub parent_span_id: Option<SpanIdText>,
    /// RFC 3339 with microseconds.
    pub start: TimeText,
    pub duration_ms: f64,
    /// Client spans: how the request was attributed to an inbound one (absent: background).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// The process's cgroup and container (absent when unknown / not in a container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<SharedStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<SharedStr>,
    /// Its pod (`--kubernetes`): `{"namespace","pod","container","workload_kind","workload"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<Arc<K8sMeta>>,
    #[serde(skip)]
    pub user_agent: Option<SharedStr>,
    #[serde(skip)]
    pub process: Arc<ProcessMeta>,
    #[serde(skip)]
    pub start_unix_ns: u64,
    #[serde(skip)]
    pub end_unix_ns: u64,
}

/// The inbound request a break was attributed to (empty when ambiguous among several traces).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakInbound {
    pub trace_id: Option<TraceIdText>,
    pub span_id: Option<SpanIdText>,
    pub method: Option<SharedStr>,
    pub path: Option<SharedStr>,
}

/// The outbound request that lost the trace context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakOutbound {
    pub method: SharedStr,
    pub path: SharedStr,
    pub host: Option<SharedStr>,
    pub peer: Option<PeerText>,
    pub trace_id: Option<TraceIdText>,
}

/// An outbound request that did not carry the trace context of the inbound request it serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakRecord {
    pub reason: BreakReason,
    pub attribution: Attribution,
    pub pid: u32,
    pub tid: u32,
    pub service: SharedStr,
    pub inbound: BreakInbound,
    pub outbound: BreakOutbound,
    /// The names of the trace headers the inbound request carried and the outbound one lacks.
    pub missing: Vec<&'static str>,
    pub time: TimeText,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<SharedStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<SharedStr>,
    /// Its pod (`--kubernetes`): `{"namespace","pod","container","workload_kind","workload"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<Arc<K8sMeta>>,
    #[serde(skip)]
    pub server_span_id: Option<SpanIdText>,
    #[serde(skip)]
    pub process: Arc<ProcessMeta>,
    #[serde(skip)]
    pub time_unix_ns: u64,
}

/// One reported record: one line of output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The probes are attached: printed first.
    Ready {
        pids: Vec<u32>,
        all: bool,
        probes: usize,
        /// Which kernel hooks capture the traffic.
        hooks: Hooks,
        /// The Go programs among the processes observed at start (never attributed by thread).
        go_pids: Vec<u32>,
        version: &'static str,
    },
    Span(SpanRecord),
    Break(BreakRecord),
    /// Printed once at the end.
    Summary(SummaryRecord),
}

/// RFC 3339 UTC with microseconds from Unix nanoseconds (`2023-11-14T22:13:20.123456Z`, the
/// fraction truncated; 27 bytes up to the end of u64 nanoseconds in 2554).
pub fn rfc3339(unix_ns: u64) -> TimeText {
    const DAY_S: u64 = 86_400;
    let (secs, micros) = (unix_ns / 1_000_000_000, unix_ns % 1_000_000_000 / 1_000);
    let (year, month, day) = civil_date(secs / DAY_S);
    let tod = secs % DAY_S;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for d in b[at..at + width].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, tod / 3600);
    put(14, 2, tod / 60 % 60);
    put(17, 2, tod % 60);
    put(20, 6, micros);
    inline_ascii(&b)
}

/// (year, month, day) of the proleptic Gregorian calendar, `days` after 1970-01-01 (the
/// civil-from-days algorithm: eras of 400 years from 0000-03-01).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A peer address as text (`SocketAddr`'s `Display`: at most 64 bytes, an IPv6 address with a
/// scope id).
pub fn peer_text(addr: std::net::SocketAddr) -> PeerText {
    inline_display(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn rfc3339_is_humantime_whole_up_to_the_last_nanosecond() {
        const DAY: u64 = 86_400_000_000_000;
        // Every day boundary (and the nanosecond before) up to 2554, leap years and 2100
        // included, and times of day spread over a day.
        let days = (0..u64::MAX / DAY).flat_map(|d| [d * DAY, (d * DAY).saturating_sub(1)]);
        let times = (0..10_000u64).map(|i| 1_700_000_000_000_000_000 + i * 8_640_000_123_457);
        for ns in days
            .chain(times)
            .chain([0, 1_700_000_000_123_456_789, u64::MAX])
        {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
            assert_eq!(
                rfc3339(ns).as_str(),
                humantime::format_rfc3339_micros(t).to_string()
            );
        }
        assert_eq!(rfc3339(0).as_str(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn peer_text_matches_display() {
        let mut addrs: Vec<SocketAddr> = vec![
            "0.0.0.0:0".parse().unwrap(),
            "255.255.255.255:65535".parse().unwrap(),
            "10.0.0.7:30010".parse().unwrap(),
            "1.22.100.9:8".parse().unwrap(),
            "[::1]:8080".parse().unwrap(),
            "[::ffff:10.0.0.1]:80".parse().unwrap(),
            "[2001:db8:1234:5678:9abc:def0:1234:5678%4294967295]:65535"
                .parse()
                .unwrap(),
            // The longest text: eight full groups and a scope id (58 bytes).
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
                .parse()
                .unwrap(),
        ];
        for (a, b, port) in [
            (0u8, 9u8, 1u16),
            (10, 99, 10),
            (100, 199, 100),
            (200, 255, 9999),
        ] {
            addrs.push(SocketAddr::from(([a, b, b, a], port)));
            addrs.push(SocketAddr::from(([b, a, 0, 1], port * 6)));
        }
        for a in addrs {
            assert_eq!(peer_text(a).as_str(), a.to_string());
        }
    }

    /// The texts of the enums are the contract: the JSON writer of spans and the readable line
    /// use `as_str`, serde the derived names; both must be these.
    #[test]
    fn enum_texts_are_the_serialized_ones() {
        fn json<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).unwrap()
        }
        for (k, text) in [(SpanKind::Server, "server"), (SpanKind::Client, "client")] {
            assert_eq!(k.as_str(), text);
            assert_eq!(json(&k), format!("\"{text}\""));
        }
        for (a, text) in [
            (Attribution::TraceId, "trace_id"),
            (Attribution::Thread, "thread"),
            (Attribution::SingleActive, "single_active"),
            (Attribution::Ambiguous, "ambiguous"),
        ] {
            assert_eq!(a.as_str(), text);
            assert_eq!(json(&a), format!("\"{text}\""));
        }
        for (r, text) in [
            (BreakReason::Missing, "missing"),
            (BreakReason::Partial, "partial"),
            (BreakReason::Mismatch, "mismatch"),
        ] {
            assert_eq!(r.as_str(), text);
            assert_eq!(json(&r), format!("\"{text}\""));
        }
    }
}
