#!/bin/sh
# `airlock server --tls-cert --tls-key` with a throwaway CA made here by the
# openssl CLI: a full API round trip over HTTPS verified against that CA,
# plain HTTP on the TLS port fails without hurting the server, and a bad
# certificate or key stops start-up with a clear message that carries no key
# material.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/api_lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "no openssl CLI"; exit 77; }

# ---- a CA, a server certificate for 127.0.0.1 signed by it, and a stranger ----
cd "$T"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
	-subj "/CN=airlock test CA" >/dev/null 2>&1 || fail "openssl: CA"
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
	-subj "/CN=127.0.0.1" >/dev/null 2>&1 || fail "openssl: CSR"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
	-days 2 -extfile ext.cnf >/dev/null 2>&1 || fail "openssl: sign"
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 \
	-subj "/CN=stranger" >/dev/null 2>&1 || fail "openssl: other"
cd - >/dev/null

# start_tls DATA extra-args...: starts the server with TLS; sets URL, KEY, SERVER_PID.
start_tls() {
	d=$1; shift
	PORT=$(free_port)
	"$AIRLOCK_BIN" server --listen "127.0.0.1:$PORT" --data "$T/$d" "$@" >"$T/$d.log" 2>&1 &
	SERVER_PID=$!
	PIDS="$PIDS $SERVER_PID"
	URL="https://127.0.0.1:$PORT"
}

# ---- HTTPS round trip ----
start_tls data --tls-cert "$T/server.pem" --tls-key "$T/server.key"
i=0
while [ ! -s "$T/data/admin.key" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "no admin key: $(cat "$T/data.log")"
	sleep 0.1
done
KEY=$(cat "$T/data/admin.key")
i=0
while ! curl -s -o /dev/null --cacert "$T/ca.pem" "$URL/v1/agents"; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "TLS server did not come up: $(cat "$T/data.log")"
	sleep 0.1
done
grep -q "(https)" "$T/data.log" || fail "the log does not say https"

tls() { # METHOD PATH [BODY]: admin call over HTTPS verified against the test CA
	if [ $# -gt 2 ]; then
		STATUS=$(curl -s -o "$T/body" -w '%{http_code}' --cacert "$T/ca.pem" -X "$1" -H "$BETA" \
			-H "x-api-key: $KEY" -H 'content-type: application/json' --data-binary "$3" "$URL$2")
	else
		STATUS=$(curl -s -o "$T/body" -w '%{http_code}' --cacert "$T/ca.pem" -X "$1" -H "$BETA" \
			-H "x-api-key: $KEY" "$URL$2")
	fi
}
tls POST /v1/agents '{"name":"over-tls","model":"claude-sonnet-4-5"}'
expect 200
AGENT=$(jq_ "j['id']")
tls GET "/v1/agents/$AGENT"
expect 200
eq "$(jq_ "j['name']")" over-tls "agent read back over TLS"
# Keep-alive over TLS: two requests on one connection, both answered.
curl -s --cacert "$T/ca.pem" -H "$BETA" -H "x-api-key: $KEY" -o "$T/k1" "$URL/v1/agents" \
	-o "$T/k2" "$URL/v1/agents/$AGENT" -w '%{num_connects}\n' >"$T/conns"
[ "$(tr -d '\n' <"$T/conns")" = "10" ] || fail "keep-alive over TLS: connects per request $(cat "$T/conns")"
grep -q over-tls "$T/k2" || fail "second request on the TLS connection"

# Certificate checks are real: without the CA the client refuses (60), and a
# certificate for another name does not verify.
rc=0; curl -s -o /dev/null "$URL/v1/agents" || rc=$?
[ $rc -eq 60 ] || fail "unverified TLS: curl exit $rc, want 60"
rc=0; curl -s -o /dev/null --cacert "$T/other.pem" "$URL/v1/agents" || rc=$?
[ $rc -eq 60 ] || fail "TLS against a stranger's CA: curl exit $rc, want 60"

# Plain HTTP to the TLS port fails cleanly and the server keeps serving.
rc=0; STATUS=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
	"http://127.0.0.1:$PORT/v1/agents") || rc=$?
[ "$STATUS" = 200 ] && fail "plain HTTP was served on the TLS port"
[ $rc -ne 28 ] || fail "plain HTTP on the TLS port hung until the timeout"
# Raw garbage too, then a well-formed TLS call.
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' | python3 -c "
import socket,sys
s=socket.create_connection(('127.0.0.1',$PORT)); s.settimeout(5)
s.sendall(sys.stdin.buffer.read())
try:
    while s.recv(4096): pass
except Exception: pass
" || fail "raw plaintext client"
kill -0 "$SERVER_PID" 2>/dev/null || fail "server died after plaintext on the TLS port"
tls GET /v1/agents
expect 200
eq "$(jq_ "j['data'][0]['id']")" "$AGENT" "still serving after plaintext"
kill -TERM "$SERVER_PID"
rc=0; wait "$SERVER_PID" || rc=$?
[ $rc -eq 0 ] || fail "TLS server exit status $rc after SIGTERM"

# ---- bad certificate material stops start-up, without leaking it ----
# Distinctive lines of each private key: none may appear in any message.
secret_lines() { grep -v -- '-----' "$1" | sed -n '2p;5p;10p'; }
bad_start() { # name expected-text args...
	n=$1; want=$2; shift 2
	rc=0
	timeout 10 "$AIRLOCK_BIN" server --listen 127.0.0.1:0 --data "$T/bad-$n" "$@" \
		>"$T/bad-$n.log" 2>&1 || rc=$?
	[ $rc -ne 0 ] || fail "$n: server started"
	[ $rc -ne 124 ] || fail "$n: server kept running"
	grep -qi -- "$want" "$T/bad-$n.log" || fail "$n: no '$want' in: $(cat "$T/bad-$n.log")"
	grep -q -- "PRIVATE KEY" "$T/bad-$n.log" && fail "$n: key material in the message"
	for k in server.key other.key ca.key; do
		secret_lines "$T/$k" >"$T/lines"
		while read -r l; do
			grep -qF -- "$l" "$T/bad-$n.log" && fail "$n: a line of $k in the message"
		done <"$T/lines"
	done
	return 0
}
bad_start missing-cert "cannot read TLS certificate file: No such file" --tls-cert "$T/nope.pem" --tls-key "$T/server.key"
bad_start missing-key "cannot read TLS key file: No such file" --tls-cert "$T/server.pem" --tls-key "$T/nope.key"
bad_start mismatch "key does not match the certificate" --tls-cert "$T/server.pem" --tls-key "$T/other.key"
bad_start key-as-cert "cannot load TLS certificate" --tls-cert "$T/server.key" --tls-key "$T/server.key"
bad_start cert-as-key "cannot parse TLS key" --tls-cert "$T/server.pem" --tls-key "$T/server.pem"
head -c 3000 /dev/urandom >"$T/junk.pem"
bad_start junk-key "cannot parse TLS key" --tls-cert "$T/server.pem" --tls-key "$T/junk.pem"
exit 0
