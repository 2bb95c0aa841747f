//! Per-connection reassembly of HTTP/1.x heads and pairing of requests with responses.
//!
//! Pure: decoded [`Event`]s go in, [`HttpEvent`]s come out. The one question that needs the
//! operating system, "what is this fd?", for connections that existed before the observer
//! attached, is asked through the [`SocketLookup`] trait (a `/proc` reader in production, a
//! table in tests).
//!
//! * A connection is (pid, fd) plus a serial number that changes on every connect, accept and
//!   close, so a reused fd never mixes two connections.
//! * Each direction reassembles one head at a time from the kernel's records: a record flagged
//!   `head_start` begins a head (unless the head in progress is still a valid prefix: with one
//!   byte per write most letters look like a head start), other records continue it. Bytes after
//!   a complete head are a body (skipped when its length is known) or the next pipelined head.
//! * The role comes from `connect` (client) or `accept` (server), else from the first request:
//!   read means server, written means client.
//! * Requests queue per connection; each final response pops the oldest (pipelining), 1xx
//!   responses pop nothing, 101 ends HTTP on that connection.
//! * Anything that cannot be read whole (lost records, a head cut at the budget, a head that does
//!   not parse) is reported as [`Unknown`], never guessed. An unreadable request on the server side
//!   still takes its place in the queue (with no head), so that the inbound request it stands for
//!   is known to be in flight until its response.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::head::{
    self, Body, Head, HeadError, ParseOptions, Parsed, RequestHead, ResponseHead, TextCache,
};
use super::table::{ConnTable, EvictionStats, LastUse, Limits};
use crate::capture::record::{Connection, Data, Direction, Event, Origin};

/// Requests waiting for their responses on one connection; older ones are given up beyond it.
pub const MAX_PENDING: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub pid: u32,
    pub fd: i32,
    /// Unique per observer run: changes on connect, accept and close.
    pub serial: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Server,
}

/// What the operating system says about an fd first seen carrying data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    Socket {
        peer: Option<SocketAddr>,
    },
    NotSocket,
    /// It could not be told (the fd or process is gone): treated as a socket without a peer.
    Unknown,
}

pub trait SocketLookup {
    fn lookup(&mut self, pid: u32, fd: i32) -> FdKind;
}

/// A request head seen on a connection (inbound on the server side, outbound on the client side).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub conn: ConnId,
    pub role: Role,
    /// The thread that read (server) or wrote (client) its first bytes, and when.
    pub origin: Origin,
    pub peer: Option<SocketAddr>,
    /// `None` when the head could not be read (see the `Unknown` event emitted with it).
    pub head: Option<Arc<RequestHead>>,
    /// Unique per observer run.
    pub seq: u64,
}

/// A request and its final response.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub request: Request,
    pub response: ResponseHead,
    /// The thread that wrote (server) or read (client) the response, and when.
    pub end: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownReason {
    /// The kernel lost records of this connection (ring buffer full).
    Lost,
    /// The head was longer than the capture budget or the kernel could not copy all of it.
    Truncated,
    /// The bytes did not parse as an HTTP/1.x head.
    Unparsable,
    /// The connection closed in the middle of a head.
    ClosedMidHead,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unknown {
    pub conn: ConnId,
    pub role: Option<Role>,
    pub direction: Direction,
    pub origin: Origin,
    pub reason: UnknownReason,
}

/// Why a request will get no exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    Closed,
    Lost,
    Overflow,
    ProcessExit,
    /// The connection table evicted the connection (idle, or over its caps).
    Evicted,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpEvent {
    Request(Request),
    Exchange(Exchange),
    Unknown(Unknown),
    /// A pending request that will never be paired.
    Abandoned {
        request: Request,
        why: Abandon,
        at: Origin,
    },
}

/// Counters of what the tracker saw and set aside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackerStats {
    pub requests: u64,
    pub exchanges: u64,
    pub unknown_lost: u64,
    pub unknown_truncated: u64,
    pub unknown_unparsable: u64,
    pub unknown_closed_mid_head: u64,
    pub unpaired_responses: u64,
    pub abandoned: u64,
    pub not_socket_records: u64,
    pub body_records: u64,
}

#[derive(Debug, Default)]
struct DirAsm {
    buf: BytesMut,
    /// First record of the head in progress.
    first: Option<Origin>,
    /// The head in progress misses bytes (capped, iovec cut, read fault).
    damaged: bool,
    /// Body bytes still to skip within records (known lengths only).
    skip: u64,
    /// What the kernel has left of its head budget after the last record (as `try_data_exit`
    /// computes it): while it is not 0 the kernel forwards every syscall, body ones included.
    kernel_budget: u32,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    /// When the connection last had a record (kernel monotonic ns), for eviction.
    last_ns: u64,
    role: Option<Role>,
    peer: Option<SocketAddr>,
    not_socket: bool,
    upgraded: bool,
    ingress: DirAsm,
    egress: DirAsm,
    pending: VecDeque<Request>,
}

impl LastUse for Conn {
    fn last_ns(&self) -> u64 {
        self.last_ns
    }
}

impl DirAsm {
    /// Empties the buffer between heads, giving a large one back: an idle keep-alive connection
    /// keeps at most [`KEEP_CAPACITY`] bytes.
    fn release(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
    }
}

/// Buffer capacity a connection keeps between heads.
const KEEP_CAPACITY: usize = 2048;

impl Conn {
    fn new(id: ConnId, role: Option<Role>, peer: Option<SocketAddr>, now_ns: u64) -> Self {
        Conn {
            id,
            last_ns: now_ns,
            role,
            peer,
            not_socket: false,
            upgraded: false,
            ingress: DirAsm::default(),
            egress: DirAsm::default(),
            pending: VecDeque::new(),
        }
    }
}

/// Reassembly and pairing over the connection table of all observed processes.
#[derive(Debug, Default)]
pub struct Tracker {
    conns: ConnTable<Conn>,
    /// The rest: what works on one connection borrows it (in place in the table) and this.
    core: Core,
}

#[derive(Debug, Default)]
struct Core {
    next_serial: u64,
    next_seq: u64,
    opts: ParseOptions,
    /// Host and User-Agent texts shared between heads.
    texts: TextCache,
    stats: TrackerStats,
}

impl Tracker {
    pub fn new(opts: ParseOptions) -> Self {
        Self::with_limits(opts, Limits::default())
    }

    pub fn with_limits(opts: ParseOptions, limits: Limits) -> Self {
        Tracker {
            conns: ConnTable::new(limits),
            core: Core {
                opts,
                ..Core::default()
            },
        }
    }

    pub fn stats(&self) -> TrackerStats {
        self.core.stats
    }

    pub fn evictions(&self) -> EvictionStats {
        self.conns.stats()
    }

    /// Forgets connections with no record since `now_ns - idle` (kernel monotonic time); their
    /// unanswered requests are reported as abandoned.
    pub fn evict_idle(&mut self, now_ns: u64, out: &mut Vec<HttpEvent>) {
        let mut evicted = Vec::new();
        self.conns.evict_idle(now_ns, &mut evicted);
        self.finish_evicted(evicted, now_ns, out);
    }

    fn finish_evicted(&mut self, evicted: Vec<Conn>, now_ns: u64, out: &mut Vec<HttpEvent>) {
        for conn in evicted {
            let at = Origin {
                pid: conn.id.pid,
                tid: 0,
                ts_ns: now_ns,
            };
            self.core.finish(conn, at, Abandon::Evicted, out);
        }
    }

    fn insert(&mut self, conn: Conn, out: &mut Vec<HttpEvent>) {
        let mut evicted = Vec::new();
        let (pid, fd, now) = (conn.id.pid, conn.id.fd, conn.last_ns);
        self.conns.insert(pid, fd, conn, &mut evicted);
        self.finish_evicted(evicted, now, out);
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Feeds one event; what it completes is appended to `out`.
    pub fn on_event(&mut self, ev: &Event, os: &mut dyn SocketLookup, out: &mut Vec<HttpEvent>) {
        match ev {
            Event::Data(d) => self.on_data(d, os, out),
            Event::Connect(c) => self.open(c, Role::Client, out),
            Event::Accept(c) => self.open(c, Role::Server, out),
            Event::Close { origin, fd } => {
                if let Some(conn) = self.conns.remove(origin.pid, *fd) {
                    self.core.finish(conn, *origin, Abandon::Closed, out);
                }
            }
            Event::Exit { origin } => {
                for conn in self.conns.remove_process(origin.pid) {
                    self.core.finish(conn, *origin, Abandon::ProcessExit, out);
                }
            }
            Event::Fork { .. } | Event::ThreadExit { .. } | Event::Exec { .. } => {}
        }
    }

    fn open(&mut self, c: &Connection, role: Role, out: &mut Vec<HttpEvent>) {
        if let Some(old) = self.conns.remove(c.origin.pid, c.fd) {
            self.core.finish(old, c.origin, Abandon::Closed, out);
        }
        let id = ConnId {
            pid: c.origin.pid,
            fd: c.fd,
            serial: self.core.serial(),
        };
        self.insert(Conn::new(id, Some(role), c.peer, c.origin.ts_ns), out);
    }

    fn on_data(&mut self, d: &Data, os: &mut dyn SocketLookup, out: &mut Vec<HttpEvent>) {
        let (pid, fd) = (d.origin.pid, d.fd);
        if let Some(conn) = self.conns.get_mut(pid, fd) {
            self.core.on_data(conn, d, out);
            return;
        }
        // First sight of this fd: a socket that existed before we attached, or not a socket.
        let id = ConnId {
            pid,
            fd,
            serial: self.core.serial(),
        };
        let mut conn = Conn::new(id, None, None, d.origin.ts_ns);
        match os.lookup(pid, fd) {
            FdKind::Socket { peer } => conn.peer = peer,
            FdKind::NotSocket => conn.not_socket = true,
            FdKind::Unknown => {}
        }
        self.core.on_data(&mut conn, d, out);
        self.insert(conn, out);
    }
}

impl Core {
    fn serial(&mut self) -> u64 {
        self.next_serial += 1;
        self.next_serial
    }

    /// Ends a connection: its partial heads and unanswered requests are reported.
    fn finish(&mut self, mut conn: Conn, at: Origin, why: Abandon, out: &mut Vec<HttpEvent>) {
        for dir in [Direction::Ingress, Direction::Egress] {
            let asm = match dir {
                Direction::Ingress => &mut conn.ingress,
                Direction::Egress => &mut conn.egress,
            };
            if let Some(first) = asm.first.take()
                && !asm.buf.is_empty()
            {
                asm.buf.clear();
                let role = conn.role;
                self.unknown(conn.id, role, dir, first, UnknownReason::ClosedMidHead, out);
            }
        }
        for request in conn.pending.drain(..) {
            self.stats.abandoned += 1;
            out.push(HttpEvent::Abandoned { request, why, at });
        }
    }

    fn unknown(
        &mut self,
        conn: ConnId,
        role: Option<Role>,
        direction: Direction,
        origin: Origin,
        reason: UnknownReason,
        out: &mut Vec<HttpEvent>,
    ) {
        match reason {
            UnknownReason::Lost => self.stats.unknown_lost += 1,
            UnknownReason::Truncated => self.stats.unknown_truncated += 1,
            UnknownReason::Unparsable => self.stats.unknown_unparsable += 1,
            UnknownReason::ClosedMidHead => self.stats.unknown_closed_mid_head += 1,
        }
        out.push(HttpEvent::Unknown(Unknown {
            conn,
            role,
            direction,
            origin,
            reason,
        }));
    }

    fn on_data(&mut self, conn: &mut Conn, d: &Data, out: &mut Vec<HttpEvent>) {
        conn.last_ns = conn.last_ns.max(d.origin.ts_ns);
        if conn.not_socket {
            self.stats.not_socket_records += 1;
        } else if !conn.upgraded {
            self.feed(conn, d, out);
        }
    }

    fn feed(&mut self, conn: &mut Conn, d: &Data, out: &mut Vec<HttpEvent>) {
        let dir = d.direction;
        if d.lost_before {
            self.lost(conn, dir, d.origin, out);
        }
        let asm = match dir {
            Direction::Ingress => &mut conn.ingress,
            Direction::Egress => &mut conn.egress,
        };
        let mut data = &d.data[..];
        let before = if d.lost_before { 0 } else { asm.kernel_budget };
        let forwarding = before > 0;
        asm.kernel_budget = kernel_budget_after(before, d);
        if asm.first.is_none() {
            // Between heads: skip what is left of a known-length body. When the kernel had
            // stopped forwarding (the head's syscall ended with CRLFCRLF or the budget ran out) it
            // forwarded no body-only syscall since, so a head start begins a new head and the rest
            // of the body went by unseen; while it forwards, this syscall is the next one.
            let mut head_start = d.head_start;
            if d.head_start && !forwarding {
                asm.skip = 0;
            } else if asm.skip > 0 {
                let n = asm.skip.min(data.len() as u64) as usize;
                asm.skip = asm.skip.saturating_sub(d.total_len);
                data = &data[n..];
                // The syscall began with body: its flag says nothing of what follows.
                head_start = false;
            }
            if data.is_empty() || !(head_start || head::looks_like_head(data)) {
                self.stats.body_records += 1;
                return;
            }
            asm.buf.clear();
            asm.first = Some(d.origin);
            asm.damaged = false;
        } else if d.head_start
            && !matches!(
                head::parse(&with(&asm.buf, data), self.opts),
                Parsed::Partial | Parsed::Complete { .. }
            )
        {
            // A new head while the one in progress is broken: report it and start over.
            let first = asm.first.replace(d.origin);
            asm.buf.clear();
            asm.damaged = false;
            if let Some(first) = first {
                let role = conn.role;
                self.unknown(conn.id, role, dir, first, UnknownReason::Unparsable, out);
                self.unreadable_request(conn, dir, first, out);
            }
        }
        let asm = match dir {
            Direction::Ingress => &mut conn.ingress,
            Direction::Egress => &mut conn.egress,
        };
        asm.buf.extend_from_slice(data);
        asm.damaged |= d.capped || d.iov_cut || d.read_fault;
        self.parse_buffered(conn, dir, d.origin, out);
    }

    /// Records were lost on this direction: the head in progress and every unanswered request
    /// of the connection can no longer be trusted or paired.
    fn lost(&mut self, conn: &mut Conn, dir: Direction, at: Origin, out: &mut Vec<HttpEvent>) {
        let asm = match dir {
            Direction::Ingress => &mut conn.ingress,
            Direction::Egress => &mut conn.egress,
        };
        let first = asm.first.take().unwrap_or(at);
        asm.buf.clear();
        asm.skip = 0;
        let role = conn.role;
        self.unknown(conn.id, role, dir, first, UnknownReason::Lost, out);
        for request in conn.pending.drain(..) {
            self.stats.abandoned += 1;
            out.push(HttpEvent::Abandoned {
                request,
                why: Abandon::Lost,
                at,
            });
        }
    }

    fn parse_buffered(
        &mut self,
        conn: &mut Conn,
        dir: Direction,
        last: Origin,
        out: &mut Vec<HttpEvent>,
    ) {
        loop {
            let asm = match dir {
                Direction::Ingress => &mut conn.ingress,
                Direction::Egress => &mut conn.egress,
            };
            let Some(first) = asm.first else { return };
            match head::parse_with(&asm.buf, self.opts, &mut self.texts) {
                Parsed::Complete { head, len } => {
                    asm.buf.advance(len);
                    let body = match &head {
                        Head::Request(r) => r.body,
                        // The response to HEAD has no body, whatever its framing headers say.
                        Head::Response(r)
                            if r.status >= 200
                                && answers(conn.role, dir, &conn.pending)
                                    .is_some_and(|m| m == "HEAD") =>
                        {
                            Body::Length(0)
                        }
                        Head::Response(r) => r.body,
                    };
                    match body {
                        Body::Length(n) => {
                            let here = n.min(asm.buf.len() as u64);
                            asm.buf.advance(here as usize);
                            asm.skip = n - here;
                        }
                        Body::Chunked => {
                            // Skipped when it ends within these bytes (a pipelined head may
                            // follow), else the rest is body.
                            match head::chunked_len(&asm.buf) {
                                Some(n) => {
                                    asm.buf.advance(n);
                                }
                                None => asm.buf.clear(),
                            }
                            asm.skip = 0;
                        }
                        Body::UntilClose => {
                            asm.buf.clear();
                            asm.skip = 0;
                        }
                    }
                    if asm.buf.is_empty() || !head::looks_like_head(&asm.buf) {
                        asm.release();
                        asm.first = None;
                    } else {
                        // A pipelined head follows in the same bytes.
                        asm.first = Some(last);
                    }
                    self.on_head(conn, dir, first, last, head, out);
                    if conn.upgraded {
                        return;
                    }
                }
                Parsed::Partial => {
                    if asm.damaged || asm.buf.len() >= observer_common::HEAD_MAX as usize {
                        asm.buf.clear();
                        asm.first = None;
                        let role = conn.role;
                        self.unknown(conn.id, role, dir, first, UnknownReason::Truncated, out);
                        self.unreadable_request(conn, dir, first, out);
                    }
                    return;
                }
                Parsed::Invalid(e) => {
                    asm.buf.clear();
                    asm.first = None;
                    let role = conn.role;
                    let reason = if matches!(e, HeadError::TooManyHeaders) || asm.damaged {
                        UnknownReason::Truncated
                    } else {
                        UnknownReason::Unparsable
                    };
                    self.unknown(conn.id, role, dir, first, reason, out);
                    self.unreadable_request(conn, dir, first, out);
                    return;
                }
            }
        }
    }

    /// An unreadable head read on a server connection stands for an inbound request in flight:
    /// it is queued without a head so that its response ends it.
    fn unreadable_request(
        &mut self,
        conn: &mut Conn,
        dir: Direction,
        first: Origin,
        out: &mut Vec<HttpEvent>,
    ) {
        if conn.role == Some(Role::Server) && dir == Direction::Ingress {
            self.push_request(conn, Role::Server, first, None, out);
        }
    }

    fn push_request(
        &mut self,
        conn: &mut Conn,
        role: Role,
        origin: Origin,
        head: Option<Arc<RequestHead>>,
        out: &mut Vec<HttpEvent>,
    ) {
        self.next_seq += 1;
        let request = Request {
            conn: conn.id,
            role,
            origin,
            peer: conn.peer,
            head,
            seq: self.next_seq,
        };
        if conn.pending.len() >= MAX_PENDING
            && let Some(old) = conn.pending.pop_front()
        {
            self.stats.abandoned += 1;
            out.push(HttpEvent::Abandoned {
                request: old,
                why: Abandon::Overflow,
                at: origin,
            });
        }
        if conn.pending.capacity() == 0 {
            // Room for one: a VecDeque grows to 4 at its first push, and a keep-alive connection
            // without pipelining never has more than one request pending (~260 B per idle
            // connection saved).
            conn.pending.reserve_exact(1);
        }
        conn.pending.push_back(request.clone());
        out.push(HttpEvent::Request(request));
    }

    fn on_head(
        &mut self,
        conn: &mut Conn,
        dir: Direction,
        first: Origin,
        last: Origin,
        head: Head,
        out: &mut Vec<HttpEvent>,
    ) {
        match head {
            Head::Request(r) => {
                let role = match dir {
                    Direction::Ingress => Role::Server,
                    Direction::Egress => Role::Client,
                };
                if conn.role.is_some_and(|known| known != role) {
                    // A request going the wrong way for this connection's role: not ours to guess.
                    self.unknown(
                        conn.id,
                        conn.role,
                        dir,
                        first,
                        UnknownReason::Unparsable,
                        out,
                    );
                    return;
                }
                conn.role = Some(role);
                self.stats.requests += 1;
                self.push_request(conn, role, first, Some(r), out);
            }
            Head::Response(resp) => {
                let expected = match dir {
                    Direction::Ingress => Role::Client,
                    Direction::Egress => Role::Server,
                };
                if conn.role != Some(expected) || conn.pending.is_empty() {
                    self.stats.unpaired_responses += 1;
                    return;
                }
                if (100..200).contains(&resp.status) && resp.status != 101 {
                    return;
                }
                if resp.status == 101 {
                    // What follows is another protocol: nothing buffered is a head.
                    conn.upgraded = true;
                    conn.ingress = DirAsm::default();
                    conn.egress = DirAsm::default();
                }
                if let Some(request) = conn.pending.pop_front() {
                    self.stats.exchanges += 1;
                    out.push(HttpEvent::Exchange(Exchange {
                        request,
                        response: resp,
                        end: last,
                    }));
                }
            }
        }
    }
}

/// The method of the request a response read or written this way would answer, if any.
fn answers(role: Option<Role>, dir: Direction, pending: &VecDeque<Request>) -> Option<&str> {
    let expected = match dir {
        Direction::Ingress => Role::Client,
        Direction::Egress => Role::Server,
    };
    if role != Some(expected) {
        return None;
    }
    pending.front()?.head.as_ref().map(|h| h.method.as_str())
}

/// The kernel's head budget after it forwarded `d` (see `try_data_exit`): a head start renews it,
/// the copied bytes spend it, a syscall ending with CRLFCRLF or cut at the budget ends it. After
/// lost records it is not known: the caller passes 0 (not forwarding), the cautious guess.
fn kernel_budget_after(before: u32, d: &Data) -> u32 {
    let budget = if d.head_start {
        observer_common::HEAD_MAX
    } else {
        before
    };
    if d.capped || d.data.ends_with(b"\r\n\r\n") {
        0
    } else {
        budget.saturating_sub(u32::try_from(d.data.len()).unwrap_or(u32::MAX))
    }
}

fn with(buf: &[u8], more: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(buf.len() + more.len());
    v.extend_from_slice(buf);
    v.extend_from_slice(more);
    v
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
