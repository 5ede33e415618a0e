# Shared helpers for integration tests (sourced). Each test gets a scratch
# directory and a cleanup trap that kills what it started.
set -eu
: "${AIRLOCK_BIN:?run through make check}"
T=$(mktemp -d "${TMPDIR:-/tmp}/al-it-XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }

# free_port: asks the kernel for an unused loopback port.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_http URL: waits up to 10 s for URL to answer anything.
wait_http() {
	i=0
	while ! curl -sk -o /dev/null --max-time 1 "$1" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 100 ] || fail "server at $1 did not come up"
		sleep 0.1
	done
}
