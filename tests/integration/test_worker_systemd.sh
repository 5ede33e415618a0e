#!/bin/sh
# contrib/systemd/airlock-worker.service: `systemd-analyze verify` accepts it
# (with ExecStart pointed at the built binary), a planted typo is reported (so
# the check can fail), and the hardening options known to break the sandbox
# stay out of it (docs/OPERATIONS.md says why).
. "$(dirname "$0")/lib.sh"

command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not installed"; exit 77; }
UNIT="$AIRLOCK_SRC/contrib/systemd/airlock-worker.service"
[ -f "$UNIT" ] || fail "no $UNIT"

mkdir -p "$T/unit"
sed -e "s#/usr/local/bin/airlock#$AIRLOCK_BIN#" \
	-e "s#/etc/airlock/environment.key#$T/environment.key#" \
	"$UNIT" >"$T/unit/airlock-worker.service"
umask 077
echo "sk-env-test" >"$T/environment.key"

out=$(cd "$T/unit" && systemd-analyze verify --man=no ./airlock-worker.service 2>&1) ||
	fail "systemd-analyze verify failed: $out"
# Warnings (unknown keys, bad values) do not change the exit status: none allowed.
if echo "$out" | grep -q "airlock-worker.service"; then
	fail "systemd-analyze verify warned: $out"
fi

# The negative control: a misspelt directive must be reported.
sed -e 's/^NoNewPrivileges=/NoNewPrivilege=/' "$T/unit/airlock-worker.service" \
	>"$T/unit/airlock-worker-typo.service"
out=$(cd "$T/unit" && systemd-analyze verify --man=no ./airlock-worker-typo.service 2>&1) || true
echo "$out" | grep -q "NoNewPrivilege" || fail "a typo went unreported: $out"

# Options that make every sandbox fail to start, or drop its limits.
for bad in ProtectKernelTunables ProtectKernelLogs ProcSubset ProtectProc \
	ProtectControlGroups PrivateUsers DynamicUser MemoryDenyWriteExecute; do
	if grep -q "^$bad=" "$UNIT"; then
		fail "$bad is set: it breaks the sandbox (docs/OPERATIONS.md)"
	fi
done
grep -q '^LoadCredential=environment-key:' "$UNIT" || fail "no LoadCredential for the key"
grep -q '^StateDirectory=airlock-worker' "$UNIT" || fail "no StateDirectory"
grep -q '^KillMode=mixed' "$UNIT" || fail "KillMode must be mixed (the worker drains)"
echo "ok"
