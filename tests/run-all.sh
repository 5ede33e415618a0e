#!/bin/sh
# Runs every suite and prints one closing line "N passed, N failed".
#   unit:        $B/test-unit (one process per test)
#   integration: tests/integration/test_*.sh, each drives the real binary on loopback
#   sdk:         tests/sdk/*.test.mjs, the official @anthropic-ai/sdk against our server
# A script exiting 77 counts as skipped (and says why); anything else non-zero fails.
set -u
B=${B:-build}
export AIRLOCK_BIN="$(pwd)/$B/airlock"
export AIRLOCK_SRC="$(pwd)"
passed=0 failed=0 skipped=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

"$B/test-unit" >"$log/unit.out" 2>&1
grep -E "^FAIL |^    " "$log/unit.out" | head -80
u=$(tail -n 1 "$log/unit.out")
up=$(echo "$u" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
uf=$(echo "$u" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$up" ]; then
	echo "FAIL unit runner did not finish:"; tail -20 "$log/unit.out"; up=0; uf=1
fi
echo "unit: $u"
passed=$((passed + up)); failed=$((failed + uf))

run_script() { # kind file cmd...
	kind=$1; f=$2; shift 2
	name=$(basename "$f")
	start=$(date +%s%N)
	"$@" >"$log/$name.out" 2>&1
	rc=$?
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	if [ $rc -eq 0 ]; then
		echo "ok   $kind $name ($ms ms)"; passed=$((passed + 1))
	elif [ $rc -eq 77 ]; then
		echo "skip $kind $name: $(tail -n 1 "$log/$name.out")"; skipped=$((skipped + 1))
	else
		echo "FAIL $kind $name (exit $rc, $ms ms)"; sed 's/^/    /' "$log/$name.out" | tail -40
		failed=$((failed + 1))
	fi
}

for f in tests/integration/test_*.sh; do
	[ -e "$f" ] || continue
	run_script integration "$f" sh "$f"
done

if ls tests/sdk/*.test.mjs >/dev/null 2>&1; then
	if NODE_MODULES=$(./scripts/node-deps.sh); then
		export AIRLOCK_NODE_MODULES="$NODE_MODULES"
		for f in tests/sdk/*.test.mjs; do
			run_script sdk "$f" node "$f"
		done
	else
		echo "FAIL sdk: could not install the SDK peer"; failed=$((failed + 1))
	fi
fi

if [ $skipped -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ $failed -eq 0 ]
