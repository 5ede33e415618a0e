#!/bin/sh
# airlock sandbox mcp: the worker's tools (bash, read, write, edit, glob,
# grep) served over MCP on loopback. bash runs in the sandbox (its uid, its
# hostname, no network, a persistent shell), the file tools stay in the
# workspace, a caller that goes away kills its command, the audit log
# verifies, SIGTERM exits 0; then stdio (and the bwrap backend when present).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mcp_lib.sh"

WS="$T/ws"
mkdir -p "$WS"
chmod 755 "$T"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$WS"
WANT_UID=$(id -u); [ "$WANT_UID" = 0 ] && WANT_UID=65534
echo "outside the workspace" >"$T/secret.txt"

mcp_start sbx "$AIRLOCK_BIN" sandbox mcp --workspace "$WS" --listen 127.0.0.1:0 \
	--audit "$T/audit.log" --timeout 20
PORT=${URL##*:}; PORT=${PORT%%/*}

call() { # TOOL ARGS-JSON
	mcp_post modern tools/call "{\"name\": \"$1\", \"arguments\": $2}"
}

mcp_post modern tools/list '{}'
mcp_check 'sorted(t["name"] for t in res["tools"]) == ["bash", "edit", "glob", "grep", "read", "write"]' "tools/list"
mcp_check '[t for t in res["tools"] if t["name"] == "bash"][0]["inputSchema"]["properties"]["command"]["type"] == "string"' "bash schema (the worker's)"
mcp_check '[t for t in res["tools"] if t["name"] == "read"][0]["annotations"]["readOnlyHint"] is True' "read is read-only"

# ---- bash is in the sandbox ----
call bash '{"command": "id -u"}'
mcp_check "code == 200 and res['isError'] is False and text == '$WANT_UID'" "id -u in the sandbox"
call bash '{"command": "hostname"}'
mcp_check "text == 'sandbox' and text != '$(hostname)'" "the sandbox's hostname"
call bash '{"command": "pwd"}'
mcp_check "text == '$WS'" "bash starts in the workspace"
# No network: not the host's loopback (this server's own port), not the outside.
call bash "{\"command\": \"(exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && echo reached || echo unreachable; (exec 3<>/dev/tcp/192.0.2.1/80) 2>/dev/null && echo reached || echo unreachable\"}"
mcp_check 'text == "unreachable\nunreachable"' "no network from the sandbox"
call bash "{\"command\": \"cat $T/secret.txt\"}"
mcp_check 'res["isError"] is True and "outside the workspace" not in text' "the host's files are not in the sandbox"
# One persistent shell: cwd and variables carry over.
call bash '{"command": "mkdir -p sub && cd sub && export GREETING=hi"}'
call bash '{"command": "pwd; echo $GREETING"}'
mcp_check "text == '$WS/sub\nhi'" "the shell persists across calls"
call bash '{"command": "(exit 3)"}'
mcp_check 'res["isError"] is True and text == "exit 3"' "a failing command is an error result"
call bash '{"command": "sleep 5", "timeout_ms": 300}'
mcp_check 'res["isError"] is True and text == "bash: bash command timed out after 300ms"' "timeout"
call bash '{}'
mcp_check 'res["isError"] is True and text == "bash: command is required"' "bash without a command"

# ---- file tools, confined ----
call write '{"file_path": "notes/a.txt", "content": "hello\nworld\n"}'
mcp_check 'res["isError"] is False and text == "wrote 12 bytes to notes/a.txt"' "write"
[ "$(cat "$WS/notes/a.txt")" = "hello
world" ] || fail "write did not land in the workspace"
call read '{"file_path": "notes/a.txt"}'
mcp_check 'text == "hello\nworld\n"' "read back"
# (The timeout above gave a fresh shell in the workspace; the path is the same inside.)
call bash "{\"command\": \"cat $WS/notes/a.txt\"}"
mcp_check 'text == "hello\nworld"' "bash sees what write wrote"
call edit '{"file_path": "notes/a.txt", "old_string": "world", "new_string": "sandbox"}'
mcp_check 'res["isError"] is False and "1 replacement" in text' "edit"
call grep '{"pattern": "sand"}'
mcp_check '"notes/a.txt" in text and "sandbox" in text' "grep"
call glob '{"pattern": "**/*.txt"}'
mcp_check "text.splitlines() == ['$WS/notes/a.txt']" "glob"
call read "{\"file_path\": \"$T/secret.txt\"}"
mcp_check 'res["isError"] is True and "outside the session'"'"'s working directory" in text and "outside the workspace" not in text' "an absolute path outside is refused"
call read '{"file_path": "../secret.txt"}'
mcp_check 'res["isError"] is True and "outside the session'"'"'s working directory" in text' "../ is refused"
call write '{"file_path": "../escaped.txt", "content": "x"}'
mcp_check 'res["isError"] is True' "write outside is refused"
[ -e "$T/escaped.txt" ] && fail "write escaped the workspace"
ln -s "$T" "$WS/link"
call read '{"file_path": "link/secret.txt"}'
mcp_check 'res["isError"] is True and "outside the workspace" not in text' "a symlink out is refused"
call read '{"file_path": "missing.txt"}'
mcp_check 'res["isError"] is True and text == "read: missing.txt: no such file or directory"' "missing file"

# ---- a caller that goes away kills its command; the next call gets a fresh shell ----
call bash '{"command": "export MARK=old"}'
curl -sS -o /dev/null --max-time 1 -H 'Content-Type: application/json' \
	-H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
	-H 'Mcp-Method: tools/call' -H 'Mcp-Name: bash' --data-binary \
	'{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"bash","arguments":{"command":"sleep 30; touch late"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' \
	"$URL" 2>/dev/null && fail "a 30 s command answered within 1 s"
start=$(date +%s)
call bash '{"command": "echo [$MARK]"}'
end=$(date +%s)
mcp_check 'text == "[]"' "after a cancel: a fresh shell"
[ $((end - start)) -lt 10 ] || fail "the cancelled command was not killed ($((end - start)) s)"
sleep 1; [ -e "$WS/late" ] && fail "the cancelled command ran on"

# ---- calls from several clients run one at a time, in order ----
call bash '{"command": "rm -f order"}'
for i in 1 2 3; do
	curl -sS -o /dev/null -H 'Content-Type: application/json' \
		-H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
		-H 'Mcp-Method: tools/call' -H 'Mcp-Name: bash' --data-binary \
		"{\"jsonrpc\":\"2.0\",\"id\":$i,\"method\":\"tools/call\",\"params\":{\"name\":\"bash\",\"arguments\":{\"command\":\"echo s$i >> order; sleep 0.3; echo e$i >> order\"},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}" \
		"$URL" &
	CURLS="${CURLS:-} $!"
done
for p in $CURLS; do wait "$p" || fail "concurrent call failed"; done
python3 - "$WS/order" <<'PY' || fail "concurrent calls interleaved: $(cat "$WS/order")"
import sys
l = open(sys.argv[1]).read().split()
assert len(l) == 6 and all(l[i][1] == l[i + 1][1] and l[i][0] == "s" for i in range(0, 6, 2)), l
PY

# ---- 2025-11-25 clients too ----
mcp_post legacy initialize '{"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}'
SID=$(python3 -c 'import sys
for l in open(sys.argv[1], encoding="latin-1"):
    if l.lower().startswith("mcp-session-id:"): print(l.split(":", 1)[1].strip())' "$T/hdr")
[ -n "$SID" ] || fail "no Mcp-Session-Id"
mcp_post legacy tools/call '{"name": "read", "arguments": {"file_path": "notes/a.txt"}}'
mcp_check 'text == "hello\nsandbox\n"' "legacy tools/call"
SID=""

# ---- SIGTERM drains: the call in flight is answered, then exit 0 ----
curl -sS -o "$T/drained" --max-time 30 -H 'Content-Type: application/json' \
	-H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
	-H 'Mcp-Method: tools/call' -H 'Mcp-Name: bash' --data-binary \
	'{"jsonrpc":"2.0","id":"d","method":"tools/call","params":{"name":"bash","arguments":{"command":"touch started; sleep 1.5; echo drained-ok"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' \
	"$URL" &
CURL=$!
i=0
until [ -e "$WS/started" ]; do
	i=$((i + 1)); [ $i -lt 200 ] || fail "the call to drain did not start"
	sleep 0.05
done
kill -TERM "$PID"
wait "$CURL" || fail "the call in flight at SIGTERM failed"
grep -q drained-ok "$T/drained" || fail "the call in flight at SIGTERM: $(cat "$T/drained")"
rc=0; wait "$PID" || rc=$?
[ $rc -eq 0 ] || fail "SIGTERM: exit $rc: $(tail -5 "$T/sbx.log")"
"$AIRLOCK_BIN" audit verify "$T/audit.log" >"$T/verify" 2>&1 || fail "audit verify: $(cat "$T/verify")"
python3 - "$T/audit.log" <<'PY' || fail "audit records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ev = [r.get("airlock", {}).get("event") for r in recs]
calls = [r for r in recs if r.get("airlock", {}).get("event") == "tool.call"]
tools = {r["airlock"]["tool"] for r in calls}
assert {"bash", "read", "write", "edit", "glob", "grep"} <= tools, tools
assert "sandbox.launch" in ev, ev
# The content of calls is hashed, never written.
assert not any("hello" in json.dumps(r) for r in recs)
PY

# ---- stdio (native, then bwrap when installed) ----
for b in native bwrap; do
	if [ $b = bwrap ] && ! command -v bwrap >/dev/null; then
		echo "note: bwrap not installed, its stdio run skipped"; continue
	fi
	python3 - "$AIRLOCK_BIN" "$WS" "$b" "$WANT_UID" <<'PY' || fail "stdio ($b)"
import json, subprocess, sys
meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}
def call(i, name, args):
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"_meta": meta, "name": name, "arguments": args}}
reqs = [call(1, "bash", {"command": "id -u; hostname"}),
        call(2, "write", {"file_path": "stdio.txt", "content": "via stdio"}),
        call(3, "bash", {"command": "cat stdio.txt"}),
        call(4, "read", {"file_path": "/etc/passwd"})]
p = subprocess.Popen([sys.argv[1], "sandbox", "mcp", "--workspace", sys.argv[2], "--stdio",
                      "--backend", sys.argv[3]],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
# One request at a time: the answers are then in order and nothing races EOF.
got = {}
for r in reqs:
    p.stdin.write(json.dumps(r) + "\n")
    p.stdin.flush()
    line = p.stdout.readline()
    m = json.loads(line)  # stdout carries only protocol lines
    got[m["id"]] = m["result"]
# notifications/cancelled kills a running command; the next call is answered at once.
if sys.argv[3] == "native":
    import time
    p.stdin.write(json.dumps(call(9, "bash", {"command": "sleep 30"})) + "\n")
    p.stdin.flush()
    time.sleep(0.5)
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                              "params": {"requestId": 9, "reason": "test"}}) + "\n")
    p.stdin.write(json.dumps(call(10, "bash", {"command": "echo after"})) + "\n")
    p.stdin.flush()
    t0 = time.time()
    m = json.loads(p.stdout.readline())
    assert m["id"] == 10 and m["result"]["content"][0]["text"] == "after", m
    assert time.time() - t0 < 10, "the cancelled command was not killed"
p.stdin.close()
rest = p.stdout.read()
assert rest == "", rest
assert p.wait(timeout=30) == 0
t = lambda i: got[i]["content"][0]["text"]
assert t(1) == sys.argv[4] + "\nsandbox", t(1)
assert t(3) == "via stdio" and got[3]["isError"] is False, got[3]
assert got[4]["isError"] is True and "root:" not in t(4), got[4]
PY
done

# ---- an audit log that cannot be written: fail closed, exit 1 ----
# RLIMIT_FSIZE stops the log growing past a few records (SIGXFSZ ignored:
# the write fails with EFBIG instead).
echo hi >"$WS/f.txt"
python3 - "$AIRLOCK_BIN" "$WS" "$T/small-audit.log" <<'PY' || fail "audit failure"
import json, subprocess, sys
meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}
reqs = "".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                           "params": {"_meta": meta, "name": "read",
                                      "arguments": {"file_path": "f.txt"}}}) + "\n"
               for i in range(1, 31))
cmd = "trap '' XFSZ; ulimit -f 4; exec \"$0\" sandbox mcp --workspace \"$1\" --stdio --audit \"$2\""
p = subprocess.run(["sh", "-c", cmd] + sys.argv[1:4], input=reqs, capture_output=True,
                   text=True, timeout=60)
assert p.returncode == 1, (p.returncode, p.stderr)
texts = [m["result"]["content"][0]["text"] for m in map(json.loads, p.stdout.splitlines())]
assert len(texts) == 30 and texts[0] == "hi\n", texts
first = texts.index("audit log unavailable")
assert all(t == "audit log unavailable" for t in texts[first:]), texts
assert "the audit log failed" in p.stderr, p.stderr
PY
"$AIRLOCK_BIN" audit verify "$T/small-audit.log" >"$T/verify" 2>&1 ||
	fail "the log of a failed write does not verify: $(cat "$T/verify")"

# Usage errors.
rc=0; "$AIRLOCK_BIN" sandbox mcp --listen 127.0.0.1:0 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "no --workspace: exit $rc"
rc=0; "$AIRLOCK_BIN" sandbox mcp --workspace "$WS" 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "neither --listen nor --stdio: exit $rc"
rc=0; "$AIRLOCK_BIN" sandbox mcp --workspace "$T/nope" --stdio </dev/null 2>/dev/null || rc=$?
[ $rc -eq 1 ] || fail "a missing workspace: exit $rc"
echo "ok"
