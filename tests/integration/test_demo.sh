#!/bin/sh
# test_demo.sh - `airlock demo` (the README's `make run`) end to end, without
# ANTHROPIC_API_KEY: the real control plane, the scripted model (a TEST
# DOUBLE) and the real worker on loopback. The agent writes a file, runs a
# command on it and reads the result back in the sandbox; the output must
# show all three, the files must exist in the worker's workspace, the audit
# log must verify, and nothing the demo started may be left running. Then a
# second run is interrupted with SIGINT mid-session: exit 130, nothing left.
. "$(dirname "$0")/lib.sh"

[ -x "$AIRLOCK_BIN" ] || { echo "airlock binary not built: $AIRLOCK_BIN"; exit 77; }
if ! "$AIRLOCK_BIN" worker --help >/dev/null 2>&1; then
	echo "airlock worker is not in this build yet"
	exit 77
fi
unset ANTHROPIC_API_KEY ANTHROPIC_BASE_URL ANTHROPIC_ENVIRONMENT_KEY AIRLOCK_DEMO_WORKER \
	AIRLOCK_DEMO_WORKER_ARGS || true

# left_running DIR: prints the processes whose command line names DIR.
left_running() {
	pgrep -a -f "$1" | grep -v "pgrep" || true
}

# The sandbox's uid must pass through the directories above its workspace.
chmod 711 "$T"
run="$T/run"
rc=0
"$AIRLOCK_BIN" demo --dir "$run" --timeout 90 >"$T/out" 2>"$T/err" </dev/null || rc=$?
show() { echo "--- stdout"; cat "$T/out"; echo "--- stderr"; cat "$T/err"; for f in "$run"/*.log; do echo "--- $f"; tail -30 "$f"; done; }
[ "$rc" -eq 0 ] || { show; fail "demo exited $rc"; }

# The output a person reads: the write, the command, the read-back, the verdict.
grep -q "^tool *write notes.txt" "$T/out" || { show; fail "no write of notes.txt shown"; }
grep -q "Every tool call runs in a sandbox." "$T/out" || { show; fail "the written content is not shown"; }
grep -q "wc notes.txt > count.txt" "$T/out" || { show; fail "the bash command is not shown"; }
n=$(grep -c "^  result *3 *21 *128 notes.txt" "$T/out" || true)
[ "$n" -eq 2 ] || { show; fail "want the command's result and the read-back (2 results), got $n"; }
grep -q "^agent.*count.txt says: *3 *21 *128 notes.txt" "$T/out" || { show; fail "the agent's answer lacks the count"; }
grep -q "^status *idle (end_turn)" "$T/out" || { show; fail "no idle end_turn status"; }
grep -q "audit log verified" "$T/out" || { show; fail "audit log not verified"; }
grep -q "3 tool calls ran in the sandbox (3 answered, 0 with an error)" "$T/out" || { show; fail "summary"; }
# The private MCP server behind the gateway (when tickets-mcp is built next to airlock).
if [ -x "$(dirname "$AIRLOCK_BIN")/tickets-mcp" ]; then
	grep -q "^gateway *airlock gateway at https://localhost:[0-9]*/mcp" "$T/out" || { show; fail "no gateway line"; }
	grep -q '^mcp *tickets/tickets_get {"id":1}, through the gateway (allow)' "$T/out" ||
		{ show; fail "no agent.mcp_tool_use shown"; }
	grep -q "^  ticket #1 \[open, high\] Agents must run inside the perimeter" "$T/out" ||
		{ show; fail "no agent.mcp_tool_result with the ticket shown"; }
	grep -q "1 MCP call went through the gateway to tickets-mcp (0 with an error)" "$T/out" ||
		{ show; fail "MCP summary"; }
	grep -q '"tickets_get"' "$run/gateway-audit.log" || fail "the gateway did not audit the call"
	"$AIRLOCK_BIN" audit verify "$run/gateway-audit.log" >/dev/null || fail "the gateway's audit log does not verify"
else
	echo "note: tickets-mcp not built next to $AIRLOCK_BIN: the MCP part was not checked"
fi
[ ! -s "$T/err" ] || { show; fail "stderr is not empty on success"; }
# Plain lines when stdout is not a TTY: no escape sequences, no spinner.
if grep -q "$(printf '\033')" "$T/out"; then fail "escape sequences in non-TTY output"; fi

# The files really are in the worker's workspace (written inside the sandbox).
notes=$(find "$run/work" -name notes.txt | head -1)
[ -n "$notes" ] || fail "notes.txt is not in the workspace"
[ "$(sed -n 2p "$notes")" = "Every tool call runs in a sandbox." ] || fail "notes.txt content"
count=$(find "$run/work" -name count.txt | head -1)
[ -n "$count" ] && grep -q "3 *21 *128 notes.txt" "$count" || fail "count.txt content"

# The audit log verifies on its own too, and it is the one the summary names.
"$AIRLOCK_BIN" audit verify "$run/audit.log" --pubkey "$run/audit.key.pub" >"$T/verify" ||
	fail "audit verify failed afterwards"
grep -q "signatures verified" "$T/verify" || fail "no signed checkpoint: $(cat "$T/verify")"
grep -q "audit log $run/audit.log" "$T/out" || fail "the summary does not name the audit log"
# Tampering is caught: one byte changed in the first record fails verification.
cp "$run/audit.log" "$T/tampered.log"
sed -i '1s/"seq":1,/"seq":7,/' "$T/tampered.log"
! cmp -s "$run/audit.log" "$T/tampered.log" || fail "could not tamper with the copy"
if "$AIRLOCK_BIN" audit verify "$T/tampered.log" >/dev/null 2>&1; then
	fail "a tampered copy of the audit log verifies"
fi
# The environment key went to the worker's environment, never into a log or the output.
if grep -rqE "alk_env_[A-Za-z0-9_-]{16,}" "$T/out" "$T/err" "$run"/*.log; then
	fail "an environment key appears in the output or a log"
fi

left=$(left_running "$run")
[ -z "$left" ] || fail "left running after the demo: $left"

# Interrupted mid-session: everything stops, exit 130.
run2="$T/run2"
"$AIRLOCK_BIN" demo --dir "$run2" --timeout 90 >"$T/out2" 2>"$T/err2" </dev/null &
pid=$!
i=0
until grep -q "^status *running" "$T/out2" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -ge 300 ] || ! kill -0 $pid 2>/dev/null; then
		cat "$T/out2" "$T/err2"; fail "the second demo never reached a running session"
	fi
	sleep 0.1
done
kill -INT $pid
rc=0; wait $pid || rc=$?
[ "$rc" -eq 130 ] || { cat "$T/out2" "$T/err2"; fail "interrupted demo exited $rc, want 130"; }
grep -q "interrupted" "$T/err2" || fail "the interrupted demo does not say so"
left=$(left_running "$run2")
[ -z "$left" ] || fail "left running after an interrupted demo: $left"
echo "ok"
