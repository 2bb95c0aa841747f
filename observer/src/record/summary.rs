//! The summary record: what became of the requests, and how whole the capture was.

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
