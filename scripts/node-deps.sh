#!/bin/sh
# Installs the pinned npm peers the tests drive (the official SDK) into a cache
# outside the repository. Prints the node_modules directory on stdout.
set -eu
CACHE="${AIRLOCK_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-npm}"
SDK_VERSION=1.14.0
mkdir -p "$CACHE"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "node-deps: installing nodejs and npm" >&2
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
have=$(node -e "try{console.log(require('$CACHE/node_modules/@anthropic-ai/sdk/package.json').version)}catch(e){}" 2>/dev/null || true)
if [ "$have" != "$SDK_VERSION" ]; then
	echo "node-deps: installing @anthropic-ai/sdk@$SDK_VERSION into $CACHE" >&2
	(cd "$CACHE" && [ -f package.json ] || (cd "$CACHE" && npm init -y >/dev/null))
	(cd "$CACHE" && npm install --no-audit --no-fund --silent "@anthropic-ai/sdk@$SDK_VERSION" >&2)
fi
echo "$CACHE/node_modules"
