#!/usr/bin/env bash
# Self-test of the test services in tests/apps/ (svc.py, svc.js, Svc.java,
# otel_svc.py, echo.py).  Everything runs on 127.0.0.1.
#
# For each runtime it starts, on port 0:
#   leaf   (no downstream)            -> /leaf, delays, 404, keep-alive, concurrency
#   mid    (--downstream echo)        -> every route, headers checked at echo.py
#   mid-ka (--downstream echo --keepalive)
#   chain  (--downstream leaf)        -> end-to-end, then 502 once leaf is gone
# and otel_svc.py (default and --nested) in front of echo.py.
#
# Usage: tests/apps/selftest.sh [py] [js] [java] [otel]   (default: all)
# Env:   OTEL_PYTHON  python with the packages of requirements-otel.txt
#                     (default /tmp/otelvenv/bin/python, created if missing)
# Exits non-zero on any failure; last line is "N passed, N failed".
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WANT="${*:-py js java otel}"
TMP="$(mktemp -d /tmp/apps-selftest.XXXXXX)"
PASS=0
FAIL=0
declare -A PIDS=()   # name -> pid
declare -A PORTS=()  # name -> port

cleanup() {
  local name pid
  for name in "${!PIDS[@]}"; do
    pid="${PIDS[$name]}"
    kill -TERM "$pid" 2>/dev/null
  done
  for name in "${!PIDS[@]}"; do
    wait "${PIDS[$name]}" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
wants() { [[ " $WANT " == *" $1 "* ]]; }

# start NAME CMD...  (backgrounds CMD; PORTS[NAME] set later by await)
start() {
  local name="$1"; shift
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS[$name]=$!
}

# await NAME: wait for the LISTENING line (up to 90 s; javac + JVM start)
await() {
  local name="$1" i line
  for ((i = 0; i < 900; i++)); do
    if [[ -s "$TMP/$name.out" ]]; then
      line="$(head -n1 "$TMP/$name.out")"
      if [[ "$line" =~ ^LISTENING\ ([0-9]+)$ ]] && [[ "$(tail -c1 "$TMP/$name.out" | od -An -c | tr -d ' ')" == '\n' ]]; then
        PORTS[$name]="${BASH_REMATCH[1]}"
        return 0
      fi
    fi
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  fail "$name: no LISTENING line; stdout: $(head -c 300 "$TMP/$name.out"); stderr: $(tail -c 1500 "$TMP/$name.err")"
  return 1
}

# stop NAME: SIGTERM, expect exit 0 within 5 s
stop() {
  local name="$1" pid="${PIDS[$1]}" i rc
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    fail "$name: still running 5 s after SIGTERM"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid"; rc=$?
  unset "PIDS[$name]"
  if [[ $rc -eq 0 ]]; then ok "$name: SIGTERM -> exit 0"; else fail "$name: SIGTERM -> exit $rc"; fi
  local lines
  lines="$(wc -l <"$TMP/$name.out")"
  if [[ "$lines" -eq 1 ]]; then ok "$name: stdout is exactly the LISTENING line"
  else fail "$name: stdout has $lines lines: $(head -c 300 "$TMP/$name.out")"; fi
}

# ---------------------------------------------------------------------------
# Header checker: check.py LOG MODE COUNT SENT_JSON
cat >"$TMP/check.py" <<'PY'
import json, re, sys
log, mode, count, sent = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
TRACE = ["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
         "b3", "traceparent", "tracestate", "x-request-id", "x-ot-span-context"]
PARTIAL = ["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "traceparent"]
HEX32, HEX16 = re.compile(r"[0-9a-f]{32}"), re.compile(r"[0-9a-f]{16}")
lines = [l for l in open(log).read().splitlines() if l.strip()]
errs = []
if len(lines) != count:
    errs.append("expected %d downstream request(s), echo saw %d" % (count, len(lines)))
for i, l in enumerate(lines):
    got = json.loads(l)
    for k in got:
        if k.startswith("x-selftest"):
            errs.append("#%d: non-trace header %s was forwarded" % (i, k))
    tr = {k: v for k, v in got.items() if k in TRACE}
    if mode in ("forward", "partial", "drop"):
        names = {"forward": TRACE, "partial": PARTIAL, "drop": []}[mode]
        want = {k: sent[k] for k in names if k in sent}
        if tr != want:
            missing = sorted(set(want) - set(tr))
            extra = sorted(set(tr) - set(want))
            changed = sorted(k for k in set(tr) & set(want) if tr[k] != want[k])
            errs.append("#%d: trace headers differ: missing=%s extra=%s changed=%s"
                        % (i, missing, extra, changed))
    elif mode == "newtrace":
        keys = {"x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "traceparent"}
        if set(tr) != keys:
            errs.append("#%d: newtrace header set %s" % (i, sorted(tr)))
            continue
        t = tr["x-b3-traceid"]
        if not HEX32.fullmatch(t) or t == sent.get("x-b3-traceid"):
            errs.append("#%d: bad new x-b3-traceid %r" % (i, t))
        if not HEX16.fullmatch(tr["x-b3-spanid"]) or tr["x-b3-spanid"] == sent.get("x-b3-spanid"):
            errs.append("#%d: bad new x-b3-spanid %r" % (i, tr["x-b3-spanid"]))
        if tr["x-b3-sampled"] != "1":
            errs.append("#%d: x-b3-sampled %r" % (i, tr["x-b3-sampled"]))
        m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", tr["traceparent"])
        if not m or m.group(1) != t or m.group(1) in sent.get("traceparent", ""):
            errs.append("#%d: bad new traceparent %r" % (i, tr["traceparent"]))
    elif mode in ("otel", "otel-nested", "otel-root"):
        keys = {"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled"}
        if set(tr) != keys:
            errs.append("#%d: otel header set %s" % (i, sorted(tr)))
            continue
        t, s, p = tr["x-b3-traceid"], tr["x-b3-spanid"], tr["x-b3-parentspanid"]
        if not (HEX32.fullmatch(t) and HEX16.fullmatch(s) and HEX16.fullmatch(p)):
            errs.append("#%d: malformed ids %r" % (i, tr))
        if tr["x-b3-sampled"] != "1":
            errs.append("#%d: x-b3-sampled %r" % (i, tr["x-b3-sampled"]))
        if mode == "otel-root":
            if t == sent.get("x-b3-traceid") or p == s:
                errs.append("#%d: expected a fresh root trace, got %r" % (i, tr))
            continue
        if t != sent["x-b3-traceid"]:
            errs.append("#%d: trace id %s != inbound %s" % (i, t, sent["x-b3-traceid"]))
        if s == sent["x-b3-spanid"]:
            errs.append("#%d: span id not renewed (%s)" % (i, s))
        if mode == "otel" and p != sent["x-b3-spanid"]:
            errs.append("#%d: parent span id %s != inbound span id %s" % (i, p, sent["x-b3-spanid"]))
        if mode == "otel-nested" and p in (sent["x-b3-spanid"], s):
            errs.append("#%d: nested parent span id %s should be the SERVER span's own id" % (i, p))
    else:
        errs.append("unknown mode " + mode)
if errs:
    print("; ".join(errs[:6]))
    sys.exit(1)
PY

# A full, mutually consistent set of the 10 trace headers, plus a non-trace
# sentinel header that must never be forwarded.
T=463ac35c9f6413ad48485a3953bb6124
S=a2fb4a1d1a96d312
P=0020000000000001
HDRS=(
  -H "x-b3-traceid: $T"
  -H "x-b3-spanid: $S"
  -H "x-b3-parentspanid: $P"
  -H "x-b3-sampled: 1"
  -H "x-b3-flags: 0"
  -H "b3: $T-$S-1-$P"
  -H "traceparent: 00-$T-$S-01"
  -H "tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
  -H "x-request-id: 6f1f0c0e-8a7b-4a4e-9d3f-3b1e2a5c7d90"
  -H "x-ot-span-context: ${T:16};$S;$P;cs"
  -H "x-selftest-sentinel: must-not-be-forwarded"
)
SENT=$(cat <<EOF
{"x-b3-traceid": "$T", "x-b3-spanid": "$S", "x-b3-parentspanid": "$P",
 "x-b3-sampled": "1", "x-b3-flags": "0", "b3": "$T-$S-1-$P",
 "traceparent": "00-$T-$S-01", "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
 "x-request-id": "6f1f0c0e-8a7b-4a4e-9d3f-3b1e2a5c7d90", "x-ot-span-context": "${T:16};$S;$P;cs"}
EOF
)

ELOG="$TMP/echo.log"
CLOG="$TMP/echo.conn"

# req NAME PATH -> sets CODE, BODY, SECS   (extra curl args after PATH)
req() {
  local name="$1" path="$2"; shift 2
  local out
  out="$(curl -sS --max-time 40 -o "$TMP/body" -w '%{http_code} %{time_total}' "$@" \
         "http://127.0.0.1:${PORTS[$name]}$path" 2>"$TMP/curl.err")"
  CODE="${out%% *}"
  SECS="${out##* }"
  BODY="$(cat "$TMP/body" 2>/dev/null)"
}

# route_check NAME PATH MODE COUNT EXPECTED_BODY
route_check() {
  local name="$1" path="$2" mode="$3" count="$4" want_body="$5" msg
  : >"$ELOG"
  req "$name" "$path" "${HDRS[@]}"
  if [[ "$CODE" != 200 || "$BODY" != "$want_body" ]]; then
    fail "$name $path: got $CODE '$BODY', want 200 '$want_body' $(cat "$TMP/curl.err")"
    return
  fi
  if msg="$(python3 "$TMP/check.py" "$ELOG" "$mode" "$count" "$SENT")"; then
    ok "$name $path: downstream headers ($mode x$count)"
  else
    fail "$name $path: $msg"
  fi
}

# secs_ge A B : A >= B (floats)
secs_ge() { python3 -c "import sys; sys.exit(0 if float('$1') >= float('$2') else 1)"; }

leaf_checks() {
  local name="$1" r hdr
  req "$name" /leaf
  [[ "$CODE" == 200 && "$BODY" == ok ]] && ok "$name /leaf -> 200 ok" || fail "$name /leaf -> $CODE '$BODY'"
  hdr="$(curl -sS -D - -o /dev/null "http://127.0.0.1:${PORTS[$name]}/leaf" | tr -d '\r' | tr 'A-Z' 'a-z')"
  if grep -qx 'content-length: 2' <<<"$hdr" && grep -qx 'content-type: text/plain' <<<"$hdr" \
     && head -n1 <<<"$hdr" | grep -q '^http/1.1 200'; then
    ok "$name /leaf: HTTP/1.1, Content-Length, Content-Type: text/plain"
  else
    fail "$name /leaf response head: $hdr"
  fi
  req "$name" '/leaf?delay_ms=300'
  if [[ "$CODE" == 200 ]] && secs_ge "$SECS" 0.3; then ok "$name /leaf?delay_ms=300 took ${SECS}s"
  else fail "$name /leaf?delay_ms=300 -> $CODE in ${SECS}s"; fi
  hdr="$(curl -sS -D - -o /dev/null "http://127.0.0.1:${PORTS[$name]}/nope" | tr -d '\r' | tr 'A-Z' 'a-z')"
  if head -n1 <<<"$hdr" | grep -q '^http/1.1 404' && grep -q '^content-length: ' <<<"$hdr"; then
    ok "$name /nope -> 404 with Content-Length"
  else
    fail "$name /nope response head: $hdr"
  fi
  # inbound keep-alive: second request on the same connection needs no connect
  r="$(curl -sS -o /dev/null -o /dev/null -w '%{num_connects} ' \
        "http://127.0.0.1:${PORTS[$name]}/leaf" "http://127.0.0.1:${PORTS[$name]}/leaf")"
  [[ "$r" == "1 0 " ]] && ok "$name: inbound keep-alive reuses the connection" \
                        || fail "$name: inbound keep-alive num_connects='$r'"
}

concurrency_check() {
  local name="$1" n="$2" limit="$3" t0 t1 i cpids=()
  t0=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    curl -sS -o /dev/null --max-time 20 "http://127.0.0.1:${PORTS[$name]}/leaf?delay_ms=500" &
    cpids+=($!)
  done
  wait "${cpids[@]}"
  t1=$(date +%s.%N)
  local el
  el=$(python3 -c "print(round($t1 - $t0, 2))")
  if secs_ge "$limit" "$el"; then ok "$name: $n concurrent /leaf?delay_ms=500 in ${el}s"
  else fail "$name: $n concurrent /leaf?delay_ms=500 took ${el}s (limit ${limit}s)"; fi
}

# conn_check NAME WANT_CONNS: 3 x /forward on one inbound connection
conn_check() {
  local name="$1" want="$2" got msg
  : >"$ELOG"; : >"$CLOG"
  curl -sS -o /dev/null -o /dev/null -o /dev/null "${HDRS[@]}" \
    "http://127.0.0.1:${PORTS[$name]}/forward" "http://127.0.0.1:${PORTS[$name]}/forward" \
    "http://127.0.0.1:${PORTS[$name]}/forward"
  got=$(grep -c '^conn ' "$CLOG")
  [[ "$got" == "$want" ]] && ok "$name: 3 calls used $got downstream connection(s)" \
                          || fail "$name: 3 calls used $got downstream connection(s), want $want"
  if msg="$(python3 "$TMP/check.py" "$ELOG" forward 3 "$SENT")"; then ok "$name: 3x /forward headers"
  else fail "$name 3x /forward: $msg"; fi
}

mid_checks() {
  local name="$1"
  route_check "$name" /forward forward 1 200
  route_check "$name" /drop drop 1 200
  route_check "$name" /partial partial 1 200
  route_check "$name" /newtrace newtrace 1 200
  route_check "$name" '/fanout?n=3' forward 3 "200 200 200"
  route_check "$name" '/mixed?drop=1' drop 1 200
  route_check "$name" '/mixed?drop=0' forward 1 200
  route_check "$name" /mixed forward 1 200
  route_check "$name" '/partial?delay_ms=250' partial 1 200
  if secs_ge "$SECS" 0.25; then ok "$name: delay_ms passed downstream (${SECS}s)"
  else fail "$name: delay_ms not passed downstream (${SECS}s)"; fi
  : >"$ELOG"
  req "$name" /nope "${HDRS[@]}"
  [[ "$CODE" == 404 && ! -s "$ELOG" ]] && ok "$name /nope -> 404, no downstream call" \
                                       || fail "$name /nope -> $CODE"
}

# ---------------------------------------------------------------------------
declare -A CMD
CMD[py]="python3 $HERE/svc.py"
CMD[js]="node $HERE/svc.js"
CMD[java]="java $HERE/Svc.java"

start echo python3 "$HERE/echo.py" --port 0 --log "$ELOG" --conn-log "$CLOG"
await echo || exit 1
ECHO="http://127.0.0.1:${PORTS[echo]}"

RUNTIMES=()
for r in py js java; do wants "$r" && RUNTIMES+=("$r"); done

for r in "${RUNTIMES[@]}"; do
  # shellcheck disable=SC2086
  start "$r-leaf" ${CMD[$r]} --port 0
  # shellcheck disable=SC2086
  start "$r-mid" ${CMD[$r]} --port 0 --downstream "$ECHO"
  # shellcheck disable=SC2086
  start "$r-mid-ka" ${CMD[$r]} --port 0 --downstream "$ECHO" --keepalive
done
for r in "${RUNTIMES[@]}"; do
  await "$r-leaf" || continue
  # shellcheck disable=SC2086
  start "$r-chain" ${CMD[$r]} --port 0 --downstream "http://127.0.0.1:${PORTS[$r-leaf]}" --keepalive
done

if wants otel; then
  OTEL_PYTHON="${OTEL_PYTHON:-/tmp/otelvenv/bin/python}"
  if [[ ! -x "$OTEL_PYTHON" ]] || ! "$OTEL_PYTHON" -c 'import opentelemetry.sdk, opentelemetry.propagators.b3' 2>/dev/null; then
    echo "# installing requirements-otel.txt into /tmp/otelvenv"
    python3 -m venv /tmp/otelvenv && /tmp/otelvenv/bin/pip install -q -r "$HERE/requirements-otel.txt" >&2
    OTEL_PYTHON=/tmp/otelvenv/bin/python
  fi
  start otel "$OTEL_PYTHON" "$HERE/otel_svc.py" --port 0 --downstream "$ECHO"
  start otel-nested "$OTEL_PYTHON" "$HERE/otel_svc.py" --port 0 --downstream "$ECHO" --nested --keepalive
fi

for r in "${RUNTIMES[@]}"; do
  echo "# runtime $r"
  [[ -n "${PORTS[$r-leaf]:-}" ]] || continue
  leaf_checks "$r-leaf"
  case "$r" in
    py|js) concurrency_check "$r-leaf" 10 1.8 ;;
    java) concurrency_check "$r-leaf" 4 1.8 ;;  # pool of 4 threads
  esac
  if await "$r-mid"; then
    conn_check "$r-mid" 3
    mid_checks "$r-mid"
  fi
  if await "$r-mid-ka"; then
    conn_check "$r-mid-ka" 1
    mid_checks "$r-mid-ka"
  fi
  if await "$r-chain"; then
    req "$r-chain" '/forward?delay_ms=200' "${HDRS[@]}"
    if [[ "$CODE" == 200 && "$BODY" == 200 ]] && secs_ge "$SECS" 0.2; then
      ok "$r-chain /forward?delay_ms=200 -> $r-leaf: 200 in ${SECS}s"
    else
      fail "$r-chain /forward?delay_ms=200 -> $CODE '$BODY' in ${SECS}s"
    fi
    stop "$r-leaf"
    req "$r-chain" /forward "${HDRS[@]}"
    [[ "$CODE" == 502 ]] && ok "$r-chain /forward with downstream gone -> 502" \
                         || fail "$r-chain /forward with downstream gone -> $CODE '$BODY'"
    req "$r-chain" '/fanout?n=2'
    [[ "$CODE" == 502 ]] && ok "$r-chain /fanout with downstream gone -> 502" \
                         || fail "$r-chain /fanout with downstream gone -> $CODE '$BODY'"
    req "$r-chain" /leaf
    [[ "$CODE" == 200 && "$BODY" == ok ]] && ok "$r-chain still serving after downstream errors" \
                                          || fail "$r-chain after downstream errors: /leaf -> $CODE"
    stop "$r-chain"
  else
    stop "$r-leaf"
  fi
  for n in "$r-mid" "$r-mid-ka"; do [[ -n "${PIDS[$n]:-}" ]] && stop "$n"; done
done

if wants otel; then
  echo "# otel"
  if await otel; then
    leaf_checks otel
    route_check otel /forward otel 1 200
    route_check otel '/forward?delay_ms=250' otel 1 200
    secs_ge "$SECS" 0.25 && ok "otel: delay_ms passed downstream" || fail "otel: delay_ms not passed (${SECS}s)"
    : >"$ELOG"
    req otel /forward
    if [[ "$CODE" == 200 ]] && msg="$(python3 "$TMP/check.py" "$ELOG" otel-root 1 "$SENT")"; then
      ok "otel /forward without inbound context -> new root trace"
    else
      fail "otel /forward without inbound context: $CODE ${msg:-}"
    fi
    req otel /drop "${HDRS[@]}"
    [[ "$CODE" == 404 ]] && ok "otel /drop -> 404 (only /leaf and /forward)" || fail "otel /drop -> $CODE"
    stop otel
  fi
  if await otel-nested; then
    route_check otel-nested /forward otel-nested 1 200
    stop otel-nested
  fi
fi

stop echo
echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 && $PASS -gt 0 ]]
