//! The summary record, and the one table of its counters ([`SUMMARY_COUNTERS`]) that both
//! `/metrics` ([`crate::health`]) and the OTLP metrics ([`crate::export`]) walk.

use serde::Serialize;

/// What became of the requests seen so far, and how whole the capture was: printed once at the
/// end, published on every tick.
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

/// Whether a metric only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// Where a counter goes in the OTLP metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Otlp {
    /// Nowhere: only `/metrics` has it.
    No,
    /// A point of `observer.capture`, its `observer.counter` attribute this name.
    Capture(&'static str),
    /// `observer.events`.
    Events,
}

/// One family of `/metrics`: summary counters told apart by one label.
#[derive(Debug)]
pub struct Family {
    /// The metric's name (a counter's samples take `_total` after it).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// The label whose values tell the members apart; `None`: one member, without labels.
    pub label: Option<&'static str>,
    pub members: &'static [Member],
}

/// One counter of the summary.
#[derive(Debug)]
pub struct Member {
    /// Its value of the family's label (unused without one).
    pub label: &'static str,
    pub otlp: Otlp,
    pub value: fn(&SummaryRecord) -> u64,
}

const fn member(label: &'static str, otlp: Otlp, value: fn(&SummaryRecord) -> u64) -> Member {
    Member { label, otlp, value }
}

const fn counter(
    name: &'static str,
    help: &'static str,
    label: Option<&'static str>,
    members: &'static [Member],
) -> Family {
    Family {
        name,
        help,
        kind: MetricKind::Counter,
        label,
        members,
    }
}

/// Every counter of the summary that is a metric, in the order of `/metrics`.
pub const SUMMARY_COUNTERS: &[Family] = &[
    counter(
        "observer_requests",
        "HTTP requests seen, by direction",
        Some("direction"),
        &[
            member("inbound", Otlp::No, |s| s.inbound),
            member("outbound", Otlp::No, |s| s.outbound),
        ],
    ),
    counter(
        "observer_outbound",
        "Outbound requests by verdict",
        Some("verdict"),
        &[
            member("propagated", Otlp::No, |s| s.propagated),
            member("unknown", Otlp::Capture("unknown"), |s| s.unknown),
            member("unattributed", Otlp::Capture("unattributed"), |s| {
                s.unattributed
            }),
            member("untraced", Otlp::No, |s| s.untraced),
            member("background", Otlp::No, |s| s.background),
            member("telemetry", Otlp::No, |s| s.telemetry),
        ],
    ),
    counter(
        "observer_propagation_breaks",
        "Propagation breaks reported, by reason",
        Some("reason"),
        &[
            member("missing", Otlp::No, |s| s.breaks.missing),
            member("partial", Otlp::No, |s| s.breaks.partial),
            member("mismatch", Otlp::No, |s| s.breaks.mismatch),
        ],
    ),
    counter(
        "observer_records",
        "Ring-buffer records decoded",
        None,
        &[member("", Otlp::Events, |s| s.capture.records)],
    ),
    counter(
        "observer_capture_losses",
        "What the capture could not see whole, by kind",
        Some("kind"),
        &[
            member("ringbuf_drops", Otlp::Capture("ringbuf_drops"), |s| {
                s.capture.ringbuf_drops
            }),
            member("decode_errors", Otlp::Capture("decode_errors"), |s| {
                s.capture.decode_errors
            }),
            member("capped", Otlp::Capture("capped"), |s| s.capture.capped),
            member("iov_cut", Otlp::Capture("iov_cut"), |s| s.capture.iov_cut),
            member("read_faults", Otlp::No, |s| s.capture.read_faults),
            member("truncated_heads", Otlp::Capture("truncated_heads"), |s| {
                s.capture.truncated_heads
            }),
            member("unparsable_heads", Otlp::Capture("unparsable_heads"), |s| {
                s.capture.unparsable_heads
            }),
            member("lost_heads", Otlp::Capture("lost_heads"), |s| {
                s.capture.lost_heads
            }),
        ],
    ),
    counter(
        "observer_unread_socket_calls",
        "Socket sends and receives of observed processes by calls the socket hooks do not read (sendfile, splice, sendmmsg, io_uring)",
        None,
        &[member("", Otlp::No, |s| s.capture.unread_socket_calls)],
    ),
    Family {
        name: "observer_connections",
        help: "Connections in the user-space table",
        kind: MetricKind::Gauge,
        label: None,
        members: &[member("", Otlp::No, |s| s.capture.connections)],
    },
    counter(
        "observer_connections_evicted",
        "Connections evicted from the table, by cause",
        Some("cause"),
        &[
            member("idle", Otlp::Capture("connections_evicted_idle"), |s| {
                s.capture.connections_evicted_idle
            }),
            member(
                "overflow",
                Otlp::Capture("connections_evicted_overflow"),
                |s| s.capture.connections_evicted_overflow,
            ),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_well_formed() {
        let mut names = std::collections::BTreeSet::new();
        let mut otlp = Vec::new();
        for f in SUMMARY_COUNTERS {
            assert!(names.insert(f.name), "{} twice", f.name);
            match f.label {
                None => assert_eq!(f.members.len(), 1, "{}", f.name),
                Some(_) => {
                    let labels: std::collections::BTreeSet<_> =
                        f.members.iter().map(|m| m.label).collect();
                    assert_eq!(labels.len(), f.members.len(), "{}", f.name);
                }
            }
            for m in f.members {
                if m.otlp != Otlp::No {
                    assert!(!otlp.contains(&m.otlp), "{:?} twice", m.otlp);
                    otlp.push(m.otlp);
                }
            }
        }
    }

    /// Each member reads its own field: a summary whose fields are all different gives every
    /// member a different value.
    #[test]
    fn each_member_reads_its_own_counter() {
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        let s = SummaryRecord {
            inbound: next(),
            outbound: next(),
            propagated: next(),
            breaks: BreakCounts {
                missing: next(),
                partial: next(),
                mismatch: next(),
            },
            unknown: next(),
            unattributed: next(),
            untraced: next(),
            background: next(),
            telemetry: next(),
            capture: CaptureCounts {
                records: next(),
                decode_errors: next(),
                ringbuf_drops: next(),
                capped: next(),
                iov_cut: next(),
                read_faults: next(),
                unread_socket_calls: next(),
                truncated_heads: next(),
                unparsable_heads: next(),
                lost_heads: next(),
                connections: next(),
                connections_evicted_idle: next(),
                connections_evicted_overflow: next(),
            },
            export: None,
        };
        let values: Vec<u64> = SUMMARY_COUNTERS
            .iter()
            .flat_map(|f| f.members)
            .map(|m| (m.value)(&s))
            .collect();
        let distinct: std::collections::BTreeSet<_> = values.iter().collect();
        assert_eq!(distinct.len(), values.len(), "{values:?}");
        // Every counter of the summary is a metric.
        assert_eq!(values.len() as u64, next() - 1);
    }
}
