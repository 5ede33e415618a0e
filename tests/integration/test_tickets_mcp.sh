#!/bin/sh
# build/tickets-mcp, the example MCP server, on loopback: the ticket life
# (create, search, get, comment, close), resources and the prompt, bad
# arguments, both protocol eras over Streamable HTTP (2026-07-28 with _meta
# and the Mcp-* headers; 2025-11-25 with initialize and Mcp-Session-Id),
# SIGTERM, persistence across a restart, and stdio.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mcp_lib.sh"

BIN=$(dirname "$AIRLOCK_BIN")/tickets-mcp
[ -x "$BIN" ] || fail "$BIN not built (make $(basename "$(dirname "$AIRLOCK_BIN")")/tickets-mcp)"
DB="$T/tickets.db"

mcp_start tickets "$BIN" --db "$DB" --listen 127.0.0.1:0
PID_A=$PID

# ---- 2026-07-28: discovery and the lists ----
mcp_post modern server/discover '{}'
mcp_check 'code == 200 and "2026-07-28" in res["supportedVersions"]' "discover"
mcp_check '"tools" in res["capabilities"] and "resources" in res["capabilities"] and "prompts" in res["capabilities"]' "discover capabilities"

mcp_post modern tools/list '{}'
mcp_check 'sorted(t["name"] for t in res["tools"]) == ["tickets_close", "tickets_comment", "tickets_create", "tickets_get", "tickets_search"]' "tools/list names"
mcp_check 'all(t["inputSchema"]["type"] == "object" and t["outputSchema"]["type"] == "object" for t in res["tools"])' "every tool has input and output schemas"
mcp_check '[t for t in res["tools"] if t["name"] == "tickets_create"][0]["inputSchema"]["required"] == ["title"]' "create schema"
mcp_check '[t for t in res["tools"] if t["name"] == "tickets_get"][0]["annotations"]["readOnlyHint"] is True' "annotations"

# ---- the ticket life ----
mcp_post modern tools/call '{"name": "tickets_create", "arguments": {"title": "Printer on fire", "body": "Smoke from tray 2 (50% of jobs)", "priority": "urgent"}}'
mcp_check 'code == 200 and res.get("isError") is not True and sc["id"] == 1 and sc["status"] == "open" and sc["priority"] == "urgent"' "create"
mcp_check 'json.loads(text) == sc' "text block carries the structured result"
mcp_check 'res.get("resultType") == "complete"' "resultType on a modern result"
mcp_post modern tools/call '{"name": "tickets_create", "arguments": {"title": "VPN drops every hour"}}'
mcp_check 'sc["id"] == 2 and sc["priority"] == "normal" and sc["body"] == ""' "create with defaults"

mcp_post modern tools/call '{"name": "tickets_search", "arguments": {"query": "PRINTER"}}'
mcp_check 'sc["count"] == 1 and sc["tickets"][0]["id"] == 1 and sc["tickets"][0]["title"] == "Printer on fire"' "search, case-insensitive"
# LIKE wildcards in the query are literal text.
mcp_post modern tools/call '{"name": "tickets_search", "arguments": {"query": "%"}}'
mcp_check 'sc["count"] == 1 and sc["tickets"][0]["id"] == 1' "a % in the query matches only a literal %"
mcp_post modern tools/call '{"name": "tickets_search", "arguments": {}}'
mcp_check '[t["id"] for t in sc["tickets"]] == [2, 1]' "search everything, newest first"
mcp_post modern tools/call '{"name": "tickets_search", "arguments": {"limit": 1}}'
mcp_check '[t["id"] for t in sc["tickets"]] == [2]' "search limit"

mcp_post modern tools/call '{"name": "tickets_comment", "arguments": {"id": 1, "body": "Unplugged it. Facilities notified."}}'
mcp_check 'sc["ticket_id"] == 1 and sc["id"] >= 1 and sc["body"].startswith("Unplugged")' "comment"
mcp_post modern tools/call '{"name": "tickets_close", "arguments": {"id": 1, "resolution": "fixed"}}'
mcp_check 'sc["status"] == "closed" and sc["resolution"] == "fixed"' "close"
mcp_post modern tools/call '{"name": "tickets_get", "arguments": {"id": 1}}'
mcp_check 'sc["status"] == "closed" and len(sc["comments"]) == 1 and sc["comments"][0]["body"].startswith("Unplugged")' "get after comment and close"
mcp_post modern tools/call '{"name": "tickets_search", "arguments": {"status": "closed"}}'
mcp_check '[t["id"] for t in sc["tickets"]] == [1]' "search closed"
mcp_post modern tools/call '{"name": "tickets_search", "arguments": {"status": "open"}}'
mcp_check '[t["id"] for t in sc["tickets"]] == [2]' "search open"

# ---- bad arguments: tool results with isError, a message naming the argument ----
bad() { # ARGS-JSON TOOL WANT-SUBSTRING
	mcp_post modern tools/call "{\"name\": \"$2\", \"arguments\": $1}"
	mcp_check "code == 200 and res['isError'] is True and $3 in text and 'structuredContent' not in res" "$2 $1"
}
bad '{"title": "x", "priority": "asap"}' tickets_create '"priority: must be one of low, normal, high, urgent"'
bad '{"title": ""}' tickets_create '"title: must not be empty"'
bad '{}' tickets_create '"title: is required"'
bad '{"title": "x", "owner": "me"}' tickets_create '"owner: unknown argument"'
bad '{"id": "1"}' tickets_get '"id: must be an integer"'
bad '{"id": 0}' tickets_get '"id: must be at least 1"'
bad '{"id": 999}' tickets_get '"ticket 999 not found"'
bad '{"limit": 101}' tickets_search '"limit: must be at most 100"'
bad '{"status": "pending"}' tickets_search '"status: must be one of open, closed, any"'
bad '{"id": 1, "resolution": "fixed"}' tickets_close '"ticket 1 is already closed"'
bad '{"id": 2, "resolution": "done"}' tickets_close '"resolution: must be one of fixed, wontfix, duplicate, invalid"'
bad '{"id": 999, "body": "x"}' tickets_comment '"ticket 999 not found"'
python3 -c 'print("{\"title\": \"" + "x" * 201 + "\"}")' >"$T/long"
bad "$(cat "$T/long")" tickets_create '"title: must be at most 200 characters"'
# An unknown tool is a protocol error.
mcp_post modern tools/call '{"name": "tickets_delete", "arguments": {"id": 1}}'
mcp_check 'err is not None and err["code"] == -32602' "unknown tool -> -32602"

# ---- resources ----
mcp_post modern resources/list '{}'
mcp_check '[x["uri"] for x in res["resources"]] == ["tickets://open"]' "resources/list"
mcp_post modern resources/templates/list '{}'
mcp_check '[x["uriTemplate"] for x in res["resourceTemplates"]] == ["tickets://ticket/{id}"]' "templates/list"
mcp_post modern resources/read '{"uri": "tickets://ticket/1"}'
mcp_check 'res["contents"][0]["uri"] == "tickets://ticket/1" and res["contents"][0]["mimeType"] == "application/json" and json.loads(res["contents"][0]["text"])["resolution"] == "fixed"' "read a ticket"
mcp_post modern resources/read '{"uri": "tickets://open"}'
mcp_check '[t["id"] for t in json.loads(res["contents"][0]["text"])["tickets"]] == [2]' "read the open list"
mcp_post modern resources/read '{"uri": "tickets://ticket/999"}'
mcp_check 'err["code"] == -32602 and err["data"]["uri"] == "tickets://ticket/999"' "unknown ticket resource -> -32602 {uri}"
mcp_post modern resources/read '{"uri": "tickets://ticket/01"}'
mcp_check 'err["code"] == -32602' "a non-canonical id is no ticket"

# ---- the prompt and completion ----
mcp_post modern prompts/list '{}'
mcp_check '[p["name"] for p in res["prompts"]] == ["triage_ticket"] and res["prompts"][0]["arguments"][0]["required"] is True' "prompts/list"
mcp_post modern prompts/get '{"name": "triage_ticket", "arguments": {"id": "2"}}'
mcp_check 'len(res["messages"]) == 2 and "Triage ticket #2" in res["messages"][0]["content"]["text"]' "prompt text"
mcp_check 'res["messages"][1]["content"]["resource"]["uri"] == "tickets://ticket/2" and json.loads(res["messages"][1]["content"]["resource"]["text"])["title"] == "VPN drops every hour"' "prompt embeds the ticket"
mcp_post modern prompts/get '{"name": "triage_ticket", "arguments": {"id": "77"}}'
mcp_check 'err["code"] == -32602' "prompt for a missing ticket"
mcp_post modern completion/complete '{"ref": {"type": "ref/prompt", "name": "triage_ticket"}, "argument": {"name": "id", "value": ""}}'
mcp_check 'res["completion"]["values"] == ["2"]' "completion: open ticket ids"

# ---- the headers are checked against the body ----
mcp_post modern tools/call '{"name": "tickets_get", "arguments": {"id": 2}}' -H "Mcp-Name: tickets_close"
mcp_check 'code == 400 and err["code"] == -32020' "Mcp-Name differing from the body -> 400 -32020"
mcp_post modern tools/call '{"name": "tickets_get", "arguments": {"id": 2}}' -H "Host: evil.example"
mcp_check 'code == 403' "a foreign Host -> 403"

# ---- 2025-11-25: initialize, a session, DELETE ----
mcp_post legacy initialize '{"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}'
mcp_check 'code == 200 and res["protocolVersion"] == "2025-11-25" and res["serverInfo"]["name"] == "tickets-mcp" and "mcp-session-id" in hdr' "initialize"
SID=$(python3 -c 'import sys
for l in open(sys.argv[1], encoding="latin-1"):
    if l.lower().startswith("mcp-session-id:"): print(l.split(":", 1)[1].strip())' "$T/hdr")
[ -n "$SID" ] || fail "no Mcp-Session-Id"
mcp_post legacy notifications/initialized '{}'
mcp_check 'code == 202' "initialized -> 202"
mcp_post legacy tools/call '{"name": "tickets_comment", "arguments": {"id": 2, "body": "seen from a 2025 client"}}'
mcp_check 'code == 200 and sc["ticket_id"] == 2 and "resultType" not in res' "legacy tools/call"
mcp_post legacy tools/call '{"name": "tickets_create", "arguments": {"title": 7}}'
mcp_check 'res["isError"] is True and "title: must be a string" in text' "legacy bad arguments"
mcp_post legacy resources/read '{"uri": "tickets://ticket/2"}'
mcp_check 'len(json.loads(res["contents"][0]["text"])["comments"]) == 1' "legacy resources/read"
mcp_post legacy prompts/get '{"name": "triage_ticket", "arguments": {"id": "2"}}'
mcp_check 'res["messages"][1]["content"]["resource"]["uri"] == "tickets://ticket/2"' "legacy prompts/get"
# A subscriber hears of a change to its ticket on the session's GET stream.
mcp_post legacy resources/subscribe '{"uri": "tickets://ticket/2"}'
mcp_check 'code == 200 and err is None' "resources/subscribe"
curl -sS -N --max-time 10 -D "$T/stream.hdr" -H "Mcp-Session-Id: $SID" \
	-H "MCP-Protocol-Version: 2025-11-25" -H 'Accept: text/event-stream' "$URL" \
	>"$T/stream" 2>/dev/null &
STREAM=$!
i=0
until grep -q '^HTTP/1.1 200' "$T/stream.hdr" 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the GET stream did not open"
	sleep 0.05
done
mcp_post legacy tools/call '{"name": "tickets_comment", "arguments": {"id": 2, "body": "second"}}'
i=0
until grep -q 'notifications/resources/updated' "$T/stream"; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "no resources/updated on the stream: $(cat "$T/stream")"
	sleep 0.1
done
grep -q '"uri":"tickets://ticket/2"' "$T/stream" || fail "updated names another uri: $(cat "$T/stream")"
kill "$STREAM" 2>/dev/null; wait "$STREAM" 2>/dev/null || true
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE -H "Mcp-Session-Id: $SID" \
	-H "MCP-Protocol-Version: 2025-11-25" "$URL")
[ "$code" = 204 ] || fail "DELETE session: $code"
mcp_post legacy tools/list '{}'
mcp_check 'code == 404' "a deleted session -> 404"
SID=""

# ---- concurrent writers, and a second instance on the same file (WAL) ----
mcp_start tickets-b "$BIN" --db "$DB" --listen 127.0.0.1:0
URL_B=$URL; PID_B=$PID
URL_A=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$T/tickets.log" | head -n 1)
for i in 1 2 3 4 5 6 7 8 9 10; do
	u=$URL_A; [ $((i % 2)) -eq 0 ] && u=$URL_B
	curl -sS -o "$T/c$i" -H 'Content-Type: application/json' \
		-H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
		-H 'Mcp-Method: tools/call' -H 'Mcp-Name: tickets_create' --data-binary \
		"{\"jsonrpc\":\"2.0\",\"id\":$i,\"method\":\"tools/call\",\"params\":{\"name\":\"tickets_create\",\"arguments\":{\"title\":\"load $i\"},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}" \
		"$u" &
	CURLS="${CURLS:-} $!"
done
for p in $CURLS; do wait "$p" || fail "a concurrent create failed"; done
python3 - "$T" <<'PY' || fail "concurrent creates"
import json, sys
ids = sorted(json.load(open("%s/c%d" % (sys.argv[1], i)))["result"]["structuredContent"]["id"]
             for i in range(1, 11))
assert ids == list(range(3, 13)), ids
PY
URL=$URL_B
mcp_post modern tools/call '{"name": "tickets_search", "arguments": {"query": "load", "limit": 100}}'
mcp_check 'sc["count"] == 10' "instance B sees every ticket, whichever instance made it"
kill -TERM "$PID_B"; rc=0; wait "$PID_B" || rc=$?
[ $rc -eq 0 ] || fail "instance B: exit $rc"
URL=$URL_A

# ---- SIGTERM drains and exits 0; the data outlives the process ----
PID=$PID_A
kill -TERM "$PID"
rc=0; wait "$PID" || rc=$?
[ $rc -eq 0 ] || fail "SIGTERM: exit $rc: $(tail -5 "$T/tickets.log")"
grep -q "^{" "$T/tickets.log" && fail "JSON on stderr?"
mcp_start tickets2 "$BIN" --db "$DB" --listen 127.0.0.1:0
mcp_post modern tools/call '{"name": "tickets_get", "arguments": {"id": 1}}'
mcp_check 'sc["status"] == "closed" and sc["comments"][0]["body"].startswith("Unplugged")' "ticket 1 after a restart"
mcp_post modern tools/call '{"name": "tickets_create", "arguments": {"title": "After restart"}}'
mcp_check 'sc["id"] == 13' "ids continue after a restart"
kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?
[ $rc -eq 0 ] || fail "second SIGTERM: exit $rc"

# ---- stdio: stdout carries only protocol lines, logs go to stderr ----
python3 - "$BIN" "$DB" "$T/stdio.err" <<'PY' || fail "stdio"
import json, subprocess, sys
meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"}}
reqs = [
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
     "params": {"_meta": meta, "name": "tickets_get", "arguments": {"id": 13}}},
    {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
     "params": {"_meta": meta, "name": "tickets_get", "arguments": {"id": "x"}}},
    {"jsonrpc": "2.0", "id": 4, "method": "resources/read",
     "params": {"_meta": meta, "uri": "tickets://ticket/1"}},
]
err = open(sys.argv[3], "w")
p = subprocess.run([sys.argv[1], "--db", sys.argv[2], "--stdio"],
                   input="".join(json.dumps(r) + "\n" for r in reqs),
                   stdout=subprocess.PIPE, stderr=err, text=True, timeout=30)
assert p.returncode == 0, "exit %d" % p.returncode
lines = p.stdout.splitlines()
msgs = {}
for l in lines:
    m = json.loads(l)  # every stdout line is one JSON-RPC message
    assert m.get("jsonrpc") == "2.0", l
    msgs[m.get("id")] = m
assert len(msgs[1]["result"]["tools"]) == 5, msgs[1]
assert msgs[2]["result"]["structuredContent"]["title"] == "After restart", msgs[2]
assert msgs[3]["result"]["isError"] is True, msgs[3]
assert "id: must be an integer" in msgs[3]["result"]["content"][0]["text"], msgs[3]
assert json.loads(msgs[4]["result"]["contents"][0]["text"])["status"] == "closed", msgs[4]

# 2025-11-25 over stdio: initialize first.
reqs = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "it", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
     "params": {"name": "tickets_search", "arguments": {"status": "any"}}},
]
p = subprocess.run([sys.argv[1], "--db", sys.argv[2], "--stdio"],
                   input="".join(json.dumps(r) + "\n" for r in reqs),
                   stdout=subprocess.PIPE, stderr=err, text=True, timeout=30)
assert p.returncode == 0, "exit %d" % p.returncode
msgs = {m.get("id"): m for m in map(json.loads, p.stdout.splitlines())}
assert msgs[1]["result"]["protocolVersion"] == "2025-11-25", msgs[1]
assert [t["id"] for t in msgs[2]["result"]["structuredContent"]["tickets"]][:3] == [13, 12, 11], msgs[2]
PY

# Usage errors.
rc=0; "$BIN" --listen 127.0.0.1:0 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "no --db: exit $rc"
rc=0; "$BIN" --db "$DB" --stdio --listen 127.0.0.1:0 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "--stdio with --listen: exit $rc"
echo "ok"
