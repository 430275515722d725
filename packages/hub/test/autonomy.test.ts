/**
 * Silences, approve mode through a signed Slack click, scoped API tokens, the audit trail of one
 * incident read end to end, and rate limits.
 */
import t from 'tap';
import { sql } from 'kysely';
import type { PayloadOf } from '@opspilot/protocol';
import { activeWindow } from '../src/storage/silences.ts';
import { completion, fakeModel } from './fake-model.ts';
import { clickBody, fakeSlack, sign, slackConfig } from './fake-slack.ts';
import { ADMIN_TOKEN, HELLO, ScriptedAgent, eachBackend, eventually, runningAgent, startHub, type TestHub } from './helpers.ts';
import { RULE } from './rules.ts';

const HELLO_UNITS: PayloadOf<'hello'> = { ...HELLO, actions: ['restart_service', 'service_status', 'service_logs'] };
const failed = (source: string, logs?: string): PayloadOf<'alert'> => ({ type: 'systemd', source, message: `${source}: Failed with result 'exit-code'.`, status: 'failed', ...(logs ? { logs } : {}) });
const ok = (stdout = '') => ({ ok: true, exit_code: 0, stdout, stderr: '', duration_ms: 30, truncated: false });

let seq = 0;
async function send(agent: ScriptedAgent, type: 'alert' | 'resolve', payload: PayloadOf<'alert'> | PayloadOf<'resolve'>): Promise<void> {
  const id = `a${++seq}`;
  agent.send(type, payload as PayloadOf<'alert'>, { id });
  await agent.acked([id]);
}
const firstIncident = async (hub: TestHub, source: string) => (await hub.api('GET', '/v1/incidents')).body.incidents.find((i: { source: string }) => i.source === source);
const audit = async (hub: TestHub, query: string) => (await hub.api('GET', `/v1/audit?${query}`)).body.events as { id: string; at: string; kind: string; actor: string; by: string | null; detail: any }[];

t.test('recurring windows: a cron occurrence opens the silence for its duration, within its bounds', async (t) => {
  const s = { starts_at: new Date('2026-11-01T00:00:00Z'), ends_at: new Date('2026-12-01T00:00:00Z'), cron: '0 2 * * 0', duration_s: 7200 }; // Sundays 02:00-04:00
  t.match(activeWindow(s, new Date('2026-11-22T02:30:00Z')), { from: new Date('2026-11-22T02:00:00Z'), until: new Date('2026-11-22T04:00:00Z') });
  t.equal(activeWindow(s, new Date('2026-11-22T02:00:00Z'))?.from.toISOString(), '2026-11-22T02:00:00.000Z', 'from the first second');
  t.equal(activeWindow(s, new Date('2026-11-22T04:00:00Z')), null, 'closed at the end');
  t.equal(activeWindow(s, new Date('2026-11-23T02:30:00Z')), null, 'a Monday');
  t.equal(activeWindow(s, new Date('2026-12-06T02:30:00Z')), null, 'after ends_at');
  t.match(activeWindow({ ...s, ends_at: new Date('2026-11-22T03:00:00Z') }, new Date('2026-11-22T02:30:00Z')), { until: new Date('2026-11-22T03:00:00Z') }, 'cut at ends_at');
  const oneOff = { starts_at: new Date('2026-11-22T00:00:00Z'), ends_at: new Date('2026-11-22T01:00:00Z'), cron: null, duration_s: null };
  t.ok(activeWindow(oneOff, new Date('2026-11-22T00:30:00Z')));
  t.equal(activeWindow(oneOff, new Date('2026-11-22T01:30:00Z')), null);
  const forGood = { ...s, ends_at: null };
  t.match(activeWindow(forGood, new Date('2031-03-02T03:59:00Z')), { until: new Date('2031-03-02T04:00:00Z') }, 'a recurring silence without ends_at runs for good');
});

eachBackend(t, 'a recurring silence as the README shows it: no ends_at, and one that could never open is refused', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const weekly = await hub.api('POST', '/v1/silences', { match: { source: 'backup*' }, cron: '0 2 * * 0', duration_s: 7200, reason: 'weekly backups' });
  t.equal(weekly.status, 201);
  t.equal(weekly.body.ends_at, null, 'until deleted');
  t.equal(new Date(weekly.body.next_window_at).getUTCDay(), 0, 'it says when it next opens: a Sunday');
  t.ok(new Date(weekly.body.next_window_at) > new Date());
  // The README's old example: a 2-hour ends_at with a weekly cron opens only if a Sunday 02:00 falls in it.
  const now = new Date('2026-11-30T10:00:00Z'); // a Monday
  const never = await hub.api('POST', '/v1/silences', {
    match: {},
    starts_at: now.toISOString(),
    ends_at: new Date(now.getTime() + 7_200_000).toISOString(),
    cron: '0 2 * * 0',
    duration_s: 7200,
    reason: 'x',
  });
  t.match(never, { status: 400, body: { error: { code: 'HUB_BAD_REQUEST', message: /never open/ } } });
  t.match(await hub.api('POST', '/v1/silences', { match: {}, reason: 'x' }), { status: 400, body: { error: { message: /one-off silence needs ends_at/ } } });
  t.equal((await hub.api('GET', '/v1/silences')).body.silences.length, 1);
});

eachBackend(t, 'a silence holds notifications and automatic actions, records incidents, and notifies what is still open when it ends', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  await hub.api('POST', '/v1/rules', { ...RULE, cooldown_s: 0 });
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok(), HELLO_UNITS);
  const endsAt = new Date(Date.now() + 3_600_000).toISOString();
  const silence = await hub.api('POST', '/v1/silences', { match: { source: 'api*' }, ends_at: endsAt, reason: 'deploy' });
  t.match(silence, { status: 201, body: { reason: 'deploy', created_by: 'token:admin', cron: null } });
  t.equal((await hub.api('GET', '/v1/silences')).body.silences.length, 1);

  await send(agent, 'alert', failed('api.service'));
  await send(agent, 'alert', failed('api-2.service'));
  await send(agent, 'alert', failed('db.service'));
  await eventually(async () => slack.of('chat.postMessage').length === 1, 5000, 'the unsilenced post');
  t.match(slack.of('chat.postMessage')[0]!.args.blocks[0].text.text, /db\.service/);
  const api = await firstIncident(hub, 'api.service');
  await eventually(async () => (await audit(hub, `incident_id=${api.id}`)).some((e) => e.kind === 'rule_skipped'), 5000, 'the skip');
  t.match((await audit(hub, `incident_id=${api.id}`)).find((e) => e.kind === 'rule_skipped')!.detail.reason, /^silenced until .* \(deploy\)/);
  t.equal(agent.execs.length, 0, 'no automatic action');
  t.ok(api, 'the incident is recorded');

  // api-2 resolves during the silence; api stays open. Ending the silence posts only api.
  await send(agent, 'resolve', { type: 'systemd', source: 'api-2.service' });
  t.equal((await hub.api('DELETE', `/v1/silences/${silence.body.id}`)).status, 204);
  await eventually(async () => slack.of('chat.postMessage').length === 2, 5000, 'the held post');
  // The DELETE answered after the notifier was told: idle() covers every run that followed.
  await hub.app.hub.slack!.notifier.idle();
  const posted = slack.of('chat.postMessage').map((c) => c.args.blocks[0].text.text as string);
  t.ok(posted.some((h) => h.includes('api.service')), 'the open one is notified');
  t.notOk(posted.some((h) => h.includes('api-2.service')), 'the resolved one is not');
  t.equal((await hub.api('DELETE', `/v1/silences/${silence.body.id}`)).status, 404);
  t.same((await audit(hub, 'actor=token:admin')).map((e) => e.kind), ['rule_created', 'silence_created', 'silence_deleted']);

  const bad: [unknown, RegExp][] = [
    [{ match: {}, ends_at: '2020-01-01T00:00:00Z', reason: 'x' }, /ends_at must be after/],
    [{ match: {}, ends_at: endsAt, reason: 'x', cron: '0 2 * * 0' }, /both cron and duration_s/],
    [{ match: {}, ends_at: endsAt, reason: 'x', cron: 'not a cron!', duration_s: 600 }, /cron/],
    [{ match: { nope: 1 }, ends_at: endsAt, reason: 'x' }, /./],
    [{ match: {}, ends_at: 'next tuesday', reason: 'x' }, /date-time/],
    [{ match: {}, starts_at: '2026-13-45T99:00:00Z', ends_at: endsAt, reason: 'x' }, /date-time/],
  ];
  for (const [body, message] of bad) t.match(await hub.api('POST', '/v1/silences', body), { status: 400, body: { error: { code: 'HUB_BAD_REQUEST', message } } });
  agent.close();
});

eachBackend(t, 'a silence that runs out releases what it held', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok(), HELLO_UNITS);
  const endsAt = new Date(hub.clock.now().getTime() + 3000);
  t.equal((await hub.api('POST', '/v1/silences', { match: {}, ends_at: endsAt.toISOString(), reason: 'short' })).status, 201);
  await send(agent, 'alert', failed('api.service'));
  await hub.app.hub.slack!.notifier.idle();
  hub.app.hub.slack!.kick();
  await hub.app.hub.slack!.notifier.idle();
  t.equal(slack.of('chat.postMessage').length, 0, 'held during the silence, however often the notifier looks');
  hub.clock.advance(3000); // the silence ends on the hub's clock
  hub.app.hub.slack!.kick();
  await eventually(async () => slack.of('chat.postMessage').length === 1, 5000, 'the post after the silence');
  agent.close();
});

eachBackend(t, 'approve mode: the rule asks in the thread, an allowed user approves with a signed click, the agent runs it', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  await hub.api('POST', '/v1/rules', { ...RULE, mode: 'approve', cooldown_s: 0 });
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok('restarted'), HELLO_UNITS);
  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => slack.of('chat.postMessage').some((c) => c.args.thread_ts && c.args.blocks), 5000, 'the question');
  const question = slack.of('chat.postMessage').find((c) => c.args.thread_ts && c.args.blocks)!;
  const buttons = question.args.blocks.find((b: { type: string }) => b.type === 'actions').elements;
  t.same(buttons.map((b: { action_id: string }) => b.action_id), ['opspilot_approve', 'opspilot_reject']);
  const attemptId = buttons[0].value as string;
  t.equal(agent.execs.length, 0, 'nothing runs before someone approves');

  const click = async (user: string) => {
    const body = clickBody({ actionId: 'opspilot_approve', incidentId: attemptId, user });
    return fetch(`http://127.0.0.1:${hub.port}/slack/events`, { method: 'POST', body, headers: sign(body) });
  };
  t.equal((await click('USTRANGER')).status, 200);
  await eventually(async () => slack.of('chat.postEphemeral').length === 1, 5000, 'the refusal');
  t.equal(agent.execs.length, 0, 'a user outside the allowlist cannot approve');
  t.equal((await click('UALLOWED')).status, 200);
  await eventually(async () => agent.execs.length === 1, 5000, 'the exec');
  t.match(agent.execs[0], { command: 'restart_service', params: { service: 'api.service' } });
  await eventually(async () => slack.of('chat.postMessage').some((c) => /<@UALLOWED> approved/.test(c.args.text ?? '')), 5000, 'the answer in the thread');
  t.equal((await click('UALLOWED')).status, 200);
  await eventually(async () => slack.of('chat.postEphemeral').length === 2, 5000, 'already answered');
  t.equal(agent.execs.length, 1, 'a second click runs nothing');
  const incident = await firstIncident(hub, 'api.service');
  const kinds = (await audit(hub, `incident_id=${incident.id}`)).map((e) => `${e.kind}:${e.by ?? ''}`);
  t.ok(kinds.includes('approval_requested:rule:restart-api') && kinds.includes('approved:slack:UALLOWED') && kinds.includes('exec_completed:rule:restart-api'), kinds.join(' '));

  // REST answers too; a rejected attempt never runs.
  await send(agent, 'alert', failed('api-2.service'));
  const waiting = await eventually(async () => (await hub.app.hub.database.db.selectFrom('remediation_attempts').selectAll().where('status', '=', 'awaiting_approval').execute())[0], 5000, 'the second question');
  t.match(await hub.api('POST', `/v1/remediation/attempts/${waiting.id}/reject`), { status: 200, body: { status: 'rejected' } });
  t.equal((await hub.api('POST', `/v1/remediation/attempts/${waiting.id}/approve`)).body.error.code, 'HUB_NOT_WAITING');
  t.equal(agent.execs.length, 1);
  agent.close();
});

eachBackend(t, 'scoped tokens: read sees, exec acts, admin manages; shown once, hashed at rest, deletable', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const make = async (name: string, scopes: string[]) => (await hub.api('POST', '/v1/tokens', { name, scopes })).body;
  const reader = await make('grafana', ['read']);
  const operator = await make('oncall-bot', ['exec']);
  const admin = await make('terraform', ['read', 'admin']);
  t.match(reader, { name: 'grafana', scopes: ['read'], token: /^opk_/ });
  const as = (tok: string) => (method: string, path: string, body?: unknown) => hub.api(method, path, body, { authorization: `Bearer ${tok}` });
  const [r, x, a] = [as(reader.token), as(operator.token), as(admin.token)];

  const { id: agentId } = await hub.enroll();
  t.equal((await r('GET', '/v1/agents')).status, 200);
  t.equal((await r('GET', '/v1/audit')).status, 200);
  t.match(await r('POST', '/v1/admin/exec', { agent_id: agentId, command: 'disk_usage' }), { status: 403, body: { error: { code: 'HUB_FORBIDDEN', message: /needs the exec scope; token:grafana has read/ } } });
  t.match(await x('POST', '/v1/admin/exec', { agent_id: agentId, command: 'disk_usage' }), { status: 409, body: { error: { code: 'HUB_AGENT_OFFLINE' } } }, 'exec may run actions');
  t.equal((await x('POST', '/v1/silences', { match: {}, ends_at: new Date(Date.now() + 60_000).toISOString(), reason: 'x' })).status, 201);
  for (const [method, path, body] of [
    ['POST', '/v1/rules', RULE],
    ['PUT', '/v1/system/autonomy', { enabled: false }],
    ['POST', '/v1/tokens', { name: 'x', scopes: ['admin'] }],
    ['GET', '/v1/tokens', undefined],
    ['DELETE', `/v1/agents/${agentId}`, undefined],
    ['POST', '/v1/agents', {}],
  ] as const) {
    t.equal((await x(method, path, body)).body.error?.code, 'HUB_FORBIDDEN', `exec cannot ${method} ${path}`);
  }
  t.equal((await a('POST', '/v1/rules', RULE)).status, 201, 'admin manages rules');
  t.equal((await a('PUT', '/v1/system/autonomy', { enabled: true })).status, 200);

  const listed = (await a('GET', '/v1/tokens')).body.tokens;
  t.same(listed.map((k: { name: string }) => k.name), ['grafana', 'oncall-bot', 'terraform']);
  t.notOk(JSON.stringify(listed).includes(reader.token), 'never shown again');
  const rows = await hub.app.hub.database.db.selectFrom('api_tokens').select(['token_hash']).execute();
  t.notOk(JSON.stringify(rows).includes(reader.token.slice(4)), 'only the hash is stored');
  t.equal((await hub.api('POST', '/v1/tokens', { name: 'grafana', scopes: ['read'] })).body.error.code, 'HUB_NAME_TAKEN');
  for (const body of [{ name: 'x', scopes: [] }, { name: 'x', scopes: ['root'] }, { name: 'bad name', scopes: ['read'] }, { name: 'x', scopes: ['read', 'read'] }]) {
    t.equal((await hub.api('POST', '/v1/tokens', body)).status, 400, JSON.stringify(body));
  }
  t.equal((await a('DELETE', `/v1/tokens/${reader.id}`)).status, 204);
  t.equal((await r('GET', '/v1/agents')).status, 401, 'a deleted token stops working');
  t.equal((await a('DELETE', `/v1/tokens/${reader.id}`)).status, 404);
  t.equal((await as('opk_not-a-token')('GET', '/v1/agents')).status, 401);
  t.match((await audit(hub, 'actor=token:admin')).filter((e) => e.kind.startsWith('token')), [{ kind: 'token_created', detail: { name: 'grafana', scopes: ['read'] } }, {}, {}]);
  t.ok((await audit(hub, '')).every((e) => !JSON.stringify(e).includes(reader.token)), 'no token value on the audit trail');
});

eachBackend(t, "one audit query tells an incident's story, in order, and the trail cannot be edited", async (t, backend) => {
  const model = await fakeModel(t, [
    completion(JSON.stringify({ summary: 's', root_cause: 'r', confidence: 0.6, suggested_action: { command: 'restart_service', params: { service: 'api.service' }, label: 'Restart' }, rationale: 'x', risk: 'low' })),
  ]);
  const hub = await startHub(t, await backend.open(t), { llmBaseUrl: model.baseURL, llmApiKey: 'sk-test' });
  await hub.api('POST', '/v1/rules', RULE);
  const { id: agentId, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok('restarted'), HELLO_UNITS);
  await send(agent, 'alert', failed('api.service', 'connecting with password=hunter2'));
  await eventually(async () => agent.execs.length === 1, 5000, 'the exec');
  const incident = await firstIncident(hub, 'api.service');
  await eventually(async () => (await audit(hub, `incident_id=${incident.id}`)).some((e) => e.kind === 'analyzed'), 10_000, 'the analysis');
  await send(agent, 'resolve', { type: 'systemd', source: 'api.service' });
  hub.clock.advance((RULE.verify_s + 1) * 1000); // its deadline
  await hub.app.hub.remediation!.sweep();
  await eventually(async () => (await audit(hub, `incident_id=${incident.id}`)).some((e) => e.kind === 'verified'), 5000, 'the verification');

  const story = await audit(hub, `incident_id=${incident.id}`);
  const kinds = story.map((e) => e.kind);
  for (const [a, b] of [
    ['opened', 'classified'],
    ['classified', 'rule_fired'],
    ['rule_fired', 'exec_requested'],
    ['exec_requested', 'exec_completed'],
    ['exec_completed', 'resolved'],
    ['resolved', 'verified'],
  ]) {
    t.ok(kinds.indexOf(a!) >= 0 && kinds.indexOf(a!) < kinds.indexOf(b!), `${a} before ${b}: ${kinds.join(', ')}`);
  }
  t.ok(kinds.includes('analyzed'));
  t.match(story.find((e) => e.kind === 'analyzed'), { actor: 'llm', detail: { redactions: 1 } }, 'the analysis with its redaction count');
  t.match(story.find((e) => e.kind === 'exec_requested'), { actor: 'rule', by: 'rule:restart-api', detail: { command: 'restart_service', origin: 'rule', exec_id: String } }, 'the request, before its result');
  t.match(story.find((e) => e.kind === 'exec_completed'), { by: 'rule:restart-api', detail: { command: 'restart_service', stdout: 'restarted', status: 'succeeded' } });
  // In the order the hub recorded them; `at` is when it happened by its source's clock (agents
  // stamp whole seconds), so it may trail the hub's own stamps by under a second.
  t.ok(story.every((e, i) => i === 0 || e.id > story[i - 1]!.id), 'in recorded order');
  t.ok(story.every((e, i) => i === 0 || Date.parse(e.at) > Date.parse(story[i - 1]!.at) - 1000), 'and in time order, to the second');
  t.ok((await audit(hub, `agent_id=${agentId}`)).length >= story.length, 'by agent');
  t.ok((await audit(hub, 'actor=rule:restart-api')).every((e) => e.by === 'rule:restart-api'), 'by who');
  t.equal((await audit(hub, 'limit=2')).length, 2);

  const { db } = hub.app.hub.database;
  await t.rejects(sql`UPDATE incident_events SET kind = 'nothing' WHERE incident_id = ${incident.id}`.execute(db), /append-only/);
  await t.rejects(sql`DELETE FROM incident_events WHERE incident_id = ${incident.id}`.execute(db), /append-only/);
  t.equal((await audit(hub, `incident_id=${incident.id}`)).length, story.length, 'untouched');
  t.equal((await hub.api('DELETE', `/v1/agents/${agentId}`)).status, 204);
  t.equal((await audit(hub, `incident_id=${incident.id}`)).length, story.length, 'the trail outlives the agent');
  agent.close();
});

eachBackend(t, 'rate limits: REST per token with Retry-After; a noisy agent waits while the others flow, and loses nothing', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { apiRateLimit: 5, alertsPerMinute: 60 });
  const noisy = await hub.enroll({ hostname: 'noisy' });
  const quiet = await hub.enroll({ hostname: 'quiet' });
  const other = (await hub.api('POST', '/v1/tokens', { name: 'other', scopes: ['read'] })).body.token;
  await hub.api('GET', '/v1/agents');
  await hub.api('GET', '/v1/agents');
  const limited = await fetch(`http://127.0.0.1:${hub.port}/v1/agents`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.equal(limited.status, 429);
  t.match(await limited.json(), { error: { code: 'HUB_RATE_LIMITED' } });
  t.ok(Number(limited.headers.get('retry-after')) > 0, 'with Retry-After');
  t.equal((await hub.api('GET', '/v1/agents', undefined, { authorization: `Bearer ${other}` })).status, 200, 'another token is not held up');

  const n = 66;
  const loud = await ScriptedAgent.connect(hub.wsUrl, noisy.token);
  const calm = await ScriptedAgent.connect(hub.wsUrl, quiet.token);
  const ids = Array.from({ length: n }, (_, i) => `n${i}`);
  const acked = new Set<string>();
  loud.ws.on('message', () => {
    for (const m of loud.received) if (m.type === 'ack') for (const id of m.payload.ids) acked.add(id);
  });
  for (const id of ids) loud.send('alert', { type: 'log', source: '/var/log/app.log', message: `error ${id}` }, { id });
  await eventually(async () => acked.size >= 50, 5000, 'the burst');
  calm.send('alert', failed('db.service'), { id: 'q1' });
  await calm.acked(['q1']);
  t.ok(acked.size < n, `the quiet agent's alert went through while the noisy one waited (${acked.size}/${n} acked)`);
  await eventually(async () => acked.size === n, 15_000, 'every noisy alert, in the end');
  const stored = (await hub.api('GET', `/v1/agents/${noisy.id}/incidents`, undefined, { authorization: `Bearer ${other}` })).body.incidents[0];
  t.equal(stored.count, n, 'nothing lost');
  loud.close();
  calm.close();
});
