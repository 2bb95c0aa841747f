//! The records the observer prints, and their two renderings: one JSON object per line
//! (`--output json`, the stable contract documented in the README) and one readable line
//! (`--output pretty`, coloured only on a terminal).

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::k8s::K8sMeta;
use crate::text::{InlineStr, SharedStr, inline_ascii, inline_display};

mod json;

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

/// A complete exchange seen by one process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanRecord {
    pub kind: &'static str,
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
    pub attribution: Option<&'static str>,
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakInbound {
    pub trace_id: Option<TraceIdText>,
    pub span_id: Option<SpanIdText>,
    pub method: Option<SharedStr>,
    pub path: Option<SharedStr>,
}

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
    pub reason: &'static str,
    pub attribution: &'static str,
    pub pid: u32,
    pub tid: u32,
    pub service: SharedStr,
    pub inbound: BreakInbound,
    pub outbound: BreakOutbound,
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

/// Printed once at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SummaryRecord {
    pub inbound: u64,
    pub outbound: u64,
    pub propagated: u64,
    pub breaks: BreakCounts,
    pub unknown: u64,
    pub unattributed: u64,
    pub untraced: u64,
    pub background: u64,
    pub telemetry: u64,
    pub capture: CaptureCounts,
    /// OTLP export losses, when exporting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportCounts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExportCounts {
    /// Failed export attempts (each retried).
    pub failures: u64,
    /// Items dropped because the queue was full while the backend could not take them.
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BreakCounts {
    pub missing: u64,
    pub partial: u64,
    pub mismatch: u64,
}

/// Capture health: the kernel's counters and what user space set aside.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaptureCounts {
    pub records: u64,
    pub decode_errors: u64,
    pub ringbuf_drops: u64,
    pub capped: u64,
    pub iov_cut: u64,
    pub read_faults: u64,
    /// Socket sends and receives of observed processes made by calls the socket hooks do not
    /// read (`sendfile`, `splice`, `sendmmsg`, io_uring): a file body, or traffic this observer
    /// cannot see. Always 0 with the syscall hooks, which do not see those calls at all.
    pub unread_socket_calls: u64,
    pub truncated_heads: u64,
    pub unparsable_heads: u64,
    pub lost_heads: u64,
    /// Connections in the user-space table now, and those it evicted (idle, or over a cap).
    pub connections: u64,
    pub connections_evicted_idle: u64,
    pub connections_evicted_overflow: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Ready {
        pids: Vec<u32>,
        all: bool,
        probes: usize,
        /// Which kernel hooks capture the traffic.
        hooks: crate::capture::loader::Hooks,
        /// The Go programs among the processes observed at start (never attributed by thread).
        go_pids: Vec<u32>,
        version: &'static str,
    },
    Span(SpanRecord),
    Break(BreakRecord),
    Summary(SummaryRecord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Pretty,
    Json,
}

/// Renders one record as one line (without the newline).
pub fn render(record: &Record, format: Format, colour: bool) -> String {
    let mut line = Vec::new();
    render_into(record, format, colour, &mut line);
    String::from_utf8_lossy(&line).into_owned()
}

/// Appends one record's line (without the newline) to `out`: the observer renders every record
/// into one reused buffer.
pub fn render_into(record: &Record, format: Format, colour: bool, out: &mut Vec<u8>) {
    match format {
        Format::Json if let Record::Span(s) = record => json::span(s, out),
        Format::Json => {
            let start = out.len();
            if let Err(e) = serde_json::to_writer(&mut *out, record) {
                // Only a writer's error can fail this (the records hold no maps with non-string
                // keys), and a `Vec` does not fail: still, never half a line.
                out.truncate(start);
                let error = serde_json::Value::String(e.to_string());
                out.extend_from_slice(
                    format!("{{\"type\":\"error\",\"error\":{error}}}").as_bytes(),
                );
            }
        }
        Format::Pretty => out.extend_from_slice(pretty(record, colour).as_bytes()),
    }
}

fn opt<S: std::ops::Deref<Target = str>>(v: &Option<S>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn paint(s: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

fn pretty(record: &Record, colour: bool) -> String {
    match record {
        Record::Ready {
            pids,
            all,
            probes,
            hooks,
            go_pids,
            ..
        } => {
            let what = if *all {
                "all processes".to_owned()
            } else {
                format!("pid {pids:?}")
            };
            let go = if go_pids.is_empty() {
                String::new()
            } else {
                format!("; Go programs {go_pids:?}, attributed without the thread rule")
            };
            format!(
                "{} observing {what} with {probes} probes attached ({hooks} hooks{go})",
                paint("READY", "1;32", colour)
            )
        }
        Record::Span(s) => {
            let mut line = format!(
                "{} {:<6} {}[{}/{}] {} {} -> {} {:.1}ms peer {} trace {} span {}",
                paint("SPAN ", "36", colour),
                s.kind,
                s.service,
                s.pid,
                s.tid,
                opt(&s.method),
                opt(&s.path),
                s.status,
                s.duration_ms,
                opt(&s.peer),
                opt(&s.trace_id),
                s.span_id,
            );
            if let Some(p) = &s.parent_span_id {
                let _ = write!(line, " parent {p}");
            }
            if let Some(a) = s.attribution {
                let _ = write!(line, " ({a})");
            }
            line
        }
        Record::Break(b) => {
            let inbound = match (&b.inbound.trace_id, &b.inbound.method, &b.inbound.path) {
                (Some(t), Some(m), Some(p)) => format!("serving trace {t} ({m} {p})"),
                (Some(t), _, _) => format!("serving trace {t}"),
                _ => "serving a traced request".to_owned(),
            };
            // "GET http://inventory:8080/stock", plus the peer address when it says more.
            let host = b.outbound.host.as_deref();
            let mut dest = format!(
                "{} http://{}{}",
                b.outbound.method,
                host.or(b.outbound.peer.as_deref()).unwrap_or("?"),
                b.outbound.path
            );
            if let Some(peer) = &b.outbound.peer
                && host.is_some_and(|h| h != peer.as_str())
            {
                let _ = write!(dest, " ({peer})");
            }
            let what = match b.reason {
                "missing" => "without the trace headers".to_owned(),
                "mismatch" => format!(
                    "with another trace {}",
                    b.outbound.trace_id.as_deref().unwrap_or("?")
                ),
                _ => format!("without {}", b.missing.join(", ")),
            };
            format!(
                "{} {} (pid {}, tid {}) {inbound} called {dest} {what} [{}, attributed by {}]",
                paint("BREAK", "1;31", colour),
                b.service,
                b.pid,
                b.tid,
                b.reason,
                b.attribution
            )
        }
        Record::Summary(s) => format!(
            "{} inbound {} outbound {} propagated {} breaks: missing {} partial {} mismatch {}; unknown {} unattributed {} untraced {} background {}; records {} dropped {} truncated {} unparsable {}",
            paint("SUMMARY", "1", colour),
            s.inbound,
            s.outbound,
            s.propagated,
            s.breaks.missing,
            s.breaks.partial,
            s.breaks.mismatch,
            s.unknown,
            s.unattributed,
            s.untraced,
            s.background,
            s.capture.records,
            s.capture.ringbuf_drops,
            s.capture.truncated_heads,
            s.capture.unparsable_heads,
        ),
    }
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
}
