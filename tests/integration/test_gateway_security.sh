#!/bin/sh
# `airlock gateway`, security review cases (docs/SECURITY.md): real gateway,
# plain HTTP on loopback, upstreams are the labelled python test double
# (mcp_upstream_double.py). Each case failed before its fix:
#   - a GET stream on a filtering route (a resumed stream replaying a
#     tools/list answer) reached the client unfiltered;
#   - an SSE tools/list event with "tools" twice passed unfiltered;
#   - allowed_ips 0.0.0.0/0 let an upstream at 0.0.0.0 reach loopback;
#   - an absolute-form request target was audited before being refused;
#   - an IPv6 literal upstream went through http_proxy from the environment;
#   - a client's X-Forwarded-For went upstream although
#     airlock.trust_forwarded_for was not set (the key was ignored);
#   - no bound on requests in flight (airlock.max_in_flight is new).
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
SRC=${AIRLOCK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DOUBLE="$SRC/tests/integration/mcp_upstream_double.py"

python3 "$DOUBLE" --port-file "$T/up.port" --log "$T/up.log" &
PIDS="$PIDS $!"
V6=1
python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null || V6=0
if [ $V6 = 1 ]; then
	python3 "$DOUBLE" --port-file "$T/up6.port" --log "$T/up6.log" --bind ::1 &
	PIDS="$PIDS $!"
fi
i=0
while [ ! -s "$T/up.port" ] || { [ $V6 = 1 ] && [ ! -s "$T/up6.port" ]; }; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "upstream double did not start"
	sleep 0.1
done
UP=$(cat "$T/up.port")
GP=$(free_port)
AP=$(free_port)

cat >"$T/gw.yaml" <<YAML
listen_addr: 127.0.0.1:$GP
log_level: debug
routes:
  tickets:
    upstream: http://127.0.0.1:$UP
    tools:
      deny: ["delete_*"]
  zero: http://0.0.0.0:$UP
upstream:
  allowed_ips: [0.0.0.0/0]
airlock:
  admin_addr: 127.0.0.1:$AP
  audit: $T/audit.log
  max_in_flight: 1
YAML
"$AIRLOCK_BIN" gateway --config "$T/gw.yaml" >"$T/gw.log" 2>&1 &
GW=$!
PIDS="$PIDS $GW"
wait_http "http://127.0.0.1:$AP/healthz"

# gw HOST PATH [curl args...]
gw() {
	h=$1 p=$2; shift 2
	STATUS=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 10 -H "Host: $h" \
		-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
		"$@" "http://127.0.0.1:$GP$p")
}
LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'

# ---- a GET stream on a filtering route is filtered too ----
gw tickets '/mcp?sse_tools=1' -H 'Last-Event-ID: 1'
[ "$STATUS" = 200 ] || fail "GET stream: $STATUS $(cat "$T/body")"
grep -q get_ticket "$T/body" || fail "GET stream lost the allowed tools: $(cat "$T/body")"
grep -q delete_ticket "$T/body" && fail "denied tool on a GET stream: $(cat "$T/body")"

# ---- a tools/list event with "tools" twice is dropped, not passed ----
gw tickets '/mcp?sse_dup=1' --data-binary "$LIST"
[ "$STATUS" = 200 ] || fail "dup-key SSE: $STATUS $(cat "$T/body")"
grep -q delete_ticket "$T/body" && fail "duplicate-key event passed unfiltered: $(cat "$T/body")"

# ---- 0.0.0.0 is never an upstream address under allowed_ips ----
: >"$T/up.log"
gw zero /mcp --data-binary "$LIST"
[ "$STATUS" = 502 ] || fail "upstream 0.0.0.0 under 0.0.0.0/0 not refused: $STATUS $(cat "$T/body")"
[ ! -s "$T/up.log" ] || fail "the 0.0.0.0 upstream was contacted"

# ---- absolute-form: refused before anything is audited or sent ----
CALL='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_ticket","arguments":{}}}'
before=$(wc -l <"$T/audit.log" 2>/dev/null || echo 0)
gw tickets /mcp --request-target "http://other.example/mcp" --data-binary "$CALL"
[ "$STATUS" = 400 ] || fail "absolute-form target: $STATUS $(cat "$T/body")"
after=$(wc -l <"$T/audit.log" 2>/dev/null || echo 0)
[ "$before" = "$after" ] || fail "absolute-form request was audited ($before -> $after records)"
[ ! -s "$T/up.log" ] || fail "absolute-form request reached the upstream"
# origin-form still works (and is audited)
gw tickets /mcp --data-binary "$CALL"
[ "$STATUS" = 200 ] || fail "tools/call: $STATUS $(cat "$T/body")"

# ---- X-Forwarded-For from the client is not trusted by default ----
: >"$T/up.log"
gw tickets /mcp --data-binary "$LIST" -H 'X-Forwarded-For: 10.9.9.9' \
	-H 'Forwarded: for=10.9.9.9' -H 'X-Real-IP: 10.9.9.9'
[ "$STATUS" = 200 ] || fail "tools/list with X-Forwarded-For: $STATUS"
python3 - "$T/up.log" <<'PY' || fail "X-Forwarded-For: $(tail -1 "$T/up.log")"
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
h = {k.lower(): v for k, v in r["headers"].items()}
assert h["x-forwarded-for"] == "127.0.0.1", h
assert "forwarded" not in h and "x-real-ip" not in h, h
PY

# No credential-shaped text in the log (Authorization was sent above? no: make sure)
gw tickets /mcp --data-binary "$LIST" -H 'Authorization: Bearer tok-SECRET-review'
grep -q 'tok-SECRET-review' "$T/gw.log" "$T/audit.log" && fail "a token reached a log"

# ---- airlock.max_in_flight: one long stream in flight, the next request gets 503 ----
: >"$T/up.log"
SLOW='{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow_stream","arguments":{}}}'
curl -s -N --max-time 20 -H "Host: tickets" -H 'content-type: application/json' \
	-H 'accept: application/json, text/event-stream' --data-binary "$SLOW" \
	"http://127.0.0.1:$GP/mcp" >"$T/slow.out" 2>&1 &
SLOWPID=$!
PIDS="$PIDS $SLOWPID"
i=0
while ! grep -q slow_stream "$T/up.log" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the slow stream did not start"
	sleep 0.1
done
gw tickets /mcp --data-binary "$LIST" -D "$T/hdrs"
[ "$STATUS" = 503 ] || fail "over max_in_flight: $STATUS $(cat "$T/body")"
grep -qi '^retry-after: 1' "$T/hdrs" || fail "no Retry-After: $(cat "$T/hdrs")"
kill "$SLOWPID" 2>/dev/null || true
wait "$SLOWPID" 2>/dev/null || true
i=0
while :; do
	gw tickets /mcp --data-binary "$LIST"
	[ "$STATUS" = 200 ] && break
	i=$((i + 1)); [ $i -lt 50 ] || fail "capacity not released after the stream ended: $STATUS"
	sleep 0.1
done
curl -s "http://127.0.0.1:$AP/metrics" | grep -q 'reason="busy"' || fail "no busy refusal metric"

kill -TERM "$GW"
wait "$GW" || fail "gateway exit status $?"

# ---- an IPv6 literal upstream never goes through a proxy from the environment ----
if [ $V6 = 1 ]; then
	UP6=$(cat "$T/up6.port")
	cat >"$T/gw6.yaml" <<YAML
listen_addr: 127.0.0.1:$GP
routes:
  six: http://[::1]:$UP6
upstream:
  disable_ip_validation: true
airlock:
  admin_addr: 127.0.0.1:$AP
YAML
	http_proxy=http://127.0.0.1:1 ALL_PROXY=http://127.0.0.1:1 no_proxy= NO_PROXY= \
		"$AIRLOCK_BIN" gateway --config "$T/gw6.yaml" >"$T/gw6.log" 2>&1 &
	GW=$!
	PIDS="$PIDS $GW"
	wait_http "http://127.0.0.1:$AP/healthz"
	gw six /mcp --data-binary "$LIST"
	[ "$STATUS" = 200 ] || fail "IPv6 upstream through the environment's proxy: $STATUS $(cat "$T/body")"
	grep -q delete_ticket "$T/body" || fail "IPv6 upstream answer: $(cat "$T/body")"
	kill -TERM "$GW"
	wait "$GW" || fail "gateway exit status $?"
else
	echo "note: no IPv6 loopback here, the proxy case was skipped" >&2
fi
echo "gateway security: ok"
