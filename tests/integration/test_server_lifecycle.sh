#!/bin/sh
# The server's life from outside: command-line surface (--help for every
# subcommand, --version, unknown options and commands), then a SIGTERM drain
# with an open SSE event stream, a worker long-polling for work in a loop and
# a request still uploading its body: the listener closes at once, the upload
# is answered, the stream ends with a clean chunked terminator, the blocked
# poll is released, the process exits 0 within a few seconds, and what was
# written survives a restart on the same data directory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/api_lib.sh"

# ---- command line ----
out=$("$AIRLOCK_BIN" --version) || fail "--version exit $?"
echo "$out" | grep -Eq '^airlock [0-9]+\.[0-9]+\.[0-9]+' || fail "--version prints '$out'"
for args in "--help" "server --help" "model-stub --help" "server -h"; do
	rc=0
	# shellcheck disable=SC2086
	"$AIRLOCK_BIN" $args >"$T/help.out" 2>"$T/help.err" || rc=$?
	[ $rc -eq 0 ] || fail "airlock $args: exit $rc"
	grep -qi "usage" "$T/help.out" || fail "airlock $args prints no usage on stdout"
	[ -s "$T/help.err" ] && fail "airlock $args writes to stderr: $(cat "$T/help.err")"
done
"$AIRLOCK_BIN" --help | grep -q "model-stub" || fail "--help does not list model-stub"
"$AIRLOCK_BIN" --help | grep -q "server" || fail "--help does not list server"

usage_error() { # expected-text args...
	want=$1; shift
	rc=0
	"$AIRLOCK_BIN" "$@" >"$T/ue.out" 2>"$T/ue.err" </dev/null || rc=$?
	[ $rc -eq 2 ] || fail "airlock $*: exit $rc, want 2 ($(cat "$T/ue.err"))"
	grep -q -- "$want" "$T/ue.err" || fail "airlock $*: stderr lacks '$want': $(cat "$T/ue.err")"
}
usage_error "unknown command" frobnicate
usage_error "usage" # no command at all
usage_error "unknown option --bogus" server --bogus 1 --listen 127.0.0.1:0 --data "$T/x"
usage_error "--bogus" server --listen 127.0.0.1:0 --data "$T/x" --bogus
usage_error "required" server --listen 127.0.0.1:0
usage_error "HOST:PORT" server --listen nonsense --data "$T/x"
usage_error "go together" server --listen 127.0.0.1:0 --data "$T/x" --tls-cert /nonexistent
usage_error "text or json" server --listen 127.0.0.1:0 --data "$T/x" --log-format xml
usage_error "--bogus" model-stub --bogus 1
[ -e "$T/x" ] && fail "a rejected command line created the data directory"

# ---- drain ----
start_server
api POST /v1/agents '{"name":"survivor","model":"claude-sonnet-4-5","tools":[{"type":"agent_toolset_20260401"}]}'
expect 200
AGENT=$(jq_ "j['id']")
api POST /v1/environments '{"name":"perimeter","config":{"type":"self_hosted"}}'
expect 200
ENV=$(jq_ "j['id']")
api POST "/v1/environments/$ENV/keys" '{}'
expect 200
EKEY=$(jq_ "j['key']")
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
expect 200
SESSION=$(jq_ "j['id']")

# An open event stream.
curl -sN -H "$BETA" -H "x-api-key: $KEY" -H 'accept: text/event-stream' \
	"$URL/v1/sessions/$SESSION/events/stream" >"$T/stream.out" 2>"$T/stream.err" &
STREAM=$!
# A worker long-polling (999 ms, the API's cap) in a loop until the server is gone.
(
	while :; do
		s=$(curl -s -o /dev/null -w '%{http_code}' -H "$BETA" -H "Authorization: Bearer $EKEY" \
			"$URL/v1/environments/$ENV/work/poll?block_ms=999") || true
		echo "$s" >>"$T/polls"
		[ "$s" = 000 ] && break
	done
) &
POLLER=$!
# A request whose body is still arriving when SIGTERM lands: ~60 KB at 30 KB/s.
python3 -c "import json; print(json.dumps({'name':'late','model':'m','description':'x'*60000}))" >"$T/late.json"
curl -s -o "$T/late.out" -w '%{http_code}' --limit-rate 30k -H "$BETA" -H "x-api-key: $KEY" \
	-H 'content-type: application/json' --data-binary @"$T/late.json" "$URL/v1/agents" >"$T/late.status" &
LATE=$!
PIDS="$PIDS $STREAM $POLLER $LATE"
sleep 0.8
kill -0 "$STREAM" 2>/dev/null || fail "the event stream ended before SIGTERM: $(cat "$T/stream.err")"

t0=$(date +%s%N)
kill -TERM "$SERVER_PID"
sleep 0.2
# The listener is closed while the upload is still being answered.
rc=0; curl -s -o /dev/null --max-time 2 "$URL/v1/agents" || rc=$?
[ $rc -eq 7 ] || fail "a new connection during the drain: curl exit $rc, want 7 (refused)"

rc=0; wait "$STREAM" || rc=$?
[ $rc -eq 0 ] || fail "the event stream did not end cleanly: curl exit $rc $(cat "$T/stream.err")"
rc=0; wait "$LATE" || rc=$?
eq "$(cat "$T/late.status")" 200 "the request uploading during the drain is answered"
rc=0; wait "$SERVER_PID" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ $rc -eq 0 ] || fail "server exit status $rc after SIGTERM"
[ $ms -lt 6000 ] || fail "drain took $ms ms"
wait "$POLLER" || true
grep -q '^000$' "$T/polls" || fail "the poller never saw the server go away"
grep -q '^200$' "$T/polls" || fail "the blocked poll was not answered"
grep -v '^000$' "$T/polls" | grep -qv '^200$' && fail "a poll failed during the drain: $(tr '\n' ' ' <"$T/polls")"
grep -q "draining" "$T/server.log" || fail "no drain in the log"
LATE_ID=$(python3 -c "import json; print(json.load(open('$T/late.out'))['id'])")

# ---- data survives ----
PIDS="" # all reaped above; never signal a recycled pid
mv "$T/server.log" "$T/server1.log"
OLDKEY=$KEY
start_server
eq "$KEY" "$OLDKEY" "the admin key is kept across restarts"
api GET /v1/agents
expect 200
eq "$(jq_ "sorted(a['id'] for a in j['data'])")" "$(python3 -c "import json; print(json.dumps(sorted(['$AGENT','$LATE_ID'])))")" "agents after the restart"
api GET "/v1/sessions/$SESSION"
expect 200
eq "$(jq_ "j['status']")" idle "session after the restart"
raw GET "/v1/environments/$ENV/work/poll?block_ms=1" '' -H "$BETA" -H "Authorization: Bearer $EKEY"
expect 200
exit 0
