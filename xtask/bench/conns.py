#!/usr/bin/env python3
"""Opens N keep-alive HTTP/1.1 connections to 127.0.0.1:PORT, sends one request with trace headers
on each and reads its response, prints `OPEN <n>`, keeps them all open HOLD seconds, closes them
and prints `CLOSED`. Used by `cargo xtask bench` (memory item)."""

import argparse
import asyncio
import resource
import sys

REQUEST = (
    b"GET /item HTTP/1.1\r\nHost: bench\r\n"
    b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
    b"x-b3-traceid: 4bf92f3577b34da6a3ce929d0e0e4736\r\nx-b3-spanid: 00f067aa0ba902b7\r\n"
    b"x-b3-sampled: 1\r\n\r\n"
)


async def one(port, gate):
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return writer


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=5.0)
    a = ap.parse_args()
    want = a.conns + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    gate = asyncio.Semaphore(256)
    writers = await asyncio.gather(*(one(a.port, gate) for _ in range(a.conns)))
    print(f"OPEN {len(writers)}", flush=True)
    await asyncio.sleep(a.hold)
    for w in writers:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
    print("CLOSED", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
