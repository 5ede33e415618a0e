#!/bin/sh
# Every control-plane resource through the real binary with curl: agents,
# environments, environment keys, sessions, events (send, list, stream), and
# the documented errors along the way.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/api_lib.sh"

start_server
[ "$(stat -c %a "$T/data/admin.key")" = 600 ] || fail "admin.key is not mode 0600"
grep -q "$KEY" "$T/server.log" && fail "the admin key appears in the log"
grep -q "admin.key" "$T/server.log" || fail "the log does not say where the key is"

# ---- agents ----
api POST /v1/agents '{"name":"coder","model":"claude-sonnet-4-5","system":"be brief","tools":[{"type":"agent_toolset_20260401"}],"metadata":{"team":"a"}}'
expect 200
AGENT=$(jq_ "j['id']")
eq "$(jq_ "j['type']")" agent "agent type"
eq "$(jq_ "j['version']")" 1 "first version"
eq "$(jq_ "j['model']['id']")" claude-sonnet-4-5 "model resolved to an object"
eq "$(jq_ "j['tools'][0]['default_config']['permission_policy']['type']")" always_allow "toolset defaults"
eq "$(jq_ "j['archived_at']")" "" "archived_at null"
for f in created_at updated_at description mcp_servers skills multiagent execution_identity metadata; do
	[ "$(jq_ "'$f' in j")" = "true" ] || fail "agent lacks $f"
done

api POST /v1/agents/$AGENT '{"system":"be very brief","version":1}'
expect 200
eq "$(jq_ "j['version']")" 2 "update bumps the version"
api POST /v1/agents/$AGENT '{"system":"stale","version":1}'
expect 409 conflict_error
api POST /v1/agents/$AGENT '{"system":"be very brief"}'
expect 200
eq "$(jq_ "j['version']")" 2 "a no-op update keeps the version"
api GET "/v1/agents/$AGENT?version=1"
expect 200
eq "$(jq_ "j['system']")" "be brief" "version 1 is retrievable"
api GET "/v1/agents/$AGENT?version=9"
expect 404 not_found_error
api GET /v1/agents/agent_nope
expect 404 not_found_error

api POST /v1/agents '{"name":"second","model":"m"}'
expect 200
A2=$(jq_ "j['id']")
api GET '/v1/agents?limit=1'
expect 200
eq "$(jq_ "len(j['data'])")" 1 "limit"
eq "$(jq_ "j['data'][0]['id']")" "$A2" "newest first"
NEXT=$(jq_ "j['next_page']")
api GET "/v1/agents?limit=1&page=$NEXT"
expect 200
eq "$(jq_ "j['data'][0]['id']")" "$AGENT" "second page"
eq "$(jq_ "j['next_page']")" "" "last page"
api POST /v1/agents/$A2/archive
expect 200
[ -n "$(jq_ "j['archived_at']")" ] || fail "archive sets archived_at"
api GET /v1/agents
eq "$(jq_ "len(j['data'])")" 1 "archived agents are hidden"
api GET '/v1/agents?include_archived=true'
eq "$(jq_ "len(j['data'])")" 2 "include_archived"

# ---- environments and keys ----
api POST /v1/environments '{"name":"perimeter","config":{"type":"self_hosted"},"metadata":{"site":"eu"}}'
expect 200
ENV=$(jq_ "j['id']")
eq "$(jq_ "j['config']['type']")" self_hosted "config"
eq "$(jq_ "j['type']")" environment "type"
api POST /v1/environments '{"name":"x","config":{"type":"cloud"}}'
expect 400 invalid_request_error
api POST /v1/environments/$ENV '{"config":{"type":"cloud"}}'
expect 400 invalid_request_error
eq "$(jq_ "j['error']['details']['error_code']")" invalid_config_type_change "error_code"
api POST /v1/environments/$ENV '{"description":"the EU site","metadata":{"site":null,"tier":"1"}}'
expect 200
eq "$(jq_ "j['metadata']")" '{"tier": "1"}' "metadata patch"
api GET /v1/environments/env_nope
expect 404 not_found_error
eq "$(jq_ "j['error']['details']['error_code']")" environment_not_found "env error_code"

raw POST /v1/environments/$ENV/keys '' -H "x-api-key: $KEY"
expect 200
eq "$(jq_ "j['type']")" environment_key "key type"
EKEY=$(jq_ "j['key']")
EKEY_ID=$(jq_ "j['id']")
grep -q "$EKEY" "$T/server.log" && fail "the environment key appears in the log"
[ -z "$(sqlite3 "$T/data/airlock.db" "select 1 from docs where body like '%$EKEY%'" 2>/dev/null)" ] ||
	fail "the environment key is stored in clear"
raw GET /v1/environments/$ENV/work/stats '' -H "$BETA" -H "Authorization: Bearer $EKEY"
expect 200
eq "$(jq_ "j['type']")" work_queue_stats "stats with the environment key"
eq "$(jq_ "j['depth']")" 0 "empty queue"
raw GET /v1/environments/$ENV/work/poll '' -H "$BETA" -H "Authorization: Bearer $EKEY"
expect 200
eq "$(cat "$T/body")" null "empty poll is null"
raw GET /v1/agents '' -H "$BETA" -H "Authorization: Bearer $EKEY"
expect 403 permission_error

# ---- sessions ----
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\",\"title\":\"t1\"}"
expect 200
SESS=$(jq_ "j['id']")
eq "$(jq_ "j['status']")" idle "new sessions are idle"
eq "$(jq_ "j['agent']['version']")" 2 "snapshot of the current version"
eq "$(jq_ "j['agent']['system']")" "be very brief" "snapshot content"
for f in budget outcome_evaluations resources stats usage vault_ids environment_id metadata title created_at updated_at archived_at; do
	[ "$(jq_ "'$f' in j")" = "true" ] || fail "session lacks $f"
done
api POST /v1/sessions "{\"agent\":{\"type\":\"agent\",\"id\":\"$AGENT\",\"version\":1},\"environment_id\":\"$ENV\"}"
expect 200
S1=$(jq_ "j['id']")
eq "$(jq_ "j['agent']['system']")" "be brief" "pinned version"
api POST /v1/sessions "{\"agent\":\"$A2\",\"environment_id\":\"$ENV\"}"
expect 400 invalid_request_error
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"env_nope\"}"
expect 404 not_found_error
api GET "/v1/sessions?agent_id=$AGENT&statuses[]=idle&limit=10"
expect 200
eq "$(jq_ "len(j['data'])")" 2 "list filters"
[ "$(jq_ "'prev_page' in j")" = "true" ] || fail "bidirectional page"
api GET "/v1/sessions?agent_version=1"
eq "$(jq_ "len(j['data'])")" 1 "agent_version filter"
api POST /v1/sessions/$SESS '{"title":"renamed","metadata":{"k":"v"}}'
expect 200
eq "$(jq_ "j['title']")" renamed "session update"
api POST /v1/sessions/$S1/archive
expect 200
[ -n "$(jq_ "j['archived_at']")" ] || fail "session archive"

# ---- events: stream first, then send, then list ----
curl -sN -H "$BETA" -H "x-api-key: $KEY" "$URL/v1/sessions/$SESS/events/stream" >"$T/stream" 2>/dev/null &
STREAM=$!
PIDS="$PIDS $STREAM"
sleep 0.3
api POST /v1/sessions/$SESS/events '{"events":[{"type":"user.message","content":[{"type":"text","text":"hello"}]}]}'
expect 200
EV=$(jq_ "j['data'][0]['id']")
[ -n "$(jq_ "j['data'][0]['processed_at']")" ] || fail "processed_at"
api GET "/v1/sessions/$SESS/events?limit=10"
expect 200
eq "$(jq_ "j['data'][0]['id']")" "$EV" "history has the event"
eq "$(jq_ "j['data'][0]['content'][0]['text']")" hello "event content"
api GET "/v1/sessions/$SESS/events?types[]=agent.message"
eq "$(jq_ "len(j['data'])")" 0 "types filter"
i=0
until grep -q "^data: .*$EV" "$T/stream"; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "stream did not deliver the event: $(cat "$T/stream")"
	sleep 0.1
done
grep -q "^event: user.message" "$T/stream" || fail "stream events carry event: <type>"
kill $STREAM 2>/dev/null || true
api POST /v1/sessions/$S1/events '{"events":[{"type":"user.interrupt"}]}'
expect 400 invalid_request_error

# ---- delete ----
api DELETE /v1/sessions/$SESS
expect 200
eq "$(jq_ "j['type']")" session_deleted "deleted session"
api GET /v1/sessions/$SESS
expect 404 not_found_error
api GET /v1/sessions/$SESS/events
expect 404 not_found_error
raw DELETE /v1/environments/$ENV/keys/$EKEY_ID '' -H "x-api-key: $KEY"
expect 200
raw GET /v1/environments/$ENV/work/stats '' -H "$BETA" -H "Authorization: Bearer $EKEY"
expect 401 authentication_error
api DELETE /v1/environments/$ENV
expect 200
eq "$(jq_ "j['type']")" environment_deleted "deleted environment"
api GET /v1/environments/$ENV
expect 404 not_found_error

# ---- SIGTERM drains and exits 0; data survives a restart ----
kill -TERM $SERVER_PID
wait $SERVER_PID || fail "server did not exit 0 on SIGTERM"
start_server
api GET /v1/agents/$AGENT
expect 200
eq "$(jq_ "j['version']")" 2 "agent survives a restart"
echo "ok"
