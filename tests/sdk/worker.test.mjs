// The SDK's own environment worker (lib/environments: WorkPoller +
// EnvironmentWorker with its SessionToolRunner and agent toolset) completes
// a session on our server, where the scripted model (a test double) asks for
// a bash call and then answers with the tool's output.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, assert, assertEq } from './harness.mjs';

const script = {
	default: [
		{
			content: [
				{ type: 'text', text: 'I will write the file.' },
				{ type: 'tool_use', name: 'bash', input: { command: 'echo hello-from-sdk-worker > out.txt && cat out.txt' } },
			],
			stop_reason: 'tool_use',
		},
		{ content: [{ type: 'text', text: 'The file says: {{last_tool_result}}' }], stop_reason: 'end_turn' },
	],
};

await run('sdk environment worker completes a session', { script }, async (h) => {
	const c = h.client;
	const agent = await c.beta.agents.create({
		name: 'sdk-worker-test',
		model: 'claude-sonnet-4-5',
		tools: [{ type: 'agent_toolset_20260401' }],
	});
	const env = await c.beta.environments.create({ name: 'perimeter', config: { type: 'self_hosted' } });
	const key = await c.post(`/v1/environments/${env.id}/keys`, { body: {} });
	assertEq(key.type, 'environment_key', 'key type');
	const session = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
	await c.beta.sessions.events.send(session.id, {
		events: [{ type: 'user.message', content: [{ type: 'text', text: 'write hello to out.txt and show it' }] }],
	});

	const workdir = mkdtempSync(join(tmpdir(), 'al-sdk-work-'));
	const ctrl = new AbortController();
	const workerClient = new h.Anthropic({ apiKey: h.adminKey, baseURL: h.baseURL, maxRetries: 2 });
	const worker = workerClient.beta.environments.work.worker({
		environmentId: env.id,
		environmentKey: key.key,
		workdir,
		maxIdleMs: 500,
		signal: ctrl.signal,
	});
	const running = worker.run().catch((e) => {
		if (!ctrl.signal.aborted) throw e;
	});

	// Wait for the session to finish its turn with end_turn.
	const deadline = Date.now() + 30000;
	let events = [];
	for (;;) {
		events = [];
		for await (const ev of c.beta.sessions.events.list(session.id, { limit: 100 })) events.push(ev);
		const idle = events.filter((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'end_turn');
		if (idle.length > 0) break;
		if (Date.now() > deadline) throw new Error('session did not finish: ' + JSON.stringify(events.map((e) => e.type)));
		await new Promise((r) => setTimeout(r, 100));
	}
	ctrl.abort();
	await running;

	const uses = events.filter((e) => e.type === 'agent.tool_use');
	const results = events.filter((e) => e.type === 'user.tool_result');
	assertEq(uses.length, 1, 'one tool call');
	assertEq(uses[0].name, 'bash', 'tool name');
	assertEq(results.length, 1, 'answered exactly once');
	assertEq(results[0].tool_use_id, uses[0].id, 'result pairs with the call');
	const text = JSON.stringify(results[0].content);
	assert(text.includes('hello-from-sdk-worker'), 'tool output in the result: ' + text);
	assertEq(readFileSync(join(workdir, 'out.txt'), 'utf8'), 'hello-from-sdk-worker\n', 'file written by the worker');
	const final = events.filter((e) => e.type === 'agent.message').pop();
	assert(JSON.stringify(final.content).includes('hello-from-sdk-worker'), 'model saw the tool result');
	rmSync(workdir, { recursive: true, force: true });
});
