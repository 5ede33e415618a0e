#!/bin/sh
# `airlock gateway`: real processes on loopback. The upstream MCP servers are
# a labelled python test double (mcp_upstream_double.py); TLS everywhere uses
# a throwaway CA made here by openssl. Covers: TLS termination with our
# certificate, Host routing (exact, then tunnel domain stripped, unknown ->
# 404 JSON-RPC body), allowed_ips (127.0.0.1 refused under the RFC 1918
# default, allowed after a SIGHUP with 127.0.0.0/8), an https upstream
# verified against the configured CA (and refused with another CA), deny
# lists in tools/list (JSON and SSE) and tools/call (upstream never
# contacted), Mcp-Name smuggling refused, streaming (first event before the
# upstream finishes), client disconnect cancelling the upstream, the audit
# chain verifying, Authorization reaching the upstream but no log, admin
# endpoints, a bad reload refused, SIGTERM draining a live stream, exit 0.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "no openssl CLI"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "no python3"; exit 77; }
SRC=${AIRLOCK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DOUBLE="$SRC/tests/integration/mcp_upstream_double.py"

# ---- a CA; the gateway's certificate; an upstream certificate; a stranger CA ----
cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
	-subj "/CN=airlock gateway test CA" >/dev/null 2>&1 || fail "openssl: CA"
mkcert() { # NAME SAN
	openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" \
		>/dev/null 2>&1 || fail "openssl: csr $1"
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" \
		-days 2 -extfile "$1.ext" >/dev/null 2>&1 || fail "openssl: sign $1"
}
mkcert gw "DNS:*.tun.test,DNS:exact.example.org,IP:127.0.0.1"
mkcert up "DNS:localhost,IP:127.0.0.1"
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 \
	-subj "/CN=stranger CA" >/dev/null 2>&1 || fail "openssl: other"
cd - >/dev/null

# ---- upstreams: plain http and https ----
python3 "$DOUBLE" --port-file "$T/up.port" --log "$T/up.log" &
PIDS="$PIDS $!"
python3 "$DOUBLE" --port-file "$T/ups.port" --log "$T/ups.log" --cert "$T/up.pem" --key "$T/up.key" &
PIDS="$PIDS $!"
i=0
while [ ! -s "$T/up.port" ] || [ ! -s "$T/ups.port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "upstream double did not start"
	sleep 0.1
done
UP=$(cat "$T/up.port")
UPS=$(cat "$T/ups.port")
GP=$(free_port)
AP=$(free_port)

# write_config ALLOWED_IPS_BLOCK CA
write_config() {
	cat >"$T/gw.yaml" <<YAML
listen_addr: 127.0.0.1:$GP
log_level: debug
shutdown_timeout: 10s
tunnel_domain: tun.test
tls:
  cert_file: $T/gw.pem
  key_file: $T/gw.key
routes:
  tickets:
    upstream: http://127.0.0.1:$UP
    tools:
      deny: ["delete_*"]
  exact.example.org: http://127.0.0.1:$UP
  secure: https://localhost:$UPS
$1
  tls:
    ca_file: $2
airlock:
  admin_addr: 127.0.0.1:$AP
  audit: $T/audit.log
YAML
}

# ---- start with the default allowed_ips (RFC 1918): loopback is refused ----
write_config "upstream:" "$T/ca.pem"
"$AIRLOCK_BIN" gateway --config "$T/gw.yaml" --check >/dev/null || fail "--check refused the config"
"$AIRLOCK_BIN" gateway --config "$T/gw.yaml" >"$T/gw.log" 2>&1 &
GW=$!
PIDS="$PIDS $GW"
wait_http "http://127.0.0.1:$AP/healthz"

# gw HOST PATH BODY [curl args...]: POST over TLS verified against the CA.
gw() {
	h=$1 p=$2 b=$3; shift 3
	STATUS=$(curl -s -o "$T/body" -w '%{http_code}' --cacert "$T/ca.pem" \
		--resolve "$h:$GP:127.0.0.1" -H 'content-type: application/json' \
		-H 'accept: application/json, text/event-stream' "$@" --data-binary "$b" "https://$h:$GP$p")
}
LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}'

gw tickets.tun.test /mcp "$LIST"
[ "$STATUS" = 502 ] || fail "loopback upstream not refused under the RFC 1918 default: $STATUS $(cat "$T/body")"
grep -q '"code":-32603' "$T/body" || fail "refusal body: $(cat "$T/body")"
grep -q 'not in upstream.allowed_ips: refused' "$T/gw.log" || fail "no refusal log line"
[ ! -s "$T/up.log" ] || fail "the refused upstream was contacted"

# ---- SIGHUP: a bad config is refused and the old stays; then loopback allowed ----
cp "$T/gw.yaml" "$T/good.yaml"
printf 'listen_addr: [oops\n' >"$T/gw.yaml"
kill -HUP "$GW"
sleep 0.3
grep -q 'reload refused, the running config stays' "$T/gw.log" || fail "bad reload not refused"
gw tickets.tun.test /mcp "$LIST"
[ "$STATUS" = 502 ] || fail "after a bad reload the old config should stay: $STATUS"
write_config "upstream:
  allowed_ips: [127.0.0.0/8]" "$T/ca.pem"
kill -HUP "$GW"
i=0
while ! grep -q 'reloaded' "$T/gw.log"; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "no reload: $(tail -3 "$T/gw.log")"
	sleep 0.1
done

# ---- routing: tunnel domain stripped, exact host, unknown host ----
gw tickets.tun.test '/mcp?x=1&y=two' "$LIST" -H 'Authorization: Bearer tok-SECRET-123' \
	-H 'Mcp-Method: tools/list' -H 'Mcp-Custom: kept' -H 'X-Forwarded-For: 6.6.6.6'
[ "$STATUS" = 200 ] || fail "tools/list via the tunnel domain: $STATUS $(cat "$T/body")"
grep -q search_tickets "$T/body" || fail "tools/list: $(cat "$T/body")"
grep -q delete_ticket "$T/body" && fail "denied tool listed: $(cat "$T/body")"
python3 - "$T/up.log" <<'PY' || fail "what reached the upstream: $(tail -1 "$T/up.log")"
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
h = {k.lower(): v for k, v in r["headers"].items()}
assert r["path"] == "/mcp?x=1&y=two", r["path"]
assert h["authorization"] == "Bearer tok-SECRET-123", h
assert h["mcp-method"] == "tools/list" and h["mcp-custom"] == "kept", h
assert h["x-forwarded-for"] == "127.0.0.1", h  # the client's own XFF is not trusted by default
assert h["x-forwarded-host"].startswith("tickets.tun.test"), h
PY
gw exact.example.org /mcp "$LIST"
[ "$STATUS" = 200 ] && grep -q delete_ticket "$T/body" || fail "exact host route (no filter): $STATUS $(cat "$T/body")"
gw other.tun.test /mcp "$LIST"
[ "$STATUS" = 404 ] || fail "unknown host: $STATUS"
grep -q '"jsonrpc":"2.0"' "$T/body" && grep -q '"code":-32600' "$T/body" || fail "404 body: $(cat "$T/body")"

# ---- deny list: SSE tools/list, tools/call refused without the upstream ----
gw tickets.tun.test '/mcp?sse=1' "$LIST"
[ "$STATUS" = 200 ] && grep -q search_tickets "$T/body" || fail "SSE tools/list: $(cat "$T/body")"
grep -q delete_ticket "$T/body" && fail "denied tool in SSE tools/list: $(cat "$T/body")"
grep -q progress "$T/body" || fail "SSE notification lost: $(cat "$T/body")"
N=$(wc -l <"$T/up.log")
gw tickets.tun.test /mcp '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_ticket","arguments":{"id":1}}}'
[ "$STATUS" = 200 ] && grep -q '"code":-32602' "$T/body" && grep -q '"id":7' "$T/body" ||
	fail "denied tools/call: $STATUS $(cat "$T/body")"
[ "$(wc -l <"$T/up.log")" = "$N" ] || fail "a denied tools/call reached the upstream"
# A header routed on by a balancer must not name another tool than the body.
gw tickets.tun.test /mcp '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"delete_ticket"}}' \
	-H 'Mcp-Method: tools/call' -H 'Mcp-Name: get_ticket'
[ "$STATUS" = 400 ] && grep -q '"code":-32020' "$T/body" || fail "Mcp-Name mismatch: $STATUS $(cat "$T/body")"
gw tickets.tun.test /mcp '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":42}}}' \
	-H 'Mcp-Method: tools/call' -H 'Mcp-Name: get_ticket' -H 'Authorization: Bearer tok-SECRET-123'
[ "$STATUS" = 200 ] && grep -q '42' "$T/body" || fail "allowed tools/call: $STATUS $(cat "$T/body")"
# An upstream that reads a tools/call and drops the connection unanswered
# (on the keep-alive connection the calls above left in the pool): the
# client hears it may have run, and the upstream got it exactly once (libcurl
# would otherwise have re-sent it on a new connection).
N=$(grep -c 'vanish' "$T/up.log" || true)
gw tickets.tun.test /mcp '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"vanish","arguments":{}}}'
[ "$STATUS" = 502 ] && grep -q '"code":-32603' "$T/body" && grep -q 'may or may not have run' "$T/body" ||
	fail "tools/call on a connection that died: $STATUS $(cat "$T/body")"
[ "$(grep -c 'vanish' "$T/up.log")" = $((N + 1)) ] ||
	fail "the vanishing tools/call reached the upstream $(grep -c 'vanish' "$T/up.log") times"
gw tickets.tun.test /mcp '{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":42}}}'
[ "$STATUS" = 200 ] && grep -q '42' "$T/body" || fail "tools/call after a lost connection: $STATUS $(cat "$T/body")"

# ---- https upstream verified against upstream.tls.ca_file ----
gw secure.tun.test /mcp "$LIST"
[ "$STATUS" = 200 ] && grep -q search_tickets "$T/body" || fail "https upstream: $STATUS $(cat "$T/body")"

# ---- streaming: the first event arrives while the upstream still runs ----
SLOW='{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"slow_stream","arguments":{"ticks":20}}}'
curl -sN --cacert "$T/ca.pem" --resolve "tickets.tun.test:$GP:127.0.0.1" \
	-H 'content-type: application/json' --data-binary "$SLOW" \
	"https://tickets.tun.test:$GP/mcp" >"$T/stream" &
C=$!
i=0
while ! grep -q progress "$T/stream" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 15 ] || fail "no first event within 1.5 s"
	sleep 0.1
done
grep -q '"done"' "$T/stream" && fail "the stream was buffered: the final result came with the first event"
wait $C
grep -q '"done"' "$T/stream" || fail "stream did not finish: $(cat "$T/stream")"

# ---- a client that goes away cancels the upstream ----
SLOWER='{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"slow_stream","arguments":{}}}'
curl -sN --cacert "$T/ca.pem" --resolve "tickets.tun.test:$GP:127.0.0.1" \
	-H 'content-type: application/json' --data-binary "$SLOWER" \
	"https://tickets.tun.test:$GP/mcp" >"$T/stream2" &
C=$!
i=0
while ! grep -q progress "$T/stream2" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 20 ] || fail "no first event"
	sleep 0.1
done
kill $C
wait $C 2>/dev/null || true
i=0
while ! grep -q '"cancelled"' "$T/up.log"; do
	i=$((i + 1)); [ $i -lt 30 ] || fail "the upstream was not cancelled when the client left"
	sleep 0.1
done

# ---- admin endpoints ----
curl -sf "http://127.0.0.1:$AP/healthz" | grep -q ok || fail "/healthz"
curl -sf "http://127.0.0.1:$AP/readyz" | grep -q ready || fail "/readyz"
curl -sf "http://127.0.0.1:$AP/metrics" >"$T/metrics" || fail "/metrics"
grep -q 'airlock_gateway_refusals_total{route="tickets",reason="tool_denied"} 1' "$T/metrics" || fail "metrics: $(cat "$T/metrics")"
grep -q 'airlock_gateway_refusals_total{route="tickets",reason="ip_denied"} 2' "$T/metrics" || fail "metrics ip_denied"
grep -q 'airlock_gateway_requests_total{route="tickets",method="tools/call",status="200"}' "$T/metrics" || fail "metrics requests"
grep -q 'airlock_gateway_upstream_latency_seconds_count{route="secure"} 1' "$T/metrics" || fail "metrics latency"
grep -q 'airlock_gateway_reloads_total{result="failed"} 1' "$T/metrics" || fail "metrics reloads"

# wait_reloads N: until the log shows N successful reloads.
wait_reloads() {
	i=0
	while [ "$(grep -c 'reloaded' "$T/gw.log")" -lt "$1" ]; do
		i=$((i + 1)); [ $i -lt 50 ] || fail "no reload number $1: $(tail -3 "$T/gw.log")"
		sleep 0.1
	done
}

# ---- SIGHUP mid-stream: the stream finishes on its config, new requests see the new one ----
curl -sN --cacert "$T/ca.pem" --resolve "tickets.tun.test:$GP:127.0.0.1" \
	-H 'content-type: application/json' --data-binary "$SLOW" \
	"https://tickets.tun.test:$GP/mcp" >"$T/stream4" &
C=$!
i=0
while ! grep -q progress "$T/stream4" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 20 ] || fail "no first event"
	sleep 0.1
done
cp "$T/gw.yaml" "$T/keep.yaml"
sed 's/^  tickets:$/  renamed:/' "$T/keep.yaml" >"$T/gw.yaml"
kill -HUP "$GW"
wait_reloads 2
gw tickets.tun.test /mcp "$LIST"
[ "$STATUS" = 404 ] || fail "a removed route still answers after reload: $STATUS"
gw renamed.tun.test /mcp "$LIST"
[ "$STATUS" = 200 ] || fail "the new route does not answer: $STATUS"
wait $C || true
grep -q '"done"' "$T/stream4" || fail "a reload cut an in-flight stream: $(cat "$T/stream4")"

# ---- an https upstream signed by a CA we do not trust is refused ----
sed "s#ca_file: $T/ca.pem#ca_file: $T/other.pem#" "$T/keep.yaml" >"$T/gw.yaml"
kill -HUP "$GW"
wait_reloads 3
gw secure.tun.test /mcp "$LIST"
[ "$STATUS" = 502 ] || fail "https upstream with an untrusted certificate: $STATUS $(cat "$T/body")"

# ---- SIGTERM drains a live stream, then exit 0 ----
curl -sN --cacert "$T/ca.pem" --resolve "tickets.tun.test:$GP:127.0.0.1" \
	-H 'content-type: application/json' --data-binary "$SLOW" \
	"https://tickets.tun.test:$GP/mcp" >"$T/stream3" &
C=$!
i=0
while ! grep -q progress "$T/stream3" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 20 ] || fail "no first event"
	sleep 0.1
done
kill -TERM "$GW"
wait $C || true
grep -q '"done"' "$T/stream3" || fail "SIGTERM cut the stream: $(cat "$T/stream3")"
rc=0
wait "$GW" || rc=$?
[ "$rc" = 0 ] || fail "gateway exit status $rc after SIGTERM: $(tail -5 "$T/gw.log")"
grep -q drained "$T/gw.log" || fail "no drain in the log"

# ---- the audit chain, and no credential in any log ----
"$AIRLOCK_BIN" audit verify "$T/audit.log" >/dev/null || fail "audit chain does not verify"
grep -q '"event":"gateway.request"' "$T/audit.log" || fail "no request record"
grep -q '"outcome":"refused_tool"' "$T/audit.log" || fail "no refused tool record"
grep -q '"outcome":"client_gone"' "$T/audit.log" || fail "no cancelled record"
grep -q '"caller_token_sha256"' "$T/audit.log" || fail "no caller identity"
grep -q '"result_sha256"' "$T/audit.log" || fail "no result hash"
grep -q 'tok-SECRET-123' "$T/audit.log" "$T/gw.log" && fail "the Authorization value is in a log"
echo "ok"
