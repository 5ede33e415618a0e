#!/bin/sh
# The escape suite: attacks run from inside `airlock sandbox run` on both
# backends (tests/escape/attack.c, tests/escape/fileops_race.c, compiled here
# with the system cc), each asserting containment and that the host is
# unchanged afterwards: a world-writable canary tree (so only the sandbox, not
# file permissions, protects it) checksummed before and after, no process
# left carrying the test's paths, no new mount, network interface or
# airlock cgroup, core_pattern and hostname as they were.
#
# As root it runs once as root, then re-runs itself as uid 65534
# (setpriv), so CI (root) covers both; as any other user it runs once.
# One line per case and backend: "PASS|FAIL|SKIP case backend (reason)".
# docs/SECURITY.md links each case.
. "$(dirname "$0")/lib.sh"

SRC=${AIRLOCK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$(dirname "$AIRLOCK_BIN")
A=$AIRLOCK_BIN
PY=/usr/bin/python3
command -v cc >/dev/null || { echo "no C compiler to build the attack programs"; exit 77; }
[ -x $PY ] || { echo "/usr/bin/python3 needed for the host listeners"; exit 77; }
ME=$(id -u)
PASS_NAME=$([ "$ME" = 0 ] && echo root || echo "uid $ME")
nfail=0

chmod 755 "$T"
# Everything the unprivileged re-run needs must be reachable by 65534.
mkdir -p "$T/bin" "$T/canary/sub" "$T/secret" "$T/ro" "$T/sock" "$T/ws" "$T/outside"
cc -std=c17 -O1 -o "$T/bin/attack" "$SRC/tests/escape/attack.c" || fail "cannot build attack.c"
PKGS="libuv openssl libcurl jansson sqlite3 libseccomp"
RACE=""
if [ -f "$BUILD/libairlock.a" ] && cc -std=c17 -D_GNU_SOURCE -O1 -I"$SRC/src" \
	$(pkg-config --cflags $PKGS) -o "$T/bin/fileops_race" "$SRC/tests/escape/fileops_race.c" \
	"$BUILD/libairlock.a" $(pkg-config --libs $PKGS) -pthread -lm 2>"$T/race.cc"; then
	RACE="$T/bin/fileops_race"
fi

# The canary: world-writable, next to the workspace, on the same filesystem.
echo "canary file" >"$T/canary/file"
echo "nested" >"$T/canary/sub/deep"
ln -s file "$T/canary/link"
chmod 777 "$T/canary" "$T/canary/sub"
chmod 666 "$T/canary/file" "$T/canary/sub/deep"
SECRET_VALUE="sk-ant-escape-$$-planted"
echo "HOST-SECRET-$$" >"$T/secret/key"
chmod 644 "$T/secret/key"
echo "read only" >"$T/ro/file"
chmod 666 "$T/ro/file"
chmod 755 "$T/ro"
printf OUTSIDE-SECRET-CONTENT >"$T/outside/victim"
printf OUTSIDE-SECRET-CONTENT >"$T/outside/hl-target"
chmod 777 "$T/outside"
chmod 666 "$T/outside/victim" "$T/outside/hl-target"
# The workspace: a git repository (hooks, config) and symlinks pointing out.
WS="$T/ws"
git init -q "$WS" 2>/dev/null || { mkdir -p "$WS/.git/hooks"; echo "[core]" >"$WS/.git/config"; }
echo '#!/bin/sh' >"$WS/.git/hooks/pre-commit"
ln -s "$T/canary" "$WS/link-out"
ln -s /etc "$WS/link-etc"
[ "$ME" = 0 ] && chown -R 65534:65534 "$WS"
SB_UID=$([ "$ME" = 0 ] && echo 65534 || echo "$ME")

# Host listeners the attacks aim at: TCP on loopback, an abstract and a path Unix socket.
PORT=$(free_port)
ABSTRACT="airlock-escape-$$"
$PY - "$PORT" "$ABSTRACT" "$T/sock/docker.sock" "$T/listener.hits" <<'PY' &
import socket, sys, select
port, abstract, path, hits = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", port)); t.listen(16)
a = socket.socket(socket.AF_UNIX); a.bind("\0" + abstract); a.listen(16)
p = socket.socket(socket.AF_UNIX); p.bind(path); p.listen(16)
import os; os.chmod(path, 0o777)
open(hits, "w").close()
while True:
    r, _, _ = select.select([t, a, p], [], [])
    for s in r:
        c, _ = s.accept(); c.close()
        with open(hits, "a") as f: f.write("hit\n")
PY
PIDS="$PIDS $!"
i=0; while [ ! -e "$T/listener.hits" ]; do i=$((i+1)); [ $i -lt 100 ] || fail "listener"; sleep 0.05; done
chmod 777 "$T/sock"
# A host process of the sandbox's uid that `kill -9 -1` inside must not reach.
if [ "$ME" = 0 ]; then
	setpriv --reuid=65534 --regid=65534 --clear-groups sleep 300 &
else
	sleep 300 &
fi
SENTINEL=$!
PIDS="$PIDS $SENTINEL"

# A pattern file whose own path does not contain $T (grep must not match itself).
PAT=$(mktemp)
printf '%s/\n' "$T" >"$PAT"
trap 'rm -f "$PAT"; cleanup' EXIT INT TERM

snapshot() { # file
	{
		find "$T/canary" "$T/secret" "$T/ro" "$T/outside" "$WS/.git/hooks" "$WS/.git/config" \
			-printf '%p %m %s %l\n' | sort
		find "$T/canary" "$T/secret" "$T/ro" "$T/outside" "$WS/.git/hooks" "$WS/.git/config" \
			-type f -exec cat {} + | sha256sum
		ls -d "$WS/.git" "$WS"/.git* 2>/dev/null
		echo "mounts:"; cut -d' ' -f5,9 /proc/self/mountinfo | sort
		echo "netifs:"; ls /sys/class/net
		cat /proc/sys/kernel/core_pattern /proc/sys/kernel/hostname
		echo "sentinel:"; kill -0 $SENTINEL && echo alive
		echo "listener: $(wc -l <"$T/listener.hits")"
	} >"$1" 2>&1
}

# host_unchanged CLI_PID: the checks every case ends with.
host_unchanged() {
	snapshot "$T/after"
	if ! cmp -s "$T/before" "$T/after"; then
		echo "host changed:"; diff "$T/before" "$T/after" | head -20; return 1
	fi
	# A leftover process would carry a path under $T in its command line.
	left=$(grep -laFf "$PAT" /proc/[0-9]*/cmdline 2>/dev/null | grep -v "/proc/$$/" || true)
	for f in $left; do
		p=${f#/proc/}; p=${p%/cmdline}
		[ -e "/proc/$p" ] || continue
		case " $PIDS " in *" $p "*) continue;; esac # our own listener and sentinel
		echo "leftover process $p: $(tr '\0' ' ' <"$f" 2>/dev/null)"; return 1
	done
	if [ -n "${1:-}" ]; then
		cgs=$(find /sys/fs/cgroup -maxdepth 8 -name "airlock-$1-*" 2>/dev/null)
		if [ -n "$cgs" ]; then
			# Say what kept it: its members and their state, for the next reader.
			for d in $cgs; do
				echo "leftover cgroup $d procs=[$(tr '\n' ' ' <"$d/cgroup.procs" 2>/dev/null)]"
				for p in $(cat "$d/cgroup.procs" 2>/dev/null); do
					echo "  $p $(grep -E '^(Name|State)' /proc/$p/status 2>/dev/null | tr '\n\t' '  ')"
				done
			done
			return 1
		fi
	fi
	return 0
}

# attempt CASE BACKEND EXPECT_RC CMD... : runs CMD (an airlock command line) in
# the background, then checks its exit status, its output and the host.
# EXPECT_RC may be a list ("0 137").
attempt() {
	name=$1 be=$2 want=$3
	shift 3
	snapshot "$T/before"
	"$@" >"$T/out" 2>"$T/err" &
	cli=$!
	rc=0; wait $cli || rc=$?
	why=""
	case " $want " in *" $rc "*) ;; *) why="exit $rc, want $want";; esac
	grep -q "ESCAPE" "$T/out" "$T/err" && why="$why; $(grep -h ESCAPE "$T/out" "$T/err" | head -5)"
	grep -qF "$SECRET_VALUE" "$T/out" "$T/err" && why="$why; the planted secret came out"
	grep -q "HOST-SECRET-$$" "$T/out" "$T/err" && why="$why; the host secret file came out"
	[ -z "${CHECK:-}" ] || why="$why$(eval "$CHECK")"
	hu=$(host_unchanged $cli) || why="$why; $hu"
	if [ -z "$why" ]; then
		echo "PASS $name $be"
	else
		echo "FAIL $name $be: $why"
		sed 's/^/    | /' "$T/out" "$T/err" | tail -15
		nfail=$((nfail + 1))
	fi
	CHECK=""
}
skip() { echo "SKIP $1 $2 ($3)"; }

# Nothing to attack where the sandbox cannot be built at all (it then refuses, 125).
rc=0; $A sandbox run --workspace "$WS" -- true 2>"$T/probe" || rc=$?
[ $rc -eq 0 ] || { echo "native sandbox unavailable here: $(cat "$T/probe")"; exit 77; }
BACKENDS=native
if [ -x /usr/bin/bwrap ]; then BACKENDS="native bwrap"; fi
command -v rev >/dev/null || rev() { $PY -c 'import sys; print(sys.stdin.read()[::-1])'; }

echo "== escape suite as $PASS_NAME (sandbox uid $SB_UID) =="
[ -x /usr/bin/bwrap ] || echo "SKIP * bwrap (bubblewrap is not installed)"
for be in $BACKENDS; do
	RUN="$A sandbox run --backend $be --workspace $WS --timeout 20"
	AT="$T/bin/attack"
	RO="--ro $T/bin"

	ANTHROPIC_API_KEY=$SECRET_VALUE ANTHROPIC_ENVIRONMENT_KEY=$SECRET_VALUE-env \
		attempt secrets $be 0 $RUN $RO -- $AT secrets "$(printf %s "$SECRET_VALUE" | rev)" "$T/secret/key"
	CHECK='[ ! -e "$T/escape-dotdot" ] || echo "; WS/../escape-dotdot reached the host"'
	attempt write-outside $be 0 $RUN $RO --ro "$T/ro" -- $AT write "$T/canary" "$WS" "$T/ro/file"
	attempt proc $be 0 $RUN $RO -- $AT proc
	attempt kernel $be 0 $RUN $RO -- $AT kernel
	if command -v script >/dev/null; then
		attempt tiocsti $be 0 script -qec "$RUN $RO -- $AT tiocsti" /dev/null
	else
		skip tiocsti $be "no script(1) to provide a terminal"
	fi
	attempt forkbomb $be "0 137" $RUN $RO --pids 32 -- $AT forkbomb 32
	attempt forkbomb-shell $be "124 137 2" $RUN --pids 32 --timeout 2 -- \
		bash -c ':(){ :|:& };:; sleep 30'
	attempt membomb $be "0 137" $RUN $RO --memory 64 -- $AT membomb 64
	attempt diskfill $be 0 $RUN $RO --memory 1024 -- $AT diskfill "$WS" 256
	# Output flood: 200 MiB through a 4 KiB cap; the caller's memory stays bounded.
	CHECK='o=$(wc -c <"$T/out"); [ $o -lt 65536 ] || echo "; $o bytes of output reached the caller";
		grep -q HEAD-MARK "$T/out" || echo "; head not kept";
		grep -q TAIL-MARK "$T/out" || echo "; tail not kept";
		r=$(cat "$T/maxrss"); [ "$r" -lt 65536 ] || echo "; caller max RSS $r KiB"'
	attempt output-flood $be 0 $PY -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)' "$T/maxrss" $RUN $RO --output-limit 4096 -- $AT flood 200
	attempt orphans-exit $be 0 $RUN $RO -- $AT orphans "$T/linger-mark"
	attempt orphans-timeout $be 124 $RUN $RO --timeout 1 -- $AT orphans "$T/linger-mark" wait
	attempt signals $be 0 $RUN $RO -- $AT signals $SENTINEL
	CHECK='[ "$(wc -l <"$T/listener.hits")" = 0 ] || echo "; the host listener was reached"'
	attempt net-no-egress $be 0 $RUN $RO -- $AT net $PORT none "$ABSTRACT" "$T/sock/docker.sock"
	CHECK='[ "$(wc -l <"$T/listener.hits")" = 0 ] || echo "; the host listener was reached"'
	attempt net-proxy $be 0 $RUN $RO --allow-host example.com --allow-host "localhost:$PORT" \
		--allow-host "127.0.0.1:$PORT" --allow-host 169.254.169.254:80 -- \
		$AT net $PORT proxy "$ABSTRACT" "$T/sock/docker.sock"
	if [ -n "$RACE" ]; then
		attempt fileops-race $be 0 $RACE $be "$WS" "$T/outside" 2
	else
		skip fileops-race $be "build/libairlock.a not built or not linkable: $(head -c 200 "$T/race.cc" 2>/dev/null)"
	fi
done

rm -f "$PAT"
if [ $nfail -gt 0 ]; then
	echo "escape suite as $PASS_NAME: $nfail case(s) failed"
	exit 1
fi
echo "escape suite as $PASS_NAME: contained"
# Root covers the unprivileged run too: the same script as uid 65534.
if [ "$ME" = 0 ] && [ -z "${AL_ESCAPE_NESTED:-}" ] && command -v setpriv >/dev/null; then
	chmod 755 "$T"
	cp "$0" "$T/self.sh"
	cp "$(dirname "$0")/lib.sh" "$T/lib.sh"
	chmod 644 "$T/self.sh" "$T/lib.sh"
	AL_ESCAPE_NESTED=1 TMPDIR=/tmp setpriv --reuid=65534 --regid=65534 --clear-groups \
		--inh-caps=-all env HOME=/tmp sh "$T/self.sh" || exit 1
fi
