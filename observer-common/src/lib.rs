//! Types shared by the kernel programs (`observer-ebpf`) and user space (`observer`).
//!
//! Every record the kernel writes into the ring buffer starts with an [`EventHeader`]; its `kind` is
//! one of the `KIND_*` constants. The layouts are `#[repr(C)]` and padded explicitly so that both
//! sides agree byte for byte; user space decodes them field by field at `offset_of!` positions and
//! never casts raw bytes into these types.
#![cfg_attr(not(feature = "std"), no_std)]

/// Most bytes of one HTTP message head that reach user space, whether they come in one syscall or
/// in many. A head longer than this is reported as truncated.
pub const HEAD_MAX: u32 = 16 * 1024;
/// Most iovec segments walked for one `readv`/`writev`/`recvmsg`/`sendmsg` call.
pub const MAX_IOV: u32 = 32;
/// Size of the per-CPU scratch buffer: a data header, then twice the head budget, so that a copy
/// at any masked offset below `HEAD_MAX` of up to `HEAD_MAX` bytes stays inside it (verifier bound).
pub const SCRATCH_DATA: usize = 2 * HEAD_MAX as usize;
pub const SCRATCH_SIZE: usize = core::mem::size_of::<DataHeader>() + SCRATCH_DATA;

/// Words of the `TRACED` bitmap: one bit per task id up to the kernel's `PID_MAX_LIMIT` (4M).
pub const TRACED_WORDS: u32 = (4 * 1024 * 1024) / 64;

/// The word and bit of task id `id` in the `TRACED` bitmap (user space fills it before attaching,
/// the kernel keeps it in step with forks and exits).
#[inline(always)]
pub const fn traced_slot(id: u32) -> (u32, u64) {
    (id / 64, 1u64 << (id % 64))
}

/// Record kinds (`EventHeader::kind`).
pub const KIND_DATA: u32 = 1;
pub const KIND_CONNECT: u32 = 2;
pub const KIND_ACCEPT: u32 = 3;
pub const KIND_CLOSE: u32 = 4;
pub const KIND_FORK: u32 = 5;
/// The whole process (thread group) exited.
pub const KIND_EXIT: u32 = 6;
/// One thread of a process exited (`hdr.tid`).
pub const KIND_THREAD_EXIT: u32 = 7;
/// The process replaced its program (`execve`): its name and metadata changed.
pub const KIND_EXEC: u32 = 8;

/// `DataHeader::flags`.
pub mod flags {
    /// The process wrote the bytes (egress); otherwise it read them (ingress).
    pub const WRITE: u32 = 1 << 0;
    /// The bytes begin like an HTTP/1.x request line or status line.
    pub const HEAD_START: u32 = 1 << 1;
    /// The message's head budget ran out before the end of the head was seen: what follows
    /// (in this syscall or later ones) was not copied.
    pub const CAPPED: u32 = 1 << 2;
    /// The syscall had more iovec segments than `MAX_IOV`; the rest were not copied.
    pub const IOV_CUT: u32 = 1 << 3;
    /// Records of this connection and direction were lost (ring buffer full) before this one.
    pub const LOST_BEFORE: u32 = 1 << 4;
    /// Reading the process's memory failed part way; `data_len` bytes are valid.
    pub const READ_FAULT: u32 = 1 << 5;
}

/// The syscall behind a data record (`DataHeader::syscall`).
pub mod sys {
    pub const READ: u32 = 0;
    pub const READV: u32 = 1;
    pub const RECVFROM: u32 = 2;
    pub const RECVMSG: u32 = 3;
    pub const WRITE: u32 = 4;
    pub const WRITEV: u32 = 5;
    pub const SENDTO: u32 = 6;
    pub const SENDMSG: u32 = 7;
    pub const CONNECT: u32 = 8;
    pub const ACCEPT: u32 = 9;
}

/// Indexes of the per-CPU statistics array (`STATS`).
pub mod stat {
    /// Records that did not fit in the ring buffer and were dropped.
    pub const RINGBUF_DROPS: u32 = 0;
    /// Heads whose 16 KiB budget ran out before their end was seen (or that came with a body
    /// longer than the budget in the same syscall).
    pub const CAPPED: u32 = 1;
    /// Syscalls with more than `MAX_IOV` iovec segments.
    pub const IOV_CUT: u32 = 2;
    /// Failed reads of process memory.
    pub const READ_FAULTS: u32 = 3;
    /// Data records written to the ring buffer.
    pub const DATA_RECORDS: u32 = 4;
    /// Bytes of payload written to the ring buffer.
    pub const DATA_BYTES: u32 = 5;
    /// Socket sends and receives of observed processes made by calls the socket hooks do not
    /// read (`sendfile`, `splice`, `sendmmsg`, io_uring, ...).
    pub const UNREAD_SOCKET_CALLS: u32 = 6;
    /// Lifecycle records (connect, accept, close, fork, exit) written.
    pub const LIFECYCLE_RECORDS: u32 = 7;
    pub const COUNT: u32 = 8;
}

/// Indexes of the `CONFIG` array, written by user space before attaching.
pub mod config {
    /// 1: observe every process except `SELF_TGID`; 0: only the processes in `TRACED`.
    pub const TRACE_ALL: u32 = 0;
    /// The observer's own tgid, never observed.
    pub const SELF_TGID: u32 = 1;
    /// Byte offsets of fields in the sched tracepoints, read from tracefs `format` files
    /// (they moved between kernel versions); 0 when absent.
    pub const FORK_CHILD_PID_OFF: u32 = 2;
    pub const EXIT_GROUP_DEAD_OFF: u32 = 3;
    /// Unread bytes in the ring buffer at which a record wakes the reader; 0: every record
    /// written to an empty ring wakes it (the kernel's default).
    pub const WAKE_AT_BYTES: u32 = 4;
    /// Byte offsets of the fields of `sock:inet_sock_set_state` (socket hooks only), from its
    /// tracefs `format` file.
    pub const STATE_SKADDR_OFF: u32 = 5;
    pub const STATE_OLDSTATE_OFF: u32 = 6;
    pub const STATE_NEWSTATE_OFF: u32 = 7;
    pub const STATE_DPORT_OFF: u32 = 8;
    pub const STATE_FAMILY_OFF: u32 = 9;
    pub const STATE_PROTOCOL_OFF: u32 = 10;
    pub const STATE_DADDR_OFF: u32 = 11;
    pub const STATE_DADDR_V6_OFF: u32 = 12;
    pub const COUNT: u32 = 13;
    /// The fields of `sock:inet_sock_set_state` read, by `CONFIG` index.
    pub const STATE_FIELDS: [(u32, &str); 8] = [
        (STATE_SKADDR_OFF, "skaddr"),
        (STATE_OLDSTATE_OFF, "oldstate"),
        (STATE_NEWSTATE_OFF, "newstate"),
        (STATE_DPORT_OFF, "dport"),
        (STATE_FAMILY_OFF, "family"),
        (STATE_PROTOCOL_OFF, "protocol"),
        (STATE_DADDR_OFF, "daddr"),
        (STATE_DADDR_V6_OFF, "daddr_v6"),
    ];
}

/// Slots of the tail-call program arrays: the iovec-shaped data syscalls, handled in programs
/// of their own. A tracing program may only tail-call programs of the same hook, hence one
/// array per hook: `EXIT_TAILS` (`sys_exit`, syscall hooks), `SEND_TAILS` and `RECV_TAILS`
/// (`sock_send_length` and `sock_recv_length`, socket hooks).
pub mod tail {
    /// `readv`, `writev`.
    pub const IOV: u32 = 0;
    /// `recvmsg`, `sendmsg`.
    pub const MSGHDR: u32 = 1;
    pub const COUNT: u32 = 2;
    /// (array, hook, slot, program) of every tail-called program.
    pub const PROGRAMS: [(&str, &str, u32, &str); 6] = [
        ("EXIT_TAILS", "sys_exit", IOV, "sys_exit_iov"),
        ("EXIT_TAILS", "sys_exit", MSGHDR, "sys_exit_msghdr"),
        ("SEND_TAILS", "sock_send_length", IOV, "sock_send_iov"),
        ("SEND_TAILS", "sock_send_length", MSGHDR, "sock_send_msghdr"),
        ("RECV_TAILS", "sock_recv_length", IOV, "sock_recv_iov"),
        ("RECV_TAILS", "sock_recv_length", MSGHDR, "sock_recv_msghdr"),
    ];
}

/// The tracefs events (under the tracefs mount) that the socket hooks attach to: where all are
/// present the observer uses the socket hooks by default (kernel 6.3 and later). The bench and
/// the end-to-end tests ask the same question.
pub const SOCKET_EVENTS: [&str; 3] = [
    "events/sock/sock_send_length",
    "events/sock/sock_recv_length",
    "events/sock/inet_sock_set_state",
];

/// Where the observer reads tracefs (and mounts it when it is not).
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Whether the kernel under `tracefs` has every event of the socket hooks.
#[cfg(feature = "std")]
pub fn socket_events_present(tracefs: &std::path::Path) -> bool {
    SOCKET_EVENTS.iter().all(|e| tracefs.join(e).exists())
}

/// Address families carried in [`ConnEvent::family`].
pub const AF_UNIX: u16 = 1;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// Common head of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    /// Thread-group id (the process id users see).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// The file descriptor the record is about (-1 when none).
    pub fd: i32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
}

/// Head of a `KIND_DATA` record; `data_len` payload bytes follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataHeader {
    pub hdr: EventHeader,
    pub flags: u32,
    pub syscall: u32,
    /// Bytes the syscall moved (its return value); at least `data_len`.
    pub total_len: u64,
    pub data_len: u32,
    pub _pad: u32,
}

/// `KIND_CONNECT` / `KIND_ACCEPT`: `hdr.fd` is the connected socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnEvent {
    pub hdr: EventHeader,
    /// `AF_*`; 0 when the address was not available.
    pub family: u16,
    /// Peer port, host byte order.
    pub port: u16,
    pub _pad: u32,
    /// Peer address: 4 bytes for IPv4, 16 for IPv6, network order.
    pub addr: [u8; 16],
}

/// `KIND_FORK`: `hdr.pid`/`hdr.tid` are the parent's; `child_tid` the new task's id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkEvent {
    pub hdr: EventHeader,
    pub child_tid: u32,
    pub _pad: u32,
}

/// Key of the kernel's per-connection state map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: i32,
}

/// Head-capture state of one direction of a connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirState {
    /// Head bytes still allowed for the message in progress; 0 when no head is in progress.
    pub budget: u32,
    /// Set when a record of this direction was dropped; reported on the next one.
    pub lost: u32,
}

/// Value of the kernel's per-connection state map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnState {
    pub ingress: DirState,
    pub egress: DirState,
    /// The socket's cookie (socket hooks; 0 with the syscall hooks): another cookie behind the
    /// same fd means the process closed the socket and the fd now names a new one.
    pub cookie: u64,
}

#[cfg(feature = "user")]
mod user {
    use super::*;

    // SAFETY: a plain #[repr(C)] struct of integers with explicit padding fields: every bit
    // pattern is a valid value.
    #[expect(unsafe_code, reason = "aya reads map keys as bytes: a Pod type")]
    unsafe impl aya::Pod for ConnKey {}
    // SAFETY: as ConnKey, integers and structs of integers only.
    #[expect(unsafe_code, reason = "aya reads map values as bytes: a Pod type")]
    unsafe impl aya::Pod for ConnState {}
}
