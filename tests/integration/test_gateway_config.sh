#!/bin/sh
# `airlock gateway`: config refusals and the less common options, with real
# processes on loopback (the upstream is the labelled python test double).
# --check names FILE:LINE and exits 2; start-up refuses a missing
# certificate or CA file (exit 2, no key material in the message); plain HTTP
# listener; disable_ip_validation reaches loopback; airlock.allowed_origins
# answers 403; airlock.max_body answers 413; a bodiless GET (the 2025-11-25
# stream, .well-known documents) passes through with its path and query;
# admin_addr: off opens no admin port; a slow reader of a 24 MiB answer gets
# all of it (the upstream read is paused, not buffered or cut).
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
SRC=${AIRLOCK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

# ---- --check ----
printf 'routes:\n  a: http://10.0.0.1:80\nlisten_adr: 1.2.3.4:5\n' >"$T/bad.yaml"
rc=0
"$AIRLOCK_BIN" gateway --config "$T/bad.yaml" --check 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || fail "--check on a bad file: exit $rc"
grep -q "bad.yaml:3: unknown key 'listen_adr'" "$T/err" || fail "--check message: $(cat "$T/err")"
printf 'routes:\n  a: http://10.0.0.1:80\n' >"$T/ok.yaml"
"$AIRLOCK_BIN" gateway --config "$T/ok.yaml" --check | grep -q 'ok, 1 route' || fail "--check ok"
rc=0
"$AIRLOCK_BIN" gateway 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "no --config: exit $rc"

# ---- start-up refusals ----
GP=$(free_port)
printf 'listen_addr: 127.0.0.1:%s\ntls:\n  cert_file: %s/nope.pem\n  key_file: %s/nope.key\nroutes:\n  a: http://10.0.0.1:80\nairlock:\n  admin_addr: off\n' \
	"$GP" "$T" "$T" >"$T/nocert.yaml"
rc=0
timeout 10 "$AIRLOCK_BIN" gateway --config "$T/nocert.yaml" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || fail "missing certificate: exit $rc: $(cat "$T/err")"
printf 'listen_addr: 127.0.0.1:%s\nroutes:\n  a: https://10.0.0.1:443\nupstream:\n  tls:\n    ca_file: %s/nope-ca.pem\nairlock:\n  admin_addr: off\n' \
	"$GP" "$T" >"$T/noca.yaml"
rc=0
timeout 10 "$AIRLOCK_BIN" gateway --config "$T/noca.yaml" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || fail "missing CA file: exit $rc"
grep -q 'upstream.tls.ca_file' "$T/err" || fail "missing CA message: $(cat "$T/err")"

# ---- a running gateway: plain HTTP, no admin port, loopback without validation ----
python3 "$SRC/tests/integration/mcp_upstream_double.py" --port-file "$T/up.port" --log "$T/up.log" &
PIDS="$PIDS $!"
i=0
while [ ! -s "$T/up.port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "upstream double did not start"
	sleep 0.1
done
UP=$(cat "$T/up.port")
cat >"$T/gw.yaml" <<YAML
listen_addr: 127.0.0.1:$GP
shutdown_timeout: 2s
routes:
  local: http://localhost:$UP
upstream:
  disable_ip_validation: true
airlock:
  admin_addr: off
  allowed_origins: [https://app.example]
  max_body: 2048
YAML
"$AIRLOCK_BIN" gateway --config "$T/gw.yaml" >"$T/gw.log" 2>&1 &
GW=$!
PIDS="$PIDS $GW"
wait_http "http://127.0.0.1:$GP/"
grep -q 'plain HTTP' "$T/gw.log" || fail "no plain HTTP warning"
grep -q 'admin off' "$T/gw.log" || fail "admin not off: $(cat "$T/gw.log")"

post() { # BODY [curl args]
	b=$1; shift
	STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Host: local' \
		-H 'content-type: application/json' "$@" --data-binary "$b" "http://127.0.0.1:$GP/mcp")
}
LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
post "$LIST"
[ "$STATUS" = 200 ] && grep -q delete_ticket "$T/body" || fail "disable_ip_validation: $STATUS $(cat "$T/body")"
post "$LIST" -H 'Origin: https://app.example'
[ "$STATUS" = 200 ] || fail "allowed Origin: $STATUS"
post "$LIST" -H 'Origin: https://evil.example'
[ "$STATUS" = 403 ] || fail "foreign Origin: $STATUS"
BIG=$(python3 -c 'import json; print(json.dumps({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{"p":"a"*4000}}}))')
post "$BIG"
[ "$STATUS" = 413 ] || fail "max_body: $STATUS"
post '{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{},"params":{}}'
[ "$STATUS" = 400 ] && grep -q '"code":-32700' "$T/body" || fail "duplicate keys: $STATUS $(cat "$T/body")"
post '[{"jsonrpc":"2.0","id":4,"method":"tools/list"}]'
[ "$STATUS" = 400 ] && grep -q '"code":-32600' "$T/body" || fail "batch: $STATUS $(cat "$T/body")"
post '{"jsonrpc":"2.0","method":"notifications/initialized"}'
[ "$STATUS" = 202 ] || fail "notification: $STATUS"
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Host: LOCAL:1234' \
	"http://127.0.0.1:$GP/.well-known/oauth-protected-resource?a=%2F1")
[ "$STATUS" = 200 ] || fail "GET pass-through: $STATUS"
grep -q '"path": "/.well-known/oauth-protected-resource?a=%2F1"' "$T/body" || fail "GET path/query: $(cat "$T/body")"
# A slow reader of a large answer: the upstream read is paused (not the
# whole answer buffered, not cut off) and every byte arrives.
post '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"big","arguments":{"mb":24}}}' \
	--limit-rate 8M
[ "$STATUS" = 200 ] || fail "big answer: $STATUS"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r["result"]["content"][0]["text"]) == 24 << 20' \
	"$T/body" || fail "big answer incomplete: $(wc -c <"$T/body") bytes"
grep -q 'behind: cut off' "$T/gw.log" && fail "a slow reader was cut off"
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$GW/status")
[ "$HWM" -lt 200000 ] || fail "gateway peak RSS ${HWM} kB for a 24 MiB answer"
STATUS=$(curl -s -I -o "$T/head" -w '%{http_code}' -H 'Host: local' "http://127.0.0.1:$GP/x")
[ "$STATUS" = 200 ] || fail "HEAD: $STATUS"
grep -qi 'transfer-encoding' "$T/head" && fail "HEAD answered with a chunked body: $(cat "$T/head")"
kill -TERM "$GW"
rc=0
wait "$GW" || rc=$?
[ "$rc" = 0 ] || fail "exit $rc after SIGTERM: $(tail -30 "$T/gw.log")"
echo "ok"
