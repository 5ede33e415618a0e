#!/bin/sh
# airlock audit write --syslog: every record reaches a real UDP and a real TCP
# collector on loopback as an RFC 5424 message (TCP with RFC 6587 octet
# counting), and a dead collector does not stop the local log.
. "$(dirname "$0")/lib.sh"
A="$AIRLOCK_BIN"
cd "$T"

cat >collector.py <<'PY'
import json, re, socket, sys
proto, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.settimeout(10)
if proto == "tcp":
    s.listen(1)
print(s.getsockname()[1], flush=True)
msgs = []
if proto == "udp":
    while len(msgs) < n:
        msgs.append(s.recv(65536).decode())
else:
    c, _ = s.accept()
    c.settimeout(10)
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    while data:
        length, rest = data.split(b" ", 1)
        msgs.append(rest[: int(length)].decode())
        data = rest[int(length):]
pat = re.compile(r'^<110>1 (\S+Z) (\S+) airlock (\d+) (\S+) \[airlock@32473 seq="(\d+)" hash="([0-9a-f]{64})" component="it"\] (\{.*\})$')
with open(out, "w") as f:
    for i, m in enumerate(msgs, 1):
        g = pat.match(m)
        assert g, m
        rec = json.loads(g.group(7))
        assert rec["seq"] == int(g.group(5)) == i, (i, m)
        assert rec["hash"] == g.group(6) and rec["time"] == g.group(1)
        assert g.group(4) == str(rec.get("class_uid", rec.get("type", "-")))
        f.write(json.dumps(rec) + "\n")
PY

for proto in udp tcp; do
	python3 collector.py $proto 3 got-$proto.jsonl >port-$proto &
	PIDS="$PIDS $!"
	i=0; while [ ! -s port-$proto ]; do i=$((i + 1)); [ $i -lt 100 ] || fail "collector did not start"; sleep 0.05; done
	port=$(cat port-$proto)
	printf '{"class_uid":1007,"activity_id":1}\n{"event":"x"}\n' |
		"$A" audit write --component it --syslog $proto://127.0.0.1:$port log-$proto.jsonl ||
		fail "audit write with $proto syslog failed"
	wait $! || fail "$proto collector rejected the messages"
	[ "$(wc -l <got-$proto.jsonl)" = 3 ] || fail "$proto: expected 3 messages"
	"$A" audit verify log-$proto.jsonl >/dev/null || fail "$proto: local log does not verify"
done

# A collector that is not there: the local log is still written and intact.
port=$(free_port)
printf '{"event":"y"}\n' | "$A" audit write --syslog tcp://127.0.0.1:$port dead.jsonl 2>dead.err ||
	fail "a dead collector blocked the local log"
grep -q "syslog export failed" dead.err || fail "the export failure was not reported"
"$A" audit verify dead.jsonl >/dev/null || fail "local log does not verify"
echo "audit syslog: ok"
