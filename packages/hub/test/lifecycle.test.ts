/**
 * The incident lifecycle: new → analyzing → open → acknowledged → resolved, reopening within 30
 * minutes of resolving, flapping, and reuse of a recent analysis of the same fingerprint. Time
 * is moved by the hub's clock (its agents stamp envelopes with it), never by waiting or by
 * rewriting rows.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { PayloadOf } from '@opspilot/protocol';
import { completion, fakeModel } from './fake-model.ts';
import { HELLO, ScriptedAgent, eachBackend, eventually, startHub, type TestHub } from './helpers.ts';

const FAILED = { type: 'systemd', source: 'api.service', message: "api.service: Failed with result 'exit-code'.", logs: 'api: listen tcp :8080: bind: address already in use' };
const ACTIVE = { type: 'systemd', source: 'api.service', message: 'api.service is active again' };

const ANSWER = {
  summary: 'api cannot bind :8080',
  root_cause: 'Another process holds port 8080.',
  confidence: 0.8,
  suggested_action: { command: 'service_status', params: { service: 'api.service' }, label: 'Check api' },
  rationale: 'Look before restarting.',
  risk: 'low',
};

let seq = 0;
/** Send one envelope and wait for its ack. */
async function send<T extends 'alert' | 'resolve'>(agent: ScriptedAgent, type: T, payload: PayloadOf<T>): Promise<void> {
  const id = `m${++seq}`;
  agent.send(type, payload, { id });
  await agent.acked([id]);
}

const get = async (hub: TestHub, id: string) => (await hub.api('GET', `/v1/incidents/${id}`)).body;
const kinds = async (hub: TestHub, id: string): Promise<string[]> =>
  (await hub.api('GET', `/v1/incidents/${id}/timeline`)).body.events.map((e: { kind: string }) => e.kind);
const analysed = (hub: TestHub, id: string, n: number) =>
  eventually(async () => (await kinds(hub, id)).filter((k) => k === 'analyzed').length >= n && (await get(hub, id)).analysis_status === 'done', 10_000, `analysis ${n}`);

/** An agent whose clock moves with the hub's: its envelopes carry the hub's time. */
async function connect(hub: TestHub, token: string): Promise<ScriptedAgent> {
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.clock = hub.clock;
  return agent;
}

const minutes = (n: number) => n * 60_000;

eachBackend(t, 'an incident goes new → analyzing → open, can be acknowledged at any unresolved step, and is resolved', async (t, backend) => {
  const db = await backend.open(t);
  const paused = await startHub(t, db, { analysisConcurrency: 0 });
  const { token } = await paused.enroll();
  let agent = await connect(paused, token);
  await send(agent, 'alert', FAILED);
  const id = (await paused.api('GET', '/v1/incidents')).body.incidents[0].id;
  t.match(await get(paused, id), { status: 'new', analysis_status: 'pending', reopen_count: 0, flapping: false, reopened_at: null });
  t.equal((await paused.api('GET', '/v1/incidents?status=new')).body.incidents.length, 1, 'listed by its status');
  agent.close();
  await paused.close();

  const hub = await startHub(t, db);
  await analysed(hub, id, 1);
  t.match(await get(hub, id), { status: 'open', analysis_status: 'done' });
  t.same(await kinds(hub, id), ['opened', 'classified', 'analyzing', 'analyzed']);
  t.match((await hub.api('POST', `/v1/incidents/${id}/acknowledge`)).body, { status: 'acknowledged' });
  // A fresh analysis of an acknowledged incident leaves it acknowledged.
  t.equal((await hub.api('POST', `/v1/incidents/${id}/analyze`)).status, 202);
  await analysed(hub, id, 2);
  t.match(await get(hub, id), { status: 'acknowledged' });
  agent = await connect(hub, token);
  await send(agent, 'resolve', ACTIVE);
  t.match(await get(hub, id), { status: 'resolved', resolved_by: 'agent', flapping: false });
  agent.close();
});

eachBackend(t, 'the same fingerprint within 30 minutes of resolving reopens the incident; later it opens a new one', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id: agentId, token } = await hub.enroll();
  const agent = await connect(hub, token);
  await send(agent, 'alert', FAILED);
  const id = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
  await analysed(hub, id, 1);
  await hub.api('POST', `/v1/incidents/${id}/acknowledge`);
  await send(agent, 'resolve', ACTIVE);
  hub.clock.advance(minutes(29));

  await send(agent, 'alert', { ...FAILED, message: 'failed again' });
  const reopened = await get(hub, id);
  t.match(reopened, { status: /^(new|analyzing|open)$/, count: 2, reopen_count: 1, message: 'failed again', resolved_at: null, resolved_by: null, acknowledged_at: null, acknowledged_by: null });
  t.type(reopened.reopened_at, 'string');
  await analysed(hub, id, 2);
  t.match(await get(hub, id), { status: 'open' }, 'analysed again');
  t.same(await kinds(hub, id), ['opened', 'classified', 'analyzing', 'analyzed', 'acknowledged', 'resolved', 'reopened', 'analyzing', 'analyzed']);

  await send(agent, 'resolve', ACTIVE);
  hub.clock.advance(minutes(31));
  await send(agent, 'alert', FAILED);
  const all = (await hub.api('GET', `/v1/agents/${agentId}/incidents`)).body.incidents;
  t.equal(all.length, 2, 'a new incident after the window');
  t.match(all[0], { count: 1, reopen_count: 0 });
  t.not(all[0].id, id);
  t.match(await get(hub, id), { status: 'resolved', reopen_count: 1 }, 'the old one stays resolved');
  agent.close();
});

eachBackend(t, '4 opens, reopens and resolves within 15 minutes mark an incident flapping; a quiet spell clears it', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { token } = await hub.enroll();
  const agent = await connect(hub, token);
  await send(agent, 'alert', FAILED);
  const id = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
  await send(agent, 'resolve', ACTIVE);
  await send(agent, 'alert', FAILED);
  t.match(await get(hub, id), { flapping: false, flapping_since: null }, 'three changes: not yet');
  await send(agent, 'resolve', ACTIVE);
  const flapping = await get(hub, id);
  t.match(flapping, { flapping: true, status: 'resolved', reopen_count: 1 });
  t.type(flapping.flapping_since, 'string');
  t.ok((await kinds(hub, id)).includes('flapping'), 'on the timeline');
  t.match((await hub.api('GET', '/v1/incidents?status=resolved')).body.incidents[0], { flapping: true }, 'in the listing too');

  // Sixteen minutes later (the resolve itself 1 minute ago), it fails once more.
  hub.clock.advance(minutes(16)); // past the 15-minute flapping window, within the 30-minute reopen one
  await send(agent, 'alert', FAILED);
  t.match(await get(hub, id), { flapping: false, flapping_since: null, reopen_count: 2 });
  const timeline = await kinds(hub, id);
  t.ok(timeline.indexOf('stable') > timeline.indexOf('flapping'), 'stable again, on the timeline');
  agent.close();
});

eachBackend(t, "a model's recent analysis of the same fingerprint is reused; an operator's request asks again", async (t, backend) => {
  const model = await fakeModel(t, [completion(JSON.stringify(ANSWER))]);
  const hub = await startHub(t, await backend.open(t), { llmBaseUrl: model.baseURL, llmApiKey: 'sk-test' });
  const { token } = await hub.enroll();
  const agent = await connect(hub, token);
  agent.send('hello', HELLO, { id: 'h' });
  await agent.acked(['h']);
  await send(agent, 'alert', FAILED);
  const first = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
  await analysed(hub, first, 1);
  t.equal(model.requests.length, 1);

  // Reopened: its own analysis is reused.
  await send(agent, 'resolve', ACTIVE);
  await send(agent, 'alert', FAILED);
  await analysed(hub, first, 2);
  t.match((await get(hub, first)).analysis, { ...ANSWER, source: 'llm', reused_from: first });
  t.equal(model.requests.length, 1, 'the model was not asked again');

  // A new incident of the same fingerprint (after the reopen window) reuses it as well.
  await send(agent, 'resolve', ACTIVE);
  hub.clock.advance(minutes(31));
  await send(agent, 'alert', FAILED);
  const second = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
  t.not(second, first);
  await analysed(hub, second, 1);
  t.match((await get(hub, second)).analysis, { source: 'llm', reused_from: first });
  const events = (await hub.api('GET', `/v1/incidents/${second}/timeline`)).body.events;
  t.match(events.find((e: { kind: string }) => e.kind === 'analyzed').detail, { reused_from: first });
  t.equal(model.requests.length, 1);

  // An operator asking for a fresh analysis gets one from the model.
  t.equal((await hub.api('POST', `/v1/incidents/${second}/analyze`)).status, 202);
  await analysed(hub, second, 2);
  t.equal(model.requests.length, 2);
  t.notOk('reused_from' in (await get(hub, second)).analysis);

  // Another fingerprint is never served someone else's analysis.
  await send(agent, 'alert', { ...FAILED, source: 'worker.service' });
  const other = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
  await analysed(hub, other, 1);
  t.equal(model.requests.length, 3);
  agent.close();
});

eachBackend(t, 'extra redaction patterns from OPSPILOT_REDACTIONS_FILE apply before the model sees anything', async (t, backend) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-redact-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const redactionsFile = path.join(dir, 'redactions.json');
  writeFileSync(redactionsFile, JSON.stringify([{ name: 'customer_id', pattern: 'cust-[0-9]{6}' }]));
  const model = await fakeModel(t, [completion(JSON.stringify(ANSWER))]);
  const hub = await startHub(t, await backend.open(t), { llmBaseUrl: model.baseURL, llmApiKey: 'sk-test', redactionsFile });
  const { token } = await hub.enroll();
  const agent = await connect(hub, token);
  await send(agent, 'alert', { ...FAILED, logs: 'request for cust-123456 failed\npassword=hunter2' });
  const id = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
  await analysed(hub, id, 1);
  const raw = model.requests[0]!.raw;
  t.notOk(raw.includes('cust-123456'), 'the operator pattern applied');
  t.ok(raw.includes('[REDACTED:customer_id]'));
  t.notOk(raw.includes('hunter2'), 'the built-in ones still apply');
  t.ok((await get(hub, id)).analysis.redactions >= 2);
  agent.close();
});
