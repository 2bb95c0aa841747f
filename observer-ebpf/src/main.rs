//! Kernel side of observer: syscall and sched tracepoints that forward the heads of HTTP/1.x
//! messages of observed processes to user space through one ring buffer.
//!
//! Flow for the data syscalls (`read`, `readv`, `recvfrom`, `recvmsg`, `write`, `writev`,
//! `sendto`, `sendmsg`):
//! 1. `sys_enter_*`: the process filter runs first (one hash lookup for an unobserved process);
//!    for an observed one the arguments are saved per thread in `ARGS`.
//! 2. `sys_exit_*`: once the byte count is known, the first bytes are peeked. Only data that
//!    starts like an HTTP/1.x request or status line, or continues a head in progress on that
//!    connection and direction (`CONNS`), is copied (up to `HEAD_MAX` bytes per message, across
//!    syscalls and up to `MAX_IOV` iovec segments) into a per-CPU scratch buffer and output to
//!    the ring buffer as one variable-length record.
//! 3. A head is in progress until a syscall's bytes end with CRLF CRLF or the budget runs out.
//!
//! Connection life cycle (`connect`, `accept`, `accept4`, `close`) and process life cycle
//! (`sched_process_fork`, `sched_process_exit`) records let user space know roles, peers and
//! generations, and keep the set of observed processes (`TRACED`) in step with forks.
//!
//! Every failure is counted in `STATS` (per CPU) rather than logged on the hot path.
#![no_std]
#![no_main]

use aya_ebpf::{
    cty::c_void,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_user,
        generated,
    },
    macros::{map, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use observer_common::{
    AF_INET, AF_INET6, AF_UNIX, ConnEvent, ConnKey, ConnState, DataHeader, DirState, EventHeader,
    ForkEvent, HEAD_MAX, KIND_ACCEPT, KIND_CLOSE, KIND_CONNECT, KIND_DATA, KIND_EXEC, KIND_EXIT,
    KIND_FORK, KIND_THREAD_EXIT, MAX_IOV, SCRATCH_SIZE, SyscallArgs, config, flags, stat, sys,
};

/// Observed thread-group ids (and the tids of threads forked by them, until they exit).
#[map]
static TRACED: HashMap<u32, u8> = HashMap::with_max_entries(65_536, 0);

/// In `--all` mode, processes user space filtered out (`--exclude-comm`, `--cgroup`,
/// `--container`): they stop producing records after their first ones.
#[map]
static EXCLUDED: HashMap<u32, u8> = HashMap::with_max_entries(65_536, 0);

/// Settings written by user space before attaching (`observer_common::config`).
#[map]
static CONFIG: Array<u64> = Array::with_max_entries(config::COUNT, 0);

/// Syscall arguments saved at entry, keyed by pid_tgid. LRU so that threads that never return
/// from a blocking call cannot fill it.
#[map]
static ARGS: LruHashMap<u64, SyscallArgs> = LruHashMap::with_max_entries(16_384, 0);

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

/// Counters, per CPU (`observer_common::stat`).
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

const DATA_HDR: usize = core::mem::size_of::<DataHeader>();
/// `HEAD_MAX` is a power of two: offsets below it are kept provably in range by this mask.
const HEAD_MASK: u32 = HEAD_MAX - 1;
const EINPROGRESS: i64 = 115;

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

/// The process filter, checked first by every hook.
#[inline(always)]
fn is_traced(tgid: u32) -> bool {
    if TRACED.get_ptr(tgid).is_some() {
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

#[inline(always)]
fn emit<T>(record: &T) {
    if EVENTS.output::<T>(record, 0).is_ok() {
        count(stat::LIFECYCLE_RECORDS, 1);
    } else {
        count(stat::RINGBUF_DROPS, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Data syscalls
// ---------------------------------------------------------------------------------------------

/// How a data syscall passes its bytes. Each exit program is specialised for one shape at
/// compile time, so the verifier only walks the iovec loop in the four programs that need it.
const SHAPE_BUFFER: u8 = 0;
const SHAPE_IOV: u8 = 1;
const SHAPE_MSGHDR: u8 = 2;

macro_rules! data_hooks {
    ($enter:ident, $exit:ident, $sys:expr, $shape:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            let _ = save_args(&ctx, $sys);
            0
        }
        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            let _ = try_data_exit(&ctx, $shape);
            0
        }
    };
}

data_hooks!(sys_enter_read, sys_exit_read, sys::READ, SHAPE_BUFFER);
data_hooks!(sys_enter_readv, sys_exit_readv, sys::READV, SHAPE_IOV);
data_hooks!(
    sys_enter_recvfrom,
    sys_exit_recvfrom,
    sys::RECVFROM,
    SHAPE_BUFFER
);
data_hooks!(
    sys_enter_recvmsg,
    sys_exit_recvmsg,
    sys::RECVMSG,
    SHAPE_MSGHDR
);
data_hooks!(sys_enter_write, sys_exit_write, sys::WRITE, SHAPE_BUFFER);
data_hooks!(sys_enter_writev, sys_exit_writev, sys::WRITEV, SHAPE_IOV);
data_hooks!(sys_enter_sendto, sys_exit_sendto, sys::SENDTO, SHAPE_BUFFER);
data_hooks!(
    sys_enter_sendmsg,
    sys_exit_sendmsg,
    sys::SENDMSG,
    SHAPE_MSGHDR
);

/// Saves (fd, pointer, length) at syscall entry for observed processes. Syscall tracepoint
/// arguments are 8-byte slots from offset 16.
#[inline(always)]
fn save_args(ctx: &TracePointContext, syscall: u32) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    if !is_traced((id >> 32) as u32) {
        return Ok(());
    }
    let fd: u64 = unsafe { ctx.read_at(16) }.map_err(i64::from)?;
    let ptr: u64 = unsafe { ctx.read_at(24) }.map_err(i64::from)?;
    let len: u64 = unsafe { ctx.read_at(32) }.map_err(i64::from)?;
    let args = SyscallArgs {
        syscall,
        fd: fd as i32,
        ptr,
        len,
    };
    // The thread's entry is kept between syscalls and overwritten in place: an LRU update and
    // delete per syscall cost several hundred ns, a lookup and a store a few tens.
    match ARGS.get_ptr_mut(id) {
        Some(p) => {
            // SAFETY: the entry is keyed by this thread's pid_tgid: only this thread writes it,
            // and a syscall does not run concurrently with itself.
            unsafe { *p = args };
            Ok(())
        }
        None => ARGS.insert(id, args, 0).map_err(i64::from),
    }
}

/// `SyscallArgs::syscall` of an entry whose syscall has exited.
const CONSUMED: u32 = u32::MAX;

#[inline(always)]
fn take_args(id: u64) -> Option<SyscallArgs> {
    let p = ARGS.get_ptr_mut(id)?;
    // SAFETY: as in `save_args`: only this thread reads and writes its entry.
    let args = unsafe { *p };
    if args.syscall == CONSUMED {
        return None;
    }
    // SAFETY: as above.
    unsafe { (*p).syscall = CONSUMED };
    Some(args)
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
fn try_data_exit(ctx: &TracePointContext, shape: u8) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let Some(args) = take_args(id) else {
        return Ok(());
    };
    let ret: i64 = unsafe { ctx.read_at(16) }.map_err(i64::from)?;
    if ret <= 0 {
        return Ok(());
    }
    let total = ret as u64;
    let write = is_write(args.syscall);
    let src = source(&args, shape)?;

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
    let state = CONNS.get_ptr_mut(key);
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
    let sent = EVENTS.output::<[u8]>(record, 0).is_ok();
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
    match CONNS.get_ptr_mut(key) {
        Some(s) => *dir_state(unsafe { &mut *s }, write) = new_dir,
        None => {
            let mut st = ConnState::default();
            *dir_state(&mut st, write) = new_dir;
            let _ = CONNS.insert(key, st, 0);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Connection life cycle
// ---------------------------------------------------------------------------------------------

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let _ = save_args(&ctx, sys::CONNECT);
    0
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    let _ = try_conn_exit(&ctx, KIND_CONNECT);
    0
}

#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    let _ = save_args(&ctx, sys::ACCEPT);
    0
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    let _ = try_conn_exit(&ctx, KIND_ACCEPT);
    0
}

#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    let _ = save_args(&ctx, sys::ACCEPT);
    0
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    let _ = try_conn_exit(&ctx, KIND_ACCEPT);
    0
}

/// connect: succeeded or in progress (non-blocking); accept: the new fd is the return value.
/// The peer address comes from the sockaddr the process passed.
fn try_conn_exit(ctx: &TracePointContext, kind: u32) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let Some(args) = take_args(id) else {
        return Ok(());
    };
    let ret: i64 = unsafe { ctx.read_at(16) }.map_err(i64::from)?;
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

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let _ = try_close(&ctx);
    0
}

/// Only closes of connections the kernel side knows about (connected, accepted, or that carried
/// a head) are reported.
fn try_close(ctx: &TracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if !is_traced(tgid) {
        return Ok(());
    }
    let fd: u64 = unsafe { ctx.read_at(16) }.map_err(i64::from)?;
    let key = ConnKey {
        tgid,
        fd: fd as i32,
    };
    if CONNS.remove(key).is_ok() {
        emit(&header(KIND_CLOSE, id, fd as i32));
    }
    Ok(())
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
    if config(config::TRACE_ALL) != 1 && TRACED.insert(child, 1, 0).is_err() {
        warn!(
            ctx,
            "observer: traced-process map full, task {} is not observed", child
        );
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
    let _ = try_exit(&ctx);
    0
}

/// A thread exits (current). Its saved arguments go; the process leaves `TRACED` when the whole
/// group is dead (or, without `group_dead` in the format, when the leader exits).
fn try_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    let tid = id as u32;
    let _ = ARGS.remove(id);
    if !is_traced(tgid) {
        return Ok(());
    }
    let group_dead = match config(config::EXIT_GROUP_DEAD_OFF) as usize {
        0 => tid == tgid,
        off => unsafe { ctx.read_at::<u8>(off & 0xff) }.map_err(i64::from)? != 0,
    };
    if tid != tgid {
        let _ = TRACED.remove(tid);
        emit(&header(KIND_THREAD_EXIT, id, -1));
    }
    if group_dead {
        let _ = TRACED.remove(tgid);
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
