//! Kernel side of observer: socket, syscall and sched tracepoints that forward the heads of
//! HTTP/1.x messages of observed processes to user space through one ring buffer.
//!
//! Two sets of hooks capture the same records; user space loads one of them:
//! * **Socket hooks** (kernel 6.3 and later): the BTF tracepoints `sock_send_length` and
//!   `sock_recv_length`, which fire after every socket send and receive. They cost nothing to
//!   the other syscalls of the machine: any syscall tracepoint puts every syscall of every task
//!   on the kernel's slow path. The syscall's own arguments are read from the task's saved user
//!   registers (`bpf_task_pt_regs`). Connection life cycle comes from the TCP state changes
//!   (`sock:inet_sock_set_state`): the handshake gives the role (`SYN_SENT` then `ESTABLISHED`:
//!   connected; `SYN_RECV` then `ESTABLISHED`: accepted) and the peer, kept in `PEERS` until the
//!   first bytes in an observed process name the fd, and `TCP_CLOSE` the close. A socket cookie
//!   stored per fd tells when the fd names a new socket.
//! * **Syscall hooks** (older kernels): the BTF tracepoints `sys_enter` and `sys_exit` (the raw
//!   tracepoints under every syscall; the per-syscall tracepoints build an argument record first,
//!   which costs more than the programs). `sys_exit` matches the syscall number against the
//!   hooked ones and reads the arguments from the syscall's saved user registers; `sys_enter`
//!   only reports closes, before the fd can be reused. `connect`, `accept` and `accept4` give
//!   roles and peers.
//!
//! Flow for the data calls (`read`, `readv`, `recvfrom`, `recvmsg`, `write`, `writev`, `sendto`,
//! `sendmsg`):
//! 1. The process filter runs first (a bit in `TRACED` for an unobserved process).
//! 2. Once the byte count is known, the first bytes are peeked. Only data that starts like an
//!    HTTP/1.x request or status line, or continues a head in progress on that connection and
//!    direction (`CONNS`), is copied (up to `HEAD_MAX` bytes per message, across calls and up
//!    to `MAX_IOV` iovec segments) into a per-CPU scratch buffer and output to the ring buffer
//!    as one variable-length record.
//! 3. A head is in progress until a call's bytes end with CRLF CRLF or the budget runs out.
//!
//! The buffer-shaped calls are handled by the hook's program itself; the iovec-shaped ones are
//! tail calls (`EXIT_TAILS`, `SEND_TAILS`, `RECV_TAILS`), so that the verifier walks the iovec
//! copy loop in those programs only.
//!
//! Process life cycle (`sched_process_fork`, `sched_process_exit`) records keep the set of
//! observed processes (`TRACED`) in step with forks.
//!
//! Every failure is counted in `STATS` (per CPU) rather than logged on the hot path.
#![no_std]
#![no_main]
// The eBPF crate is built with unstable features allowed (`-Z build-std`, RUSTC_BOOTSTRAP on the
// stable toolchain, observer/build.rs); the intrinsic is the BPF XADD.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    cty::c_void,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task_btf, bpf_get_smp_processor_id,
        bpf_ktime_get_ns, bpf_probe_read_user, generated,
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{BtfTracePointContext, TracePointContext},
};
use observer_common::{
    AF_INET, AF_INET6, AF_UNIX, ConnEvent, ConnKey, ConnState, DataHeader, DirState, EventHeader,
    ForkEvent, HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_DATA, KIND_EXEC, KIND_EXIT,
    KIND_FORK, KIND_THREAD_EXIT, MAX_IOV, SCRATCH_SIZE, TRACED_WORDS, config, flags, stat, sys,
    tail, traced_slot,
};

/// Observed thread-group ids (and the tids of threads forked by them, until they exit), one bit
/// per id: bit `id % 64` of word `id / 64`, for every id up to `PID_MAX_LIMIT`. Every syscall of
/// every process asks it: an array lookup is inlined by the verifier into a few instructions,
/// where a hash lookup was most of what an unobserved process paid per syscall.
#[map]
static TRACED: Array<u64> = Array::with_max_entries(TRACED_WORDS, 0);

/// In `--all` mode, processes user space filtered out (`--exclude-comm`, `--cgroup`,
/// `--container`): they stop producing records after their first ones.
#[map]
static EXCLUDED: HashMap<u32, u8> = HashMap::with_max_entries(65_536, 0);

/// Settings written by user space before attaching (`observer_common::config`).
#[map]
static CONFIG: Array<u64> = Array::with_max_entries(config::COUNT, 0);

/// Head-capture state per (tgid, fd).
#[map]
static CONNS: LruHashMap<ConnKey, ConnState> = LruHashMap::with_max_entries(65_536, 0);

/// One record under construction per CPU, indexed by CPU id. Not a per-CPU map: those cap values
/// at 32 KiB. User space sets `max_entries` to the number of possible CPUs at load time. Tracepoint
/// programs run with preemption disabled and are not re-entered on a CPU, so a slot is never
/// shared by two programs at once.
#[map]
static SCRATCH: Array<[u8; SCRATCH_SIZE]> = Array::with_max_entries(1, 0);

/// Records to user space. User space may resize it at load time (`--ring-buffer-mib`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// The iovec-shaped exit programs (`observer_common::tail`), tail-called by `sys_exit`.
#[map]
static EXIT_TAILS: ProgramArray = ProgramArray::with_max_entries(tail::COUNT, 0);

/// The iovec-shaped send and receive programs of the socket hooks (`observer_common::tail`).
#[map]
static SEND_TAILS: ProgramArray = ProgramArray::with_max_entries(tail::COUNT, 0);
#[map]
static RECV_TAILS: ProgramArray = ProgramArray::with_max_entries(tail::COUNT, 0);

/// Socket hooks: TCP connections by socket address, from their handshake (role and peer) until
/// their close, and, once an observed process moved bytes on one, the fd that names it there.
/// Every TCP connection of the machine passes through it (the handshake of an accepted
/// connection runs in softirq, where the process is not known yet); LRU, so that connections
/// whose close was never seen cannot fill it.
#[map]
static PEERS: LruHashMap<u64, Peer> = LruHashMap::with_max_entries(65_536, 0);

/// Counters, per CPU (`observer_common::stat`).
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

const DATA_HDR: usize = core::mem::size_of::<DataHeader>();
/// `HEAD_MAX` is a power of two: offsets below it are kept provably in range by this mask.
const HEAD_MASK: u32 = HEAD_MAX - 1;
const EINPROGRESS: i64 = 115;
/// `recvmsg` flag: the bytes stay in the socket and will be read again.
const MSG_PEEK: u64 = 2;
/// TCP states (include/net/tcp_states.h) and protocol number.
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const IPPROTO_TCP: u16 = 6;
/// `Peer::role`.
const ROLE_UNKNOWN: u32 = 0;
const ROLE_CLIENT: u32 = 1;
const ROLE_SERVER: u32 = 2;

/// A TCP connection known by its socket (`PEERS`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Peer {
    /// The observed process and fd that moved bytes on it first; `cookie` 0 until then.
    tgid: u32,
    fd: i32,
    cookie: u64,
    /// `ROLE_*`: how the handshake went.
    role: u32,
    family: u16,
    /// Peer port, host byte order.
    port: u16,
    /// Peer address: 4 bytes for IPv4, 16 for IPv6, network order.
    addr: [u8; 16],
}

/// The socket behind a data call: its address (the `PEERS` key) and cookie. Both 0 with the
/// syscall hooks, which do not see sockets.
#[derive(Clone, Copy)]
struct Sock {
    addr: u64,
    cookie: u64,
}

const NO_SOCK: Sock = Sock { addr: 0, cookie: 0 };

#[inline(always)]
fn count(index: u32, by: u64) {
    if let Some(p) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += by };
    }
}

#[inline(always)]
fn config(index: u32) -> u64 {
    CONFIG.get(index).copied().unwrap_or(0)
}

#[inline(always)]
fn traced_bit(id: u32) -> bool {
    let (word, bit) = traced_slot(id);
    TRACED.get(word).is_some_and(|w| w & bit != 0)
}

/// Sets or clears the bit of `id`. Each id's bit is only changed by one event at a time (its
/// fork, then its exit; user space writes the map only before the programs are attached), but
/// other ids' bits in the same word may change at once on other CPUs: hence an atomic add of the
/// bit, made only when the bit differs (it is a plain XADD, which every BPF ISA version has).
#[inline(always)]
fn set_traced(id: u32, on: bool) {
    let (word, bit) = traced_slot(id);
    let Some(p) = TRACED.get_ptr_mut(word) else {
        return;
    };
    // SAFETY: a valid, aligned map value; all concurrent writers use atomic adds. (The BPF
    // target's `AtomicU64` has no read-modify-write methods: the intrinsic is the XADD.)
    unsafe {
        let set = core::ptr::read_volatile(p) & bit != 0;
        if on && !set {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, bit);
        } else if !on && set {
            atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, bit.wrapping_neg());
        }
    }
}

/// The process filter, checked first by every hook.
#[inline(always)]
fn is_traced(tgid: u32) -> bool {
    if traced_bit(tgid) {
        return true;
    }
    config(config::TRACE_ALL) == 1
        && u64::from(tgid) != config(config::SELF_TGID)
        && EXCLUDED.get_ptr(tgid).is_none()
}

#[inline(always)]
fn header(kind: u32, id: u64, fd: i32) -> EventHeader {
    EventHeader {
        kind,
        pid: (id >> 32) as u32,
        tid: id as u32,
        fd,
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// `bpf_ringbuf_output` flags (uapi `BPF_RB_*`) and its query of the bytes not yet consumed.
const RB_NO_WAKEUP: u64 = 1;
const RB_FORCE_WAKEUP: u64 = 2;
const RB_AVAIL_DATA: u64 = 0;

/// Whether writing `size` bytes should wake the reader. With no watermark set (user space reads
/// each record as it comes), the kernel's default: a wake-up when the ring was empty. With one,
/// the reader drains on its own timer and is woken only when a record takes the unread bytes
/// across the watermark, or while more than twice the watermark is unread (it is far behind,
/// or two CPUs crossed the watermark together and neither saw itself cross it).
#[inline(always)]
fn wake_flags(size: u64) -> u64 {
    let at = config(config::WAKE_AT_BYTES);
    if at == 0 {
        return 0;
    }
    let unread = EVENTS.query(RB_AVAIL_DATA);
    if (unread < at && unread + size >= at) || unread >= 2 * at {
        RB_FORCE_WAKEUP
    } else {
        RB_NO_WAKEUP
    }
}

#[inline(always)]
fn emit<T>(record: &T) {
    let flags = wake_flags(core::mem::size_of::<T>() as u64);
    if EVENTS.output::<T>(record, flags).is_ok() {
        count(stat::LIFECYCLE_RECORDS, 1);
    } else {
        count(stat::RINGBUF_DROPS, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Data syscalls
// ---------------------------------------------------------------------------------------------

/// How a data syscall passes its bytes. The buffer shape is handled in `sys_exit`; the iovec
/// shapes in their own programs, so the verifier only walks the iovec loop there.
const SHAPE_BUFFER: u8 = 0;
const SHAPE_IOV: u8 = 1;
const SHAPE_MSGHDR: u8 = 2;

/// Syscall numbers of the hooked calls (x86_64: arch/x86/entry/syscalls/syscall_64.tbl) and the
/// `struct pt_regs` offsets of what the programs read (arch/x86/include/asm/ptrace.h).
#[cfg(bpf_target_arch = "x86_64")]
mod abi {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const CLOSE: u64 = 3;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const CONNECT: u64 = 42;
    pub const ACCEPT: u64 = 43;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
    pub const ACCEPT4: u64 = 288;
    /// The first three syscall arguments: di, si, dx.
    pub const ARGS: [usize; 3] = [112, 104, 96];
    /// The fourth: r10 (`recvfrom`'s flags).
    pub const ARG4: usize = 56;
    /// orig_ax: the syscall number, kept through the call.
    pub const NR: usize = 120;
    /// cs: the user code segment, `USER_CS` for 64-bit syscalls. 32-bit (compat) syscalls have
    /// other numbers and argument registers, and are not observed (as with the syscall
    /// tracepoints, which skip them too).
    pub const CS: usize = 136;
    pub const USER_CS: u64 = 0x33;
}
#[cfg(not(bpf_target_arch = "x86_64"))]
compile_error!("observer's syscall dispatch knows the x86_64 syscall ABI only");

/// The `sys::*` kind of a syscall handled at exit (`close` is handled at entry).
#[inline(always)]
fn hooked(nr: u64) -> Option<u32> {
    Some(match nr {
        abi::READ => sys::READ,
        abi::WRITE => sys::WRITE,
        abi::READV => sys::READV,
        abi::WRITEV => sys::WRITEV,
        abi::CONNECT => sys::CONNECT,
        abi::ACCEPT | abi::ACCEPT4 => sys::ACCEPT,
        abi::SENDTO => sys::SENDTO,
        abi::RECVFROM => sys::RECVFROM,
        abi::SENDMSG => sys::SENDMSG,
        abi::RECVMSG => sys::RECVMSG,
        _ => return None,
    })
}

/// A word of the syscall's saved user registers.
#[inline(always)]
fn reg(regs: *const u8, off: usize) -> u64 {
    // SAFETY: `regs` is the tracepoint's `struct pt_regs *`, a BTF-typed pointer: the verifier
    // checks each load against the type and makes it fault-safe.
    unsafe { core::ptr::read_volatile(regs.add(off) as *const u64) }
}

/// `sys_enter(struct pt_regs *regs, long id)`: reports closes of known connections of observed
/// processes, before the fd can be reused. Every other hooked syscall is handled at exit alone.
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> u32 {
    let nr: u64 = ctx.arg(1);
    if nr == abi::CLOSE {
        let _ = try_close(&ctx);
    }
    0
}

#[inline(always)]
fn try_close(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    if !is_traced((id >> 32) as u32) {
        return Ok(());
    }
    let regs: *const u8 = ctx.arg(0);
    if reg(regs, abi::CS) != abi::USER_CS {
        return Ok(());
    }
    close(id, reg(regs, abi::ARGS[0]) as i32);
    Ok(())
}

/// `sys_exit(struct pt_regs *regs, long ret)`: the exits of the hooked syscalls of observed
/// processes. Buffer-shaped data calls and connection calls are handled here, iovec-shaped data
/// calls by a tail call.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> u32 {
    let regs: *const u8 = ctx.arg(0);
    if let Some(syscall) = hooked(reg(regs, abi::NR)) {
        let _ = try_exit(&ctx, syscall);
    }
    0
}

#[inline(always)]
fn try_exit(ctx: &BtfTracePointContext, syscall: u32) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    if !is_traced((id >> 32) as u32) || peeked(ctx.arg(0), syscall) {
        return Ok(());
    }
    let Some(tail) = iov_tail(syscall) else {
        let Some(args) = exit_args(ctx, syscall) else {
            return Ok(());
        };
        let ret: i64 = ctx.arg(1);
        return match syscall {
            sys::CONNECT => conn_exit(id, &args, ret, KIND_CONNECT),
            sys::ACCEPT => conn_exit(id, &args, ret, KIND_ACCEPT),
            _ => data_exit(id, &args, ret, SHAPE_BUFFER, NO_SOCK),
        };
    };
    // SAFETY: the programs in `EXIT_TAILS` are `sys_exit` programs like this one. On success the
    // call does not return; it fails only if the slot is empty.
    unsafe { EXIT_TAILS.tail_call(ctx, tail) };
    Ok(())
}

/// The tail-call slot of an iovec-shaped data call (`observer_common::tail`); `None` for the
/// calls the hook's program handles itself.
#[inline(always)]
fn iov_tail(syscall: u32) -> Option<u32> {
    match syscall {
        sys::READV | sys::WRITEV => Some(tail::IOV),
        sys::RECVMSG | sys::SENDMSG => Some(tail::MSGHDR),
        _ => None,
    }
}

macro_rules! tail_exit {
    ($name:ident, $shape:expr) => {
        /// Tail-called by `sys_exit` (not attached by itself), which checked the process filter.
        #[btf_tracepoint(function = "sys_exit")]
        pub fn $name(ctx: BtfTracePointContext) -> u32 {
            let regs: *const u8 = ctx.arg(0);
            if let Some(syscall) = hooked(reg(regs, abi::NR)) {
                if let Some(args) = exit_args(&ctx, syscall) {
                    let _ = data_exit(
                        bpf_get_current_pid_tgid(),
                        &args,
                        ctx.arg(1),
                        $shape,
                        NO_SOCK,
                    );
                }
            }
            0
        }
    };
}

tail_exit!(sys_exit_iov, SHAPE_IOV);
tail_exit!(sys_exit_msghdr, SHAPE_MSGHDR);

/// A `recvfrom` or `recvmsg` with `MSG_PEEK` (syscall hooks; the socket hooks have the flags in
/// their tracepoint): the bytes stay queued and the next read returns them again, so they are
/// not captured now. Checked by `sys_exit` before it tail-calls (another branch in the tail
/// programs takes their verification past the kernel's limit).
#[inline(always)]
fn peeked(regs: *const u8, syscall: u32) -> bool {
    let flags = match syscall {
        sys::RECVFROM => reg(regs, abi::ARG4),
        sys::RECVMSG => reg(regs, abi::ARGS[2]),
        _ => return false,
    };
    flags & MSG_PEEK != 0
}

/// The arguments of the exiting syscall, read from its saved user registers: the kernel keeps
/// them as the process passed them (the return value goes to `ax` only), so nothing has to be
/// saved at entry. `None` for 32-bit (compat) syscalls, whose numbers and registers differ.
#[inline(always)]
fn exit_args(ctx: &BtfTracePointContext, syscall: u32) -> Option<SyscallArgs> {
    user_args(ctx.arg(0), syscall)
}

/// The arguments of the current syscall, from its saved user registers.
#[inline(always)]
fn user_args(regs: *const u8, syscall: u32) -> Option<SyscallArgs> {
    if reg(regs, abi::CS) != abi::USER_CS {
        return None;
    }
    Some(SyscallArgs {
        syscall,
        fd: reg(regs, abi::ARGS[0]) as i32,
        ptr: reg(regs, abi::ARGS[1]),
        len: reg(regs, abi::ARGS[2]),
    })
}

/// A hooked syscall's arguments, as `exit_args` reads them.
#[derive(Clone, Copy)]
struct SyscallArgs {
    /// One of the `sys::*` constants.
    syscall: u32,
    fd: i32,
    /// Buffer, iovec array, msghdr or sockaddr pointer, depending on `syscall`.
    ptr: u64,
    /// Buffer length or iovec count.
    len: u64,
}

#[inline(always)]
fn is_write(syscall: u32) -> bool {
    syscall >= sys::WRITE
}

/// Where the bytes of a data syscall are: one buffer, or an iovec array.
#[derive(Clone, Copy)]
enum Source {
    Buffer { ptr: u64 },
    Iov { iov: u64, count: u64 },
}

#[inline(always)]
fn source(args: &SyscallArgs, shape: u8) -> Result<Source, i64> {
    match shape {
        SHAPE_IOV => Ok(Source::Iov {
            iov: args.ptr,
            count: args.len,
        }),
        SHAPE_MSGHDR => {
            // struct user_msghdr: msg_iov at 16, msg_iovlen at 24 (64-bit ABI).
            let iov: u64 = read_user(args.ptr + 16)?;
            let count: u64 = read_user(args.ptr + 24)?;
            Ok(Source::Iov { iov, count })
        }
        _ => Ok(Source::Buffer { ptr: args.ptr }),
    }
}

#[inline(always)]
fn read_user<T>(addr: u64) -> Result<T, i64> {
    unsafe { bpf_probe_read_user(addr as *const T) }.map_err(|e| {
        count(stat::READ_FAULTS, 1);
        i64::from(e)
    })
}

/// The first segment: (base, len). Heads are recognised by their first bytes, which senders put
/// in the first iovec; a leading empty segment is not searched past (it would multiply the
/// verifier's work for a case no HTTP stack produces).
#[inline(always)]
fn first_segment(src: Source, total: u64) -> Result<(u64, u64), i64> {
    match src {
        Source::Buffer { ptr } => Ok((ptr, total)),
        Source::Iov { iov, count } => {
            if count == 0 {
                return Err(0);
            }
            let seg: [u64; 2] = read_user(iov)?;
            Ok((seg[0], seg[1]))
        }
    }
}

/// Request methods and the status-line prefix, packed little-endian into u64 words with their
/// lengths at compile time (BPF cannot follow pointers stored in .rodata).
const PATTERNS: [(u64, u64); 10] = [
    pattern(b"GET "),
    pattern(b"POST "),
    pattern(b"PUT "),
    pattern(b"HEAD "),
    pattern(b"DELETE "),
    pattern(b"PATCH "),
    pattern(b"OPTIONS "),
    pattern(b"CONNECT "),
    pattern(b"TRACE "),
    pattern(b"HTTP/1."),
];

const fn pattern(p: &[u8]) -> (u64, u64) {
    let mut w = 0u64;
    let mut i = 0;
    while i < p.len() && i < 8 {
        w |= (p[i] as u64) << (8 * i);
        i += 1;
    }
    (w, p.len() as u64)
}

/// True if the first `n` (1..=8) bytes, packed little-endian in `word`, can begin an HTTP/1.x
/// request or status line. With fewer bytes than a pattern has (one byte per write), a match of
/// the bytes there are counts, and the head is confirmed or discarded by user space.
#[inline(always)]
fn looks_like_head(word: u64, n: u64) -> bool {
    let mut i = 0;
    while i < PATTERNS.len() {
        let (pat, plen) = PATTERNS[i];
        let m = if n < plen { n } else { plen };
        let mask = if m >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * m)) - 1
        };
        if (word ^ pat) & mask == 0 {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn dir_state(state: &mut ConnState, write: bool) -> &mut DirState {
    if write {
        &mut state.egress
    } else {
        &mut state.ingress
    }
}

/// Copies `len` bytes from user memory into the scratch data area at `off` (both masked so the
/// verifier can prove the copy stays inside the buffer).
#[inline(always)]
fn copy_in(scratch: *mut u8, off: u32, src: u64, len: u32) -> Result<(), i64> {
    let off = (off & HEAD_MASK) as usize;
    let len = if len > HEAD_MAX { HEAD_MAX } else { len };
    let ret = unsafe {
        generated::bpf_probe_read_user(
            scratch.add(DATA_HDR + off) as *mut c_void,
            len,
            src as *const c_void,
        )
    };
    if ret < 0 {
        count(stat::READ_FAULTS, 1);
        return Err(ret);
    }
    Ok(())
}

#[inline(always)]
fn data_exit(id: u64, args: &SyscallArgs, ret: i64, shape: u8, sock: Sock) -> Result<(), i64> {
    if ret <= 0 {
        return Ok(());
    }
    let total = ret as u64;
    let write = is_write(args.syscall);
    let src = source(args, shape)?;

    // Peek at the first bytes (at most 8) of the first non-empty segment.
    let (base, seg_len) = first_segment(src, total)?;
    let avail = if seg_len < total { seg_len } else { total };
    let n = if avail < 8 { avail } else { 8 };
    let mut peek = [0u8; 8];
    let r = unsafe {
        generated::bpf_probe_read_user(
            peek.as_mut_ptr() as *mut c_void,
            (n as u32) & 0xf,
            base as *const c_void,
        )
    };
    if r < 0 {
        count(stat::READ_FAULTS, 1);
        return Err(r);
    }
    let head_start = n > 0 && looks_like_head(u64::from_le_bytes(peek), n);

    let key = ConnKey {
        tgid: (id >> 32) as u32,
        fd: args.fd,
    };
    let mut state = CONNS.get_ptr_mut(key);
    if let Some(s) = state {
        // SAFETY: map value pointer from a successful lookup.
        if unsafe { (*s).cookie } != sock.cookie {
            // Socket hooks: the fd names another socket than when the entry was made, so the
            // process closed that one (closes are not hooked there). Not `close()`: its extra
            // branch takes the syscall hooks' iovec tail programs, which share this function,
            // past the verifier's limit.
            let _ = CONNS.remove(key);
            emit(&header(KIND_CLOSE, id, args.fd));
            state = None;
        }
    }
    if state.is_none() && sock.addr != 0 && first_sight(id, key, sock, head_start) {
        state = CONNS.get_ptr_mut(key);
    }
    let (budget, lost) = match state {
        // SAFETY: map value pointer from a successful lookup.
        Some(s) => {
            let d = dir_state(unsafe { &mut *s }, write);
            (d.budget, d.lost)
        }
        None => (0, 0),
    };
    if !head_start && budget == 0 {
        return Ok(());
    }
    let budget = if head_start { HEAD_MAX } else { budget };

    let cpu = unsafe { bpf_get_smp_processor_id() };
    let scratch = SCRATCH.get_ptr_mut(cpu).ok_or(0i64)? as *mut u8;
    let want = if total < budget as u64 {
        total as u32
    } else {
        budget
    };
    let mut rec_flags = if write { flags::WRITE } else { 0 };
    if head_start {
        rec_flags |= flags::HEAD_START;
    }
    if total > want as u64 {
        rec_flags |= flags::CAPPED;
        count(stat::CAPPED, 1);
    }
    if lost != 0 {
        rec_flags |= flags::LOST_BEFORE;
    }

    let copied = match src {
        Source::Buffer { ptr } => match copy_in(scratch, 0, ptr, want) {
            Ok(()) => want,
            Err(_) => {
                rec_flags |= flags::READ_FAULT;
                0
            }
        },
        Source::Iov { iov, count: nseg } => {
            // The running offset lives in the scratch header, not in a register: loaded back
            // each iteration it is an unknown (masked) scalar to the verifier, so the paths of
            // one iteration merge instead of multiplying across all MAX_IOV iterations.
            let off_slot =
                unsafe { core::ptr::addr_of_mut!((*(scratch as *mut DataHeader)).data_len) };
            unsafe { core::ptr::write_volatile(off_slot, 0) };
            let mut i: u64 = 0;
            while i < MAX_IOV as u64 && i < nseg {
                let off = unsafe { core::ptr::read_volatile(off_slot) } & (2 * HEAD_MAX - 1);
                if off >= want {
                    break;
                }
                let Ok(seg) = read_user::<[u64; 2]>(iov + i * 16) else {
                    rec_flags |= flags::READ_FAULT;
                    break;
                };
                let left = want - off;
                let len = if seg[1] < left as u64 {
                    seg[1] as u32
                } else {
                    left
                };
                if copy_in(scratch, off, seg[0], len).is_err() {
                    rec_flags |= flags::READ_FAULT;
                    break;
                }
                unsafe { core::ptr::write_volatile(off_slot, off + len) };
                i += 1;
            }
            let off = unsafe { core::ptr::read_volatile(off_slot) } & (2 * HEAD_MAX - 1);
            if off < want && nseg > MAX_IOV as u64 && rec_flags & flags::READ_FAULT == 0 {
                rec_flags |= flags::IOV_CUT;
                count(stat::IOV_CUT, 1);
            }
            off
        }
    };
    let copied = if copied > HEAD_MAX { HEAD_MAX } else { copied };

    // The head is complete when these bytes end with CRLF CRLF; otherwise it may go on, until
    // the budget is spent: then the head is cut (CAPPED), whether or not this syscall had more.
    let mut remaining = budget - copied;
    let mut ended = false;
    if copied >= 4 {
        let tail = unsafe { scratch.add(DATA_HDR + ((copied - 4) & HEAD_MASK) as usize) };
        let tail = unsafe { core::ptr::read_unaligned(tail as *const [u8; 4]) };
        ended = tail == *b"\r\n\r\n";
    }
    if ended {
        remaining = 0;
    } else if remaining == 0 && rec_flags & flags::CAPPED == 0 {
        rec_flags |= flags::CAPPED;
        count(stat::CAPPED, 1);
    }
    if rec_flags & flags::CAPPED != 0 {
        remaining = 0;
    }

    let hdr = DataHeader {
        hdr: header(KIND_DATA, id, args.fd),
        flags: rec_flags,
        syscall: args.syscall,
        total_len: total,
        data_len: copied,
        _pad: 0,
    };
    unsafe { core::ptr::write_unaligned(scratch as *mut DataHeader, hdr) };
    let size = DATA_HDR + (copied & (2 * HEAD_MAX - 1)) as usize;
    // SAFETY: `size` <= DATA_HDR + HEAD_MAX < SCRATCH_SIZE, inside the per-CPU map value.
    let record = unsafe { core::slice::from_raw_parts(scratch as *const u8, size) };
    let sent = EVENTS
        .output::<[u8]>(record, wake_flags(size as u64))
        .is_ok();
    if sent {
        count(stat::DATA_RECORDS, 1);
        count(stat::DATA_BYTES, u64::from(copied));
    } else {
        count(stat::RINGBUF_DROPS, 1);
    }

    let new_dir = DirState {
        budget: remaining,
        lost: if sent { 0 } else { 1 },
    };
    // The entry found above, if any, is updated through the same pointer (a map value stays
    // valid while the program runs): a second lookup cost a hash of the key and a bucket walk
    // per record.
    match state {
        // SAFETY: map value pointer from the successful lookup above.
        Some(s) => *dir_state(unsafe { &mut *s }, write) = new_dir,
        None => {
            let mut st = ConnState {
                cookie: sock.cookie,
                ..ConnState::default()
            };
            *dir_state(&mut st, write) = new_dir;
            let _ = CONNS.insert(key, st, 0);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Socket hooks
// ---------------------------------------------------------------------------------------------

/// `sock_send_length(struct sock *sk, int ret, int flags)`: after every socket send.
#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send(ctx: BtfTracePointContext) -> u32 {
    let _ = try_sock(&ctx, true);
    0
}

/// `sock_recv_length(struct sock *sk, int ret, int flags)`: after every socket receive.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv(ctx: BtfTracePointContext) -> u32 {
    let _ = try_sock(&ctx, false);
    0
}

/// The data call behind a socket hook of an observed process: its arguments (from the task's
/// saved user registers), byte count and socket. `None` for nothing moved, a peek, a process
/// not observed, or a call the programs do not read (counted).
#[inline(always)]
fn sock_call(ctx: &BtfTracePointContext, send: bool) -> Option<(u64, SyscallArgs, i64, Sock)> {
    let ret = ctx.arg::<i64>(1) as i32;
    if ret <= 0 {
        return None;
    }
    if !send && (ctx.arg::<u64>(2) as u32 as u64) & MSG_PEEK != 0 {
        return None;
    }
    let id = bpf_get_current_pid_tgid();
    if !is_traced((id >> 32) as u32) {
        return None;
    }
    // SAFETY: helpers without preconditions; the task is the current one, a trusted pointer.
    let regs = unsafe { generated::bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    let syscall = match hooked(reg(regs, abi::NR)) {
        Some(s) if s != sys::CONNECT && s != sys::ACCEPT && is_write(s) == send => s,
        _ => {
            count(stat::UNREAD_SOCKET_CALLS, 1);
            return None;
        }
    };
    let args = user_args(regs, syscall)?;
    let sk: *mut c_void = ctx.arg(0);
    // SAFETY: `sk` is the tracepoint's `struct sock *`; the helper accepts NULL.
    let cookie = unsafe { generated::bpf_get_socket_cookie(sk) };
    let sock = Sock {
        addr: sk as u64,
        cookie,
    };
    Some((id, args, i64::from(ret), sock))
}

#[inline(always)]
fn try_sock(ctx: &BtfTracePointContext, send: bool) -> Result<(), i64> {
    let Some((id, args, ret, sock)) = sock_call(ctx, send) else {
        return Ok(());
    };
    let Some(slot) = iov_tail(args.syscall) else {
        return data_exit(id, &args, ret, SHAPE_BUFFER, sock);
    };
    // SAFETY: the programs in these arrays are programs of the same hook as this one. On
    // success the call does not return; it fails only if the slot is empty.
    unsafe {
        if send {
            SEND_TAILS.tail_call(ctx, slot)
        } else {
            RECV_TAILS.tail_call(ctx, slot)
        }
    };
    Ok(())
}

macro_rules! tail_sock {
    ($name:ident, $hook:literal, $send:expr, $shape:expr) => {
        /// Tail-called by the hook's program (not attached by itself).
        #[btf_tracepoint(function = $hook)]
        pub fn $name(ctx: BtfTracePointContext) -> u32 {
            if let Some((id, args, ret, sock)) = sock_call(&ctx, $send) {
                let _ = data_exit(id, &args, ret, $shape, sock);
            }
            0
        }
    };
}

tail_sock!(sock_send_iov, "sock_send_length", true, SHAPE_IOV);
tail_sock!(sock_send_msghdr, "sock_send_length", true, SHAPE_MSGHDR);
tail_sock!(sock_recv_iov, "sock_recv_length", false, SHAPE_IOV);
tail_sock!(sock_recv_msghdr, "sock_recv_length", false, SHAPE_MSGHDR);

/// The first bytes an observed process moves on the socket behind an fd (socket hooks). The fd's
/// `CONNS` entry is made whatever the bytes are, so that its next calls find it in one lookup.
/// If the socket's handshake was seen, the fd now names that connection: it is reported as
/// connected or accepted, with its peer. Otherwise the connection predates the observer (or is
/// not TCP): no role or peer, and if the bytes begin a head, its close is asked to be reported.
#[inline(always)]
fn first_sight(id: u64, key: ConnKey, sock: Sock, head_start: bool) -> bool {
    match PEERS.get_ptr_mut(sock.addr) {
        Some(p) => {
            // SAFETY: map value pointer from a successful lookup.
            let p = unsafe { &mut *p };
            p.tgid = key.tgid;
            p.fd = key.fd;
            p.cookie = sock.cookie;
            let kind = match p.role {
                ROLE_CLIENT => KIND_CONNECT,
                ROLE_SERVER => KIND_ACCEPT,
                _ => 0,
            };
            if kind != 0 {
                emit(&ConnEvent {
                    hdr: header(kind, id, key.fd),
                    family: p.family,
                    port: p.port,
                    _pad: 0,
                    addr: p.addr,
                });
            }
        }
        None if head_start => {
            let peer = Peer {
                tgid: key.tgid,
                fd: key.fd,
                cookie: sock.cookie,
                role: ROLE_UNKNOWN,
                family: 0,
                port: 0,
                addr: [0; 16],
            };
            let _ = PEERS.insert(sock.addr, peer, 0);
        }
        None => {}
    }
    let st = ConnState {
        cookie: sock.cookie,
        ..ConnState::default()
    };
    CONNS.insert(key, st, 0).is_ok()
}

/// A field of `sock:inet_sock_set_state` at the offset user space read from its format.
#[inline(always)]
fn state_field<T>(ctx: &TracePointContext, index: u32) -> Result<T, i64> {
    let off = config(index) as usize;
    if off == 0 {
        return Err(0);
    }
    // SAFETY: a bounded read of the tracepoint's record; the helper checks the address.
    unsafe { ctx.read_at::<T>(off & 0xff) }.map_err(i64::from)
}

/// TCP state changes, of every socket of the machine: a finished handshake records the role and
/// peer, a close reports the connection closed to the process that used it.
#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let _ = try_state(&ctx);
    0
}

#[inline(always)]
fn try_state(ctx: &TracePointContext) -> Result<(), i64> {
    let new: i32 = state_field(ctx, config::STATE_NEWSTATE_OFF)?;
    if new != TCP_ESTABLISHED && new != TCP_CLOSE {
        return Ok(());
    }
    let protocol: u16 = state_field(ctx, config::STATE_PROTOCOL_OFF)?;
    if protocol != IPPROTO_TCP {
        return Ok(());
    }
    let sk: u64 = state_field(ctx, config::STATE_SKADDR_OFF)?;
    if new == TCP_CLOSE {
        tcp_closed(sk);
        return Ok(());
    }
    let role = match state_field::<i32>(ctx, config::STATE_OLDSTATE_OFF)? {
        TCP_SYN_SENT => ROLE_CLIENT,
        TCP_SYN_RECV => ROLE_SERVER,
        _ => return Ok(()),
    };
    let family: u16 = state_field(ctx, config::STATE_FAMILY_OFF)?;
    let mut peer = Peer {
        tgid: 0,
        fd: -1,
        cookie: 0,
        role,
        family,
        port: state_field(ctx, config::STATE_DPORT_OFF)?,
        addr: [0; 16],
    };
    match family {
        AF_INET => {
            let a: [u8; 4] = state_field(ctx, config::STATE_DADDR_OFF)?;
            peer.addr[..4].copy_from_slice(&a);
        }
        AF_INET6 => peer.addr = state_field(ctx, config::STATE_DADDR_V6_OFF)?,
        _ => return Ok(()),
    }
    PEERS.insert(sk, peer, 0).map_err(i64::from)
}

/// A TCP connection closed. Reported to the process that moved bytes on it, if its fd still
/// names this connection there.
#[inline(always)]
fn tcp_closed(sk: u64) {
    let Some(p) = PEERS.get_ptr(sk) else {
        return;
    };
    // SAFETY: map value pointer from a successful lookup; copied before the entry is removed.
    let p = unsafe { *p };
    let _ = PEERS.remove(sk);
    if p.cookie == 0 {
        return;
    }
    let key = ConnKey {
        tgid: p.tgid,
        fd: p.fd,
    };
    // SAFETY: map value pointer from a successful lookup.
    match CONNS.get_ptr(key) {
        Some(s) if unsafe { (*s).cookie } == p.cookie => {}
        _ => return,
    }
    // Reported as the process's main thread: the close happens in softirq or in whichever task
    // sent the last segment.
    close((u64::from(p.tgid) << 32) | u64::from(p.tgid), p.fd);
}

// ---------------------------------------------------------------------------------------------
// Connection life cycle
// ---------------------------------------------------------------------------------------------

/// connect: succeeded or in progress (non-blocking); accept: the new fd is the return value.
/// The peer address comes from the sockaddr the process passed.
#[inline(always)]
fn conn_exit(id: u64, args: &SyscallArgs, ret: i64, kind: u32) -> Result<(), i64> {
    let fd = if kind == KIND_CONNECT {
        if ret != 0 && ret != -EINPROGRESS {
            return Ok(());
        }
        args.fd
    } else {
        if ret < 0 {
            return Ok(());
        }
        ret as i32
    };
    let mut ev = ConnEvent {
        hdr: header(kind, id, fd),
        ..ConnEvent::default()
    };
    if args.ptr != 0 {
        let family: u16 = read_user(args.ptr).unwrap_or(0);
        match family {
            AF_INET => {
                ev.family = AF_INET;
                ev.port = u16::from_be(read_user(args.ptr + 2).unwrap_or(0));
                let a: [u8; 4] = read_user(args.ptr + 4).unwrap_or([0; 4]);
                ev.addr[..4].copy_from_slice(&a);
            }
            AF_INET6 => {
                ev.family = AF_INET6;
                ev.port = u16::from_be(read_user(args.ptr + 2).unwrap_or(0));
                ev.addr = read_user(args.ptr + 8).unwrap_or([0; 16]);
            }
            AF_UNIX => ev.family = AF_UNIX,
            // Netlink, packet and other sockets never carry HTTP.
            _ if kind == KIND_CONNECT => return Ok(()),
            _ => {}
        }
    }
    let key = ConnKey {
        tgid: (id >> 32) as u32,
        fd,
    };
    let _ = CONNS.insert(key, ConnState::default(), 0);
    emit(&ev);
    Ok(())
}

/// The connection behind `fd` of process `id` ended: the `close` syscall (syscall hooks) or the
/// TCP close (socket hooks). Only closes of connections the kernel side knows about (connected,
/// accepted, or that carried a head) are reported.
#[inline(always)]
fn close(id: u64, fd: i32) {
    let key = ConnKey {
        tgid: (id >> 32) as u32,
        fd,
    };
    if CONNS.remove(key).is_ok() {
        emit(&header(KIND_CLOSE, id, fd));
    }
}

// ---------------------------------------------------------------------------------------------
// Process life cycle
// ---------------------------------------------------------------------------------------------

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let _ = try_fork(&ctx);
    0
}

/// The forking task is current. Children of observed processes become observed: both new
/// processes (child tid = its tgid) and new threads (harmless extra key, removed at exit).
fn try_fork(ctx: &TracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if !is_traced(tgid) {
        return Ok(());
    }
    let off = config(config::FORK_CHILD_PID_OFF) as usize;
    if off == 0 {
        return Ok(());
    }
    let child: i32 = unsafe { ctx.read_at(off & 0xff) }.map_err(i64::from)?;
    let child = child as u32;
    if config(config::TRACE_ALL) != 1 {
        set_traced(child, true);
    }
    emit(&ForkEvent {
        hdr: header(KIND_FORK, id, -1),
        child_tid: child,
        _pad: 0,
    });
    Ok(())
}

#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if is_traced((id >> 32) as u32) {
        emit(&header(KIND_EXEC, id, -1));
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let _ = try_process_exit(&ctx);
    0
}

/// A thread exits (current). The process leaves `TRACED` when the whole
/// group is dead (or, without `group_dead` in the format, when the leader exits).
fn try_process_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    let tid = id as u32;
    if !is_traced(tgid) {
        return Ok(());
    }
    let group_dead = match config(config::EXIT_GROUP_DEAD_OFF) as usize {
        0 => tid == tgid,
        off => unsafe { ctx.read_at::<u8>(off & 0xff) }.map_err(i64::from)? != 0,
    };
    if tid != tgid {
        set_traced(tid, false);
        emit(&header(KIND_THREAD_EXIT, id, -1));
    }
    if group_dead {
        set_traced(tgid, false);
        let _ = EXCLUDED.remove(tgid);
        emit(&header(KIND_EXIT, id, -1));
    }
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
