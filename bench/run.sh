#!/bin/sh
# Runs the control-plane benchmarks on loopback and prints a Markdown block
# with the figures, the commands and the machine, for docs/BENCHMARKS.md.
#   B=build ./bench/run.sh            (make bench)
#   B=build ./bench/run.sh sandbox    (only the sandbox start-up benchmark)
# Knobs: BENCH_EVENTS (20000), BENCH_LISTENERS (100), BENCH_ROUNDS (200),
#        BENCH_SESSIONS (500), BENCH_IDLE (2000), BENCH_SANDBOX_RUNS (150).
set -eu
B=${B:-build}
BIN="$(pwd)/$B/airlock"
EVENTS=${BENCH_EVENTS:-20000}
LISTENERS=${BENCH_LISTENERS:-100}
ROUNDS=${BENCH_ROUNDS:-200}
SESSIONS=${BENCH_SESSIONS:-500}
IDLE=${BENCH_IDLE:-2000}
SBRUNS=${BENCH_SANDBOX_RUNS:-150}
ONLY=${1:-all}
T=$(mktemp -d "${TMPDIR:-/tmp}/al-bench-XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api() { # METHOD PATH [BODY]
	curl -sS -X "$1" -H "x-api-key: $KEY" -H 'anthropic-beta: managed-agents-2026-04-01' \
		-H 'content-type: application/json' ${3:+--data "$3"} "http://127.0.0.1:$SP$2"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "## Run of $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(. /etc/os-release; echo "$PRETTY_NAME"); load average $(cut -d' ' -f1-3 /proc/loadavg) at start; running as uid $(id -u)."
echo

# 0. sandbox start-to-exit of /bin/true: native vs bwrap vs fork+exec, before the
# server starts so it competes with nothing of ours. Needs user namespaces and bwrap.
if [ -x /usr/bin/bwrap ]; then
	# As root the sandboxes run as uid 65534: the path must be traversable, the workspace writable.
	chmod 0711 "$T" && mkdir -p "$T/ws" && chmod 0777 "$T/ws"
	echo "- Sandbox start-to-exit of /bin/true (\`$B/bench-sandbox WORKSPACE $SBRUNS\`, medians and p90 of interleaved runs):"
	echo
	if ! "$B/bench-sandbox" "$T/ws" "$SBRUNS" 2>"$T/sandbox.err"; then
		echo "  skipped: $(tail -n 1 "$T/sandbox.err")"
	fi
	echo
else
	echo "- Sandbox start-up: skipped (no /usr/bin/bwrap to compare against)"
fi
[ "$ONLY" = sandbox ] && exit 0

# 1. events appended per second (store + bus, in process) vs raw SQLite
mkdir -p "$T/append"
A=$("$B/bench-append" "$T/append" "$EVENTS" 64)
echo "- Events appended per second (\`$B/bench-append DIR $EVENTS 64\`): $A"

# The control plane with the scripted model (a test double) answering at once.
cat >"$T/script.json" <<'JSON'
{"steps": [{"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"}]}
JSON
MP=$(port); SP=$(port)
"$BIN" model-stub --listen "127.0.0.1:$MP" --script "$T/script.json" >"$T/stub.out" 2>"$T/stub.log" &
PIDS="$PIDS $!"
"$BIN" server --listen "127.0.0.1:$SP" --data "$T/data" --model-url "http://127.0.0.1:$MP" \
	--log-level warn 2>"$T/server.log" &
SPID=$!
PIDS="$PIDS $SPID"
i=0
while [ ! -s "$T/data/admin.key" ] || ! curl -s -o /dev/null "http://127.0.0.1:$SP/"; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$T/server.log"; exit 1; }; sleep 0.1
done
KEY=$(cat "$T/data/admin.key")
AGENT=$(api POST /v1/agents '{"name":"bench","model":"claude-sonnet-4-5"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
ENV=$(api POST /v1/environments '{"name":"bench","config":{"type":"self_hosted"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# 2. SSE fan-out latency
SID=$(api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
F=$("$B/bench-fanout" 127.0.0.1 "$SP" "$KEY" "$SID" "$LISTENERS" "$ROUNDS")
echo "- SSE fan-out to $LISTENERS listeners (\`$B/bench-fanout ... $LISTENERS $ROUNDS\`): $F"

# 3. concurrent sessions through a full turn
R=$("$B/bench-turns" 127.0.0.1 "$SP" "$KEY" "$AGENT" "$ENV" "$SESSIONS")
echo "- $SESSIONS concurrent sessions through a full turn (\`$B/bench-turns ... $SESSIONS\`): $R"

# 4. resident memory per idle session
before=$(rss_kb "$SPID")
n=0
while [ $n -lt "$IDLE" ]; do
	api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}" >/dev/null
	n=$((n + 1))
done
after=$(rss_kb "$SPID")
per=$(( (after - before) * 1024 / IDLE ))
echo "- Resident memory per idle session: $IDLE sessions created, server RSS $before KiB -> $after KiB: $per bytes per session (includes SQLite page cache growth)"
