#!/bin/sh
# Documented error shapes and statuses from the real binary, and that a
# failed request leaves nothing half-written behind. (The work-queue 409/412
# and sessions-token scope cases need queued work, which only the agent loop
# enqueues; tests/unit/api/test_work.c covers them over real HTTP.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/api_lib.sh"

start_server

# ---- credentials ----
raw GET /v1/agents '' -H "$BETA"
expect 401 authentication_error
raw GET /v1/agents '' -H "$BETA" -H "x-api-key: alk_admin_not-a-real-key"
expect 401 authentication_error
grep -q "not-a-real-key" "$T/body" && fail "the wrong key is echoed"
raw GET /v1/agents '' -H "$BETA" -H "Authorization: Bearer $KEY"
expect 200
raw GET /v1/agents '' -H "$BETA" -H "Authorization: Basic Zm9vOmJhcg=="
expect 401 authentication_error
raw GET /v1/agents '' -H "x-api-key: $KEY"
expect 400 invalid_request_error

# ---- routing ----
api GET /v1/nope
expect 404 not_found_error
api PATCH /v1/agents
expect 405 invalid_request_error
api GET /v1/sessions/sesn_missing
expect 404 not_found_error

# ---- bodies ----
api POST /v1/agents '{"name":"a",'
expect 400 invalid_request_error
jq_ "j['error']['message']" | grep -q "malformed JSON" || fail "malformed JSON message"
api POST /v1/agents '{"name":"a","name":"b","model":"m"}'
expect 400 invalid_request_error
api POST /v1/agents '[]'
expect 400 invalid_request_error
api POST /v1/agents ''
expect 400 invalid_request_error
api POST /v1/agents '{"name":5,"model":"m"}'
expect 400 invalid_request_error
eq "$(jq_ "j['error']['message']")" "name: expected a string, got integer" "type message"
api POST /v1/agents '{"model":"m"}'
expect 400 invalid_request_error
eq "$(jq_ "j['error']['message']")" "name: Field required" "required message"
api POST /v1/agents '{"name":"a","model":"m","colour":"red"}'
expect 400 invalid_request_error
eq "$(jq_ "j['error']['message']")" "colour: Extra inputs are not permitted" "unknown field"
api POST /v1/agents '{"name":"a","model":"m","metadata":{"k":1}}'
expect 400 invalid_request_error
head -c 9000000 /dev/zero | tr '\0' 'a' >"$T/big"
STATUS=$(curl -s -o "$T/body" -w '%{http_code}' -H "$BETA" -H "x-api-key: $KEY" \
	-H 'content-type: application/json' --data-binary @"$T/big" "$URL/v1/agents")
[ "$STATUS" = 413 ] || fail "oversized body: expected 413, got $STATUS"

# ---- nothing half-written ----
api POST /v1/agents '{"name":"keeper","model":"m"}'
expect 200
AGENT=$(jq_ "j['id']")
api POST /v1/agents/$AGENT '{"name":"changed","tools":[{"type":"custom","name":"bad name","description":"d","input_schema":{"type":"object"}}]}'
expect 400 invalid_request_error
api GET /v1/agents/$AGENT
eq "$(jq_ "j['name']")" keeper "a failed update changes nothing"
eq "$(jq_ "j['version']")" 1 "a failed update keeps the version"
api POST /v1/environments '{"name":"e"}'
ENV=$(jq_ "j['id']")
api POST /v1/sessions "{\"agent\":\"agent_missing\",\"environment_id\":\"$ENV\"}"
expect 404 not_found_error
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\",\"initial_events\":[{\"type\":\"user.interrupt\"}]}"
expect 400 invalid_request_error
api GET /v1/sessions
eq "$(jq_ "len(j['data'])")" 0 "failed creates leave no session"
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
SESS=$(jq_ "j['id']")

# ---- events ----
api POST /v1/sessions/$SESS/events '{"events":[{"type":"user.message","content":[{"type":"text","text":"ok"}]},{"type":"agent.message","content":[]}]}'
expect 400 invalid_request_error
jq_ "j['error']['message']" | grep -q "events\[1\].type" || fail "message names the event"
api POST /v1/sessions/$SESS/events '{"events":[{"type":"user.message","content":[{"type":"text"}]}]}'
expect 400 invalid_request_error
api POST /v1/sessions/$SESS/events '{"events":[]}'
expect 400 invalid_request_error
api POST /v1/sessions/$SESS/events '{"events":"no"}'
expect 400 invalid_request_error
api POST /v1/sessions/sesn_missing/events '{"events":[{"type":"user.interrupt"}]}'
expect 404 not_found_error
api GET /v1/sessions/$SESS/events
eq "$(jq_ "len(j['data'])")" 0 "a rejected batch appends nothing"
api GET "/v1/sessions/$SESS/events?types[]=not.a.type"
expect 400 invalid_request_error
api GET "/v1/sessions/$SESS/events?limit=abc"
expect 400 invalid_request_error

# ---- a tool call is answered once: a second answer is refused, not stored ----
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
SESS4=$(jq_ "j['id']")
R='{"events":[{"type":"user.tool_result","tool_use_id":"sevt_call1","content":[{"type":"text","text":"r"}]}]}'
api POST /v1/sessions/$SESS4/events "$R"
expect 200
api POST /v1/sessions/$SESS4/events "$R"
expect 400 invalid_request_error
eq "$(jq_ "j['error']['details']['error_code']")" tool_use_already_answered "duplicate answer error_code"
jq_ "j['error']['message']" | grep -q "events\[0\].tool_use_id" || fail "message names the field"
api GET "/v1/sessions/$SESS4/events?types[]=user.tool_result" "" -g
eq "$(jq_ "len(j['data'])")" 1 "the second answer was not stored"

# ---- environment keys: scope ----
api POST /v1/environments '{"name":"other"}'
ENV2=$(jq_ "j['id']")
raw POST /v1/environments/$ENV2/keys '' -H "x-api-key: $KEY"
EK2=$(jq_ "j['key']")
raw GET /v1/environments/$ENV/work/poll '' -H "$BETA" -H "Authorization: Bearer $EK2"
expect 403 permission_error
raw GET /v1/sessions/$SESS '' -H "$BETA" -H "Authorization: Bearer $EK2"
expect 403 permission_error
raw POST /v1/sessions/$SESS/events '{"events":[{"type":"user.interrupt"}]}' -H "$BETA" \
	-H "Authorization: Bearer $EK2"
expect 403 permission_error
raw GET /v1/environments/$ENV2/work/poll?block_ms=5000 '' -H "$BETA" -H "Authorization: Bearer $EK2"
expect 400 invalid_request_error
raw POST /v1/environments/$ENV2/work/work_missing/heartbeat '' -H "$BETA" -H "Authorization: Bearer $EK2"
expect 404 not_found_error
raw POST /v1/environments/$ENV2/work/work_missing/stop '{"force":1}' -H "$BETA" -H "Authorization: Bearer $EK2"
expect 400 invalid_request_error
api POST /v1/environments/$ENV2/archive
expect 200
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV2\"}"
expect 400 invalid_request_error
eq "$(jq_ "j['error']['details']['error_code']")" environment_archived "archived environment"

# Paths that could alias another route are refused before routing.
api GET "/v1/sessions/x%2Fevents" "" --path-as-is
expect 400 invalid_request_error
api GET "/v1/environments/../agents" "" --path-as-is
expect 400 invalid_request_error
api GET "/v1/agents/./" "" --path-as-is
expect 400 invalid_request_error
api GET "//v1/agents" "" --path-as-is
expect 400 invalid_request_error

# ---- sending to an archived session: refused, nothing appended ----
api POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
expect 200
SESS3=$(jq_ "j['id']")
api POST /v1/sessions/$SESS3/archive
expect 200
api POST /v1/sessions/$SESS3/events '{"events":[{"type":"user.interrupt"}]}'
expect 400 invalid_request_error
eq "$(jq_ "j['error']['message']")" "session $SESS3 is archived" "archived session message"
api GET /v1/sessions/$SESS3/events
expect 200
eq "$(jq_ "len(j['data'])")" 0 "no event appended to an archived session"

grep -q "$KEY" "$T/server.log" && fail "a key appears in the log"
echo ok
