#!/bin/sh
# airlock audit keygen / write / verify on real files: an intact log verifies
# (also with the python3 and openssl recipes from docs/AUDIT.md); each kind of
# tampering is named at the right line and seq and exits 1.
. "$(dirname "$0")/lib.sh"
A="$AIRLOCK_BIN"
cd "$T"

# keygen: private key 0600, public key next to it, never overwritten.
"$A" audit keygen --out k.pem >keygen.out || fail "keygen failed"
grep -q "BEGIN PUBLIC KEY" keygen.out || fail "keygen printed no public key"
[ "$(stat -c %a k.pem)" = 600 ] || fail "private key mode is $(stat -c %a k.pem)"
[ -s k.pem.pub ] || fail "no k.pem.pub"
grep -q PRIVATE k.pem.pub && fail "public key file holds the private key"
"$A" audit keygen --out k.pem >/dev/null 2>&1 && fail "keygen overwrote an existing key"
"$A" audit keygen --out other.pem >/dev/null || fail "second keygen failed"

# Six records, a checkpoint every 3, checkpoints also copied to ship.jsonl.
for i in 1 2 3 4 5 6; do echo "{\"event\":\"step\",\"i\":$i}"; done |
	"$A" audit write --sign-key k.pem --checkpoint-every 3 --checkpoint-copy ship.jsonl \
		--component it log.jsonl || fail "audit write failed"
# 1 open, 2 3 | 4 ckpt | 5 6 7 | 8 ckpt | 9 | 10 ckpt on close
[ "$(wc -l <log.jsonl)" = 10 ] || fail "expected 10 lines, got $(wc -l <log.jsonl)"
[ "$(wc -l <ship.jsonl)" = 3 ] || fail "expected 3 shipped checkpoints"

"$A" audit verify --pubkey k.pem.pub --checkpoint-file ship.jsonl log.jsonl >v.out ||
	fail "intact log did not verify: $(cat v.out)"
grep -q "intact: 10 records, 3 checkpoints (signatures verified), 3 shipped" v.out ||
	fail "unexpected verify output: $(cat v.out)"
"$A" audit verify --json --pubkey k.pem.pub log.jsonl >v.json || fail "verify --json failed"
python3 -c 'import json,sys; r=json.load(open("v.json")); assert r["ok"] and r["last_seq"]==10, r' ||
	fail "bad --json output: $(cat v.json)"

# The documented standard-tool recipes agree (docs/AUDIT.md).
# The python recipe is taken from the document itself, so the two cannot drift.
awk '/^<!-- recipe: audit-verify.py -->/{f=1; next} f && /^```python/{next} f && /^```/{exit} f' \
	"$AIRLOCK_SRC/docs/AUDIT.md" >audit-verify.py
[ -s audit-verify.py ] || fail "no python recipe in docs/AUDIT.md"
python3 audit-verify.py log.jsonl >py.out || fail "python recipe: $(cat py.out)"
grep -q "intact: 10 records" py.out || fail "python recipe output: $(cat py.out)"
tail -n 1 log.jsonl | python3 -c '
import base64, json, sys
r = json.load(sys.stdin)
open("msg", "w").write("airlock-audit-checkpoint-v1\n%d\n%s\n" % (r["head_seq"], r["head_hash"]))
open("sig", "wb").write(base64.b64decode(r["sig"]))'
openssl pkeyutl -verify -pubin -inkey k.pem.pub -rawin -in msg -sigfile sig >/dev/null ||
	fail "openssl does not verify the checkpoint signature"

expect_bad() { # file want-substring [verify args...]
	f=$1; want=$2; shift 2
	if "$A" audit verify "$@" "$f" >bad.out 2>&1; then
		fail "tampered $f verified: $(cat bad.out)"
	else
		rc=$?
	fi
	[ $rc -eq 1 ] || fail "verify exited $rc, not 1: $(cat bad.out)"
	grep -q "$want" bad.out || fail "expected '$want' in: $(cat bad.out)"
}

# A byte changed in the middle record.
sed '5s/"i":3/"i":7/' log.jsonl >edit.jsonl
expect_bad edit.jsonl "line 5 (seq 5): hash mismatch"
# A record removed.
sed '3d' log.jsonl >del.jsonl
expect_bad del.jsonl "line 3 (seq 4): .*removed"
# A copied record inserted.
sed '6r /dev/stdin' log.jsonl <<EOT >ins.jsonl
$(sed -n 2p log.jsonl)
EOT
expect_bad ins.jsonl "line 7 (seq 2): .*inserted"
# Two records swapped.
awk 'NR == 2 { held = $0; next } NR == 3 { print; print held; next } { print }' \
	log.jsonl >swap.jsonl
expect_bad swap.jsonl "line 2 (seq 3)"
# Checkpoints checked against the wrong key.
expect_bad log.jsonl "line 4 (seq 4): checkpoint signed by key" --pubkey other.pem.pub
# Truncated behind a shipped checkpoint: the chain alone still verifies.
head -n 6 log.jsonl >trunc.jsonl
"$A" audit verify trunc.jsonl >/dev/null || fail "a clean prefix should verify on its own"
expect_bad trunc.jsonl "truncated" --pubkey k.pem.pub --checkpoint-file ship.jsonl
# A torn last line.
{ cat log.jsonl; printf '{"seq":11'; } >torn.jsonl
expect_bad torn.jsonl "line 11"

# The writer refuses to continue a broken log, and continues an intact one.
cp edit.jsonl cont.jsonl
sed -i '$s/"head_seq":9/"head_seq":8/' cont.jsonl
echo '{"event":"more"}' | "$A" audit write cont.jsonl 2>w.err && fail "appended to a broken log"
grep -q "refusing to append" w.err || fail "no clear refusal: $(cat w.err)"
echo '{"event":"more"}' | "$A" audit write --sign-key k.pem log.jsonl || fail "reopen failed"
"$A" audit verify --pubkey k.pem.pub --checkpoint-file ship.jsonl log.jsonl >/dev/null ||
	fail "continued log does not verify"
"$A" audit verify --help >/dev/null || fail "--help failed"
rc=0; "$A" audit verify >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "usage error should exit 2, not $rc"
echo "audit cli: ok"
