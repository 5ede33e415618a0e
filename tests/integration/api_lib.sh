# Helpers for the control-plane API tests (sourced after lib.sh): start the
# real `airlock server` on loopback and call it with curl.

BETA="anthropic-beta: managed-agents-2026-04-01"

# start_server: runs the server on a free port in $T/data; sets URL and KEY.
start_server() {
	PORT=$(free_port)
	"$AIRLOCK_BIN" server --listen "127.0.0.1:$PORT" --data "$T/data" >"$T/server.log" 2>&1 &
	SERVER_PID=$!
	PIDS="$PIDS $SERVER_PID"
	URL="http://127.0.0.1:$PORT"
	i=0
	while [ ! -s "$T/data/admin.key" ]; do
		i=$((i + 1)); [ $i -lt 100 ] || { cat "$T/server.log"; fail "no admin key"; }
		sleep 0.1
	done
	wait_http "$URL/v1/agents"
	KEY=$(cat "$T/data/admin.key")
}

# api METHOD PATH [BODY] [extra curl args...]: admin call; sets STATUS, writes $T/body.
api() {
	m=$1; p=$2; shift 2
	if [ $# -gt 0 ]; then b=$1; shift; else b=""; fi
	if [ -n "$b" ]; then
		STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" -H "$BETA" -H "x-api-key: $KEY" \
			-H 'content-type: application/json' --data-binary "$b" "$@" "$URL$p")
	else
		STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" -H "$BETA" -H "x-api-key: $KEY" \
			"$@" "$URL$p")
	fi
}

# raw METHOD PATH BODY curl-args...: no default credential.
raw() {
	m=$1; p=$2; b=$3; shift 3
	STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -X "$m" -H 'content-type: application/json' \
		${b:+--data-binary "$b"} "$@" "$URL$p")
}

# jq_ EXPR: evaluates a Python expression over the last body (as `j`).
jq_() {
	python3 -c "import json,sys; j=json.load(open('$T/body')); r=($1); print('' if r is None else (json.dumps(r) if isinstance(r,(dict,list,bool)) else r))"
}

expect() { # STATUS [error type]
	[ "$STATUS" = "$1" ] || fail "expected HTTP $1, got $STATUS: $(cat "$T/body")"
	if [ $# -gt 1 ]; then
		t=$(jq_ "j['error']['type']")
		[ "$t" = "$2" ] || fail "expected error type $2, got $t: $(cat "$T/body")"
		[ "$(jq_ "j['type']")" = "error" ] || fail "error object without type=error"
	fi
}

eq() { [ "$1" = "$2" ] || fail "$3: '$1' != '$2'"; }
