#!/bin/sh
# Runs the control-plane benchmarks on loopback and prints a Markdown block
# with the figures, the commands and the machine, for docs/BENCHMARKS.md.
#   B=build ./bench/run.sh            (make bench)
#   B=build ./bench/run.sh sandbox    (only the sandbox start-up benchmark)
#   B=build ./bench/run.sh worker     (only our worker against the SDK's: make bench-worker)
#   B=build ./bench/run.sh mcp        (only tickets-mcp against the TypeScript SDK's server,
#                                      and the gateway's overhead: make bench-mcp)
# Knobs: BENCH_EVENTS (20000), BENCH_LISTENERS (100), BENCH_ROUNDS (200),
#        BENCH_SESSIONS (500), BENCH_IDLE (2000), BENCH_SANDBOX_RUNS (150),
#        BENCH_WORKER_SESSIONS (4), BENCH_WORKER_CALLS (100), BENCH_WORKER_ROUNDS (3),
#        BENCH_WORKERS ("sdk ours": the order within each round; "ours-nosync"
#        puts our journal and audit log on /dev/shm, an experiment; "base" is
#        `worker poll` of another build, BENCH_BASE_BIN, for before/after runs
#        on the same server),
#        AIRLOCK_NODE_MODULES (the SDK's node_modules), BENCH_KEEP=1 (keep the
#        scratch directory with every log),
#        BENCH_MCP_CONNS ("1 32": the concurrencies), BENCH_MCP_SECONDS (8),
#        BENCH_MCP_WARMUP (2), BENCH_MCP_ROUNDS (3), BENCH_MCP_TICKETS (1000).
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
MCP_CONNS=${BENCH_MCP_CONNS:-1 32}
MCP_SECONDS=${BENCH_MCP_SECONDS:-8}
MCP_WARMUP=${BENCH_MCP_WARMUP:-2}
MCP_ROUNDS=${BENCH_MCP_ROUNDS:-3}
MCP_TICKETS=${BENCH_MCP_TICKETS:-1000}
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

# MCP: tools/call on tickets-mcp against the same tool on the official
# TypeScript SDK (bench/mcp_ts_tickets.mjs), then tickets-mcp directly against
# tickets-mcp behind `airlock gateway` (plain and TLS listener). One load
# generator for all (bench/mcp_load.c: closed loop, keep-alive, every response
# checked). Runs are interleaved round by round, so neither side always gets
# the warmer or quieter machine; each row is one run, the summary the medians.
mcp_bench() {
	for b in "$B/tickets-mcp" "$B/bench-mcp_load"; do
		[ -x "$b" ] || { echo "- MCP: skipped (no $b: \`make B=$B bench-mcp\`)"; return 0; }
	done
	set -- $(scripts/bench-deps.sh)
	NODE22=$1
	MCP_MODULES=$2
	mkdir -p "$T/mcp"
	cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
	wait_port() { # PORT LOG
		i=0
		while ! curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null &&
			! curl -sk -o /dev/null "https://127.0.0.1:$1/" 2>/dev/null; do
			i=$((i + 1)); [ $i -lt 100 ] || { echo "- MCP: a server did not start:"; sed 's/^/    /' "$2"; return 1; }
			sleep 0.1
		done
	}
	# tickets-mcp creates its schema; the rows go in beside it (WAL): MCP_TICKETS
	# tickets with three comments each, the benchmark reads ticket 42.
	TP=$(port)
	"$B/tickets-mcp" --listen "127.0.0.1:$TP" --db "$T/mcp/tickets.db" >"$T/mcp/tickets.log" 2>&1 &
	TPID=$!
	PIDS="$PIDS $TPID"
	wait_port "$TP" "$T/mcp/tickets.log" || return 0
	python3 - "$T/mcp/tickets.db" "$MCP_TICKETS" <<-'PY'
	import sqlite3, sys
	db = sqlite3.connect(sys.argv[1])
	now = "2026-07-28T12:00:00.000Z"
	for i in range(1, int(sys.argv[2]) + 1):
	    cur = db.execute("INSERT INTO tickets (title, body, priority, status, created_at, updated_at)"
	                     " VALUES (?, ?, 'normal', 'open', ?, ?)",
	                     (f"Ticket {i}: VPN drops every hour", "The VPN client disconnects every hour"
	                      " on the dot; reconnecting works. Seen on three laptops since Monday.", now, now))
	    for j in range(3):
	        db.execute("INSERT INTO comments (ticket_id, body, created_at) VALUES (?, ?, ?)",
	                   (cur.lastrowid, f"Comment {j + 1}: still happening after the update.", now))
	db.commit()
	PY
	SP2=$(port)
	AIRLOCK_NODE_MODULES=$MCP_MODULES "$NODE22" --no-warnings bench/mcp_ts_tickets.mjs \
		--listen "127.0.0.1:$SP2" --db "$T/mcp/tickets.db" >"$T/mcp/ts.log" 2>&1 &
	NPID=$!
	PIDS="$PIDS $NPID"
	wait_port "$SP2" "$T/mcp/ts.log" || return 0

	# One run: LABEL CONNS PID-to-meter [load options...] URL; appends a JSON row.
	mcp_run() {
		label=$1 conns=$2 mpid=$3
		shift 3
		c0=$(cpu_ticks "$mpid")
		if ! "$B/bench-mcp_load" -d "$MCP_SECONDS" -w "$MCP_WARMUP" -c "$conns" -t tickets_get \
			-a '{"id":42}' -e '"title":"Ticket 42:' "$@" >"$T/mcp/run.json" 2>"$T/mcp/run.err"; then
			echo "| $label | $conns | FAILED: $(tail -n 2 "$T/mcp/run.err" | tr '\n' ' ' | cut -c1-300) |" >>"$T/mcp/failed"
			return 0
		fi
		c1=$(cpu_ticks "$mpid")
		python3 - "$label" "$conns" "$round" "$((c1 - c0))" "$(getconf CLK_TCK)" "$mpid" \
			"$T/mcp/run.json" >>"$T/mcp/rows" <<-'PY'
		import json, sys
		label, conns, rnd, ticks, hz, pid, path = sys.argv[1:8]
		r = json.load(open(path))
		hwm = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM")][0]
		r.update(label=label, conns=int(conns), round=int(rnd), hwm_kb=int(hwm),
		         cpu_ms_per_1k=1000.0 * int(ticks) / int(hz) / r["all_responses"] * 1000)
		print(json.dumps(r))
		PY
	}

	echo "- MCP \`tools/call\` of \`tickets_get {\"id\":42}\` (a ticket with 3 comments, SQLite, $MCP_TICKETS tickets): closed loop, keep-alive HTTP/1.1, \`$B/bench-mcp_load -c CONNS -d $MCP_SECONDS -w $MCP_WARMUP -t tickets_get -a '{\"id\":42}' -e '\"title\":\"Ticket 42:' URL\` (2026-07-28 request: \`_meta\`, \`Mcp-Method\`/\`Mcp-Name\`; every response checked), $MCP_ROUNDS interleaved rounds; servers: \`$B/tickets-mcp\` and \`bench/mcp_ts_tickets.mjs\` on Node $("$NODE22" --version) with @modelcontextprotocol/server $("$NODE22" -p "require('$MCP_MODULES/@modelcontextprotocol/server/package.json').version"), @modelcontextprotocol/node $("$NODE22" -p "require('$MCP_MODULES/@modelcontextprotocol/node/package.json').version"), zod $("$NODE22" -p "require('$MCP_MODULES/zod/package.json').version")."
	echo

	# The gateway: plain and TLS listeners, one route to tickets-mcp on loopback.
	GW=""
	if "$BIN" gateway --help >/dev/null 2>&1; then
		GW=1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj /CN=bench-ca -keyout "$T/mcp/ca.key" -out "$T/mcp/ca.pem" 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=tickets.bench.test \
			-keyout "$T/mcp/gw.key" -out "$T/mcp/gw.csr" 2>/dev/null
		printf 'subjectAltName=DNS:tickets.bench.test\n' >"$T/mcp/san.ext"
		openssl x509 -req -in "$T/mcp/gw.csr" -CA "$T/mcp/ca.pem" -CAkey "$T/mcp/ca.key" \
			-CAcreateserial -days 2 -extfile "$T/mcp/san.ext" -out "$T/mcp/gw.pem" 2>/dev/null
		GP=$(port) GTP=$(port) GNP=$(port)
		# plain and tls: the audit log on, as an operator runs it; noaudit:
		# a plain listener without it, to show what the audit records cost.
		for v in plain tls noaudit; do
			case $v in plain) lp=$GP ;; tls) lp=$GTP ;; noaudit) lp=$GNP ;; esac
			{
				echo "listen_addr: 127.0.0.1:$lp"
				echo "log_level: warn"
				echo "tunnel_domain: bench.test"
				if [ $v = tls ]; then
					echo "tls:"
					echo "  cert_file: $T/mcp/gw.pem"
					echo "  key_file: $T/mcp/gw.key"
				fi
				echo "routes:"
				echo "  tickets: http://127.0.0.1:$TP"
				echo "upstream:"
				echo "  allowed_ips: [127.0.0.0/8]"
				echo "airlock:"
				echo "  admin_addr: 127.0.0.1:$(port)"
				[ $v = noaudit ] || echo "  audit: $T/mcp/audit-$v.log"
			} >"$T/mcp/gw-$v.yaml"
			"$BIN" gateway --config "$T/mcp/gw-$v.yaml" 2>"$T/mcp/gw-$v.log" &
			PIDS="$PIDS $!"
			case $v in plain) GPID=$! ;; tls) GTPID=$! ;; noaudit) GNPID=$! ;; esac
		done
		wait_port "$GP" "$T/mcp/gw-plain.log" && wait_port "$GTP" "$T/mcp/gw-tls.log" &&
			wait_port "$GNP" "$T/mcp/gw-noaudit.log" || GW=""
	fi

	round=0
	while [ $round -lt "$MCP_ROUNDS" ]; do
		round=$((round + 1))
		for conns in $MCP_CONNS; do
			ORDER="ours ts"
			[ $((round % 2)) = 1 ] || ORDER="ts ours"
			for w in $ORDER; do
				if [ $w = ours ]; then
					mcp_run ours "$conns" "$TPID" "http://127.0.0.1:$TP/mcp"
				else
					mcp_run ts "$conns" "$NPID" "http://127.0.0.1:$SP2/mcp"
				fi
			done
			[ -n "$GW" ] || continue
			ORDER="gw direct gw-tls gw-noaudit"
			[ $((round % 2)) = 1 ] || ORDER="gw-noaudit gw-tls direct gw"
			for w in $ORDER; do
				case $w in
				direct) mcp_run direct "$conns" "$TPID" "http://127.0.0.1:$TP/mcp" ;;
				gw) mcp_run gateway "$conns" "$GPID" -h tickets.bench.test "http://127.0.0.1:$GP/mcp" ;;
				gw-tls) mcp_run gateway-tls "$conns" "$GTPID" -h tickets.bench.test -k "$T/mcp/ca.pem" \
					"https://127.0.0.1:$GTP/mcp" ;;
				gw-noaudit) mcp_run gateway-noaudit "$conns" "$GNPID" -h tickets.bench.test \
					"http://127.0.0.1:$GNP/mcp" ;;
				esac
			done
		done
	done
	echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)."
	echo
	[ -s "$T/mcp/failed" ] && { echo "Failed runs (invalid, left out):"; echo; cat "$T/mcp/failed"; echo; }
	[ -n "$GW" ] || echo "- Gateway: skipped (\`$BIN gateway\` is not built in, or did not start: $(tail -n 1 "$T/mcp/gw-plain.log" "$T/mcp/gw-tls.log" 2>/dev/null | tr '\n' ' '))"
	[ -s "$T/mcp/rows" ] || return 0
	python3 - "$T/mcp/rows" <<-'PY'
	import json, sys
	rows = [json.loads(l) for l in open(sys.argv[1])]
	med = lambda xs: sorted(xs)[len(xs) // 2]
	def cell(r):
	    return (f"| {r['label']} | {r['conns']} | {r['round']} | {r['rps']:.0f} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | "
	            f"{r['p99_us']:.0f} | {r['p999_us']:.0f} | {r['requests']} | {r['errors']} | {r['reconnects']} | "
	            f"{r['cpu_ms_per_1k']:.1f} | {r['hwm_kb']} | {r['client_core']:.2f} |")
	print("| target | conns | round | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | requests | errors | reconnects | server CPU ms / 1000 req | server peak RSS KiB | load generator, cores |")
	print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for r in sorted(rows, key=lambda r: (r["conns"], r["label"], r["round"])):
	    print(cell(r))
	print()
	def m(label, conns, key):
	    xs = [r[key] for r in rows if r["label"] == label and r["conns"] == conns]
	    return med(xs) if xs else None
	conns_all = sorted({r["conns"] for r in rows})
	print("| medians | conns | req/s | p50 µs | p99 µs | p99.9 µs |")
	print("| --- | --- | --- | --- | --- | --- |")
	for c in conns_all:
	    for label in ("ours", "ts", "direct", "gateway", "gateway-tls", "gateway-noaudit"):
	        if m(label, c, "rps") is not None:
	            print(f"| {label} | {c} | {m(label, c, 'rps'):.0f} | {m(label, c, 'p50_us'):.0f} | {m(label, c, 'p99_us'):.0f} | {m(label, c, 'p999_us'):.0f} |")
	print()
	print("| tickets-mcp / TypeScript SDK (medians) | conns | throughput | p50 | p99 | throughput, per round | goal |")
	print("| --- | --- | --- | --- | --- | --- | --- |")
	for c in conns_all:
	    if m("ours", c, "rps") and m("ts", c, "rps"):
	        t = m("ours", c, "rps") / m("ts", c, "rps")
	        p99o, p99t = m("ours", c, "p99_us"), m("ts", c, "p99_us")
	        ok = "met" if t >= 10 and p99o < p99t else "NOT met"
	        per = [o["rps"] / s["rps"] for o in rows for s in rows if o["label"] == "ours" and s["label"] == "ts"
	               and o["conns"] == c and s["conns"] == c and o["round"] == s["round"]]
	        print(f"| | {c} | {t:.1f}x | {m('ours', c, 'p50_us') / m('ts', c, 'p50_us'):.3f}x | {p99o / p99t:.3f}x | "
	              + ", ".join(f"{x:.1f}x" for x in per) + f" | >= 10x throughput at lower p99: {ok} |")
	print()
	print("| gateway added latency (median of per-round differences against direct) | conns | p50 µs | p99 µs | goal (p50 < 100 µs) |")
	print("| --- | --- | --- | --- | --- |")
	for c in conns_all:
	    for label in ("gateway", "gateway-tls", "gateway-noaudit"):
	        d50, d99 = [], []
	        for r in rows:
	            if r["label"] != label or r["conns"] != c:
	                continue
	            d = [x for x in rows if x["label"] == "direct" and x["conns"] == c and x["round"] == r["round"]]
	            if d:
	                d50.append(r["p50_us"] - d[0]["p50_us"])
	                d99.append(r["p99_us"] - d[0]["p99_us"])
	        if d50:
	            goal = ("met" if med(d50) < 100 else "NOT met") if label != "gateway-tls" else "-"
	            print(f"| {label} | {c} | {med(d50):+.0f} | {med(d99):+.0f} | {goal} |")
	PY
	echo
}
if [ "$ONLY" = mcp ]; then
	mcp_bench
	exit 0
fi

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
