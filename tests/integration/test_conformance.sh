#!/bin/sh
# test_conformance.sh - `make conformance` inside `make check`: the official
# MCP conformance suite against the fixture server (both revisions) and,
# when built, our client (scripts/conformance.sh). Installs Node 22 and the
# suite itself (scripts/mcp-deps.sh) so a fresh machine runs it; skips (77)
# only when the npm registry cannot be reached at all, and says so.
. "$(dirname "$0")/lib.sh"

B=$(basename "$(dirname "$AIRLOCK_BIN")")
cd "$AIRLOCK_SRC" || fail "no source tree at $AIRLOCK_SRC"
[ -x "$B/mcp-fixture" ] || fail "$B/mcp-fixture not built (make check builds it)"

# Reachability first: npm retries an unreachable registry for minutes. When
# it cannot be reached, mcp-deps.sh still runs (the peers may be cached) but
# npm gives up at once.
registry=$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
reachable=1
curl -sf -o /dev/null --max-time 10 "$registry" 2>/dev/null || reachable=0
if [ $reachable = 0 ]; then
	export npm_config_fetch_retries=0 npm_config_fetch_timeout=15000
fi
if ! ./scripts/mcp-deps.sh >"$T/deps.out" 2>"$T/deps.err"; then
	cat "$T/deps.err"
	if [ $reachable = 0 ]; then
		echo "npm registry $registry unreachable: cannot install Node 22 and @modelcontextprotocol/conformance"
		exit 77
	fi
	fail "scripts/mcp-deps.sh failed although the npm registry $registry answers"
fi

rc=0
B="$B" ./scripts/conformance.sh >"$T/conf.out" 2>&1 || rc=$?
# Failures first (run-all shows the tail), then the totals.
grep -Ev '^(ok|PASS) ' "$T/conf.out"
last=$(tail -n 1 "$T/conf.out")
echo "$last" | grep -qE '^[0-9]+ passed, [0-9]+ failed$' || fail "no closing 'N passed, N failed' line"
[ "$rc" -eq 0 ] || fail "conformance: $last"
