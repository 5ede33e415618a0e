// Our worker against a SCRIPTED FAKE of the hosted work API (a test double,
// not a real server) that sends malformed events: fields of the wrong type,
// evaluated_permission values that are not "allow", confirmations whose
// verdict is not a string, tool inputs of the wrong shape, and a work item
// without a type. The worker must neither crash nor run anything the SDK
// would not run unconfirmed (fail closed), and must keep serving the
// well-formed call that follows.
import { createServer } from 'node:http';
import { mkdtempSync, chmodSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, assert, assertNoSecret, eq, until } from './worker_lib.mjs';

const secret = (tok) => Buffer.from(JSON.stringify({ sessions_token: tok })).toString('base64url');
const write = (id, file, perm) => ({
	id,
	type: 'agent.tool_use',
	name: 'write',
	input: { file_path: file, content: 'x' },
	...(perm === undefined ? {} : { evaluated_permission: perm }),
});
const events = [
	{ id: 'sevt_t', type: 5 },
	{ id: 7, type: 'agent.tool_use', name: 'write', input: { file_path: 'id_num.txt', content: 'x' } },
	{ id: 'sevt_n', type: 'agent.tool_use', name: 5, input: {} },
	write('sevt_p_num', 'perm_num.txt', 7),
	write('sevt_p_null', 'perm_null.txt', null),
	write('sevt_p_obj', 'perm_obj.txt', { allow: true }),
	write('sevt_p_odd', 'perm_odd.txt', 'maybe'),
	{ id: 'sevt_c_odd', type: 'user.tool_confirmation', tool_use_id: 'sevt_p_odd', result: 5 },
	{ id: 'sevt_c_bad', type: 'user.tool_confirmation', tool_use_id: 9, result: 'allow' },
	{ id: 'sevt_r_bad', type: 'user.tool_result', tool_use_id: 5 },
	{ id: 'sevt_in', type: 'agent.tool_use', name: 'write', input: 'not an object' },
	{ id: 'sevt_fp', type: 'agent.tool_use', name: 'read', input: { file_path: 5 } },
	{ id: 'sevt_vr', type: 'agent.tool_use', name: 'read', input: { file_path: 'ok.txt', view_range: [1, 'x'] } },
	{ id: 'sevt_st', type: 'session.status_idle', stop_reason: 'end_turn' },
	write('sevt_ok', 'ok.txt', 'allow'),
];

// A history larger than one response may be (32 MiB): twelve 3 MiB
// messages and then a call. The worker must read it in smaller pages.
const big = [];
for (let i = 0; i < 12; i++) big.push({ id: `sevt_big${i}`, type: 'user.message', content: [{ type: 'text', text: 'y'.repeat(3 << 20) }] });
big.push(write('sevt_big_use', 'big.txt', 'allow'));
const limits = [];

const posted = [];
const srv = createServer((req, res) => {
	let b = '';
	req.on('data', (d) => (b += d));
	req.on('end', () => {
		const u = new URL(req.url, 'http://x');
		const send = (status, obj) => {
			res.writeHead(status, { 'content-type': 'application/json' });
			res.end(JSON.stringify(obj));
		};
		if (u.pathname.endsWith('/work/poll')) return send(200, queue.shift() ?? null);
		if (u.pathname.endsWith('/ack')) return send(200, { id: 'x', state: 'starting' });
		if (u.pathname.endsWith('/stop')) {
			stopped.push(u.pathname);
			return send(200, { id: 'x', state: 'stopped' });
		}
		if (u.pathname.endsWith('/heartbeat'))
			return send(200, { type: 'work_heartbeat', last_heartbeat: 'hb1', lease_extended: true, state: 'active', ttl_seconds: 90 });
		if (u.pathname === '/v1/sessions/sesn_h/events/stream') {
			res.writeHead(200, { 'content-type': 'text/event-stream' });
			for (const ev of events) res.write(`data: ${JSON.stringify(ev)}\n\n`);
			return; // held open
		}
		if (u.pathname === '/v1/sessions/sesn_h/events' && req.method === 'GET') return send(200, { data: 'not a list', next_page: 5 });
		if (u.pathname === '/v1/sessions/sesn_big/events/stream') {
			res.writeHead(200, { 'content-type': 'text/event-stream' });
			res.write(': ping\n\n'); // the head goes out with it
			return; // held open
		}
		if (u.pathname === '/v1/sessions/sesn_big/events' && req.method === 'GET') {
			const limit = Number(u.searchParams.get('limit') ?? 1000);
			const from = Number(u.searchParams.get('page') ?? 0);
			limits.push(limit);
			const data = big.slice(from, from + limit);
			return send(200, { data, next_page: from + limit < big.length ? String(from + limit) : null });
		}
		if (u.pathname === '/v1/sessions/sesn_big/events' && req.method === 'POST') {
			posted.push(JSON.parse(b).events[0]);
			return send(200, { data: [] });
		}
		if (u.pathname === '/v1/sessions/sesn_big') return send(200, { id: 'sesn_big', type: 'session', status: 'running' });
		if (u.pathname === '/v1/sessions/sesn_h/events' && req.method === 'POST') {
			const ev = JSON.parse(b).events[0];
			posted.push(ev);
			return send(200, { data: [{ ...ev, id: `sevt_res${posted.length}` }] });
		}
		if (u.pathname === '/v1/sessions/sesn_h') return send(200, { id: 'sesn_h', type: 'session', status: 5 });
		send(404, { type: 'error', error: { type: 'not_found_error', message: 'no' } });
	});
});
const stopped = [];
const queue = [
	{ id: 'work_nt', type: 'work', environment_id: 'env_1', data: { id: 'x', type: 5 }, state: 'queued', secret: secret('tok_nt') },
	{ id: 'work_h', type: 'work', environment_id: 'env_1', data: { type: 'session', id: 'sesn_h' }, state: 'queued', secret: secret('tok_h') },
	{ id: 'work_big', type: 'work', environment_id: 'env_1', data: { type: 'session', id: 'sesn_big' }, state: 'queued', secret: secret('tok_big') },
];
await new Promise((r) => srv.listen(0, '127.0.0.1', r));
const dir = mkdtempSync(join(tmpdir(), 'al-hostile-'));
chmodSync(dir, 0o711);
const w = new Worker({ dir, baseURL: `http://127.0.0.1:${srv.address().port}`, environmentId: 'env_1', environmentKey: 'ekey_test', args: ['--max-idle', '60'] });
try {
	w.start();
	await w.alive(until(() => stopped.some((p) => p.endsWith('/work_nt/stop')), 'the item without a type is stopped'));
	await w.alive(until(() => posted.some((e) => e.tool_use_id === 'sevt_ok'), 'the well-formed call is answered', 20000));
	const ws = w.workspace('sesn_h');
	eq(readFileSync(join(ws, 'ok.txt'), 'utf8'), 'x', 'the allowed call ran');
	for (const f of ['id_num.txt', 'perm_num.txt', 'perm_null.txt', 'perm_obj.txt', 'perm_odd.txt'])
		assert(!existsSync(join(ws, f)), `${f} was not written: a call without "allow" is held`);
	await w.alive(until(() => posted.some((e) => e.tool_use_id === 'sevt_big_use'), 'the call after a 36 MiB history is answered', 30000));
	assert(limits[0] === 1000 && limits.some((l) => l < 12), `smaller pages asked for after a page too large (${limits})`);
	assert(w.log.includes('history page too large'), 'logged');
	const ids = posted.map((e) => e.tool_use_id).filter((id) => id !== 'sevt_big_use').sort();
	eq(ids.join(','), 'sevt_fp,sevt_in,sevt_ok,sevt_vr', 'answered exactly the ungated calls');
	for (const e of posted.filter((e) => e.tool_use_id !== 'sevt_ok' && e.tool_use_id !== 'sevt_big_use')) eq(e.is_error, true, `${e.tool_use_id} is an error result`);
	eq(JSON.stringify(await w.stop()), JSON.stringify({ code: 0, signal: null }), 'worker exit status (no crash)');
	w.assertClean();
	assertNoSecret(w.log, ['tok_h', 'tok_nt', 'tok_big', 'ekey_test'], 'the worker log');
} catch (e) {
	console.error(w.logs());
	throw e;
} finally {
	await w.kill('SIGKILL');
	srv.closeAllConnections?.();
	srv.close();
	rmSync(dir, { recursive: true, force: true });
}
console.log('ok hostile events: no crash, nothing ungated runs, the good call is answered; a history over 32 MiB is read in smaller pages');
