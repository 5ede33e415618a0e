#!/bin/sh
# test_demo_failure.sh - `airlock demo` when the worker cannot start (a bad
# flag through AIRLOCK_DEMO_WORKER_ARGS, the demo's test hook): it must exit
# 1 with a message naming the worker and its exit status and showing the
# worker's log, and leave nothing it started running. Likewise when the
# worker binary does not exist at all; a non-empty --dir, or one the
# sandbox's uid cannot reach, is refused.
. "$(dirname "$0")/lib.sh"

[ -x "$AIRLOCK_BIN" ] || { echo "airlock binary not built: $AIRLOCK_BIN"; exit 77; }
unset ANTHROPIC_API_KEY AIRLOCK_DEMO_WORKER || true

left_running() {
	pgrep -a -f "$1" | grep -v "pgrep" || true
}

# Under a directory the sandbox's uid cannot pass (mktemp -d is 0700): refused up front.
chmod 700 "$T"
rc=0
"$AIRLOCK_BIN" demo --dir "$T/closed" >"$T/out0" 2>"$T/err0" </dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "unpassable parent: exit $rc, want 1"
grep -q "cannot pass through $T " "$T/err0" || { cat "$T/err0"; fail "unpassable parent: no clear message"; }
chmod 711 "$T"

run="$T/run"
rc=0
AIRLOCK_DEMO_WORKER_ARGS="--no-such-flag" \
	"$AIRLOCK_BIN" demo --dir "$run" --timeout 60 >"$T/out" 2>"$T/err" </dev/null || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/out" "$T/err"; fail "bad worker flag: exit $rc, want 1"; }
grep -q "the worker exited with status 2 before the session finished" "$T/err" ||
	{ cat "$T/err"; fail "no clear message about the worker"; }
grep -q -- "--- worker log" "$T/err" || { cat "$T/err"; fail "the worker's log is not shown"; }
grep -q "no-such-flag" "$T/err" || { cat "$T/err"; fail "the worker's complaint is not shown"; }
grep -q "audit log verified" "$T/out" && fail "a failed demo claims a verified audit log"
left=$(left_running "$run")
[ -z "$left" ] || fail "left running after a failed demo: $left"

run2="$T/run2"
rc=0
AIRLOCK_DEMO_WORKER="$T/no-such-binary" \
	"$AIRLOCK_BIN" demo --dir "$run2" --timeout 60 >"$T/out2" 2>"$T/err2" </dev/null || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/out2" "$T/err2"; fail "missing worker binary: exit $rc, want 1"; }
grep -q "the worker exited with status 127" "$T/err2" || { cat "$T/err2"; fail "no clear message"; }
grep -q "cannot execute" "$T/err2" || { cat "$T/err2"; fail "the exec error is not shown"; }
left=$(left_running "$run2")
[ -z "$left" ] || fail "left running after a failed demo: $left"
# A run directory that holds anything (a previous run) is refused up front.
mkdir "$T/used" && touch "$T/used/server.log"
rc=0
"$AIRLOCK_BIN" demo --dir "$T/used" >"$T/out3" 2>"$T/err3" </dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "non-empty --dir: exit $rc, want 2"
grep -q "new or empty" "$T/err3" || { cat "$T/err3"; fail "non-empty --dir: no clear message"; }
echo "ok"
