// The environment key and the sessions tokens never leave the worker's
// memory: not in its stdout/stderr, not in its audit log, not in
// /proc/PID/cmdline or /proc/PID/environ of the worker or of anything it
// runs, and not visible to a sandboxed command (a bash call runs `env` and
// reads every /proc/*/cmdline and environ it can see; its result must not
// contain them). Runs against the scripted fake of the hosted API
// (fake_hosted.mjs, a test double), which knows every token it issued.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeHosted } from './fake_hosted.mjs';
import { Worker, requireWorker, assert, eq, until, sleep, procTexts, assertNoSecret } from './worker_lib.mjs';

requireWorker();
const dir = mkdtempSync(join(tmpdir(), 'al-wsec-'));

const snoop =
	'env; echo ===; for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do tr "\\0" " " < "$f" 2>/dev/null; echo; done; echo snooped';
const calls = [
	{ name: 'bash', input: { command: 'echo a >> ev.txt; for i in $(seq 1 150); do [ -e go ] && break; sleep 0.1; done; echo gate-open' } },
	{ name: 'bash', input: { command: snoop } },
	{ name: 'bash', input: { command: 'cat /proc/self/environ | tr "\\0" "\\n"; echo $ANTHROPIC_ENVIRONMENT_KEY; echo $ANTHROPIC_WORK_SECRET; echo done-env' } },
];

const f = new FakeHosted({ sessions: [{ calls }], ttlSeconds: 2 });
await f.start();
const w = new Worker({ dir, baseURL: f.baseURL, environmentId: f.environmentId, environmentKey: f.environmentKey });
let ok = false;
try {
	w.start();
	const s = f.session();
	// While the first command runs: the worker and every descendant.
	await w.alive(until(() => w.lines(s.id, 'ev.txt').length === 1, 'the first command running', 20000));
	const texts = procTexts(w.pid);
	assert(texts.length >= 2, 'read the worker process');
	for (const t of texts) assertNoSecret(t.text, f.secrets(), `/proc/${t.pid}/${t.what}`);
	assert(!texts.find((t) => t.pid === w.pid && t.what === 'environ').text.includes('ANTHROPIC_ENVIRONMENT_KEY=sk'), 'the key is gone from the worker environ');
	w.touch(s.id, 'go');

	await w.alive(f.waitFor(() => f.allDone(), 'the turn to end', 25000));
	await sleep(300);
	f.checkExactlyOnce();
	const rs = f.results();
	const snooped = JSON.stringify(rs[1].content);
	assert(snooped.includes('snooped'), 'the snooping command ran: ' + snooped.slice(0, 300));
	assert(snooped.includes('PATH=') || snooped.includes('HOME='), 'env printed something');
	assertNoSecret(snooped, f.secrets(), 'what a sandboxed command can see');
	const env = JSON.stringify(rs[2].content);
	assert(env.includes('done-env'), 'the env command ran');
	assertNoSecret(env, f.secrets(), "a sandboxed command's own environment");
	assert(!/ANTHROPIC_(ENVIRONMENT_KEY|WORK_SECRET)=/.test(env), 'no ANTHROPIC_ credentials in the sandbox environment');

	eq((await w.stop()).code, 0, 'exit status after SIGTERM');
	const audit = w.verifyAudit();
	assertNoSecret(w.log, f.secrets(), 'the worker output');
	w.assertClean();
	assertNoSecret(audit, f.secrets(), 'the audit log');
	assert(audit.includes(s.id), 'the audit log names the session (it records something)');
	ok = true;
	console.log('ok credentials never reach output, audit, /proc or the sandbox');
} catch (e) {
	console.error(`FAIL credentials: ${e.stack || e}`);
	console.error(w.logs());
} finally {
	await w.stop();
	await f.stop();
	rmSync(dir, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
