#!/bin/sh
# test_model_stub.sh - the real `airlock model-stub` binary (a TEST DOUBLE)
# driven with curl over loopback: health, scripted steps chosen by the
# transcript, scenarios by keyword, fault injection with retry-after, delays,
# the optional api-key check, concurrency, and a clean exit on SIGTERM.
. "$(dirname "$0")/lib.sh"

[ -x "$AIRLOCK_BIN" ] || { echo "airlock binary not built: $AIRLOCK_BIN"; exit 77; }

"$AIRLOCK_BIN" model-stub --help | grep -q "TEST DOUBLE" || fail "--help does not say TEST DOUBLE"

# A bad script is a usage error (exit 2), named in the message.
echo '{"steps": {}}' >"$T/bad.json"
rc=0; "$AIRLOCK_BIN" model-stub --listen 127.0.0.1:0 --script "$T/bad.json" 2>"$T/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "bad script: exit $rc, want 2"
grep -q steps "$T/bad.err" || fail "bad script: message does not say what is wrong"

cat >"$T/script.json" <<'EOF'
{
  "faults": [{"status": 529, "count": 2, "retry_after": 1}],
  "scenarios": [
    {"match": "weather", "steps": [
      {"content": [{"type": "tool_use", "name": "bash", "input": {"command": "forecast"}}]},
      {"content": [{"type": "text", "text": "Forecast: {{last_tool_result}}"}]}
    ]},
    {"steps": [
      {"content": [{"type": "text", "text": "slow hello"}], "delay_ms": 300}
    ]}
  ]
}
EOF

PORT=$(free_port)
"$AIRLOCK_BIN" model-stub --listen "127.0.0.1:$PORT" --script "$T/script.json" \
	>"$T/stub.out" 2>"$T/stub.err" &
STUB=$!
PIDS="$STUB"
URL="http://127.0.0.1:$PORT"
wait_http "$URL/healthz"
grep -q "listening on 127.0.0.1:$PORT" "$T/stub.out" || fail "no 'listening on' line"

code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")
[ "$code" = 200 ] || fail "healthz: $code"

post() { # body-file -> writes $T/resp.json, $T/resp.hdr; prints the status
	curl -s -o "$T/resp.json" -D "$T/resp.hdr" -w '%{http_code}' -X POST "$URL/v1/messages" \
		-H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
		--data-binary "@$1"
}
jq_py() { # expr over $T/resp.json
	python3 -c "import json,sys; d=json.load(open('$T/resp.json')); print($1)"
}

cat >"$T/turn0.json" <<'EOF'
{"model": "claude-sonnet-4-5", "max_tokens": 512,
 "messages": [{"role": "user", "content": "What is the weather in Lyon?"}]}
EOF
cat >"$T/turn1.json" <<'EOF'
{"model": "claude-sonnet-4-5", "max_tokens": 512,
 "messages": [
  {"role": "user", "content": "What is the weather in Lyon?"},
  {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}]},
  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain, 12 C"}]}
 ]}
EOF

# The first two requests process-wide are the injected 529s, with retry-after.
for i in 1 2; do
	code=$(post "$T/turn0.json")
	[ "$code" = 529 ] || fail "fault $i: status $code, want 529"
	grep -qi '^retry-after: 1' "$T/resp.hdr" || fail "fault $i: no retry-after header"
	[ "$(jq_py "d['error']['type']")" = overloaded_error ] || fail "fault $i: wrong error type"
done

code=$(post "$T/turn0.json")
[ "$code" = 200 ] || fail "turn 0: status $code"
[ "$(jq_py "d['type']")" = message ] || fail "turn 0: type"
[ "$(jq_py "d['role']")" = assistant ] || fail "turn 0: role"
[ "$(jq_py "d['stop_reason']")" = tool_use ] || fail "turn 0: stop_reason"
[ "$(jq_py "d['content'][0]['name']")" = bash ] || fail "turn 0: tool name"
jq_py "d['id']" | grep -q '^msg_' || fail "turn 0: message id"
jq_py "d['content'][0]['id']" | grep -q '^toolu_' || fail "turn 0: tool_use id"
[ "$(jq_py "d['usage']['input_tokens'] > 0")" = True ] || fail "turn 0: usage"

code=$(post "$T/turn1.json")
[ "$code" = 200 ] || fail "turn 1: status $code"
[ "$(jq_py "d['content'][0]['text']")" = "Forecast: rain, 12 C" ] || fail "turn 1: placeholder"
[ "$(jq_py "d['stop_reason']")" = end_turn ] || fail "turn 1: stop_reason"

# The default scenario, with its 300 ms delay.
cat >"$T/hello.json" <<'EOF'
{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]}
EOF
start=$(date +%s%N)
code=$(post "$T/hello.json")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$code" = 200 ] || fail "default scenario: $code"
[ "$(jq_py "d['content'][0]['text']")" = "slow hello" ] || fail "default scenario text"
[ "$ms" -ge 300 ] || fail "delay_ms not honoured: $ms ms"

# Bad requests: 400 with the API's error shape; unknown path 404.
echo '{"messages": []}' >"$T/badreq.json"
code=$(post "$T/badreq.json")
[ "$code" = 400 ] || fail "bad request: $code"
[ "$(jq_py "d['error']['type']")" = invalid_request_error ] || fail "bad request type"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/nothing")
[ "$code" = 404 ] || fail "unknown path: $code"

# Stateless: 100 concurrent conversations at different turns all get their step.
i=0
while [ $i -lt 100 ]; do
	if [ $((i % 2)) -eq 0 ]; then f=turn0; else f=turn1; fi
	curl -s -o "$T/c$i.json" -w '%{http_code}\n' -X POST "$URL/v1/messages" \
		--data-binary "@$T/$f.json" >"$T/c$i.code" &
	i=$((i + 1))
done
wait_curls=0
while [ "$(ls "$T"/c*.code 2>/dev/null | wc -l)" -lt 100 ] || \
	[ "$(cat "$T"/c*.code | grep -c .)" -lt 100 ]; do
	wait_curls=$((wait_curls + 1)); [ $wait_curls -lt 200 ] || fail "concurrent requests hung"
	sleep 0.05
done
[ "$(cat "$T"/c*.code | grep -c '^200$')" -eq 100 ] || fail "concurrent: not all 200"
[ "$(grep -l 'Forecast: rain' "$T"/c*.json | wc -l)" -eq 50 ] || fail "concurrent: turn 1 replies"
[ "$(grep -l '"tool_use"' "$T"/c*.json | wc -l)" -ge 50 ] || fail "concurrent: turn 0 replies"

# SIGTERM: drains and exits 0.
kill -TERM "$STUB"
rc=0; wait "$STUB" || rc=$?
PIDS=""
[ "$rc" -eq 0 ] || fail "stub exit status $rc after SIGTERM"

# The api-key check, with the key passed through the environment (never argv).
PORT2=$(free_port)
KEY="sk-ant-stub-$(date +%s)"
STUB_KEY="$KEY" "$AIRLOCK_BIN" model-stub --listen "127.0.0.1:$PORT2" \
	--script "$T/script.json" --api-key-env STUB_KEY >/dev/null 2>"$T/stub2.err" &
PIDS="$!"
wait_http "http://127.0.0.1:$PORT2/healthz"
code=$(curl -s -o "$T/resp.json" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT2/v1/messages" \
	-H 'x-api-key: wrong' --data-binary "@$T/turn0.json")
[ "$code" = 401 ] || fail "wrong key: $code"
[ "$(jq_py "d['error']['type']")" = authentication_error ] || fail "wrong key: error type"
# The right key passes the check (and meets this fresh process's first fault).
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT2/v1/messages" \
	-H "x-api-key: $KEY" --data-binary "@$T/turn0.json")
[ "$code" = 529 ] || fail "right key: $code, want the scripted 529"
grep -q 'sk-ant-stub' "$T/stub2.err" "$T/stub.err" "$T/stub.err" && fail "the key reached a log"

rc=0; "$AIRLOCK_BIN" model-stub --listen 127.0.0.1:0 --script "$T/script.json" \
	--api-key-env AL_SURELY_UNSET_VAR 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "unset key variable: exit $rc, want 2"
echo "model-stub ok"
