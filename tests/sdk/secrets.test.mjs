// No credential leaks out of a full session. One session runs end to end with
// the SDK worker, so every credential is used for real: the admin API key
// (client), the environment key (poll, ack), the sessions token from the work
// item's secret (heartbeat, events, stop) and the model key (server to the
// scripted model, a test double that checks it with --api-key-env). Then,
// with text logs and again with JSON logs (both at debug level):
//   - no credential (nor its random part) is in the server's or stub's logs,
//   - none is in any process's argv (/proc/PID/cmdline, what `ps` shows),
//   - none is in an error response body, for credentials sent wrongly,
//   - admin.key is mode 0600 and the data directory 0700,
//   - the database files hold the SHA-256 of each key, never the key.
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { assert, assertEq } from './harness.mjs';
import { runAll, until, listEvents, checkTranscript, scratch, setupEnvironment, startSession } from './procs.mjs';

const script = {
	steps: [
		{ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo secret-test-ran' } }] },
		{ content: [{ type: 'text', text: 'ok: {{last_tool_result}}' }], stop_reason: 'end_turn' },
	],
};

// Strings that must not appear: the credential and the random part after its prefix.
function needles(creds) {
	const out = [];
	for (const [name, v] of Object.entries(creds)) {
		assert(typeof v === 'string' && v.length >= 32, `${name} is a real credential`);
		out.push([name, v]);
		const tail = v.slice(v.lastIndexOf('_') + 1).slice(0, 16);
		if (tail.length === 16) out.push([`${name} (random part)`, tail]);
	}
	return out;
}

function assertClean(text, ns, where) {
	for (const [name, n] of ns) if (text.includes(n)) throw new Error(`${name} found in ${where}`);
}

function cmdlines() {
	let all = '';
	for (const pid of readdirSync('/proc')) {
		if (!/^\d+$/.test(pid)) continue;
		try {
			all += readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ') + '\n';
		} catch {}
	}
	return all;
}

async function scenario(f, format) {
	const modelKey = 'sk-ant-api03-' + randomBytes(30).toString('base64url');
	await f.startModel(script, { args: ['--api-key-env', 'AL_TEST_MODEL_KEY'], env: { AL_TEST_MODEL_KEY: modelKey } });
	await f.startServer({ args: ['--log-format', format, '--log-level', 'debug'], env: { ANTHROPIC_API_KEY: modelKey } });
	const c = f.client;
	const { agent, env, key } = await setupEnvironment(c);
	const session = await startSession(c, agent, env, 'run one command');
	const other = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });

	// Serve the session with the SDK worker, keeping the item's sessions token.
	const workdir = scratch(f.dir, 'work');
	const ctrl = new AbortController();
	const wc = new f.Anthropic({ apiKey: f.adminKey, baseURL: f.baseURL, maxRetries: 2 });
	const worker = wc.beta.environments.work.worker({ workdir, maxIdleMs: 300, signal: ctrl.signal });
	const poller = wc.beta.environments.work.poller({ environmentId: env.id, environmentKey: key.key, autoStop: false, signal: ctrl.signal });
	let sessionsToken = null;
	const handled = [];
	const polling = (async () => {
		for await (const work of poller) {
			sessionsToken = JSON.parse(Buffer.from(work.secret, 'base64url').toString('utf8')).sessions_token;
			handled.push(worker.handleItem({ workId: work.id, environmentId: env.id, sessionId: work.data.id, workSecret: work.secret, signal: ctrl.signal }));
		}
	})().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});
	let events;
	try {
		events = await until(async () => {
			const evs = await listEvents(c, session.id);
			return evs.some((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'end_turn') ? evs : null;
		}, 'end_turn');
		// The item is done once the worker has stopped it (after maxIdleMs).
		await until(async () => {
			const items = [];
			for await (const w of c.beta.environments.work.list(env.id)) items.push(w);
			return items.length === 1 && items[0].state === 'stopped';
		}, 'work stopped');
	} finally {
		ctrl.abort();
		await polling;
		await Promise.allSettled(handled);
	}
	checkTranscript(events, 'session');
	assert(JSON.stringify(events).includes('secret-test-ran'), 'the tool ran');
	assert(sessionsToken, 'the worker got a sessions token');
	const creds = { 'admin key': f.adminKey, 'environment key': key.key, 'sessions token': sessionsToken, 'model key': modelKey };
	const ns = needles(creds);

	// argv of every process on the machine, while ours are running.
	assertClean(cmdlines(), ns, 'a process argv');

	// Credentials sent wrongly: every error body is clean.
	const call = async (what, path, headers, { method = 'GET', body } = {}) => {
		const r = await fetch(f.baseURL + path, {
			method,
			headers: { 'anthropic-beta': 'managed-agents-2026-04-01', 'content-type': 'application/json', ...headers },
			body: body === undefined ? undefined : JSON.stringify(body),
		});
		const text = await r.text();
		assert(r.status >= 400 && r.status < 500, `${what}: expected a 4xx, got ${r.status} ${text}`);
		assert(JSON.parse(text).type === 'error', `${what}: error object`);
		assertClean(text, ns, `the error body of ${what}`);
		for (const [k, v] of r.headers) assertClean(`${k}: ${v}`, ns, `a response header of ${what}`);
		return r.status;
	};
	const bearer = (k) => ({ authorization: `Bearer ${k}` });
	assertEq(await call('admin key with a typo', '/v1/agents', { 'x-api-key': f.adminKey + 'x' }), 401, 'typo');
	assertEq(await call('truncated admin key', '/v1/agents', { 'x-api-key': f.adminKey.slice(0, -1) }), 401, 'truncated');
	await call('environment key on admin route', '/v1/agents', bearer(key.key));
	await call('environment key as x-api-key', '/v1/agents', { 'x-api-key': key.key });
	await call('sessions token on admin route', '/v1/agents', bearer(sessionsToken));
	await call('sessions token on another session', `/v1/sessions/${other.id}/events`, bearer(sessionsToken));
	await call('sessions token polling', `/v1/environments/${env.id}/work/poll`, bearer(sessionsToken));
	await call('model key as x-api-key', '/v1/agents', { 'x-api-key': modelKey });
	await call('model key as bearer', `/v1/sessions/${session.id}`, bearer(modelKey));
	await call('bad event with the sessions token', `/v1/sessions/${session.id}/events`, bearer(sessionsToken), {
		method: 'POST',
		body: { events: [{ type: 'user.tool_result', tool_use_id: 'toolu_nope', content: [] }] },
	});
	assertEq(await call('sessions token after its item stopped', `/v1/sessions/${session.id}`, bearer(sessionsToken)), 401, 'revoked at stop');
	await call('admin key in a bad body', '/v1/agents', { 'x-api-key': f.adminKey }, { method: 'POST', body: { name: f.adminKey, model: 5 } });

	// Files on disk.
	assertEq((statSync(join(f.dataDir, 'admin.key')).mode & 0o777).toString(8), '600', 'admin.key mode');
	assertEq((statSync(f.dataDir).mode & 0o777).toString(8), '700', 'data directory mode');
	// The database and its WAL: before shutdown the rows may live in the WAL only.
	const dbBytes = () => {
		const files = readdirSync(f.dataDir).filter((n) => n.startsWith('airlock.db'));
		assert(files.includes('airlock.db'), 'database file: ' + files);
		return files.map((n) => readFileSync(join(f.dataDir, n)).toString('latin1')).join('\n');
	};
	const sha = (v) => createHash('sha256').update(v).digest('hex');
	for (const phase of ['running', 'after shutdown']) {
		if (phase === 'after shutdown') {
			assertEq((await f.server.kill('SIGTERM')).code, 0, 'server exit');
			await f.model.kill('SIGTERM');
		}
		const db = dbBytes();
		assertClean(db, ns, `the database files (${phase})`);
		// The sessions token's record goes when its work item stops, so after
		// the checkpoint at shutdown only the WAL-era copy could have held it.
		const stored = phase === 'running' ? ['admin key', 'environment key', 'sessions token'] : ['admin key', 'environment key'];
		for (const k of stored) assert(db.includes(sha(creds[k])), `the SHA-256 of the ${k} is stored (${phase})`);
	}

	// Logs, once every process has exited (nothing buffered).
	const server = f.procs.filter((p) => p.name === 'server').map((p) => p.log).join('');
	const model = f.model.log;
	assert(server.includes('debug') || server.includes('"level"'), 'server logged at debug level');
	assert(server.split('\n').length > 10, 'server logged something');
	assertClean(server, ns, `the server log (${format})`);
	assertClean(model, ns, `the model stub log`);
	if (format === 'json') {
		for (const line of server.split('\n').filter((l) => l.trim())) {
			try {
				JSON.parse(line);
			} catch {
				throw new Error('a server log line is not JSON: ' + line);
			}
		}
	}
}

await runAll([
	['no credential leaks (text logs)', (f) => scenario(f, 'text')],
	['no credential leaks (json logs)', (f) => scenario(f, 'json')],
]);
