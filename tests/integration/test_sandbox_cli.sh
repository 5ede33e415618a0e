#!/bin/sh
# airlock sandbox run: exit statuses 0/N/128+N/124/125 and the --json object,
# on both backends.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || { echo "python3 needed to read --json"; exit 77; }
WS="$T/ws"
mkdir -p "$WS"
chmod 755 "$T"
[ "$(id -u)" = 0 ] && chown 65534:65534 "$WS"
# The bwrap backend's helper is hidden and refuses to run outside its sandbox.
rc=0; "$AIRLOCK_BIN" sandbox inner -- true 2>"$T/err" || rc=$?
[ $rc -eq 125 ] || fail "sandbox inner on the host: exit $rc, want 125"
rc=0; AIRLOCK_SANDBOX_INNER=1 "$AIRLOCK_BIN" sandbox inner -- sh -c "touch $T/inner-ran" \
	2>"$T/err" || rc=$?
[ $rc -eq 125 ] && [ ! -e "$T/inner-ran" ] || fail "sandbox inner with the marker on the host: exit $rc"
grep -q "bubblewrap" "$T/err" || fail "inner refusal does not say why: $(cat "$T/err")"
"$AIRLOCK_BIN" sandbox --help | grep -q inner && fail "sandbox inner is listed in --help"

for b in native bwrap; do
	RUN="$AIRLOCK_BIN sandbox run --workspace $WS"
	$RUN --backend $b -- true || fail "$b: true exited $?"
	rc=0; $RUN --backend $b -- sh -c 'exit 7' 2>/dev/null || rc=$?
	[ $rc -eq 7 ] || fail "$b: exit 7 gave $rc"
	rc=0; $RUN --backend $b -- sh -c 'kill -KILL $$' 2>/dev/null || rc=$?
	[ $rc -eq 137 ] || fail "$b: SIGKILL gave $rc"
	rc=0; $RUN --backend $b --timeout 1 -- sleep 30 2>/dev/null || rc=$?
	[ $rc -eq 124 ] || fail "$b: timeout gave $rc"
	rc=0; $RUN --backend $b --env ANTHROPIC_API_KEY=sk-ant-x -- true 2>"$T/err" || rc=$?
	[ $rc -eq 125 ] || fail "$b: forbidden env gave $rc"
	grep -q "sk-ant-x" "$T/err" && fail "$b: a secret value reached an error message"
	rc=0; $RUN --backend $b --workspace /nonexistent/x -- true 2>/dev/null || rc=$?
	[ $rc -eq 125 ] || fail "$b: bad workspace gave $rc"
	rc=0; $RUN --backend $b --cpu 5000000 -- true 2>"$T/err" || rc=$?
	[ $rc -eq 125 ] && grep -q "cpu quota" "$T/err" || fail "$b: an overflowing --cpu gave $rc"

	out=$($RUN --backend $b -- sh -c 'echo hello; hostname; pwd' 2>/dev/null)
	[ "$out" = "hello
sandbox
$WS" ] || fail "$b: output '$out'"

	# The host environment never enters.
	out=$(SECRET_HOST_VAR=leak $RUN --backend $b -- env 2>/dev/null)
	echo "$out" | grep -q SECRET_HOST_VAR && fail "$b: host environment leaked"

	# --json: the documented fields.
	$RUN --backend $b --json --output-limit 100 -- sh -c 'head -c 5000 /dev/zero | tr "\0" y; exit 3' \
		>"$T/j" 2>/dev/null && fail "$b: --json run should exit 3"
	python3 - "$T/j" "$b" <<'PY' || fail "$b: json fields"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["exit_code"] == 3 and o["signal"] == 0 and o["status"] == 3, o
assert o["timed_out"] is False and o["truncated"] is True, o
assert o["stdout"]["total"] == 5000 and len(o["stdout"]["head"]) == 50, o
assert len(o["stdout"]["tail"]) == 50 and len(o["stdout"]["sha256"]) == 64, o
assert o["backend"] == sys.argv[2], o
assert o["limits"] in ("cgroup2", "cgroup1", "rlimit"), o
assert o["seccomp"] is True, o
# both backends apply Landlock (>= 1 on a kernel that has it): bwrap through its helper
assert o["landlock_abi"] >= 1, o
assert "utime_ms" in o["rusage"] and "run" in o["durations_ms"], o
PY
done

# SIGINT to the CLI: the command tree dies (setsid'd grandchild too), exit 130.
RUN="$AIRLOCK_BIN sandbox run --workspace $WS"
$RUN -- sh -c "setsid sh -c 'sleep 2; touch $WS/late' </dev/null >/dev/null 2>&1 & sleep 30" \
	2>/dev/null &
P=$!
sleep 0.5
kill -INT $P
rc=0; wait $P || rc=$?
[ $rc -eq 130 ] || fail "SIGINT gave $rc"
sleep 2.5
[ -e "$WS/late" ] && fail "a grandchild outlived the interrupted run"

# --ro: visible at the same path, not writable; a sibling not granted is absent.
mkdir -p "$T/data" "$T/other"
echo payload > "$T/data/f"
echo secret > "$T/other/f"
chmod -R a+rX "$T/data" "$T/other"
out=$($RUN --ro "$T/data" -- sh -c "cat $T/data/f; echo x >> $T/data/f 2>/dev/null || echo ro; \
	cat $T/other/f 2>/dev/null || echo absent" 2>/dev/null)
[ "$out" = "payload
ro
absent" ] || fail "--ro: $out"

# A system directory as the workspace would replace the sandbox's own view.
for d in / /etc /tmp /usr; do
	rc=0; "$AIRLOCK_BIN" sandbox run --workspace $d -- true 2>/dev/null || rc=$?
	[ $rc -eq 125 ] || fail "workspace $d gave $rc"
done

# Usage errors are 2, not 125.
rc=0; "$AIRLOCK_BIN" sandbox run --backend nope -- true 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "unknown backend gave $rc"
# --audit: launch and exit records, chained; env names only, never values.
RUN="$AIRLOCK_BIN sandbox run --workspace $WS"
rc=0; $RUN --audit "$T/audit.jsonl" --env MYTOKEN_VALUE=hunter2 -- sh -c 'echo x; exit 4' \
	>/dev/null 2>&1 || rc=$?
[ $rc -eq 4 ] || fail "audited run gave $rc"
"$AIRLOCK_BIN" audit verify "$T/audit.jsonl" >/dev/null || fail "audit log does not verify"
grep -q '"class_uid":1007' "$T/audit.jsonl" || fail "no process records"
grep -q 'MYTOKEN_VALUE' "$T/audit.jsonl" || fail "env name not recorded"
grep -q 'hunter2' "$T/audit.jsonl" && fail "env value reached the audit log"
# An audit log that cannot be written: nothing runs.
rc=0; $RUN --audit /nonexistent/dir/a.jsonl -- sh -c "touch $WS/ran" 2>/dev/null || rc=$?
[ $rc -eq 125 ] || fail "unwritable audit log gave $rc"
[ -e "$WS/ran" ] && fail "the command ran without its audit record"
# Egress: only through the host proxy, every decision audited, on both backends.
if command -v curl >/dev/null; then
  for b in native bwrap; do
	rm -f "$T/net.jsonl"
	out=$($RUN --backend $b --audit "$T/net.jsonl" --allow-host example.com -- sh -c '
		echo "$HTTPS_PROXY"
		curl -s -m 5 -o /dev/null -w "%{http_code}\n" http://not-allowed.test/
		curl -s -m 5 -o /dev/null -w "%{http_code}\n" --noproxy "" http://169.254.169.254/
		curl -s -m 3 -o /dev/null -w "%{http_code}\n" --noproxy "*" http://1.1.1.1/ || true
		ls /run/airlock' 2>/dev/null)
	[ "$(echo "$out" | sed -n 1p)" = "http://127.0.0.1:3128" ] || fail "$b proxy env: $out"
	[ "$(echo "$out" | sed -n 2p)" = "403" ] || fail "$b non-allowlisted host: $out"
	[ "$(echo "$out" | sed -n 3p)" = "403" ] || fail "$b metadata address: $out"
	[ "$(echo "$out" | sed -n 4p)" = "000" ] || fail "$b direct connection got through: $out"
	"$AIRLOCK_BIN" audit verify "$T/net.jsonl" >/dev/null || fail "$b egress audit log does not verify"
	[ "$(grep -c '"class_uid":4001' "$T/net.jsonl")" -ge 2 ] || fail "$b egress decisions not audited"
  done
fi
echo "sandbox cli ok"
