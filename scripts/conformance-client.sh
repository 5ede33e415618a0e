#!/bin/sh
# Runs the official MCP conformance suite's client scenarios against our
# client (build/mcp-conformance-client, tests/mcp/conformance_client.c), for
# each revision it is given (default: 2026-07-28 and 2025-11-25), with
# exactly the scenarios that revision requires (`--requirements`).
#
# Prints one line per scored scenario:
#   PASS client REV SCENARIO
#   FAIL client REV SCENARIO
#   XFAIL client REV SCENARIO (listed in tests/mcp/expected-failures-client-REV.yaml)
# then one final line `N passed, N failed` (expected failures count in
# neither; an expected failure that passes is a FAIL, so the list cannot go
# stale). Exits non-zero when anything failed. Only the scenarios that
# `list --requirements REV` names as required client scenarios are counted:
# the suite also runs some it never scores (extensions, scenarios added
# after the release). The suite checks the expected-failures file too, and
# its own verdict on it must agree.
#
#   B=build-h6 scripts/conformance-client.sh [REVISION...]
set -eu
cd "$(dirname "$0")/.."
B="${B:-build}"
CLIENT="$PWD/$B/mcp-conformance-client"
[ -x "$CLIENT" ] || { echo "conformance-client: $CLIENT not built (make $B/mcp-conformance-client)" >&2; exit 2; }
set -- ${*:-2026-07-28 2025-11-25}
REVS="$*"
set -- $(scripts/mcp-deps.sh)
NODE22=$1
CONF=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

passed=0
failed=0
for rev in $REVS; do
	xf="tests/mcp/expected-failures-client-$rev.yaml"
	# The suite prints a summary line per scenario ("✓ NAME: ..." or
	# "✗ NAME: ...") and then lists the ones it does not score.
	rc=0
	"$NODE22" "$CONF" client --command "$CLIENT" --requirements "$rev" \
		${xf:+--expected-failures "$xf"} >"$TMP/out" 2>"$TMP/err" || rc=$?
	if ! grep -q '^=== SUITE SUMMARY ===' "$TMP/out"; then
		echo "FAIL client $rev (the suite did not run, exit $rc)"
		tail -5 "$TMP/err" >&2
		failed=$((failed + 1))
		continue
	fi
	"$NODE22" "$CONF" list --requirements "$rev" |
		sed -n '/^Client scenarios/,/^$/p' | sed -n 's/^ *- \([^ ]*\)$/\1/p' >"$TMP/scored"
	sed -n '/^=== SUITE SUMMARY ===/,/^Total:/p' "$TMP/out" |
		sed -n 's/^\(✓\|✗\) \([^:]*\): .*/\1 \2/p' >"$TMP/results"
	before=$failed
	while read -r mark name; do
		grep -qxF "$name" "$TMP/scored" || continue
		expected=0
		[ -f "$xf" ] && grep -Eq "^ *- *$name( |$)" "$xf" && expected=1
		if [ "$mark" = "✓" ] && [ $expected = 0 ]; then
			echo "PASS client $rev $name"
			passed=$((passed + 1))
		elif [ "$mark" = "✓" ]; then
			echo "FAIL client $rev $name (passes: remove it from $xf)"
			failed=$((failed + 1))
		elif [ $expected = 1 ]; then
			echo "XFAIL client $rev $name (listed in $xf)"
		else
			echo "FAIL client $rev $name"
			failed=$((failed + 1))
		fi
	done <"$TMP/results"
	if [ $rc -ne 0 ] && [ $failed -eq $before ]; then
		echo "FAIL client $rev (the suite's own baseline check disagrees, exit $rc)"
		failed=$((failed + 1))
	fi
	nres=$(grep -c . "$TMP/results" || true)
	nsc=$(grep -c . "$TMP/scored" || true)
	if [ "$nsc" -eq 0 ] || [ "$nres" -lt "$nsc" ]; then
		echo "FAIL client $rev (the suite reported $nres scenarios, $nsc are required)"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
