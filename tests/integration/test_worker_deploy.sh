#!/bin/sh
# The deployment paths of docs/OPERATIONS.md against the real `airlock server`
# on loopback: the worker started from a config file with its key in a
# systemd-style credentials directory, then from ANTHROPIC_ENVIRONMENT_KEY;
# it polls, the key is absent from /proc/PID/environ, SIGTERM exits 0 with an
# intact audit log, and revoking the key (the last step of a rotation) stops
# the worker with status 1.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/api_lib.sh"

"$AIRLOCK_BIN" worker --help >/dev/null 2>&1 || { echo "this build has no worker command"; exit 77; }
unset ANTHROPIC_ENVIRONMENT_KEY ANTHROPIC_ENVIRONMENT_ID ANTHROPIC_BASE_URL CREDENTIALS_DIRECTORY || true

start_server
api POST /v1/environments '{"name":"deploy"}'
expect 200
ENV=$(jq_ "j['id']")
api POST /v1/environments/$ENV/keys ''
expect 200
EK=$(jq_ "j['key']")
EK_ID=$(jq_ "j['id']")
[ -n "$EK" ] || fail "no key minted"

# polling_workers: workers_polling from the queue's stats.
polling_workers() {
	api GET /v1/environments/$ENV/work/stats
	jq_ "j.get('workers_polling', 0)"
}

# wait_polling PID: until the worker has been seen polling (10 s).
wait_polling() {
	i=0
	while [ "$(polling_workers)" -lt 1 ] 2>/dev/null; do
		kill -0 "$1" 2>/dev/null || { cat "$T/worker.log"; fail "worker exited"; }
		i=$((i + 1)); [ $i -lt 100 ] || { cat "$T/worker.log"; fail "worker never polled"; }
		sleep 0.1
	done
}

# stop_worker PID WANT: SIGTERM, exit status WANT within 15 s.
wait_exit() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 150 ] || fail "worker still running after 15 s"
		sleep 0.1
	done
	rc=0; wait "$1" || rc=$?
	[ "$rc" = "$2" ] || { cat "$T/worker.log"; fail "worker exit $rc, want $2"; }
}

# 1. Config file + credentials directory (what the systemd unit does).
mkdir -p "$T/creds" "$T/log"
(umask 077; printf '%s\n' "$EK" >"$T/creds/environment-key")
cat >"$T/worker.yaml" <<YAML
base_url: $URL
environment_id: $ENV
workdir: $T/var/work
state_dir: $T/var/state
audit: $T/log/audit.log
log_format: json
max_idle: 5
sandbox:
  allow_hosts: [pypi.org]
  memory_mb: 512
YAML
CREDENTIALS_DIRECTORY="$T/creds" "$AIRLOCK_BIN" worker poll --config "$T/worker.yaml" \
	>"$T/worker.log" 2>&1 &
W=$!
PIDS="$PIDS $W"
wait_polling $W
tr '\0' '\n' </proc/$W/environ >"$T/environ"
grep -q -- "$EK" "$T/environ" && fail "the key is in the worker's environment"
kill -TERM $W
wait_exit $W 0
[ -s "$T/log/audit.log" ] || fail "no audit log at the configured path"
"$AIRLOCK_BIN" audit verify "$T/log/audit.log" >/dev/null || fail "audit log not intact"
grep -q -- "$EK" "$T/worker.log" "$T/log/audit.log" && fail "the key was logged"
[ -f "$T/var/state/journal.db" ] || fail "no journal in state_dir"

# 2. The key from the environment: wiped from /proc/PID/environ once read.
ANTHROPIC_ENVIRONMENT_KEY="$EK" "$AIRLOCK_BIN" worker poll --config "$T/worker.yaml" \
	>"$T/worker.log" 2>&1 &
W=$!
PIDS="$PIDS $W"
wait_polling $W
tr '\0' '\n' </proc/$W/environ >"$T/environ"
grep -q -- "$EK" "$T/environ" && fail "ANTHROPIC_ENVIRONMENT_KEY still readable in /proc/$W/environ"

# 3. Revoking the key stops the worker with status 1 (a fatal 4xx), not a retry loop.
api DELETE /v1/environments/$ENV/keys/$EK_ID
expect 200
wait_exit $W 1
echo "ok"
