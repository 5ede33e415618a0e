#!/bin/sh
# `airlock worker poll|run`: help, and every configuration error caught before
# the worker starts (exit 2, a message naming the option), so none of these
# cases reaches the network. The environment key is refused as a flag and
# inline in the config file.
. "$(dirname "$0")/lib.sh"

"$AIRLOCK_BIN" worker --help >/dev/null 2>&1 || { echo "this build has no worker command"; exit 77; }

# expect2 PATTERN CMD...: CMD exits 2 and its stderr matches PATTERN.
expect2() {
	pat=$1; shift
	rc=0; "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	[ "$rc" = 2 ] || fail "exit $rc (want 2) from: $* ($(cat "$T/err"))"
	grep -q -- "$pat" "$T/err" || fail "stderr of '$*' lacks '$pat': $(cat "$T/err")"
}

unset ANTHROPIC_ENVIRONMENT_KEY ANTHROPIC_ENVIRONMENT_ID ANTHROPIC_BASE_URL \
	ANTHROPIC_WORK_ID ANTHROPIC_SESSION_ID ANTHROPIC_WORK_SECRET CREDENTIALS_DIRECTORY || true
W="$T/work"

"$AIRLOCK_BIN" worker poll --help >"$T/out" || fail "poll --help"
grep -q -- "--on-work" "$T/out" || fail "poll --help lacks --on-work"
"$AIRLOCK_BIN" worker run --help >"$T/out" || fail "run --help"
grep -q -- "  --on-work SCRIPT" "$T/out" && fail "run --help offers --on-work"
grep -q "ANTHROPIC_WORK_SECRET" "$T/out" || fail "run --help lacks ANTHROPIC_WORK_SECRET"

expect2 "unknown subcommand" "$AIRLOCK_BIN" worker serve
expect2 "unknown option" "$AIRLOCK_BIN" worker poll --environment-key sk-x
expect2 "no environment key" "$AIRLOCK_BIN" worker poll --environment env_1 --workdir "$W"
expect2 "no environment:" env ANTHROPIC_ENVIRONMENT_KEY=k "$AIRLOCK_BIN" worker poll --workdir "$W"
expect2 "max_sessions" env ANTHROPIC_ENVIRONMENT_KEY=k "$AIRLOCK_BIN" worker poll \
	--environment env_1 --workdir "$W" --max-sessions 0
expect2 "http:// or https://" env ANTHROPIC_ENVIRONMENT_KEY=k "$AIRLOCK_BIN" worker poll \
	--environment env_1 --workdir "$W" --base-url ftp://cp
expect2 "allow_hosts" env ANTHROPIC_ENVIRONMENT_KEY=k "$AIRLOCK_BIN" worker poll \
	--environment env_1 --workdir "$W" --allow-host "bad host"
expect2 "poll. only" "$AIRLOCK_BIN" worker run --on-work /bin/true
expect2 "ANTHROPIC_WORK_ID" env ANTHROPIC_WORK_SECRET=s ANTHROPIC_ENVIRONMENT_ID=env_1 \
	"$AIRLOCK_BIN" worker run --workdir "$W"
expect2 "ANTHROPIC_WORK_SECRET" env ANTHROPIC_WORK_ID=work_1 ANTHROPIC_SESSION_ID=sesn_1 \
	ANTHROPIC_ENVIRONMENT_ID=env_1 "$AIRLOCK_BIN" worker run --workdir "$W"

printf 'environment_id: env_1\nworkdir: %s\n\nmax_sesions: 3\n' "$W" >"$T/w.yaml"
expect2 "w.yaml:4: unknown key 'max_sesions'" env ANTHROPIC_ENVIRONMENT_KEY=k \
	"$AIRLOCK_BIN" worker poll --config "$T/w.yaml"
printf 'environment_key: sk-inline\n' >"$T/k.yaml"
expect2 "not accepted in a config file" "$AIRLOCK_BIN" worker poll --config "$T/k.yaml"
grep -q "sk-inline" "$T/err" && fail "the inline key was echoed"
printf 'environment_key_file: %s\n' "$T/key" >"$T/kf.yaml"
printf 'sk-file\n' >"$T/key"; chmod 644 "$T/key"
expect2 "chmod 600" "$AIRLOCK_BIN" worker poll --config "$T/kf.yaml" --environment env_1

# A valid file, flags on top: validation gets as far as the key, creating the workdir.
printf 'environment_id: env_1\nworkdir: %s\nmax_sessions: 8\n' "$W" >"$T/ok.yaml"
expect2 "no environment key" "$AIRLOCK_BIN" worker poll --config "$T/ok.yaml" --max-sessions 2
[ -d "$W" ] && [ "$(stat -c %a "$W")" = 711 ] || fail "workdir not created 0711"
echo "ok"
