#!/bin/sh
# The official MCP Inspector CLI (@modelcontextprotocol/inspector --cli,
# version pinned in scripts/mcp-deps.sh, run on the Node 22 installed there)
# lists and calls the tickets tools through `airlock gateway`: real gateway,
# real TLS (a throwaway CA made here; the inspector trusts it through
# NODE_EXTRA_CA_CERTS), real tickets-mcp (build/tickets-mcp, not a double)
#   - behind an http route:   https://127.0.0.1:PORT/mcp -> tickets-mcp --listen
#   - behind a stdio route:   https://localhost:PORT/mcp -> tickets-mcp --stdio
# Both share one SQLite database, so a ticket created through one route is
# found through the other. The http route denies tickets_close: the
# inspector's tools/list must not show it.
#
# What the inspector cannot do here (2.12.0), and how the test copes:
#   - it cannot choose the Host header: `--header "Host: ..."` is accepted but
#     not sent (Node's fetch sets Host from the URL; checked: the audit record
#     names the URL's route). So routes are keyed by the URL hosts 127.0.0.1
#     and localhost, not by a tunnel subdomain.
#   - it cannot call a tool its own tools/list did not return: a call of the
#     denied tickets_close ends in the inspector ("tool_not_found") before any
#     request reaches the gateway, so the gateway's own -32602 refusal is
#     tested with curl instead (and in test_gateway.sh).
# Skips (77) when the npm registry is unreachable and the inspector is not
# installed yet.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "no openssl CLI"; exit 77; }
SRC=${AIRLOCK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
TICKETS=$(dirname "$AIRLOCK_BIN")/tickets-mcp
[ -x "$TICKETS" ] || fail "$TICKETS not built (make $(basename "$(dirname "$AIRLOCK_BIN")")/tickets-mcp)"

if ! "$SRC/scripts/mcp-deps.sh" >"$T/deps.out" 2>"$T/deps.err"; then
	cat "$T/deps.err"
	registry=$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
	if ! curl -sf -o /dev/null --max-time 10 "$registry" 2>/dev/null; then
		echo "npm registry $registry unreachable: cannot install the MCP Inspector"
		exit 77
	fi
	fail "scripts/mcp-deps.sh failed although the npm registry answers"
fi
NODE22=$(sed -n 1p "$T/deps.out")
INSPECTOR=$(sed -n 3p "$T/deps.out")
[ -f "$INSPECTOR" ] || fail "no inspector entry point from scripts/mcp-deps.sh: $(cat "$T/deps.out")"

cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
	-subj "/CN=airlock inspector test CA" >/dev/null 2>&1 || fail "openssl: CA"
openssl req -newkey rsa:2048 -nodes -keyout gw.key -out gw.csr -subj "/CN=gw" \
	>/dev/null 2>&1 || fail "openssl: csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >gw.ext
openssl x509 -req -in gw.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out gw.pem \
	-days 2 -extfile gw.ext >/dev/null 2>&1 || fail "openssl: sign"
cd - >/dev/null

UP=$(free_port)
GP=$(free_port)
AP=$(free_port)
"$TICKETS" --db "$T/tickets.db" --listen "127.0.0.1:$UP" >"$T/up.log" 2>&1 &
PIDS="$PIDS $!"
wait_http "http://127.0.0.1:$UP/mcp"

cat >"$T/gw.yaml" <<YAML
listen_addr: 127.0.0.1:$GP
log_level: debug
shutdown_timeout: 5s
tls:
  cert_file: $T/gw.pem
  key_file: $T/gw.key
routes:
  127.0.0.1:
    upstream: http://127.0.0.1:$UP
    tools:
      deny: ["tickets_close"]
  localhost:
    command: $TICKETS
    args: ["--stdio", "--db", "$T/tickets.db"]
    pool_size: 1
upstream:
  allowed_ips: [127.0.0.0/8]
airlock:
  admin_addr: 127.0.0.1:$AP
  audit: $T/audit.log
YAML
"$AIRLOCK_BIN" gateway --config "$T/gw.yaml" >"$T/gw.log" 2>&1 &
GW=$!
PIDS="$PIDS $GW"
wait_http "http://127.0.0.1:$AP/healthz"
i=0
while ! curl -sf "http://127.0.0.1:$AP/readyz" >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "/readyz: $(curl -s "http://127.0.0.1:$AP/readyz")"
	sleep 0.1
done

# inspector HOST OUT ARGS...: the CLI against the gateway; fails on a non-zero exit.
inspector() {
	h=$1 out=$2; shift 2
	NODE_EXTRA_CA_CERTS="$T/ca.pem" MCP_CATALOG_PATH="$T/catalog.json" HOME="$T" \
		timeout 60 "$NODE22" "$INSPECTOR" --cli "https://$h:$GP/mcp" --transport http "$@" \
		>"$T/$out" 2>"$T/$out.err" ||
		fail "inspector $h $*: exit $?: $(cat "$T/$out" "$T/$out.err" | tail -20)"
}
# expect FILE PYTHON-EXPR WHAT: EXPR over the inspector's JSON output (j).
expect() {
	python3 - "$T/$1" "$2" <<'PY' || fail "$3: $(head -c 2000 "$T/$1")"
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

# ---- through the http route ----
inspector 127.0.0.1 list.json --method tools/list
expect list.json 'sorted(t["name"] for t in j["tools"]) == ["tickets_comment", "tickets_create", "tickets_get", "tickets_search"]' \
	"tools/list through the http route (tickets_close denied)"
inspector 127.0.0.1 create.json --method tools/call --tool-name tickets_create \
	--tool-arg title=Printer "body=on fire" priority=high
expect create.json 'j["structuredContent"]["title"] == "Printer" and j["structuredContent"]["status"] == "open" and not j.get("isError")' \
	"tools/call tickets_create"
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["structuredContent"]["id"])' "$T/create.json")
inspector 127.0.0.1 get.json --method tools/call --tool-name tickets_get --tool-arg "id=$ID"
expect get.json "j['structuredContent']['id'] == $ID and j['structuredContent']['body'] == 'on fire'" "tools/call tickets_get"

# The denied tool, sent anyway (curl: the inspector will not send it).
STATUS=$(curl -s -o "$T/deny.json" -w '%{http_code}' --cacert "$T/ca.pem" \
	-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
	--data-binary "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"tickets_close\",\"arguments\":{\"id\":$ID,\"resolution\":\"fixed\"}}}" \
	"https://127.0.0.1:$GP/mcp")
[ "$STATUS" = 200 ] || fail "denied tickets_close: $STATUS"
expect deny.json 'j["error"]["code"] == -32602' "denied tickets_close"

# ---- through the stdio route (tickets-mcp --stdio, same database) ----
inspector localhost slist.json --method tools/list
expect slist.json '"tickets_close" in [t["name"] for t in j["tools"]] and len(j["tools"]) == 5' \
	"tools/list through the stdio route"
inspector localhost search.json --method tools/call --tool-name tickets_search --tool-arg query=printer
expect search.json "j['structuredContent']['count'] == 1 and j['structuredContent']['tickets'][0]['id'] == $ID" \
	"tools/call tickets_search through the stdio route"
inspector localhost close.json --method tools/call --tool-name tickets_close --tool-arg "id=$ID" resolution=fixed
expect close.json 'j["structuredContent"]["status"] == "closed" and not j.get("isError")' \
	"tools/call tickets_close through the stdio route"

# ---- every call audited, on the route it took; the chain verifies ----
kill -TERM "$GW"
rc=0
wait "$GW" || rc=$?
[ "$rc" = 0 ] || fail "gateway exit status $rc: $(tail -5 "$T/gw.log")"
"$AIRLOCK_BIN" audit verify "$T/audit.log" >/dev/null || fail "audit chain does not verify"
python3 - "$T/audit.log" <<'PY' || fail "audit records: $(grep gateway.response "$T/audit.log")"
import json, sys
recs = [json.loads(l).get("airlock") or {} for l in open(sys.argv[1])]
by = [(r["route"], r["name"]) for r in recs if r.get("event") == "gateway.response"]
want = [("127.0.0.1", "tickets_create"), ("127.0.0.1", "tickets_get"), ("127.0.0.1", "tickets_close"),
        ("localhost", "tickets_search"), ("localhost", "tickets_close")]
assert by == want, by
PY
echo "ok"
