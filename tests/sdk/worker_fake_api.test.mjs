// Our worker against a SCRIPTED FAKE of the hosted work API (a test double
// built from the SDK's documented behaviour, not a real server): a
// healthcheck item is acked, beaten once with NO_HEARTBEAT and force-stopped
// without any session call; a 412 on a heartbeat (lease lost) ends the item
// without a stop; `null` polls are slept on.
import { createServer } from 'node:http';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { BIN, assert, assertEq } from './harness.mjs';
import { until } from './procs.mjs';

const secret = (tok) => Buffer.from(JSON.stringify({ sessions_token: tok })).toString('base64url');

async function withFake(items, body, hooks = {}, extraArgs = []) {
	const log = [];
	let queue = [...items];
	const srv = createServer((req, res) => {
		let b = '';
		req.on('data', (d) => (b += d));
		req.on('end', () => {
			const u = new URL(req.url, 'http://x');
			log.push({ method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams), auth: req.headers.authorization, body: b });
			const send = (status, obj) => {
				res.writeHead(status, { 'content-type': 'application/json' });
				res.end(JSON.stringify(obj));
			};
			if (hooks.handle && hooks.handle(req, u, b, res, send)) return;
			if (u.pathname.endsWith('/work/poll')) return send(200, queue.shift() ?? null);
			if (u.pathname.endsWith('/ack')) return send(200, { id: 'x', state: 'starting' });
			if (u.pathname.endsWith('/stop')) return send(200, { id: 'x', state: 'stopped' });
			if (u.pathname.endsWith('/heartbeat')) {
				if (u.pathname.includes('work_lost'))
					return send(412, { type: 'error', error: { type: 'invalid_request_error', message: 'lease mismatch', details: { current_state: { state: 'active' } } } });
				return send(200, { type: 'work_heartbeat', last_heartbeat: 'hb1', lease_extended: true, state: 'active', ttl_seconds: 90 });
			}
			if (u.pathname.startsWith('/v1/sessions/')) {
				if (u.pathname.endsWith('/stream')) {
					res.writeHead(200, { 'content-type': 'text/event-stream' });
					return; // held open
				}
				if (u.pathname.endsWith('/events')) return send(200, { data: [], next_page: null });
				return send(200, { id: 'sesn_1', type: 'session', status: 'running' });
			}
			send(404, { type: 'error', error: { type: 'not_found_error', message: 'no' } });
		});
	});
	await new Promise((r) => srv.listen(0, '127.0.0.1', r));
	const dir = mkdtempSync(join(tmpdir(), 'al-fake-'));
	chmodSync(dir, 0o711);
	const w = spawn(BIN, ['worker', 'poll', '--base-url', `http://127.0.0.1:${srv.address().port}`, '--environment', 'env_1', '--workdir', join(dir, 'w'), ...extraArgs], {
		env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: 'ekey_test', ANTHROPIC_BASE_URL: '' },
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	let out = '';
	w.stdout.on('data', (d) => (out += d));
	w.stderr.on('data', (d) => (out += d));
	const exited = new Promise((r) => w.on('exit', (code) => r(code)));
	try {
		await body(log, () => out);
		w.kill('SIGTERM');
		assertEq(await exited, 0, 'worker exit status');
	} catch (e) {
		console.error(out);
		throw e;
	} finally {
		w.kill('SIGKILL');
		srv.closeAllConnections?.();
		srv.close();
		rmSync(dir, { recursive: true, force: true });
	}
}

await withFake([{ id: 'work_hc', type: 'work', environment_id: 'env_1', data: { type: 'healthcheck', id: 'hc_1' }, state: 'queued', secret: secret('tok_hc') }], async (log) => {
	await until(() => log.some((r) => r.path.endsWith('/work_hc/stop')), 'healthcheck stopped');
	const mine = log.filter((r) => r.path.includes('work_hc'));
	assertEq(mine.map((r) => r.path.split('/').pop()).join(','), 'ack,heartbeat,stop', 'ack, one beat, stop');
	assertEq(mine[0].auth, 'Bearer ekey_test', 'ack with the environment key');
	assertEq(mine[1].query.expected_last_heartbeat, 'NO_HEARTBEAT', 'first beat');
	assertEq(mine[1].auth, 'Bearer tok_hc', 'beat with the sessions token');
	assertEq(JSON.parse(mine[2].body).force, true, 'force-stop');
	assert(!log.some((r) => r.path.startsWith('/v1/sessions/')), 'no session call for a healthcheck');
	assertEq(log[0].query.block_ms, '999', 'poll block_ms');
});
console.log('ok healthcheck item: ack, one NO_HEARTBEAT beat, force-stop');

await withFake([{ id: 'work_lost', type: 'work', environment_id: 'env_1', data: { type: 'session', id: 'sesn_1' }, state: 'queued', secret: secret('tok_l') }], async (log, out) => {
	await until(() => out().includes('lease lost'), 'lease lost');
	await until(() => out().includes('work item finished (lease_lost)'), 'item ended');
	assert(!log.some((r) => r.path.endsWith('/work_lost/stop')), 'a lost lease is not stopped');
	assert(!out().includes('tok_l'), 'the sessions token is not logged');
});
console.log('ok 412 on a heartbeat: lease lost, item not stopped');

// A tool call delivered twice (history and stream), result posts failing
// twice with 503: run once, posted until accepted, answered once, then the
// idle exit stops the item.
{
	const use = { id: 'sevt_use1', type: 'agent.tool_use', name: 'read', input: { file_path: 'missing.txt' }, evaluated_permission: 'allow' };
	let streamRes = null;
	let attempts = 0;
	const accepted = [];
	const hooks = {
		handle(req, u, b, res, send) {
			if (u.pathname === '/v1/sessions/sesn_2/events/stream') {
				res.writeHead(200, { 'content-type': 'text/event-stream' });
				res.write(`data: ${JSON.stringify(use)}\n\n`); // also in history: a duplicate
				streamRes = res;
				return true;
			}
			if (u.pathname === '/v1/sessions/sesn_2/events' && req.method === 'GET') {
				send(200, { data: [{ id: 'sevt_msg', type: 'user.message', content: [] }, use], next_page: null });
				return true;
			}
			if (u.pathname === '/v1/sessions/sesn_2/events' && req.method === 'POST') {
				attempts++;
				if (attempts <= 2) {
					send(503, { type: 'error', error: { type: 'overloaded_error', message: 'busy' } });
					return true;
				}
				const ev = JSON.parse(b).events[0];
				accepted.push(ev);
				send(200, { data: [{ ...ev, id: 'sevt_res1' }] });
				streamRes.write(`data: ${JSON.stringify({ ...ev, id: 'sevt_res1' })}\n\n`);
				streamRes.write(`data: ${JSON.stringify({ id: 'sevt_idle', type: 'session.status_idle', stop_reason: { type: 'end_turn' } })}\n\n`);
				return true;
			}
			return false;
		},
	};
	await withFake(
		[{ id: 'work_s2', type: 'work', environment_id: 'env_1', data: { type: 'session', id: 'sesn_2' }, state: 'queued', secret: secret('tok_s2') }],
		async (log, out) => {
			await until(() => log.some((r) => r.path.endsWith('/work_s2/stop')), 'item stopped after the idle exit', 20000);
			assertEq(attempts, 3, 'two failed posts, one accepted');
			assertEq(accepted.length, 1, 'answered once');
			assertEq(accepted[0].type, 'user.tool_result', 'event type');
			assertEq(accepted[0].tool_use_id, 'sevt_use1', 'pairs with the call');
			assertEq(accepted[0].is_error, true, 'a missing file is an error result');
			assertEq((out().match(/executing tool/g) || []).length, 1, 'ran once despite the duplicate delivery');
			assert(out().includes('attempts=3'), 'the answer log line counts the attempts');
			const posts = log.filter((r) => r.method === 'POST' && r.path === '/v1/sessions/sesn_2/events');
			assert(posts.every((r) => r.auth === 'Bearer tok_s2'), 'posts carry the sessions token');
		},
		hooks,
		['--max-idle', '1'],
	);
	console.log('ok duplicate delivery and failing result posts: run once, answered once, idle exit');
}

// The platform asks for the item back (state stopping on a heartbeat): the
// session ends and the item is force-stopped; the lease was not lost.
{
	const hooks = {
		handle(req, u, b, res, send) {
			if (u.pathname.endsWith('/work_s3/heartbeat')) {
				send(200, { type: 'work_heartbeat', last_heartbeat: 'hb2', lease_extended: true, state: 'stopping', ttl_seconds: 90 });
				return true;
			}
			return false;
		},
	};
	await withFake(
		[{ id: 'work_s3', type: 'work', environment_id: 'env_1', data: { type: 'session', id: 'sesn_3' }, state: 'queued', secret: secret('tok_s3') }],
		async (log, out) => {
			await until(() => log.some((r) => r.path.endsWith('/work_s3/stop')), 'item stopped', 20000);
			assert(out().includes('heartbeat signals shutdown (stopping)'), 'logged');
			assert(out().includes('work item finished (stopping)'), 'ended as stopping');
			const stop = log.find((r) => r.path.endsWith('/work_s3/stop'));
			assertEq(JSON.parse(stop.body).force, true, 'force-stop');
			assertEq(stop.auth, 'Bearer tok_s3', 'stop with the sessions token');
		},
		hooks,
	);
	console.log('ok state stopping on a heartbeat: the item ends and is force-stopped');
}
