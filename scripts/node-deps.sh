#!/bin/sh
# Installs the pinned npm peers the tests drive (the official SDK, and the
# TypeScript compiler that judges our JSON against the SDK's types) into a
# cache outside the repository. Idempotent: installs only what is missing or
# at another version. Prints the node_modules directory on stdout.
set -eu
CACHE="${AIRLOCK_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock-npm}"
SDK_VERSION=1.14.0
TS_VERSION=5.9.3
mkdir -p "$CACHE"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "node-deps: installing nodejs and npm" >&2
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
version_of() { # package name -> installed version, or nothing
	node -e "try{console.log(require('$CACHE/node_modules/$1/package.json').version)}catch(e){}" 2>/dev/null || true
}
need=""
[ "$(version_of @anthropic-ai/sdk)" = "$SDK_VERSION" ] || need="$need @anthropic-ai/sdk@$SDK_VERSION"
[ "$(version_of typescript)" = "$TS_VERSION" ] || need="$need typescript@$TS_VERSION"
if [ -n "$need" ]; then
	echo "node-deps: installing$need into $CACHE" >&2
	[ -f "$CACHE/package.json" ] || (cd "$CACHE" && npm init -y >/dev/null)
	# Both pins in one command so npm never drops one while adding the other.
	(cd "$CACHE" && npm install --no-audit --no-fund --silent --save-exact \
		"@anthropic-ai/sdk@$SDK_VERSION" "typescript@$TS_VERSION" >&2)
fi
echo "$CACHE/node_modules"
