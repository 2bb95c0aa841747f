//! The transform between capture and output: decoded events -> connection tracker -> correlator ->
//! records ([`crate::record`]). No I/O of its own: process names and fd facts come through
//! [`ProcView`], kernel drop counters through [`Pipeline::on_drop_check`], and clock conversion
//! from a fixed offset.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::capture::hooks::KernelCounters;
use crate::capture::record::Event;
use crate::correlate::{Break, BreakReason, Config, Correlator, Finding, IdSource, Span};
use crate::http::head::ParseOptions;
use crate::http::table::Limits;
use crate::http::tracker::{HttpEvent, Role, SocketLookup, Tracker, TrackerStats};
use crate::record::{
    BreakCounts, BreakInbound, BreakOutbound, BreakRecord, CaptureCounts, PeerText, ProcessMeta,
    Record, SpanKind, SpanRecord, SummaryRecord, peer_text, rfc3339,
};
use crate::text::SharedStr;
use crate::tracectx::SpanId;

/// What the pipeline asks the operating system.
pub trait ProcView: SocketLookup {
    /// The name a process is reported under.
    fn service_name(&mut self, pid: u32) -> String;

    /// What is known of the process for OTLP resources; by default only its name.
    fn process(&mut self, pid: u32) -> ProcessMeta {
        ProcessMeta {
            pid,
            service: self.service_name(pid),
            ..ProcessMeta::default()
        }
    }

    /// `meta` with what may have changed since it was resolved (the pod of a process seen before
    /// its pod was known); `None` when nothing did. By default nothing does.
    fn refresh(&mut self, meta: &ProcessMeta) -> Option<ProcessMeta> {
        let _ = meta;
        None
    }
}

/// Which processes to leave out (node-wide mode): by process name, cgroup path prefix or
/// container id prefix.
#[derive(Debug, Clone, Default)]
pub struct ProcessFilter {
    pub exclude_comm: Vec<String>,
    /// Only processes whose cgroup path starts with this.
    pub cgroup: Option<String>,
    /// Only processes of containers whose id starts with this.
    pub container: Option<String>,
}

impl ProcessFilter {
    pub fn admits(&self, m: &ProcessMeta, comm: &str) -> bool {
        if self.exclude_comm.iter().any(|c| c == comm) {
            return false;
        }
        if let Some(prefix) = &self.cgroup
            && !m
                .cgroup
                .as_deref()
                .is_some_and(|c| c.starts_with(prefix.as_str()))
        {
            return false;
        }
        if let Some(prefix) = &self.container
            && !m
                .container_id
                .as_deref()
                .is_some_and(|c| c.starts_with(prefix.as_str()))
        {
            return false;
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.exclude_comm.is_empty() && self.cgroup.is_none() && self.container.is_none()
    }
}

/// A process's metadata, and its service name ready to share with its records.
struct Known {
    meta: Arc<ProcessMeta>,
    service: SharedStr,
}

impl Known {
    fn new(meta: Arc<ProcessMeta>) -> Self {
        Known {
            service: SharedStr::from(meta.service.as_str()),
            meta,
        }
    }
}

pub struct Pipeline {
    tracker: Tracker,
    correlator: Correlator,
    names: HashMap<u32, Known>,
    /// `--service-name`: replaces every process name as `service`.
    service_override: Option<String>,
    filter: ProcessFilter,
    /// Processes the filter left out (their records are skipped).
    excluded: HashSet<u32>,
    /// Newly left out, for the kernel to stop sending their records.
    newly_excluded: Vec<u32>,
    /// Left out before, but they exec'd: the kernel should send their records again.
    newly_included: Vec<u32>,
    /// Breaks waiting for a drop check taken after them.
    held: Vec<BreakRecord>,
    held_reasons: Vec<BreakReason>,
    drops_seen: u64,
    kernel: KernelCounters,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, in ns.
    wall_offset_ns: i128,
    records: u64,
    decode_errors: u64,
    scratch: Vec<HttpEvent>,
    findings: Vec<Finding>,
    peers: PeerTexts,
}

/// Peer addresses as text, kept for the next record with the same peer (a service talks to few
/// peers, over and over); starts over when full, so its memory is bounded.
#[derive(Default)]
struct PeerTexts(HashMap<SocketAddr, PeerText>);

/// Peer texts kept at most (each 72 bytes with its key).
const PEER_TEXTS: usize = 512;

impl PeerTexts {
    fn text(&mut self, addr: SocketAddr) -> PeerText {
        if let Some(&t) = self.0.get(&addr) {
            return t;
        }
        if self.0.len() >= PEER_TEXTS {
            self.0.clear();
        }
        let t = peer_text(addr);
        self.0.insert(addr, t);
        t
    }
}

impl Pipeline {
    pub fn new(
        parse: ParseOptions,
        limits: Limits,
        cfg: Config,
        ids: Box<dyn IdSource + Send>,
        wall_offset_ns: i128,
    ) -> Self {
        Pipeline {
            tracker: Tracker::with_limits(parse, limits),
            correlator: Correlator::new(cfg, ids),
            names: HashMap::new(),
            service_override: None,
            filter: ProcessFilter::default(),
            excluded: HashSet::new(),
            newly_excluded: Vec::new(),
            newly_included: Vec::new(),
            held: Vec::new(),
            held_reasons: Vec::new(),
            drops_seen: 0,
            kernel: KernelCounters::default(),
            wall_offset_ns,
            records: 0,
            decode_errors: 0,
            scratch: Vec::new(),
            findings: Vec::new(),
            peers: PeerTexts::default(),
        }
    }

    pub fn tracker_stats(&self) -> TrackerStats {
        self.tracker.stats()
    }

    /// Processes whose metadata is cached (seen with traffic, not yet exited).
    pub fn processes(&self) -> usize {
        self.names.len()
    }

    /// Of those, the Go programs (attributed without the thread rule).
    pub fn go_processes(&self) -> usize {
        self.names
            .values()
            .filter(|k| k.meta.runtime.is_go())
            .count()
    }

    pub fn connections(&self) -> usize {
        self.tracker.connections()
    }

    pub fn count_decode_error(&mut self) {
        self.decode_errors += 1;
    }

    fn wall(&self, mono_ns: u64) -> u64 {
        (i128::from(mono_ns) + self.wall_offset_ns).clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Reports every process under this service name (`--service-name`).
    pub fn set_service_name(&mut self, name: Option<String>) {
        self.service_override = name;
    }

    pub fn set_filter(&mut self, filter: ProcessFilter) {
        self.filter = filter;
    }

    /// Processes left out since the last call (to add to the kernel's exclusion map), and those to
    /// take out of it again (they exec'd).
    pub fn take_excluded(&mut self) -> (Vec<u32>, Vec<u32>) {
        (
            std::mem::take(&mut self.newly_excluded),
            std::mem::take(&mut self.newly_included),
        )
    }

    /// `--service-name` wins over what the process's metadata says.
    fn overridden(service: &Option<String>, mut m: ProcessMeta) -> Known {
        if let Some(s) = service {
            m.service = s.clone();
        }
        Known::new(Arc::new(m))
    }

    fn known(&mut self, pid: u32, os: &mut dyn ProcView) -> &Known {
        let service = &self.service_override;
        self.names
            .entry(pid)
            .or_insert_with(|| Self::overridden(service, os.process(pid)))
    }

    fn meta(&mut self, pid: u32, os: &mut dyn ProcView) -> Arc<ProcessMeta> {
        Arc::clone(&self.known(pid, os).meta)
    }

    /// Re-resolves the metadata of the processes seen so far (call it when what it depends on
    /// changed, e.g. the Kubernetes pod index). Records made from now on carry the new metadata;
    /// the filter's decisions stand.
    pub fn refresh_metadata(&mut self, os: &mut dyn ProcView) {
        let service = &self.service_override;
        for m in self.names.values_mut() {
            if let Some(new) = os.refresh(&m.meta) {
                *m = Self::overridden(service, new);
            }
        }
    }

    /// Feeds one decoded event; spans are appended to `out` at once, breaks are held until the
    /// next drop check.
    pub fn on_event(&mut self, ev: &Event, os: &mut dyn ProcView, out: &mut Vec<Record>) {
        self.records += 1;
        if let Event::Data(d) = ev {
            // Never the bytes themselves: they hold cookies, tokens and query strings.
            tracing::trace!(
                pid = d.origin.pid, tid = d.origin.tid, fd = d.fd, dir = ?d.direction, sys = ?d.syscall,
                head_start = d.head_start, total = d.total_len, copied = d.data.len(), lost = d.lost_before,
                capped = d.capped, "data record"
            );
        } else {
            tracing::trace!(event = ?ev, "record");
        }
        let origin = ev.origin();
        if let Event::Exec { .. } = ev {
            // A new program: its name, metadata and the filter's verdict are decided afresh.
            self.names.remove(&origin.pid);
            if self.excluded.remove(&origin.pid) {
                self.newly_included.push(origin.pid);
            }
            return;
        }
        if self.excluded.contains(&origin.pid) {
            if let Event::Exit { .. } = ev {
                self.excluded.remove(&origin.pid);
            }
            return;
        }
        // Resolve the name while the process is certainly alive, and apply the filter once.
        let first_sight = !self.names.contains_key(&origin.pid);
        let meta = self.meta(origin.pid, os);
        if first_sight
            && !self.filter.is_empty()
            && !self.filter.admits(&meta, &os.service_name(origin.pid))
        {
            self.excluded.insert(origin.pid);
            self.newly_excluded.push(origin.pid);
            self.names.remove(&origin.pid);
            return;
        }
        if first_sight {
            let shared = !meta.runtime.threads_are_request_context();
            if shared {
                tracing::info!(
                    pid = origin.pid, service = %meta.service, version = meta.runtime.version(),
                    "a Go program: outbound calls are never attributed by thread"
                );
            }
            self.correlator.set_threads_shared(origin.pid, shared);
        }
        match ev {
            Event::Fork { origin, child_tid } => {
                self.correlator.on_fork(origin.pid, origin.tid, *child_tid)
            }
            Event::ThreadExit { origin } => self.correlator.on_thread_exit(origin.pid, origin.tid),
            _ => {}
        }
        let mut http = std::mem::take(&mut self.scratch);
        self.tracker.on_event(ev, os, &mut http);
        self.on_http(http, os, out);
        if let Event::Exit { origin } = ev {
            self.correlator.on_exit(origin.pid);
            self.names.remove(&origin.pid);
        }
    }

    /// Forgets connections idle since `now_ns - idle` (kernel monotonic time; see
    /// [`crate::http::table::Limits`]).
    pub fn on_idle_check(&mut self, now_ns: u64, os: &mut dyn ProcView, out: &mut Vec<Record>) {
        let mut http = std::mem::take(&mut self.scratch);
        self.tracker.evict_idle(now_ns, &mut http);
        self.on_http(http, os, out);
    }

    /// Correlates what the tracker produced; `http` is drained and kept as scratch.
    fn on_http(&mut self, mut http: Vec<HttpEvent>, os: &mut dyn ProcView, out: &mut Vec<Record>) {
        let mut findings = std::mem::take(&mut self.findings);
        for h in http.drain(..) {
            if let HttpEvent::Unknown(u) = &h {
                tracing::debug!(unknown = ?u, "head not readable");
            }
            self.correlator.on_http(&h, &mut findings);
        }
        self.scratch = http;
        for f in findings.drain(..) {
            match f {
                Finding::Span(s) => {
                    let r = self.span_record(&s, os);
                    out.push(Record::Span(r));
                }
                Finding::Break(b) => {
                    let r = self.break_record(&b, os);
                    self.held.push(r);
                    self.held_reasons.push(b.reason);
                }
            }
        }
        self.findings = findings;
    }

    /// Called with the kernel counters read after the events so far were fed. Held breaks are
    /// released when no record was dropped since the previous check; otherwise they may stem
    /// from missing records and are counted as unknown instead.
    pub fn on_drop_check(&mut self, kernel: KernelCounters, out: &mut Vec<Record>) {
        let dropped = kernel.ringbuf_drops > self.drops_seen;
        self.drops_seen = kernel.ringbuf_drops;
        self.kernel = kernel;
        let held = std::mem::take(&mut self.held);
        let reasons = std::mem::take(&mut self.held_reasons);
        if dropped {
            for reason in reasons {
                self.correlator.count_unknown_instead_of_break(reason);
            }
        } else {
            out.extend(held.into_iter().map(Record::Break));
        }
    }

    pub fn summary(&self) -> SummaryRecord {
        let c = self.correlator.stats();
        let t = self.tracker.stats();
        let e = self.tracker.evictions();
        SummaryRecord {
            inbound: c.inbound,
            outbound: c.outbound,
            propagated: c.propagated,
            breaks: BreakCounts {
                missing: c.breaks_missing,
                partial: c.breaks_partial,
                mismatch: c.breaks_mismatch,
            },
            unknown: c.unknown,
            unattributed: c.unattributed,
            untraced: c.untraced,
            background: c.background,
            telemetry: c.telemetry,
            capture: CaptureCounts {
                records: self.records,
                decode_errors: self.decode_errors,
                ringbuf_drops: self.kernel.ringbuf_drops,
                capped: self.kernel.capped,
                iov_cut: self.kernel.iov_cut,
                read_faults: self.kernel.read_faults,
                unread_socket_calls: self.kernel.unread_socket_calls,
                truncated_heads: t.unknown_truncated,
                unparsable_heads: t.unknown_unparsable,
                lost_heads: t.unknown_lost,
                connections: self.tracker.connections() as u64,
                connections_evicted_idle: e.evicted_idle,
                connections_evicted_overflow: e.evicted_overflow,
            },
            export: None,
        }
    }

    fn span_record(&mut self, s: &Span, os: &mut dyn ProcView) -> SpanRecord {
        let x = &s.exchange;
        let r = &x.request;
        let head = r.head.as_deref();
        let known = self.known(r.conn.pid, os);
        let (process, service) = (Arc::clone(&known.meta), known.service.clone());
        let start = self.wall(r.origin.ts_ns);
        let end = self.wall(x.end.ts_ns.max(r.origin.ts_ns));
        SpanRecord {
            kind: match r.role {
                Role::Server => SpanKind::Server,
                Role::Client => SpanKind::Client,
            },
            pid: r.conn.pid,
            tid: r.origin.tid,
            service,
            method: head.map(|h| h.method.clone()),
            path: head.map(|h| h.path.clone()),
            host: head.and_then(|h| h.host.clone()),
            status: x.response.status,
            peer: r.peer.map(|a| self.peers.text(a)),
            trace_id: s.trace_id.as_ref().map(|t| t.wire()),
            span_id: s.span_id.text(),
            parent_span_id: s.parent_span_id.map(SpanId::text),
            start: rfc3339(start),
            duration_ms: (end - start) as f64 / 1e6,
            attribution: s.attribution,
            user_agent: head.and_then(|h| h.user_agent.clone()),
            cgroup: process.cgroup.clone(),
            container_id: process.container_id.clone(),
            k8s: process.k8s.clone(),
            process: Arc::clone(&process),
            start_unix_ns: start,
            end_unix_ns: end,
        }
    }

    fn break_record(&mut self, b: &Break, os: &mut dyn ProcView) -> BreakRecord {
        let o = &b.outbound;
        let head = o.head.as_deref();
        let known = self.known(o.conn.pid, os);
        let (process, service) = (Arc::clone(&known.meta), known.service.clone());
        let time = self.wall(o.origin.ts_ns);
        BreakRecord {
            reason: b.reason,
            attribution: b.attribution,
            pid: o.conn.pid,
            tid: o.origin.tid,
            service,
            inbound: BreakInbound {
                trace_id: b.inbound.trace_id.as_ref().map(|t| t.wire()),
                span_id: b.inbound.span_id.map(SpanId::text),
                method: b.inbound.method.clone(),
                path: b.inbound.path.clone(),
            },
            outbound: BreakOutbound {
                method: head.map(|h| h.method.clone()).unwrap_or_default(),
                path: head.map(|h| h.path.clone()).unwrap_or_default(),
                host: head.and_then(|h| h.host.clone()),
                peer: o.peer.map(|a| self.peers.text(a)),
                trace_id: head
                    .and_then(|h| h.trace.primary())
                    .map(|c| c.trace_id.wire()),
            },
            missing: b.missing.iter().map(|h| h.name()).collect(),
            time: rfc3339(time),
            server_span_id: b.server_span_id.map(SpanId::text),
            cgroup: process.cgroup.clone(),
            container_id: process.container_id.clone(),
            k8s: process.k8s.clone(),
            process: Arc::clone(&process),
            time_unix_ns: time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_texts_are_the_address_text_and_bounded() {
        let mut peers = PeerTexts::default();
        for round in 0..2 {
            for n in 0..(PEER_TEXTS as u16 + 100) {
                let a = SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 8080 + round));
                assert_eq!(peers.text(a).as_str(), a.to_string());
                assert!(peers.0.len() <= PEER_TEXTS);
            }
        }
        let v6: SocketAddr = "[fe80::1%7]:443".parse().unwrap();
        assert_eq!(peers.text(v6).as_str(), v6.to_string());
        assert_eq!(peers.text(v6).as_str(), v6.to_string());
    }
}
