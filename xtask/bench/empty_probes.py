"""Item 2's floor: attaches BPF programs that return at once to the raw tracepoints named on the
command line (default `sys_enter` and `sys_exit`; the bench passes the tracepoints of the
observer's data hooks: those, or `sock_send_length` and `sock_recv_length`), prints `READY`, and
holds them until stdin closes or the process is killed; the programs go with it.

What a syscall pays with these attached is the cost of the hooks themselves on this kernel: with
the syscall tracepoints, the syscall slow path every task takes once one is enabled and two
program dispatches; with the socket tracepoints, one dispatch per socket call. The observer's own
share is what it adds on top.

Uses the bpf(2) syscall directly (ctypes), so the bench needs nothing but Python and root.
"""

import ctypes
import os
import struct
import sys

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
ATTR_SIZE = 128

libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, ATTR_SIZE)
    fd = libc.syscall(SYS_BPF, cmd, buf, ATTR_SIZE)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return fd

# r0 = 0; exit
INSNS = ctypes.create_string_buffer(struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0))
LICENSE = ctypes.create_string_buffer(b"GPL")


def attach(tracepoint: bytes) -> int:
    attr = bytearray(ATTR_SIZE)
    struct.pack_into(
        "<IIQQ", attr, 0, BPF_PROG_TYPE_RAW_TRACEPOINT, 2, ctypes.addressof(INSNS), ctypes.addressof(LICENSE)
    )
    prog = bpf(BPF_PROG_LOAD, bytes(attr))
    name = ctypes.create_string_buffer(tracepoint)
    return bpf(BPF_RAW_TRACEPOINT_OPEN, struct.pack("<QI", ctypes.addressof(name), prog))


def main() -> int:
    try:
        names = sys.argv[1:] or ["sys_enter", "sys_exit"]
        links = [attach(n.encode()) for n in names]
    except OSError as e:
        print(f"empty_probes: cannot attach: {e}", file=sys.stderr)
        return 1
    print(f"READY {len(links)}", flush=True)
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
