#!/bin/sh
# `airlock gateway` fails closed when its audit log cannot be written: real
# gateway and upstream (the labelled python test double
# mcp_upstream_double.py) on loopback. RLIMIT_FSIZE (ulimit -f, with SIGXFSZ
# ignored so the write fails with EFBIG instead of killing the process)
# stops the log growing after a few records. Then every audited call
# (tools/call) is refused with 503 / -32603 and never reaches the upstream,
# unaudited methods (tools/list) still pass, the audit failure metric
# counts, and the log, cut short, still verifies (a failed write is rolled
# back: no torn record).
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
SRC=${AIRLOCK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

python3 "$SRC/tests/integration/mcp_upstream_double.py" --port-file "$T/up.port" --log "$T/up.log" &
PIDS="$PIDS $!"
i=0
while [ ! -s "$T/up.port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "upstream double did not start"
	sleep 0.1
done
UP=$(cat "$T/up.port")
GP=$(free_port)
AP=$(free_port)
cat >"$T/gw.yaml" <<YAML
listen_addr: 127.0.0.1:$GP
log_level: error
shutdown_timeout: 2s
routes:
  local: http://127.0.0.1:$UP
upstream:
  allowed_ips: [127.0.0.0/8]
airlock:
  admin_addr: 127.0.0.1:$AP
  audit: $T/audit.log
YAML
# 8 blocks of 512 bytes: the open record and a few calls' records fit.
# stderr goes through a pipe, which the limit does not cover.
sh -c 'trap "" XFSZ; ulimit -f 8; exec "$0" gateway --config "$1"' "$AIRLOCK_BIN" "$T/gw.yaml" \
	2>&1 | cat >"$T/gw.log" &
wait_http "http://127.0.0.1:$AP/healthz"
GW=$(pgrep -f -- "gateway --config $T/gw.yaml" | head -n 1)
[ -n "$GW" ] || fail "no gateway process"
PIDS="$PIDS $GW"

post() { # BODY
	STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Host: local' \
		-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
		--data-binary "$1" "http://127.0.0.1:$GP/mcp")
}
CALL='{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":42}}}'
n=0 ok=0
while :; do
	n=$((n + 1)); [ $n -lt 40 ] || fail "the audit log never filled up"
	before=0
	[ ! -f "$T/up.log" ] || before=$(wc -l <"$T/up.log")
	post "$CALL"
	[ "$STATUS" = 200 ] || break
	ok=$((ok + 1))
done
[ "$ok" -ge 1 ] || fail "no call succeeded before the log filled (limit too small?)"
[ "$STATUS" = 503 ] || fail "a call that cannot be audited: $STATUS $(cat "$T/body")"
grep -q '"code":-32603' "$T/body" && grep -q '"id":9' "$T/body" || fail "503 body: $(cat "$T/body")"
[ "$(wc -l <"$T/up.log")" = "$before" ] || fail "an unaudited call reached the upstream"
post "$CALL"
[ "$STATUS" = 503 ] || fail "the next audited call: $STATUS"
[ "$(wc -l <"$T/up.log")" = "$before" ] || fail "an unaudited call reached the upstream"
post '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'
[ "$STATUS" = 200 ] || fail "tools/list (not audited) after the audit failure: $STATUS"
curl -sf "http://127.0.0.1:$AP/metrics" | grep -q '^airlock_gateway_audit_failures_total [1-9]' ||
	fail "audit failures not counted: $(curl -s "http://127.0.0.1:$AP/metrics" | grep audit)"
kill -TERM "$GW"
i=0
while kill -0 "$GW" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the gateway did not stop"
	sleep 0.1
done
"$AIRLOCK_BIN" audit verify "$T/audit.log" >/dev/null || fail "the cut-short log does not verify"
[ "$(grep -c '"event":"gateway.request"' "$T/audit.log")" -ge "$ok" ] || fail "records of the calls that ran are missing"
echo "ok ($ok calls audited before the log filled)"
