#!/bin/sh
# Runs the control-plane benchmarks on loopback and prints a Markdown block
# with the figures, the commands and the machine, for docs/BENCHMARKS.md.
#   B=build ./bench/run.sh            (make bench)
#   B=build ./bench/run.sh sandbox    (only the sandbox start-up benchmark)
#   B=build ./bench/run.sh worker     (only our worker against the SDK's: make bench-worker)
# Knobs: BENCH_EVENTS (20000), BENCH_LISTENERS (100), BENCH_ROUNDS (200),
#        BENCH_SESSIONS (500), BENCH_IDLE (2000), BENCH_SANDBOX_RUNS (150),
#        BENCH_WORKER_SESSIONS (4), BENCH_WORKER_CALLS (100), BENCH_WORKER_ROUNDS (3),
#        BENCH_WORKERS ("sdk ours": the order within each round; "ours-nosync"
#        puts our journal and audit log on /dev/shm, an experiment; "base" is
#        `worker poll` of another build, BENCH_BASE_BIN, for before/after runs
#        on the same server),
#        AIRLOCK_NODE_MODULES (the SDK's node_modules), BENCH_KEEP=1 (keep the
#        scratch directory with every log).
set -eu
B=${B:-build}
BIN="$(pwd)/$B/airlock"
EVENTS=${BENCH_EVENTS:-20000}
LISTENERS=${BENCH_LISTENERS:-100}
ROUNDS=${BENCH_ROUNDS:-200}
SESSIONS=${BENCH_SESSIONS:-500}
IDLE=${BENCH_IDLE:-2000}
SBRUNS=${BENCH_SANDBOX_RUNS:-150}
WSESS=${BENCH_WORKER_SESSIONS:-4}
WROUNDS=${BENCH_WORKER_ROUNDS:-3}
WCALLS=${BENCH_WORKER_CALLS:-100}
WORKERS=${BENCH_WORKERS:-sdk ours}
NODE_MODULES=${AIRLOCK_NODE_MODULES:-/root/.cache/airlock-npm/node_modules}
ONLY=${1:-all}
T=$(mktemp -d "${TMPDIR:-/tmp}/al-bench-XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "/dev/shm/$(basename "$T")"
	if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
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

# As root the sandboxes run as uid 65534: the path must be traversable.
chmod 0711 "$T"

# 0. sandbox start-to-exit of /bin/true: native vs bwrap vs fork+exec, before the
# server starts so it competes with nothing of ours. Needs user namespaces and bwrap.
if [ "$ONLY" = worker ]; then
	:
elif [ -x /usr/bin/bwrap ]; then
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
if [ "$ONLY" != worker ]; then
	mkdir -p "$T/append"
	A=$("$B/bench-append" "$T/append" "$EVENTS" 64)
	echo "- Events appended per second (\`$B/bench-append DIR $EVENTS 64\`): $A"
fi

# The control plane with the scripted model (a test double) answering at once:
# "done" to everything, except a first message with "bench-worker" in it, which
# gets BENCH_WORKER_CALLS bash calls (`echo N`, one per model turn), then "done".
python3 - "$WCALLS" >"$T/script.json" <<'PY'
import json, sys
calls = [{"content": [{"type": "tool_use", "name": "bash", "input": {"command": "echo {{turn}}"}}]}
         for _ in range(int(sys.argv[1]))]
done = {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"}
print(json.dumps({"scenarios": [{"match": "bench-worker", "steps": calls + [done]},
                                {"steps": [done]}]}))
PY
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
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# 5. The worker: ours against the official SDK's, one after the other, each
# with its own environment and WSESS fresh sessions of WCALLS bash calls on this
# server, each run inside bench-worker (the meter: peak RSS, CPU of the whole
# process tree). Round trips come from the stored events' processed_at.
worker_bench() {
	if [ ! -x "$B/bench-worker" ]; then
		echo "- Worker: skipped (no $B/bench-worker: \`make bench-worker\`)"
		return 0
	fi
	WAGENT=$(api POST /v1/agents '{"name":"bench-worker","model":"claude-sonnet-4-5","tools":[{"type":"agent_toolset_20260401"}]}' | jget id)
	echo
	echo "- Worker: $WSESS sessions at once, $WCALLS bash calls each (\`echo N\`), scripted model; round trip = user.tool_result processed_at - agent.tool_use processed_at (server clock, µs resolution); \"stream\": the same from the two events' arrival on an event stream (\`$B/bench-worker observe\`, µs clock); first call of each session excluded from both:"
	echo
	echo "| worker | calls | p50 ms | p90 ms | p99 ms | mean ms | stream p50 / p90 / p99 ms | first call p50 ms | worker RSS idle (anon + file) / peak KiB | other processes peak RSS (PSS) KiB | tree peak RSS (PSS) KiB | CPU s: all (of it, the work) | CPU s / 1000 calls (the work) | wall s |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	round=0
	while [ $round -lt "$WROUNDS" ]; do
		round=$((round + 1))
		# Alternate the order, so neither always runs on the warmer (or more loaded) server.
		ORDER=$WORKERS
		[ $((round % 2)) = 1 ] || ORDER=$(echo $WORKERS | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}')
		for w in $ORDER; do
			WENV=$(api POST /v1/environments "{\"name\":\"bench-$w\",\"config\":{\"type\":\"self_hosted\"}}" | jget id)
			EKEY=$(api POST "/v1/environments/$WENV/keys" '{}' | jget key)
			mkdir -p "$T/work-$w" && chmod 0777 "$T/work-$w"
			case $w in
			sdk)
				if ! command -v node >/dev/null || [ ! -d "$NODE_MODULES/@anthropic-ai/sdk" ]; then
					echo "| sdk | skipped: no node or no SDK in $NODE_MODULES |"; continue
				fi
				set -- node "$(pwd)/bench/sdk_worker.mjs" "http://127.0.0.1:$SP" "$WENV" "$T/work-$w" "$WSESS" ;;
			ours | ours-nosync | base)
				WBIN=$BIN
				[ $w != base ] || WBIN=${BENCH_BASE_BIN:-}
				if [ -z "$WBIN" ] || ! "$WBIN" worker poll --help >/dev/null 2>&1; then
					echo "| $w | skipped: \`$WBIN worker poll\` not built in (BENCH_BASE_BIN for base) |"; continue
				fi
				set -- "$WBIN" worker poll --base-url "http://127.0.0.1:$SP" --environment "$WENV" \
					--workdir "$T/work-$w" --max-sessions "$WSESS" --max-idle 1
				# An experiment, not a configuration: the journal and the audit log
				# on tmpfs, where fsync costs nothing, to show what the syncs cost.
				if [ $w = ours-nosync ]; then
					rm -rf "/dev/shm/$(basename "$T")" && mkdir -p "/dev/shm/$(basename "$T")"
					set -- "$@" --state-dir "/dev/shm/$(basename "$T")"
				fi ;;
			*) echo "| $w | unknown worker |"; continue ;;
			esac
			ANTHROPIC_ENVIRONMENT_KEY=$EKEY AIRLOCK_NODE_MODULES=$NODE_MODULES \
				"$B/bench-worker" -- "$@" >"$T/$w.meter" 2>"$T/$w.log" &
			MPID=$!
			PIDS="$PIDS $MPID"
			sleep 1 # the worker starts and polls before the work arrives
			kill -USR1 "$MPID" # the meter marks the CPU used so far: start-up, left out
			SIDS=""
			n=0
			while [ $n -lt "$WSESS" ]; do
				SIDS="$SIDS $(api POST /v1/sessions "{\"agent\":\"$WAGENT\",\"environment_id\":\"$WENV\"}" | jget id)"
				n=$((n + 1))
			done
			# The microsecond clock: a stream per session (bench-worker observe).
			"$B/bench-worker" observe 127.0.0.1 "$SP" "$KEY" $SIDS >"$T/$w.obs" 2>"$T/$w.obs.err" &
			OPID=$!
			PIDS="$PIDS $OPID"
			sleep 0.3 # let every stream subscribe
			for s in $SIDS; do
				api POST "/v1/sessions/$s/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"bench-worker"}]}]}' >/dev/null
			done
			ok=1
			python3 bench/worker_stats.py --wait 600 "http://127.0.0.1:$SP" "$KEY" $SIDS || ok=0
			kill "$MPID"
			wait "$MPID" || true
			wait "$OPID" || ok=0
			M=$(cat "$T/$w.meter")
			O=$(cat "$T/$w.obs")
			S=$(python3 bench/worker_stats.py "http://127.0.0.1:$SP" "$KEY" "$WCALLS" $SIDS 2>"$T/$w.stats.err") || ok=0
			[ $ok = 1 ] || { echo "| $w | FAILED: $(tail -n 3 "$T/$w.stats.err" "$T/$w.obs.err" "$T/$w.log" | tr '\n' ' ') |"; continue; }
			python3 - "$w" "$S" "$M" "$O" "$round" >>"$T/rows" <<-'PY'
	import json, sys
	w, s, m, o = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
	print(json.dumps({"w": w, "round": int(sys.argv[5]), **s, **m, **{"stream_" + k: v for k, v in o.items()}}))
	PY
			python3 - "$T/rows" "$w" <<-'PY'
	import json, sys
	r = [json.loads(l) for l in open(sys.argv[1])][-1]
	work = lambda r: r["cpuacct_work_s"] if r["cpuacct_work_s"] is not None else r["cpu_s"]
	f = lambda v: "-" if v is None else (f"{v:.0f}" if isinstance(v, float) and v >= 100 else str(v))
	print(f"| {r['w']} (round {r['round']}) | {r['calls']} | {f(r['p50_ms'])} | {f(r['p90_ms'])} | {f(r['p99_ms'])} | {f(r['mean_ms'])} | "
	      f"{r['stream_p50_ms']:.2f} / {r['stream_p90_ms']:.2f} / {r['stream_p99_ms']:.2f} | {f(r['first_p50_ms'])} | {r['worker_rss_at_mark_kb']} ({r['worker_anon_at_mark_kb']} + {r['worker_file_at_mark_kb']}) / {r['worker_hwm_kb']} | {r['others_rss_peak_kb']} ({r['others_pss_peak_kb']}) | "
	      f"{r['tree_rss_peak_kb']} ({r['tree_pss_peak_kb']}) | {r['cpu_s']:.2f} ({f(r['cpuacct_work_s'])}) | "
	      f"{1000 * work(r) / r['calls']:.2f} | {r['wall_s']:.1f} |")
	PY
		done
	done
	[ -s "$T/rows" ] && python3 - "$T/rows" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
work = lambda r: r["cpuacct_work_s"] if r["cpuacct_work_s"] is not None else r["cpu_s"]
med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None
ratios = {
    "p50 (server clock)": lambda o, s: o["p50_ms"] / s["p50_ms"],
    "p99 (server clock)": lambda o, s: o["p99_ms"] / s["p99_ms"],
    "p50 (stream clock)": lambda o, s: o["stream_p50_ms"] / s["stream_p50_ms"],
    "p99 (stream clock)": lambda o, s: o["stream_p99_ms"] / s["stream_p99_ms"],
    "worker process peak RSS": lambda o, s: o["worker_hwm_kb"] / s["worker_hwm_kb"],
    "process tree peak PSS": lambda o, s: o["tree_pss_peak_kb"] / s["tree_pss_peak_kb"],
    "process tree peak RSS": lambda o, s: o["tree_rss_peak_kb"] / s["tree_rss_peak_kb"],
    "CPU per call (the work)": lambda o, s: (work(o) / o["calls"]) / (work(s) / s["calls"]),
}
for ow, sw in (("ours", "sdk"), ("base", "sdk"), ("ours", "base")):
    pairs = [(o, s) for o in rows for s in rows if o["w"] == ow and s["w"] == sw and o["round"] == s["round"]]
    if not pairs:
        continue
    print()
    print(f"| {ow} / {sw} | " + " | ".join(f"round {o['round']}" for o, _ in pairs) + " | median | goal |")
    print("| --- | " + " | ".join("---" for _ in pairs) + " | --- | --- |")
    for name, fn in ratios.items():
        vs = []
        for o, s in pairs:
            try:
                vs.append(fn(o, s))
            except (ZeroDivisionError, TypeError):
                pass
        goal = "<= 0.1x" if "RSS" in name or "PSS" in name else "<= 0.3x" if name.startswith("p") else "-"
        goal = goal if sw == "sdk" else "-"
        print(f"| {name} | " + " | ".join(f"{v:.2f}x" for v in vs) + f" | {med(vs):.2f}x | {goal} |" if vs else f"| {name} | - |")
PY
	echo
	# Our worker's local work per call, by part (no network): bench/toolcall.c.
	if [ -x "$B/bench-toolcall" ]; then
		mkdir -p "$T/toolcall"
		echo "- Our worker's local work per bash call, by part (\`$B/bench-toolcall DIR 300\`; the first call, which creates the sandbox, apart):"
		echo
		"$B/bench-toolcall" "$T/toolcall" 300 | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("| part | p50 ms | p99 ms |")
print("| --- | --- | --- |")
for k, v in r.items():
    if isinstance(v, dict):
        print("| %s | %.3f | %.3f |" % (k, v["p50"], v["p99"]))
print("| first call: sandbox creation and shell start | %.1f | |" % r["sandbox_create_ms"])'
		echo
	fi
}
if [ "$ONLY" = worker ] || [ "$ONLY" = all ]; then
	worker_bench
fi
[ "$ONLY" = worker ] && exit 0

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
