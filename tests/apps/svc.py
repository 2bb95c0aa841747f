#!/usr/bin/env python3
"""Test service (Python runtime) for the trace-header propagation observer.

Inbound:    http.server.ThreadingHTTPServer, HTTP/1.1 with keep-alive, one
            thread per accepted connection (all requests of a keep-alive
            connection are served on that thread).
Downstream: http.client.HTTPConnection (blocking sockets, on the handler
            thread).  Without --keepalive: a new connection per call, sent
            with "Connection: close" and closed after the response.  With
            --keepalive: one persistent connection per handler thread,
            reconnected (and the call retried once) on failure.

CLI:    svc.py --port P [--downstream http://127.0.0.1:PORT] [--keepalive]
Prints exactly one line "LISTENING <port>" on stdout, then serves until
SIGTERM/SIGINT (exit 0).  See README.md for the routes.
"""

import argparse
import http.client
import http.server
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.parse

TRACE_HEADERS = (
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
    "x-request-id",
    "x-ot-span-context",
)
PARTIAL_HEADERS = ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "traceparent")

DOWNSTREAM_TIMEOUT = 30.0
MAX_FANOUT = 1000


class DownstreamError(Exception):
    pass


class Downstream:
    """Makes GET requests to the downstream service with http.client."""

    def __init__(self, url, keepalive):
        self.host = None
        self.port = None
        if url:
            parsed = urllib.parse.urlsplit(url)
            self.host = parsed.hostname or "127.0.0.1"
            self.port = parsed.port or 80
        self.keepalive = keepalive
        self._local = threading.local()

    def _new_conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=DOWNSTREAM_TIMEOUT)

    def _once(self, conn, path, headers):
        # putrequest/putheader so repeated header names are preserved
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()  # always drain, so a persistent connection can be reused
        return resp.status

    def get(self, path, headers):
        """headers: list of (name, value). Returns the downstream status."""
        if self.host is None:
            raise DownstreamError("no --downstream configured")
        hdrs = list(headers)
        if not self.keepalive:
            hdrs.append(("Connection", "close"))
            conn = self._new_conn()
            try:
                return self._once(conn, path, hdrs)
            except (OSError, http.client.HTTPException) as e:
                raise DownstreamError(str(e)) from e
            finally:
                conn.close()
        # keep-alive: one persistent connection per handler thread
        conn = getattr(self._local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = self._local.conn = self._new_conn()
        try:
            return self._once(conn, path, hdrs)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self._local.conn = None
            if not reused:
                raise DownstreamError(str(e)) from e
        # The reused connection was stale (peer closed it): reconnect once.
        conn = self._local.conn = self._new_conn()
        try:
            return self._once(conn, path, hdrs)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self._local.conn = None
            raise DownstreamError(str(e)) from e

    def close_thread_conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def new_trace_headers():
    trace_id = secrets.token_hex(16)
    return [
        ("x-b3-traceid", trace_id),
        ("x-b3-spanid", secrets.token_hex(8)),
        ("x-b3-sampled", "1"),
        ("traceparent", "00-%s-%s-01" % (trace_id, secrets.token_hex(8))),
    ]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "svc.py"
    sys_version = ""

    def version_string(self):
        return self.server_version
    downstream = None  # set in serve()
    routes = {}  # path -> unbound method(self, query) -> (status, body)

    # ---- plumbing -------------------------------------------------------
    def log_message(self, format, *args):  # keep quiet
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, socket.timeout):
            pass
        finally:
            if self.downstream is not None:
                self.downstream.close_thread_conn()

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def copy_headers(self, names):
        out = []
        for name in names:
            for value in self.headers.get_all(name) or ():
                out.append((name, value))
        return out

    # ---- routing --------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        route = self.routes.get(url.path)
        if route is None:
            self.reply(404, "not found\n")
            return
        try:
            status, body = route(self, query)
        except DownstreamError as e:
            status, body = 502, "downstream error: %s\n" % e
        except ValueError as e:
            status, body = 400, "bad request: %s\n" % e
        self.reply(status, body)

    def downstream_path(self, query):
        delay = query.get("delay_ms")
        if delay:
            return "/leaf?delay_ms=" + urllib.parse.quote(delay[0])
        return "/leaf"

    def call(self, query, headers):
        return self.downstream.get(self.downstream_path(query), headers)

    # ---- routes ---------------------------------------------------------
    def r_leaf(self, query):
        delay = query.get("delay_ms")
        if delay:
            time.sleep(int(delay[0]) / 1000.0)
        return 200, "ok"

    def r_forward(self, query):
        return 200, "%d" % self.call(query, self.copy_headers(TRACE_HEADERS))

    def r_drop(self, query):
        return 200, "%d" % self.call(query, [])

    def r_partial(self, query):
        return 200, "%d" % self.call(query, self.copy_headers(PARTIAL_HEADERS))

    def r_newtrace(self, query):
        return 200, "%d" % self.call(query, new_trace_headers())

    def r_fanout(self, query):
        n = int(query.get("n", ["1"])[0])
        n = max(0, min(n, MAX_FANOUT))
        statuses = []
        for _ in range(n):
            statuses.append("%d" % self.call(query, self.copy_headers(TRACE_HEADERS)))
        return 200, " ".join(statuses)

    def r_mixed(self, query):
        if query.get("drop", ["0"])[0] == "1":
            return self.r_drop(query)
        return self.r_forward(query)


ROUTES = {
    "/leaf": Handler.r_leaf,
    "/forward": Handler.r_forward,
    "/drop": Handler.r_drop,
    "/partial": Handler.r_partial,
    "/newtrace": Handler.r_newtrace,
    "/fanout": Handler.r_fanout,
    "/mixed": Handler.r_mixed,
}
Handler.routes = ROUTES


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def handle_error(self, request, client_address):  # keep quiet
        pass


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--downstream", default=None)
    p.add_argument("--keepalive", action="store_true")
    p.add_argument("--name", default=None,
                   help="process name (comm) to show, e.g. in the observer's output")
    return p.parse_args(argv)


def set_process_name(name):
    """prctl(PR_SET_NAME): the name ps, /proc/PID/comm and the observer report (max 15 bytes)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode()[:15], 0, 0, 0)


def serve(handler_cls, args):
    """Shared by otel_svc.py: bind, print LISTENING, serve until a signal."""
    if getattr(args, "name", None):
        set_process_name(args.name)
    handler_cls.downstream = Downstream(args.downstream, args.keepalive)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server = Server(("127.0.0.1", args.port), handler_cls)
        sys.stdout.write("LISTENING %d\n" % server.server_address[1])
        sys.stdout.flush()
        server.serve_forever()
    except _Stop:
        pass
    sys.exit(0)


def main():
    serve(Handler, parse_args())


if __name__ == "__main__":
    main()
