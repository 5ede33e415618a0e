// The official SDK (@anthropic-ai/sdk 1.14.0) as the peer: every control-plane
// resource through the SDK's own methods, paginators, stream parser and error
// classes, against the real `airlock server` on loopback.
import { run, assert, assertEq } from './harness.mjs';

async function collect(iter) {
	const out = [];
	for await (const x of iter) out.push(x);
	return out;
}

async function expectError(p, Cls, status, what) {
	try {
		await p;
	} catch (e) {
		assert(e instanceof Cls, `${what}: expected ${Cls.name}, got ${e.constructor.name}: ${e}`);
		assertEq(e.status, status, `${what}: status`);
		assertEq(e.error?.type, 'error', `${what}: error object`);
		return e;
	}
	throw new Error(`${what}: expected an error`);
}

await run('sdk drives every resource', {}, async (h) => {
	const c = h.client;
	const A = h.Anthropic;

	// ---- agents ----
	const agent = await c.beta.agents.create({
		name: 'sdk-agent',
		model: 'claude-sonnet-4-5',
		system: 'v1',
		tools: [{ type: 'agent_toolset_20260401' }],
		metadata: { owner: 'tests' },
	});
	assertEq(agent.type, 'agent', 'agent type');
	assertEq(agent.version, 1, 'agent version');
	assertEq(agent.model.id, 'claude-sonnet-4-5', 'model object');
	const upd = await c.beta.agents.update(agent.id, { system: 'v2', version: 1 });
	assertEq(upd.version, 2, 'update bumps version');
	await expectError(c.beta.agents.update(agent.id, { system: 'v3', version: 1 }), A.ConflictError, 409, 'stale version');
	const v1 = await c.beta.agents.retrieve(agent.id, { version: 1 });
	assertEq(v1.system, 'v1', 'retrieve a past version');
	const other = await c.beta.agents.create({ name: 'other', model: 'claude-haiku-4-5' });
	const all = await collect(c.beta.agents.list({ limit: 1 }));
	assertEq(all.length, 2, 'paginated list follows next_page');
	assertEq(all[0].id, other.id, 'newest first');
	const arch = await c.beta.agents.archive(other.id);
	assert(arch.archived_at, 'archived_at set');
	assertEq((await collect(c.beta.agents.list())).length, 1, 'archived hidden');
	await expectError(c.beta.agents.retrieve('agent_missing'), A.NotFoundError, 404, 'missing agent');

	// ---- environments and keys ----
	const env = await c.beta.environments.create({ name: 'perimeter', config: { type: 'self_hosted' } });
	assertEq(env.type, 'environment', 'env type');
	assertEq(env.config.type, 'self_hosted', 'env config');
	const envU = await c.beta.environments.update(env.id, { description: 'eu', metadata: { site: 'eu' } });
	assertEq(envU.metadata.site, 'eu', 'env metadata');
	const envs = await collect(c.beta.environments.list());
	assert(envs.some((e) => e.id === env.id), 'env listed');
	const e404 = await expectError(c.beta.environments.retrieve('env_missing'), A.NotFoundError, 404, 'missing env');
	assertEq(e404.errorCode, 'environment_not_found', 'errorCode from error.details');
	const key = await c.post(`/v1/environments/${env.id}/keys`, { body: {} });
	assertEq(key.type, 'environment_key', 'key object');
	assert(key.key.startsWith('alk_env_'), 'key shown once');
	const worker = new A({ apiKey: null, authToken: key.key, baseURL: h.baseURL, maxRetries: 0 });
	assertEq(await worker.beta.environments.work.poll(env.id, { block_ms: 50, 'Anthropic-Worker-ID': 'w1' }), null, 'empty poll');
	const stats = await worker.beta.environments.work.stats(env.id);
	assertEq(stats.type, 'work_queue_stats', 'stats type');
	assertEq(stats.depth, 0, 'depth');
	assertEq(stats.workers_polling, 1, 'the worker that polled is counted');
	assertEq((await collect(worker.beta.environments.work.list(env.id))).length, 0, 'work list');
	await expectError(worker.beta.agents.list(), A.PermissionDeniedError, 403, 'env key on admin route');
	await expectError(
		new A({ apiKey: 'alk_admin_wrong', baseURL: h.baseURL, maxRetries: 0 }).beta.agents.list(),
		A.AuthenticationError,
		401,
		'wrong key',
	);

	// ---- sessions ----
	const s = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id, title: 'first' });
	assertEq(s.type, 'session', 'session type');
	assertEq(s.status, 'idle', 'idle at creation');
	assertEq(s.agent.version, 2, 'agent snapshot');
	const pinned = await c.beta.sessions.create({ agent: { type: 'agent', id: agent.id, version: 1 }, environment_id: env.id });
	assertEq(pinned.agent.system, 'v1', 'pinned agent version');
	const got = await c.beta.sessions.retrieve(s.id);
	assertEq(got.id, s.id, 'retrieve session');
	const su = await c.beta.sessions.update(s.id, { title: 'renamed', metadata: { k: 'v' } });
	assertEq(su.title, 'renamed', 'session update');
	const listed = await collect(c.beta.sessions.list({ agent_id: agent.id, statuses: ['idle'], limit: 1 }));
	assertEq(listed.length, 2, 'session list with filters and pages');
	await expectError(
		c.beta.sessions.create({ agent: agent.id, environment_id: 'env_missing' }),
		A.NotFoundError,
		404,
		'session in a missing environment',
	);

	// ---- events: open the stream, send, see it live and in history ----
	const stream = await c.beta.sessions.events.stream(s.id);
	const seen = (async () => {
		for await (const ev of stream) {
			if (ev.type === 'user.message') return ev;
		}
		return null;
	})();
	await new Promise((r) => setTimeout(r, 200));
	const sent = await c.beta.sessions.events.send(s.id, {
		events: [{ type: 'user.message', content: [{ type: 'text', text: 'hello from the sdk' }] }],
	});
	assertEq(sent.data.length, 1, 'send returns the events');
	const evId = sent.data[0].id;
	assert(sent.data[0].processed_at, 'processed_at');
	const live = await Promise.race([seen, new Promise((_, rej) => setTimeout(() => rej(new Error('stream timeout')), 5000))]);
	assertEq(live.id, evId, 'the stream delivered the event');
	stream.controller.abort();
	const hist = await collect(c.beta.sessions.events.list(s.id, { limit: 1000 }));
	assert(hist.some((e) => e.id === evId && e.content[0].text === 'hello from the sdk'), 'history');
	await expectError(
		c.beta.sessions.events.send(s.id, { events: [{ type: 'agent.message', content: [] }] }),
		A.BadRequestError,
		400,
		'clients cannot send agent events',
	);

	// ---- archive and delete ----
	assert((await c.beta.sessions.archive(pinned.id)).archived_at, 'session archive');
	assertEq((await c.beta.sessions.delete(pinned.id)).type, 'session_deleted', 'session delete');
	await expectError(c.beta.sessions.retrieve(pinned.id), A.NotFoundError, 404, 'deleted session');
	const env2 = await c.beta.environments.create({ name: 'temp' });
	assert((await c.beta.environments.archive(env2.id)).archived_at, 'env archive');
	assertEq((await c.beta.environments.delete(env2.id)).type, 'environment_deleted', 'env delete');
});
