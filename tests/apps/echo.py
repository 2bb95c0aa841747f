#!/usr/bin/env python3
"""Header-echo server for tests.

Answers every request (any method, any path) with 200 and a JSON object of
the request headers it received: {lower-cased name: value}; a name received
more than once maps to its values joined with ", ".  With --log FILE the same
JSON is appended to FILE as one line per request (written and flushed before
the response is sent).  With --conn-log FILE one line "conn <peer port>" is
appended per accepted TCP connection (lets a test count downstream
connections, i.e. check keep-alive reuse).  An optional ?delay_ms=N in the
query string delays the answer by N ms.

CLI:   echo.py --port P [--log FILE] [--conn-log FILE]
Prints exactly one line "LISTENING <port>" on stdout; exits 0 on SIGTERM/SIGINT.
"""

import argparse
import http.server
import json
import signal
import socket
import sys
import threading
import time
import urllib.parse

_log_lock = threading.Lock()


def _append(path, line):
    if not path:
        return
    with _log_lock:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo.py"
    sys_version = ""

    def version_string(self):
        return self.server_version
    log_file = None
    conn_log_file = None

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        _append(self.conn_log_file, "conn %d" % self.client_address[1])

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, socket.timeout):
            pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        line = json.dumps(headers, sort_keys=True)
        _append(self.log_file, line)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        delay = query.get("delay_ms")
        if delay:
            try:
                time.sleep(int(delay[0]) / 1000.0)
            except ValueError:
                pass
        data = line.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _answer


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def main():
    p = argparse.ArgumentParser(description="header-echo test server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", default=None)
    p.add_argument("--conn-log", default=None)
    args = p.parse_args()
    Handler.log_file = args.log
    Handler.conn_log_file = args.conn_log
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server = Server(("127.0.0.1", args.port), Handler)
        sys.stdout.write("LISTENING %d\n" % server.server_address[1])
        sys.stdout.flush()
        server.serve_forever()
    except _Stop:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
