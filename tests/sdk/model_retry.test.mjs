// The agent loop against a failing model. The scripted model (a test double)
// injects faults into its first requests (process-wide, see docs/model-stub.md):
//   - 2 x 529 with retry-after, then success: the turn completes, the retry
//     honours retry-after, and the session never sees an error;
//   - persistent 500 / 429 (as many faults as the provider's attempts): the
//     turn ends with span end (is_error), session.error {retry_status:
//     exhausted} and session.status_idle {retries_exhausted}, as
//     src/agent/loop.h documents; the next message then gets an answer;
//   - a 400 is not retried: one attempt, then the same error shape.
import { assert, assertEq } from './harness.mjs';
import { runAll, until, listEvents, sleep } from './procs.mjs';

const ATTEMPTS = 6; // the provider's default max_attempts (src/agent/anthropic.c)
const reply = { steps: [{ content: [{ type: 'text', text: 'answer to: {{last_user_text}}' }], stop_reason: 'end_turn' }] };

async function chat(f) {
	const c = f.client;
	const agent = await c.beta.agents.create({ name: 'retry', model: 'claude-sonnet-4-5' });
	const env = await c.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
	const session = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
	const say = (text) => c.beta.sessions.events.send(session.id, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });
	// Waits for the nth turn end (idle with anything but requires_action).
	const turnEnd = (n) =>
		until(
			async () => {
				const evs = await listEvents(c, session.id);
				const ends = evs.filter((e) => e.type === 'session.status_idle' && e.stop_reason?.type !== 'requires_action');
				return ends.length >= n ? evs : null;
			},
			`turn ${n} to end`,
			15000,
		);
	return { c, session, say, turnEnd };
}

const retryLines = (log) => log.split('\n').filter((l) => l.includes('model call attempt'));

async function transient(f) {
	await f.startModel({ ...reply, faults: [{ status: 529, count: 2, retry_after: 0.2, message: 'busy' }] });
	await f.startServer();
	const { c, session, say, turnEnd } = await chat(f);
	const t0 = Date.now();
	await say('first');
	const events = await turnEnd(1);
	const took = Date.now() - t0;
	const idle = events.filter((e) => e.type === 'session.status_idle').pop();
	assertEq(idle.stop_reason.type, 'end_turn', 'the turn completed');
	assert(!events.some((e) => e.type === 'session.error'), 'no session.error for a transient fault');
	const msg = events.filter((e) => e.type === 'agent.message').pop();
	assertEq(msg.content[0].text, 'answer to: first', 'the reply');
	const ends = events.filter((e) => e.type === 'span.model_request_end');
	assertEq(ends.length, 1, 'one model request span for the retried call');
	assertEq(ends[0].is_error, false, 'span not an error');
	const retries = retryLines(f.server.log);
	assertEq(retries.length, 2, 'two retries logged: ' + retries.join(' | '));
	assert(retries.every((l) => l.includes('status=529') && l.includes('retrying in 200 ms')), 'retry-after honoured: ' + retries.join(' | '));
	assert(took >= 400, `two 200 ms waits happened (${took} ms)`);
	assertEq((await c.beta.sessions.retrieve(session.id)).status, 'idle', 'status');
}

function persistent(status, kind, attempts) {
	return async (f) => {
		await f.startModel({ ...reply, faults: [{ status, count: attempts, retry_after: 0.05, message: `injected ${status}` }] });
		await f.startServer();
		const { c, session, say, turnEnd } = await chat(f);
		await say('first');
		let events = await turnEnd(1);
		const types = events.map((e) => e.type);
		const iErr = types.indexOf('session.error');
		assert(iErr > 0, 'a session.error: ' + types.join(','));
		const err = events[iErr];
		assertEq(err.error.type, kind, 'error type');
		assertEq(err.error.retry_status.type, 'exhausted', 'retry_status');
		assert(typeof err.error.message === 'string' && err.error.message.length > 0, 'error message');
		const idle = events[iErr + 1];
		assertEq(idle?.type, 'session.status_idle', 'idle right after the error');
		assertEq(idle.stop_reason.type, 'retries_exhausted', 'stop_reason');
		const ends = events.filter((e) => e.type === 'span.model_request_end');
		assertEq(ends.length, 1, 'the span is closed');
		assertEq(ends[0].is_error, true, 'span is_error');
		assert(types.indexOf('span.model_request_end') < iErr, 'span closed before the error');
		assert(!events.some((e) => e.type === 'agent.message'), 'no reply');
		assertEq(retryLines(f.server.log).length, attempts - 1, 'retries before giving up');
		assertEq((await c.beta.sessions.retrieve(session.id)).status, 'idle', 'status after the failure');
		await sleep(200);
		assertEq((await listEvents(c, session.id)).length, events.length, 'nothing after the failed turn');

		// The faults are used up: the next message is answered.
		await say('second');
		events = await turnEnd(2);
		const last = events.filter((e) => e.type === 'session.status_idle').pop();
		assertEq(last.stop_reason.type, 'end_turn', 'the session recovers');
		// The unanswered first message is still in the transcript: the model
		// gets both (one user turn, as the Messages API requires alternation).
		const text = events.filter((e) => e.type === 'agent.message').pop().content[0].text;
		assert(text.startsWith('answer to: ') && text.includes('first') && text.includes('second'), 'reply to both messages: ' + text);
		assertEq(events.filter((e) => e.type === 'session.error').length, 1, 'one error in all');
	};
}

await runAll([
	['2 x 529 with retry-after, then success', transient],
	['persistent 500s end the turn with session.error', persistent(500, 'model_request_failed_error', ATTEMPTS)],
	['persistent 429s end the turn as rate limited', persistent(429, 'model_rate_limited_error', ATTEMPTS)],
	['a 400 is not retried', persistent(400, 'model_request_failed_error', 1)],
]);
