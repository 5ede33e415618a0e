#!/bin/sh
# Installs what airlock needs to build and test on Debian 12. Idempotent: it
# only calls apt-get when pkg-config or a tool is missing, so `make` can run it
# every time a library is not found without slowing a normal build.
set -eu

PKGS_LIB="libuv1-dev libssl-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libseccomp-dev libyaml-dev"
PKGS_TOOL="pkg-config make gcc clang libclang-rt-14-dev openssl curl ca-certificates python3"

need=""
pkg-config --exists libuv openssl libcurl jansson sqlite3 libseccomp yaml-0.1 2>/dev/null || need="$PKGS_LIB"
for t in pkg-config cc clang openssl curl python3; do
	command -v "$t" >/dev/null 2>&1 || need="$need $PKGS_TOOL"
done
# The sandbox's second backend drives the system bubblewrap.
[ -x /usr/bin/bwrap ] || need="$need bubblewrap"
# ASan/UBSan and libFuzzer runtimes for clang come from libclang-rt-14-dev.
[ -d /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux ] || need="$need libclang-rt-14-dev"

if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		SUDO=sudo
	else
		SUDO=
	fi
	echo "deps: installing $need" >&2
	$SUDO apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >&2
fi
