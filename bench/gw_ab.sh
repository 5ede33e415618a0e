#!/bin/sh
# bench/gw_ab.sh - the gateway's added latency, two (or three) builds side by
# side: one tickets-mcp (1000 tickets), and for each build a gateway with
# `airlock.audit_sync: batch` and one without the audit log; load from
# bench-mcp_load (tools/call tickets_get, closed loop, keep-alive), runs
# interleaved round by round (order reversed every other round), one JSON
# row per run in $OUT; bench/gw_ab_summary.py prints medians.
#   BASE=build-main NEW=build [MID=other-build] OUT=rows ROUNDS=3 SECS=4 CONNS="1 32" bench/gw_ab.sh
# BASE, NEW, MID: build directories holding airlock (BASE also tickets-mcp,
# NEW also bench-mcp_load).
set -eu
BASE=$(cd "${BASE:?}" && pwd) NEW=$(cd "${NEW:?}" && pwd) MID=${MID:+$(cd "$MID" && pwd)}
T=$(mktemp -d "${TMPDIR:-/tmp}/al-gwab-XXXXXX")
OUT=${OUT:-gw_ab_rows.json}
ROUNDS=${ROUNDS:-3} SECS=${SECS:-5} CONNS=${CONNS:-"1 32"}
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; for p in $PIDS; do wait "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TP=$(port)
$BASE/tickets-mcp --listen 127.0.0.1:$TP --db $T/tickets.db >$T/tickets.log 2>&1 &
TPID=$!; PIDS="$PIDS $TPID"
sleep 0.5
python3 - "$T/tickets.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); now = "2026-07-28T12:00:00.000Z"
for i in range(1, 1001):
    cur = db.execute("INSERT INTO tickets (title, body, priority, status, created_at, updated_at) VALUES (?, ?, 'normal', 'open', ?, ?)",
                     (f"Ticket {i}: VPN drops every hour", "The VPN client disconnects every hour.", now, now))
    for j in range(3):
        db.execute("INSERT INTO comments (ticket_id, body, created_at) VALUES (?, ?, ?)", (cur.lastrowid, f"Comment {j+1}", now))
db.commit()
PY
VARIANTS="base-batch base-noaudit new-batch new-noaudit"
[ -z "$MID" ] || VARIANTS="$VARIANTS mid-batch mid-noaudit"
for v in $VARIANTS; do
	p=$(port); eval "P_$(echo $v | tr - _)=$p"
	{
		echo "listen_addr: 127.0.0.1:$p"; echo "log_level: warn"; echo "tunnel_domain: bench.test"
		echo "routes:"; echo "  tickets: http://127.0.0.1:$TP"
		echo "upstream:"; echo "  allowed_ips: [127.0.0.0/8]"
		echo "airlock:"; echo "  admin_addr: 127.0.0.1:$(port)"
		case $v in *batch) echo "  audit: $T/audit-$v.log"; echo "  audit_sync: batch" ;; esac
	} >$T/gw-$v.yaml
	case $v in base*) b=$BASE ;; mid*) b=$MID ;; *) b=$NEW ;; esac
	${PERF_PREFIX:-} $b/airlock gateway --config $T/gw-$v.yaml 2>$T/gw-$v.log &
	PIDS="$PIDS $!"
done
sleep 1
run() { # label conns url [opts]
	l=$1 c=$2; shift 2
	if $NEW/bench-mcp_load -d $SECS -w 1 -c $c -t tickets_get -a '{"id":42}' -e '"title":"Ticket 42:' "$@" >$T/r.json 2>$T/r.err; then
		python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(label=sys.argv[2],conns=int(sys.argv[3]),round=int(sys.argv[4])); print(json.dumps(r))' $T/r.json $l $c $round >>$OUT
	else echo "FAILED $l $c: $(tail -2 $T/r.err)" >&2; fi
}
round=0
while [ $round -lt $ROUNDS ]; do
	round=$((round+1))
	for c in $CONNS; do
		ORDER="direct $VARIANTS"
		[ $((round % 2)) = 1 ] || ORDER=$(echo "$ORDER" | tr ' ' '\n' | sed '1!G;h;$!d' | tr '\n' ' ')
		for w in $ORDER; do
			case $w in
			direct) run direct $c http://127.0.0.1:$TP/mcp ;;
			*) eval "p=\$P_$(echo $w | tr - _)"; run $w $c -h tickets.bench.test http://127.0.0.1:$p/mcp ;;
			esac
		done
	done
done
echo "rows: $OUT"
