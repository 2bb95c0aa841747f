#!/usr/bin/env python3
"""Test service instrumented with the OpenTelemetry Python SDK (B3 multi-header).

Needs opentelemetry-sdk and opentelemetry-propagator-b3 (versions pinned in
requirements-otel.txt), e.g. in a venv:
    python3 -m venv /tmp/otelvenv
    /tmp/otelvenv/bin/pip install -r tests/apps/requirements-otel.txt
    /tmp/otelvenv/bin/python tests/apps/otel_svc.py --port 0 --downstream http://127.0.0.1:PORT

Same server/downstream machinery as svc.py (imported from it: ThreadingHTTPServer
inbound, http.client downstream, same --keepalive meaning).

Routes:
  /leaf     -> 200 "ok" (optional ?delay_ms=N)
  /forward  -> extracts the inbound context with B3MultiFormat, starts a SERVER
               span as its child, starts a CLIENT span, injects it with
               B3MultiFormat into the downstream request (x-b3-traceid: same
               trace id, x-b3-spanid: the CLIENT span's new id, x-b3-sampled),
               adds x-b3-parentspanid = the CLIENT span's parent span id
               (B3MultiFormat.inject does not write that header), and calls
               downstream GET /leaf (passing ?delay_ms through).  No other
               inbound header is copied.
               By default the CLIENT span's parent is the inbound (remote)
               span, so downstream x-b3-parentspanid == inbound x-b3-spanid.
               With --nested the CLIENT span is a child of the SERVER span
               (the usual OTel nesting), so x-b3-parentspanid is the SERVER
               span's id instead.
Note: B3MultiFormat.extract prefers a single "b3" header over the x-b3-*
headers when both are present.

The TracerProvider has no span processor / exporter: spans are created and
dropped, nothing is exported anywhere.
"""

import argparse
import os
import sys

# no SDK auto-configuration or exporters, ever
os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
os.environ.setdefault("OTEL_METRICS_EXPORTER", "none")
os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")

sys.dont_write_bytecode = True  # don't leave __pycache__/ in tests/apps
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opentelemetry import trace  # noqa: E402
from opentelemetry.propagators.b3 import B3MultiFormat  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.trace import SpanKind, format_span_id  # noqa: E402

import svc  # noqa: E402

PROPAGATOR = B3MultiFormat()
PROVIDER = TracerProvider()  # no span processors -> no export
TRACER = PROVIDER.get_tracer("otel_svc")


class OtelHandler(svc.Handler):
    server_version = "otel_svc.py"
    nested = False

    def r_forward(self, query):
        carrier = {}
        for name, value in self.headers.items():
            carrier.setdefault(name.lower(), value)
        remote_ctx = PROPAGATOR.extract(carrier=carrier)
        has_remote = trace.get_current_span(remote_ctx).get_span_context().is_valid
        with TRACER.start_as_current_span(
            "GET /forward", context=remote_ctx, kind=SpanKind.SERVER
        ):
            # default: CLIENT span parented on the inbound span; --nested (or no
            # inbound context): parented on the current SERVER span
            client_parent = remote_ctx if (has_remote and not self.nested) else None
            with TRACER.start_as_current_span(
                "GET /leaf", context=client_parent, kind=SpanKind.CLIENT
            ) as client_span:
                carrier_out = {}
                PROPAGATOR.inject(carrier_out)
                headers = list(carrier_out.items())
                parent = client_span.parent
                if parent is not None and parent.is_valid:
                    headers.append(("x-b3-parentspanid", format_span_id(parent.span_id)))
                return 200, "%d" % self.call(query, headers)


OtelHandler.routes = {
    "/leaf": svc.Handler.r_leaf,
    "/forward": OtelHandler.r_forward,
}


def main():
    p = argparse.ArgumentParser(description="OpenTelemetry (B3) instrumented test service")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--downstream", default=None)
    p.add_argument("--keepalive", action="store_true")
    p.add_argument("--nested", action="store_true",
                   help="make the CLIENT span a child of the SERVER span")
    args = p.parse_args()
    OtelHandler.nested = args.nested
    svc.serve(OtelHandler, args)


if __name__ == "__main__":
    main()
