#!/bin/sh
# `airlock gateway` with stdio routes, end to end: real gateway process, real
# TLS (a throwaway CA made here by openssl), real child processes. The stdio
# MCP server is the labelled python test double tests/support/stdio_mcp_double.py.
# Covers: legacy initialize answered from the child's handshake, a modern
# (2026-07-28) server/discover and tools/call with the Mcp-* headers, tools/list
# filtered by the route's deny list and tools/call of a denied tool refused,
# tools/call with a progress token answered as SSE with the caller's own token,
# a child that crashes mid-call -> -32603 while the gateway stays up and serves
# the next call (and the child is replaced), /readyz and the audit chain (in
# both airlock.audit_sync modes: request, then batch after the reload),
# SIGHUP replacing a stdio route (old children stopped, none left over), and
# SIGTERM leaving no child behind.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "no openssl CLI"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
SRC=${AIRLOCK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DOUBLE="$SRC/tests/support/stdio_mcp_double.py"
PY=$(command -v python3)
# A tag unique to this run: the children are found by it in /proc (pgrep -f
# only reads; nothing is killed by name).
TAG="gwstdio-$$-$(date +%s)"

cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
	-subj "/CN=airlock gateway stdio test CA" >/dev/null 2>&1 || fail "openssl: CA"
openssl req -newkey rsa:2048 -nodes -keyout gw.key -out gw.csr -subj "/CN=gw" \
	>/dev/null 2>&1 || fail "openssl: csr"
printf 'subjectAltName=DNS:*.tun.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >gw.ext
openssl x509 -req -in gw.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out gw.pem \
	-days 2 -extfile gw.ext >/dev/null 2>&1 || fail "openssl: sign"
cd - >/dev/null

GP=$(free_port)
AP=$(free_port)

# write_config GENERATION [AUDIT_SYNC]: the "files" route runs the double tagged with it.
write_config() {
	cat >"$T/gw.yaml" <<YAML
listen_addr: 127.0.0.1:$GP
log_level: debug
shutdown_timeout: 5s
tunnel_domain: tun.test
tls:
  cert_file: $T/gw.pem
  key_file: $T/gw.key
routes:
  files:
    command: $PY
    args: ["$DOUBLE", "--tag", "$TAG-$1"]
    pool_size: 2
    timeout: 10s
    tools:
      deny: ["env", "big", "ask"]
airlock:
  admin_addr: 127.0.0.1:$AP
  audit: $T/audit.log
  audit_sync: ${2:-request}
YAML
}

# children GENERATION: how many doubles of that generation run.
children() { pgrep -f -- "--tag $TAG-$1" | wc -l; }

# wait_children GENERATION N
wait_children() {
	i=0
	while [ "$(children "$1")" != "$2" ]; do
		i=$((i + 1)); [ $i -lt 60 ] || fail "generation $1: $(children "$1") children, want $2"
		sleep 0.1
	done
}

# wait_ready: /readyz says ready (every stdio route has a child up).
wait_ready() {
	i=0
	while ! curl -sf "http://127.0.0.1:$AP/readyz" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -lt 100 ] || fail "/readyz: $(curl -s "http://127.0.0.1:$AP/readyz")"
		sleep 0.1
	done
}

write_config 1
"$AIRLOCK_BIN" gateway --config "$T/gw.yaml" --check >/dev/null || fail "--check refused the config"
"$AIRLOCK_BIN" gateway --config "$T/gw.yaml" >"$T/gw.log" 2>&1 &
GW=$!
PIDS="$PIDS $GW"
wait_http "http://127.0.0.1:$AP/healthz"
wait_ready
wait_children 1 2

# gw BODY [curl args...]: POST to the files route over TLS verified against the CA.
gw() {
	b=$1; shift
	STATUS=$(curl -s -o "$T/body" -D "$T/head" -w '%{http_code}' --cacert "$T/ca.pem" \
		--resolve "files.tun.test:$GP:127.0.0.1" -H 'content-type: application/json' \
		-H 'accept: application/json, text/event-stream' "$@" --data-binary "$b" \
		"https://files.tun.test:$GP/mcp")
}
# jq_body PYTHON-EXPR: asserts EXPR over the JSON body (m); SSE: the last event.
check() {
	python3 - "$T/body" "$1" <<'PY' || fail "$2: $(cat "$T/body")"
import json, sys
raw = open(sys.argv[1]).read()
evs = [json.loads(l[5:]) for l in raw.splitlines() if l.startswith("data:")]
m = evs[-1] if evs else json.loads(raw)
if not eval(sys.argv[2]):
    sys.exit(1)
PY
}

# ---- legacy: initialize answered from the child's handshake ----
gw '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
[ "$STATUS" = 200 ] || fail "initialize: $STATUS $(cat "$T/body")"
check 'm["id"] == 1 and m["result"]["serverInfo"]["name"] == "stdio-mcp-double" and "tools" in m["result"]["capabilities"]' "initialize"
gw '{"jsonrpc":"2.0","method":"notifications/initialized"}'
[ "$STATUS" = 202 ] || fail "notifications/initialized: $STATUS"

# ---- modern: server/discover, then a tools/call with the 2026-07-28 headers ----
MODERN='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}'
gw "{\"jsonrpc\":\"2.0\",\"id\":\"d-1\",\"method\":\"server/discover\",\"params\":{$MODERN}}" \
	-H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: server/discover'
[ "$STATUS" = 200 ] || fail "server/discover: $STATUS $(cat "$T/body")"
check 'm["id"] == "d-1" and "2026-07-28" in m["result"]["supportedVersions"]' "server/discover"
gw "{\"jsonrpc\":\"2.0\",\"id\":\"c-1\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hi modern\"},$MODERN}}" \
	-H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' \
	-H 'Authorization: Bearer tok-STDIO-SECRET'
[ "$STATUS" = 200 ] || fail "modern tools/call: $STATUS $(cat "$T/body")"
check 'm["id"] == "c-1" and m["result"]["structuredContent"]["text"] == "hi modern"' "modern tools/call"

# ---- tools/list filtered by the deny list; a denied tool is refused ----
gw '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}'
[ "$STATUS" = 200 ] || fail "tools/list: $STATUS $(cat "$T/body")"
check 'sorted(t["name"] for t in m["result"]["tools"]) == ["crash", "echo", "log", "slow", "stats"]' "tools/list not filtered"
gw '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"env","arguments":{}}}'
[ "$STATUS" = 200 ] || fail "denied tools/call: $STATUS"
check 'm["id"] == 3 and m["error"]["code"] == -32602' "denied tools/call"

# ---- progress over SSE with the caller's own token ----
gw '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"p"},"_meta":{"progressToken":"tok-1"}}}'
[ "$STATUS" = 200 ] || fail "tools/call with progress: $STATUS"
grep -qi '^content-type: text/event-stream' "$T/head" || fail "progress not as SSE: $(cat "$T/head")"
python3 - "$T/body" <<'PY' || fail "SSE with progress: $(cat "$T/body")"
import json, sys
evs = [json.loads(l[5:]) for l in open(sys.argv[1]).read().splitlines() if l.startswith("data:")]
assert len(evs) == 2, evs
assert evs[0]["method"] == "notifications/progress" and evs[0]["params"]["progressToken"] == "tok-1", evs
assert evs[1]["id"] == 4 and evs[1]["result"]["structuredContent"]["text"] == "p", evs
PY

# ---- a child that crashes mid-call: -32603, the gateway serves the next call ----
gw '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"crash","arguments":{}}}'
[ "$STATUS" = 200 ] || fail "crash: $STATUS $(cat "$T/body")"
check 'm["id"] == 5 and m["error"]["code"] == -32603' "crash mid-call"
kill -0 "$GW" 2>/dev/null || fail "the gateway died with its child"
gw '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":"after"}}}'
[ "$STATUS" = 200 ] || fail "call after a crash: $STATUS $(cat "$T/body")"
check 'm["id"] == 6 and m["result"]["structuredContent"]["text"] == "after"' "call after a crash"
wait_children 1 2 # the crashed child was replaced
wait_ready

# ---- a slow call in flight when the route is replaced finishes on its child ----
curl -s --cacert "$T/ca.pem" --resolve "files.tun.test:$GP:127.0.0.1" \
	-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
	--data-binary '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow","arguments":{"ms":1500}}}' \
	"https://files.tun.test:$GP/mcp" >"$T/slow" &
C=$!
sleep 0.3

# ---- SIGHUP replaces the route: new children, the old ones stop ----
write_config 2 batch
kill -HUP "$GW"
i=0
while ! grep -q 'reloaded' "$T/gw.log"; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "no reload: $(tail -3 "$T/gw.log")"
	sleep 0.1
done
wait_children 2 2
gw '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"stats","arguments":{}}}'
[ "$STATUS" = 200 ] || fail "call after reload: $STATUS $(cat "$T/body")"
NEWPID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["result"]["structuredContent"]["pid"])' "$T/body")
tr '\0' ' ' <"/proc/$NEWPID/cmdline" | grep -q -- "--tag $TAG-2" || fail "the call after reload went to an old child"
wait $C || fail "the in-flight call failed"
grep -q '"id":7' "$T/slow" && grep -q '"result"' "$T/slow" || fail "a reload cut an in-flight stdio call: $(cat "$T/slow")"
wait_children 1 0 # the old generation is gone, no leftover process

# ---- SIGTERM: exit 0, no child left ----
kill -TERM "$GW"
rc=0
wait "$GW" || rc=$?
[ "$rc" = 0 ] || fail "gateway exit status $rc after SIGTERM: $(tail -5 "$T/gw.log")"
[ "$(children 1)" = 0 ] && [ "$(children 2)" = 0 ] || fail "children left after SIGTERM: $(pgrep -af -- "--tag $TAG")"

# ---- the audit chain, and no credential in any log ----
"$AIRLOCK_BIN" audit verify "$T/audit.log" >/dev/null || fail "audit chain does not verify"
grep -q '"route":"files"' "$T/audit.log" || fail "no stdio route in the audit log"
grep -q '"outcome":"refused_tool"' "$T/audit.log" || fail "no refused tool record"
grep -q '"caller_token_sha256"' "$T/audit.log" || fail "no caller identity"
grep -q 'tok-STDIO-SECRET' "$T/audit.log" "$T/gw.log" && fail "the Authorization value is in a log"
echo "ok"
