/**
 * Guarded autonomy: remediation rules acting on a scripted agent, within their limits, verified,
 * escalated when they fail; the circuit breaker and the kill switch. Time is moved by advancing the
 * hub's clock (TestClock) and calling the engine's sweep, never by waiting.
 */
import t from 'tap';
import type { PayloadOf } from '@opspilot/protocol';
import { HELLO, ScriptedAgent, eachBackend, eventually, runningAgent, startHub, type TestHub } from './helpers.ts';
import { RULE } from './rules.ts';

const HELLO_UNITS: PayloadOf<'hello'> = { ...HELLO, actions: ['restart_service', 'service_status', 'service_logs'] };
const failed = (source: string): PayloadOf<'alert'> => ({ type: 'systemd', source, message: `${source}: Failed with result 'exit-code'.`, status: 'failed' });
const ok = (stdout = '') => ({ ok: true, exit_code: 0, stdout, stderr: '', duration_ms: 30, truncated: false });
const bad = (exit: number) => ({ ok: false, exit_code: exit, stdout: '', stderr: 'Job failed', duration_ms: 30, truncated: false });


let seq = 0;
async function send(agent: ScriptedAgent, type: 'alert' | 'resolve', payload: PayloadOf<'alert'> | PayloadOf<'resolve'>): Promise<void> {
  const id = `m${++seq}`;
  agent.send(type, payload as PayloadOf<'alert'>, { id });
  await agent.acked([id]);
}
const incidentOf = async (hub: TestHub, source: string) =>
  (await hub.api('GET', '/v1/incidents')).body.incidents.find((i: { source: string; status: string }) => i.source === source && i.status !== 'resolved') ??
  (await hub.api('GET', '/v1/incidents')).body.incidents.find((i: { source: string }) => i.source === source);
const audit = async (hub: TestHub, query: string) => (await hub.api('GET', `/v1/audit?${query}`)).body.events as { kind: string; actor: string; by: string | null; detail: any }[];
const skipped = async (hub: TestHub, incidentId: string) => (await audit(hub, `incident_id=${incidentId}`)).filter((e) => e.kind === 'rule_skipped').map((e) => e.detail.reason as string);
const attempts = (hub: TestHub) => hub.app.hub.database.db.selectFrom('remediation_attempts').selectAll().orderBy('id').execute();
/** The engine has decided on everything it was given. */
const settled = async (hub: TestHub, n: number) => eventually(async () => (await attempts(hub)).length >= n && (await attempts(hub)).every((a) => a.status !== 'running'), 10_000, `${n} attempts settled`);

eachBackend(t, 'a matching incident is fixed by its rule: the agent gets the exec, the resolve verifies it, the cooldown holds', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  t.equal((await hub.api('POST', '/v1/rules', RULE)).status, 201);
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok('restarted'), HELLO_UNITS);
  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => agent.execs.length === 1, 5000, 'the exec');
  t.match(agent.execs[0], { command: 'restart_service', params: { service: 'api.service' } });
  await eventually(async () => (await attempts(hub))[0]?.status === 'verifying', 5000, 'verifying');
  await send(agent, 'resolve', { type: 'systemd', source: 'api.service' });
  hub.clock.advance(61_000);
  await hub.app.hub.remediation!.sweep();
  t.match((await attempts(hub))[0], { status: 'verified' }, 'verified when its deadline comes');
  const incident = await incidentOf(hub, 'api.service');
  const trail = await audit(hub, `incident_id=${incident.id}`);
  t.match(trail.find((e) => e.kind === 'rule_fired'), { actor: 'rule', by: 'rule:restart-api', detail: { mode: 'auto', command: 'restart_service', params: { service: 'api.service' } } });
  t.match(trail.find((e) => e.kind === 'exec_completed'), { actor: 'rule', by: 'rule:restart-api', detail: { status: 'succeeded', stdout: 'restarted' } });
  t.match(trail.find((e) => e.kind === 'verified'), { detail: { how: 'the incident resolved' } });
  const execRow = await hub.app.hub.database.db.selectFrom('exec_requests').selectAll().executeTakeFirstOrThrow();
  t.match(execRow, { origin: 'rule', requested_by: 'rule:restart-api', incident_id: incident.id });

  // It fails again within the cooldown: recorded, not acted on.
  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => (await skipped(hub, incident.id)).length === 1, 5000, 'the skip');
  t.match((await skipped(hub, incident.id))[0], /^cooldown/);
  t.equal(agent.execs.length, 1);
  // Another fingerprint is not in this one's cooldown; an unmatched one is left alone.
  await send(agent, 'alert', failed('api-2.service'));
  await send(agent, 'alert', failed('db.service'));
  await eventually(async () => agent.execs.length === 2, 5000, 'the second exec');
  t.match(agent.execs[1], { params: { service: 'api-2.service' } });
  t.equal((await audit(hub, `incident_id=${(await incidentOf(hub, 'db.service')).id}`)).filter((e) => e.kind.startsWith('rule')).length, 0);
  agent.close();
});

eachBackend(t, 'max_per_hour caps one rule on one agent', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  await hub.api('POST', '/v1/rules', { ...RULE, cooldown_s: 0, max_per_hour: 2 });
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok(), HELLO_UNITS);
  for (const s of ['api-1.service', 'api-2.service', 'api-3.service']) await send(agent, 'alert', failed(s));
  await settled(hub, 2);
  await eventually(async () => (await skipped(hub, (await incidentOf(hub, 'api-3.service')).id)).length === 1, 5000, 'the skip');
  t.equal(agent.execs.length, 2);
  t.match((await skipped(hub, (await incidentOf(hub, 'api-3.service')).id))[0], /^rate limit: 2 runs/);
  agent.close();
});

eachBackend(t, 'verification: an active unit is a fix; a failed one escalates and holds the fingerprint until a person acts', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  await hub.api('POST', '/v1/rules', { ...RULE, cooldown_s: 0 });
  const { token } = await hub.enroll();
  let active = true;
  const agent = await runningAgent(hub, token, (e) => (e.command === 'service_status' ? (active ? ok('Active: active (running)') : bad(3)) : ok()), HELLO_UNITS);
  const engine = hub.app.hub.remediation!;

  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => (await attempts(hub))[0]?.status === 'verifying', 5000, 'verifying');
  hub.clock.advance(61_000); // past the rule's verify_s (60) on the hub's clock
  await engine.sweep();
  const first = await incidentOf(hub, 'api.service');
  t.match((await attempts(hub))[0], { status: 'verified', outcome: 'api.service is active again' });
  t.match(await hub.api('GET', `/v1/incidents/${first.id}`), { body: { status: 'resolved', resolved_by: 'rule' } }, 'resolved by the rule');

  active = false;
  await send(agent, 'alert', failed('api.service')); // reopens it
  await eventually(async () => (await attempts(hub))[1]?.status === 'verifying', 5000, 'verifying again');
  const severity = (await hub.api('GET', `/v1/incidents/${first.id}`)).body.severity;
  hub.clock.advance(61_000); // past the rule's verify_s (60) on the hub's clock
  await engine.sweep();
  t.match((await attempts(hub))[1], { status: 'failed', outcome: /^verification failed/ });
  const escalated = (await hub.api('GET', `/v1/incidents/${first.id}`)).body;
  t.equal(escalated.severity, { low: 'medium', medium: 'high', high: 'critical', critical: 'critical' }[severity as string], 'severity raised one step');
  const trail = await audit(hub, `incident_id=${first.id}`);
  t.match(trail.find((e) => e.kind === 'escalated'), { detail: { from: severity, held: true } });
  t.ok(trail.some((e) => e.kind === 'verification_failed'));
  t.equal(escalated.escalated, true, 'marked escalated');
  t.type(escalated.escalated_at, 'string');

  // Held: it fails again, nothing runs.
  const execs = agent.execs.length;
  await send(agent, 'resolve', { type: 'systemd', source: 'api.service' });
  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => (await skipped(hub, first.id)).some((r) => r.startsWith('held')), 5000, 'the hold');
  t.equal(agent.execs.length, execs, 'no further automatic attempt');
  // A person acknowledges: the next failure may be acted on again.
  t.equal((await hub.api('POST', `/v1/incidents/${first.id}/acknowledge`)).status, 200);
  await send(agent, 'resolve', { type: 'systemd', source: 'api.service' });
  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => agent.execs.filter((e) => e.command === 'restart_service').length === 3, 5000, 'acting again');
  agent.close();
});

eachBackend(t, 'verification at the deadline: a resolve that was reopened, or a failure after the fix, is not a fix', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  await hub.api('POST', '/v1/rules', { ...RULE, cooldown_s: 0 });
  const { token } = await hub.enroll();
  // The unit looks active whenever asked, as a crash-looping unit does between its restarts.
  const agent = await runningAgent(hub, token, (e) => (e.command === 'service_status' ? ok('Active: active (running)') : ok()), HELLO_UNITS);
  const engine = hub.app.hub.remediation!;

  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => (await attempts(hub))[0]?.status === 'verifying', 5000, 'verifying');
  hub.clock.advance(1100); // agents stamp whole seconds: the next message is in a later one
  await send(agent, 'resolve', { type: 'systemd', source: 'api.service' });
  t.equal((await attempts(hub))[0]!.status, 'verifying', 'a resolve alone does not verify before the deadline');
  await send(agent, 'alert', failed('api.service')); // it failed again: reopened
  hub.clock.advance(61_000); // past the rule's verify_s (60) on the hub's clock
  await engine.sweep();
  t.match((await attempts(hub))[0], { status: 'failed', outcome: /^verification failed: api\.service failed again \d+ s after the action/ });
  const incident = await incidentOf(hub, 'api.service');
  t.equal((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.escalated, true, 'escalated although the unit looked active');

  // A failure after the fix, then a resolve before the deadline: still not a fix that held.
  await hub.api('POST', `/v1/incidents/${incident.id}/acknowledge`);
  await send(agent, 'resolve', { type: 'systemd', source: 'api-2.service' });
  await send(agent, 'alert', failed('api-2.service'));
  const second = async () => (await attempts(hub)).find((a) => a.params.service === 'api-2.service');
  await eventually(async () => (await second())?.status === 'verifying', 5000, 'verifying the second');
  hub.clock.advance(1100);
  await send(agent, 'alert', failed('api-2.service'));
  await send(agent, 'resolve', { type: 'systemd', source: 'api-2.service' });
  hub.clock.advance(61_000); // past the rule's verify_s (60) on the hub's clock
  await engine.sweep();
  t.match(await second(), { status: 'failed', outcome: /failed again/ });
  agent.close();
});

eachBackend(t, 'the circuit breaker: 3 failures in an hour suspend the rule until it is saved again', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const rule = (await hub.api('POST', '/v1/rules', { ...RULE, cooldown_s: 0, max_per_hour: 100 })).body;
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => bad(1), HELLO_UNITS);
  for (const s of ['api-1.service', 'api-2.service', 'api-3.service']) await send(agent, 'alert', failed(s));
  await settled(hub, 3);
  t.ok((await attempts(hub)).every((a) => a.status === 'failed' && /action failed/.test(a.outcome ?? '')));
  const suspended = await eventually(async () => {
    const r = (await hub.api('GET', `/v1/rules/${rule.id}`)).body;
    return r.suspended_at && r;
  }, 5000, 'the suspension');
  t.type(suspended.suspended_at, 'string');
  t.match(suspended.suspended_reason, /3 failures/);
  t.ok((await audit(hub, 'actor=hub')).some((e) => e.kind === 'rule_suspended'));
  await send(agent, 'alert', failed('api-4.service'));
  await eventually(async () => (await skipped(hub, (await incidentOf(hub, 'api-4.service')).id)).length === 1, 5000, 'the skip');
  t.match((await skipped(hub, (await incidentOf(hub, 'api-4.service')).id))[0], /^circuit open/);
  t.equal(agent.execs.length, 3);

  const { id: _id, suspended_at: _s, suspended_reason: _r, created_at: _c, updated_at: _u, created_by: _b, ...body } = suspended;
  t.match((await hub.api('PUT', `/v1/rules/${rule.id}`, body)).body, { suspended_at: null, suspended_reason: null }, 're-enabled by saving it');
  await send(agent, 'alert', failed('api-5.service'));
  await eventually(async () => agent.execs.length === 4, 5000, 'acting again');
  agent.close();
});

eachBackend(t, 'the kill switch stops everything, survives a restart and is audited; per-agent autonomy too', async (t, backend) => {
  const db = await backend.open(t);
  let hub = await startHub(t, db);
  await hub.api('POST', '/v1/rules', { ...RULE, cooldown_s: 0 });
  t.same((await hub.api('GET', '/v1/system/autonomy')).body, { enabled: true, updated_at: null, updated_by: null });
  t.match((await hub.api('PUT', '/v1/system/autonomy', { enabled: false })).body, { enabled: false, updated_by: 'token:admin' });
  await hub.close();

  hub = await startHub(t, db);
  t.match((await hub.api('GET', '/v1/system/autonomy')).body, { enabled: false, updated_by: 'token:admin' }, 'still off after a restart');
  const { id: agentId, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok(), HELLO_UNITS);
  await send(agent, 'alert', failed('api.service'));
  await eventually(async () => (await skipped(hub, (await incidentOf(hub, 'api.service')).id)).length === 1, 5000, 'the skip');
  t.match((await skipped(hub, (await incidentOf(hub, 'api.service')).id))[0], /^kill switch/);
  t.equal(agent.execs.length, 0);
  t.match((await audit(hub, 'actor=token:admin')).filter((e) => e.kind === 'autonomy_changed'), [{ detail: { enabled: false, was: true } }]);

  await hub.api('PUT', '/v1/system/autonomy', { enabled: true });
  t.equal((await hub.api('PUT', `/v1/agents/${agentId}/autonomy`, { enabled: false })).status, 200);
  t.equal((await hub.api('GET', `/v1/agents/${agentId}`)).body.autonomy, false);
  await send(agent, 'alert', failed('api-2.service'));
  await eventually(async () => (await skipped(hub, (await incidentOf(hub, 'api-2.service')).id)).length === 1, 5000, 'the skip');
  t.match((await skipped(hub, (await incidentOf(hub, 'api-2.service')).id))[0], /autonomy is off/);
  t.equal(agent.execs.length, 0);
  t.equal((await hub.api('PUT', '/v1/agents/01HZZZZZZZZZZZZZZZZZZZZZZZ/autonomy', { enabled: true })).status, 404);
  t.equal((await hub.api('PUT', '/v1/system/autonomy', { enabled: 'no' })).status, 400);
  agent.close();
});

eachBackend(t, 'rules are validated: whole-value templates, known fields, the action rules; names are unique', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const cases: [string, unknown, number, string][] = [
    ['partial template', { ...RULE, action: { command: 'restart_service', params: { service: 'x-{{source}}' } } }, 400, 'HUB_INVALID_RULE'],
    ['unknown field', { ...RULE, action: { command: 'restart_service', params: { service: '{{password}}' } } }, 400, 'HUB_INVALID_RULE'],
    ['unknown param', { ...RULE, action: { command: 'restart_service', params: { service: '{{source}}', force: true } } }, 400, 'HUB_INVALID_RULE'],
    ['option injection', { ...RULE, action: { command: 'restart_service', params: { service: '--root=/' } } }, 400, 'HUB_INVALID_RULE'],
    ['no service', { ...RULE, action: { command: 'restart_service', params: {} } }, 400, 'HUB_INVALID_RULE'],
    ['shell string', { ...RULE, action: { command: 'systemctl restart api; rm -rf /' } }, 400, 'HUB_BAD_REQUEST'],
    ['bad mode', { ...RULE, mode: 'yolo' }, 400, 'HUB_BAD_REQUEST'],
    ['unknown key', { ...RULE, script: 'x' }, 400, 'HUB_BAD_REQUEST'],
    ['negative cooldown', { ...RULE, cooldown_s: -1 }, 400, 'HUB_BAD_REQUEST'],
    ['prototype pollution', JSON.parse(`{"name":"p","match":{"__proto__":{"x":1}},"action":{"command":"disk_usage"},"mode":"auto"}`), 400, 'HUB_BAD_REQUEST'],
  ];
  for (const [name, body, status, code] of cases) {
    const res = await hub.api('POST', '/v1/rules', body);
    t.equal(res.status, status, name);
    t.equal(res.body.error?.code, code, name);
  }
  const created = await hub.api('POST', '/v1/rules', { name: 'disk', match: {}, action: { command: 'disk_usage' }, mode: 'approve' });
  t.match(created, { status: 201, body: { cooldown_s: 600, max_per_hour: 3, verify_s: 120, enabled: true, action: { params: {} } } }, 'defaults');
  t.equal((await hub.api('POST', '/v1/rules', { name: 'disk', match: {}, action: { command: 'disk_usage' }, mode: 'auto' })).body.error.code, 'HUB_NAME_TAKEN');
  t.equal((await hub.api('GET', '/v1/rules')).body.rules.length, 1);
  t.equal((await hub.api('GET', '/v1/rules/01HZZZZZZZZZZZZZZZZZZZZZZZ')).status, 404);
  t.equal((await hub.api('DELETE', `/v1/rules/${created.body.id}`)).status, 204);
  t.equal((await hub.api('DELETE', `/v1/rules/${created.body.id}`)).status, 404);
  t.same((await audit(hub, 'actor=user')).map((e) => e.kind), ['rule_created', 'rule_deleted']);
});

eachBackend(t, 'an opening the rules were not consulted on when its hub stopped is decided by the next start, once its agent is back; past the offline deadline it is skipped', async (t, backend) => {
  const db = await backend.open(t);
  const queue = () => db.db.selectFrom('remediation_queue').selectAll().execute();
  const first = await startHub(t, db);
  t.equal((await first.api('POST', '/v1/rules', RULE)).status, 201);
  const { id: agentId, token } = await first.enroll();
  let agent = await runningAgent(first, token, () => ok('restarted'), HELLO_UNITS);
  // The hub dies between the alert's commit and its engine looking (its engine stopped first).
  await first.app.hub.remediation!.stop();
  await send(agent, 'alert', failed('api.service'));
  t.match(await queue(), [{ incident_id: (await incidentOf(first, 'api.service')).id }], 'queued with the incident, in its transaction');
  agent.close();
  await first.close();

  const second = await startHub(t, db);
  await second.app.hub.remediation!.worker.idle();
  const incident = await incidentOf(second, 'api.service');
  t.equal((await queue()).length, 1, 'its agent not back yet, within its offline deadline: the opening waits');
  t.same(await skipped(second, incident.id), [], 'and nothing is skipped for it');
  agent = await runningAgent(second, token, () => ok('restarted'), HELLO_UNITS);
  await eventually(async () => agent.execs.length === 1, 10_000, 'the exec once the agent is back');
  t.match(agent.execs[0], { command: 'restart_service', params: { service: 'api.service' } });
  await second.app.hub.remediation!.worker.idle();
  t.same(await queue(), [], 'the opening taken off the queue');
  t.equal((await attempts(second)).length, 1, 'one attempt');
  t.equal((await audit(second, `incident_id=${incident.id}`)).filter((e) => e.kind === 'rule_fired').length, 1, 'fired once');

  // Another opening waits while its agent is away, until the agent is past its offline deadline (3 intervals of 10 s).
  await second.app.hub.remediation!.stop();
  await send(agent, 'alert', failed('api-2.service'));
  agent.close();
  await eventually(async () => !second.app.hub.registry.get(agentId)?.isOpen, 5000, 'the agent gone');
  second.clock.advance(31_000);
  await second.app.hub.remediation!.start();
  const other = await incidentOf(second, 'api-2.service');
  await eventually(async () => (await skipped(second, other.id)).length === 1, 10_000, 'the skip');
  t.same(await skipped(second, other.id), ['the agent is offline']);
  t.same(await queue(), [], 'and dequeued');
  t.equal((await attempts(second)).length, 1, 'no second attempt');
});
