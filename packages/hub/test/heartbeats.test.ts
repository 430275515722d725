/**
 * Heartbeat checks for cron jobs, pinged over the hub's socket the way Healthchecks.io clients
 * ping (`curl -fsS -m 10 --retry 5 …/ping/<uuid>`), with the hub's clock moved instead of
 * waiting: late, down (an incident), failed (an incident with the run's output), recovered (the
 * incident resolved), across a restart of the hub.
 */
import t from 'tap';
import { nextDue, scheduleProblem } from '../src/heartbeats/schedule.ts';
import { TestClock, eachBackend, startHub, type TestHub } from './helpers.ts';

const MIN = 60_000;

async function ping(hub: TestHub, p: string, init: RequestInit = {}) {
  const res = await fetch(`http://127.0.0.1:${hub.port}${p}`, init);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}
const check = async (hub: TestHub, id: string) => (await hub.api('GET', `/v1/heartbeats/${id}`)).body;
/** Let the hub's heartbeat worker look now (as it does every 10 s, and after each ping), and finish. */
const sweep = async (hub: TestHub) => {
  hub.app.hub.heartbeats.kick();
  await hub.app.hub.heartbeats.worker.idle();
};
const incidentOf = async (hub: TestHub, id: string) => ((await hub.api('GET', '/v1/incidents?integration=heartbeats')).body.incidents as any[]).find((i) => i.source === id);

t.test('when the next ping is due: a period, or a cron expression in its time zone (summer and winter)', async (t) => {
  t.same(nextDue({ period_s: 3600, cron: null, tz: 'UTC' }, new Date('2026-01-10T12:00:00Z')), new Date('2026-01-10T13:00:00Z'));
  const paris = { period_s: null, cron: '0 2 * * *', tz: 'Europe/Paris' };
  t.same(nextDue(paris, new Date('2026-01-10T12:00:00Z')), new Date('2026-01-11T01:00:00Z'), '02:00 in Paris is 01:00 UTC in winter');
  t.same(nextDue(paris, new Date('2026-07-10T12:00:00Z')), new Date('2026-07-11T00:00:00Z'), 'and 00:00 UTC in summer');
  t.equal(scheduleProblem({ period_s: 60, cron: '* * * * *', tz: 'UTC' }), 'give either period_s or cron');
  t.match(scheduleProblem({ period_s: null, cron: '0 2 * * *', tz: 'Mars/Olympus' }), /not a time zone/);
  t.match(scheduleProblem({ period_s: null, cron: '99 * * * *', tz: 'UTC' }), /^cron: /);
  t.equal(scheduleProblem(paris), null);
});

eachBackend(t, 'a check goes late, then down with an incident linked to its host; the next success resolves it, across a hub restart', async (t, backend) => {
  const db = await backend.open(t);
  const clock = new TestClock();
  clock.fastForward(); // time moves only when the test moves it: durations are exact
  let hub = await startHub(t, db, {}, false, clock);
  const { id: agentId } = await hub.enroll({ hostname: 'db-1' });
  const created = await hub.api('POST', '/v1/heartbeats', { name: 'nightly-backup', period_s: 3600, grace_s: 600, host: 'db-1', service: 'backup', labels: { team: 'data' } });
  t.equal(created.status, 201, created.text);
  const { id, ping_path: path } = created.body as { id: string; ping_path: string };
  t.match(path, /^\/ping\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] })).body.token as string;
  t.equal((await hub.api('GET', `/v1/heartbeats/${id}`, undefined, { authorization: `Bearer ${reader}` })).body.ping_path, null, 'a read token sees the check, not its ping URL');

  clock.advance(5 * 24 * 60 * MIN);
  await sweep(hub);
  t.equal((await check(hub, id)).status, 'new', 'a new check never alerts');

  const first = await ping(hub, path);
  t.same([first.status, first.text], [200, 'OK']);
  t.match(first.type, /^text\/plain/);
  const up = await check(hub, id);
  t.equal(up.status, 'up');
  t.equal(Date.parse(up.due_at) - Date.parse(up.last_success_at), 60 * MIN, 'due a period after the success');
  t.equal(Date.parse(up.down_at) - Date.parse(up.due_at), 10 * MIN, 'down after the grace');

  clock.advance(61 * MIN);
  await sweep(hub);
  t.equal((await check(hub, id)).status, 'late');
  t.notOk(await incidentOf(hub, id), 'late is not down: no incident within the grace');

  // The hub restarts while the check is late; the new one finds it down when the grace is over.
  await hub.close();
  clock.advance(10 * MIN);
  hub = await startHub(t, db, {}, false, clock);
  await sweep(hub);
  t.equal((await check(hub, id)).status, 'down');
  const incident = await incidentOf(hub, id);
  t.match(incident, { type: 'heartbeat', agent_id: agentId, service: 'backup', severity: 'high', labels: { team: 'data', check: 'nightly-backup' }, message: /^nightly-backup: no ping since .* \(expected by .*, grace 10 min\)$/ });
  await sweep(hub);
  t.match(await incidentOf(hub, id), { count: 1 }, 'down once');

  // Recovered: POST with the run's output, paired with its start by rid.
  const rid = '5a1c0f6e-0000-4000-8000-000000000001';
  t.equal((await ping(hub, `${path}/start?rid=${rid}`)).status, 200);
  clock.advance(90_000);
  t.equal((await ping(hub, `${path}?rid=${rid}`, { method: 'POST', body: 'dumped 12 tables\n' })).status, 200);
  t.match(await hub.api('GET', `/v1/incidents/${incident.id}`), { body: { status: 'resolved', resolved_by: 'integration:heartbeats' } });
  const pings = (await hub.api('GET', `/v1/heartbeats/${id}/pings`)).body.pings as any[];
  t.match(pings[0], { kind: 'success', rid, duration_ms: 90_000, body: 'dumped 12 tables\n', body_bytes: 17 });
  t.match(pings[1], { kind: 'start', rid });
});

eachBackend(t, 'failures, exit statuses, starts that never end, log pings, pauses, and bad pings', async (t, backend) => {
  const clock = new TestClock();
  clock.fastForward();
  const hub = await startHub(t, await backend.open(t), {}, false, clock);
  const made = await hub.api('POST', '/v1/heartbeats', { name: 'etl', cron: '0 2 * * *', tz: 'Europe/Paris', grace_s: 1800 });
  t.equal(made.status, 201, made.text);
  const { id, ping_path: path } = made.body as { id: string; ping_path: string };

  // A failed run: down at once, with its output (secrets redacted) as the incident's logs.
  const fail = await ping(hub, `${path}/fail`, { method: 'POST', body: 'connecting with password=hunter2\nERROR: relation "orders" does not exist\n' });
  t.equal(fail.status, 200);
  t.equal((await check(hub, id)).status, 'down');
  let incident = await incidentOf(hub, id);
  t.match(incident, { message: 'etl: run failed', status: /^(new|analyzing|open)$/ });
  const full = (await hub.api('GET', `/v1/incidents/${incident.id}`)).body;
  t.match(full.logs, /relation "orders" does not exist/);
  t.notMatch(full.logs, /hunter2/, 'the output is redacted before it is kept');
  t.equal((await ping(hub, `${path}/3`)).status, 200);
  incident = await incidentOf(hub, id);
  t.match(incident, { count: 2 }, 'another failed run repeats the incident');
  t.match((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.message, 'etl: run failed (exit status 3)');
  t.equal((await ping(hub, `${path}/0`)).status, 200, 'exit status 0 is a success');
  t.equal((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.status, 'resolved');

  // A log ping changes nothing; a start with no end within the grace is down.
  t.equal((await ping(hub, `${path}/log`, { method: 'POST', body: 'step 1 of 3' })).status, 200);
  t.equal((await check(hub, id)).status, 'up');
  t.equal((await ping(hub, `${path}/start`)).status, 200);
  t.equal((await check(hub, id)).status, 'started');
  clock.advance(31 * MIN);
  await sweep(hub);
  t.equal((await check(hub, id)).status, 'down');
  t.match(await incidentOf(hub, id), { status: /^(new|analyzing|open)$/, message: /^etl: started at .* and did not finish within 30 min$/ });

  // Paused: overdue changes nothing; a ping resumes it.
  t.match(await hub.api('PATCH', `/v1/heartbeats/${id}`, { paused: true }), { status: 200, body: { status: 'paused', due_at: null } });
  clock.advance(3 * 24 * 60 * MIN);
  await sweep(hub);
  t.equal((await check(hub, id)).status, 'paused');
  t.equal((await ping(hub, path, { method: 'HEAD' })).status, 200, 'HEAD pings too');
  t.equal((await check(hub, id)).status, 'up');

  // Bad pings: 404 for what is not a check, 400 for a malformed rid; nothing changes.
  const before = (await hub.api('GET', `/v1/heartbeats/${id}/pings?limit=200`)).body.pings.length;
  t.same(await ping(hub, '/ping/00000000-0000-4000-8000-000000000000').then((r) => [r.status, r.text]), [404, 'not found']);
  t.equal((await ping(hub, '/ping/not-a-uuid')).status, 404);
  t.equal((await ping(hub, `${path}/256`)).status, 404);
  t.equal((await ping(hub, `${path}/restart`)).status, 404);
  t.equal((await ping(hub, `${path}?rid=${'x'.repeat(80)}`)).status, 400);
  t.equal((await ping(hub, `${path}/fail`, { method: 'POST', body: Buffer.alloc(300_000, 0x41) })).status, 200, 'a long output is taken, and kept in part');
  const pings = (await hub.api('GET', `/v1/heartbeats/${id}/pings?limit=200`)).body.pings as any[];
  t.equal(pings.length, before + 1);
  t.match(pings[0], { kind: 'fail', body_bytes: 300_000 });
  t.equal(pings[0].body.length, 100_000);

  // Deleting a down check resolves its incident.
  const open = await incidentOf(hub, id);
  t.equal((await hub.api('DELETE', `/v1/heartbeats/${id}`)).status, 204);
  t.equal((await hub.api('GET', `/v1/incidents/${open.id}`)).body.status, 'resolved');
  t.equal((await ping(hub, path)).status, 404);
});

eachBackend(t, 'REST: schedules are checked, names unique, admin to change', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const bad = async (body: unknown, code: string) => {
    const r = await hub.api('POST', '/v1/heartbeats', body);
    t.same([r.status, r.body.error?.code], [code === 'HUB_NAME_TAKEN' ? 409 : 400, code], `${JSON.stringify(body)}: ${r.body.error?.message}`);
  };
  await bad({ name: 'x' }, 'HUB_INVALID_HEARTBEAT');
  await bad({ name: 'x', period_s: 3600, cron: '0 * * * *' }, 'HUB_INVALID_HEARTBEAT');
  await bad({ name: 'x', cron: '0 2 * * *', tz: 'Nowhere/City' }, 'HUB_INVALID_HEARTBEAT');
  await bad({ name: 'x', cron: '0 25 * * *' }, 'HUB_INVALID_HEARTBEAT');
  await bad({ name: 'x', period_s: 10 }, 'HUB_BAD_REQUEST');
  await bad({ name: 'x y', period_s: 3600 }, 'HUB_BAD_REQUEST');
  t.equal((await hub.api('POST', '/v1/heartbeats', { name: 'x', period_s: 3600 })).status, 201);
  await bad({ name: 'x', period_s: 3600 }, 'HUB_NAME_TAKEN');
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] })).body.token as string;
  t.equal((await hub.api('POST', '/v1/heartbeats', { name: 'y', period_s: 3600 }, { authorization: `Bearer ${reader}` })).status, 403);
  const list = (await hub.api('GET', '/v1/heartbeats')).body.heartbeats as any[];
  t.match(list, [{ name: 'x', status: 'new', period_s: 3600, grace_s: 3600, tz: 'UTC' }]);
  t.match(await hub.api('PATCH', `/v1/heartbeats/${list[0].id}`, { cron: '*/5 * * * *' }), { status: 200, body: { cron: '*/5 * * * *', period_s: null } }, 'a cron replaces the period');
  t.match(await hub.api('GET', '/v1/heartbeats/01JZZZZZZZZZZZZZZZZZZZZZZZ'), { status: 404, body: { error: { code: 'HUB_HEARTBEAT_NOT_FOUND' } } });
  const audit = (await hub.api('GET', '/v1/audit')).body.events.map((e: { kind: string }) => e.kind);
  t.ok(audit.includes('heartbeat_created') && audit.includes('heartbeat_updated'));
});

eachBackend(t, "Uptime Kuma's push form works the same: down opens, up resolves", async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const made = (await hub.api('POST', '/v1/heartbeats', { name: 'kuma-job', period_s: 300 })).body as { id: string; ping_path: string };
  const key = made.ping_path.slice('/ping/'.length);
  const down = await ping(hub, `/api/push/${key}?status=down&msg=${encodeURIComponent('disk check failed')}`);
  t.same([down.status, JSON.parse(down.text)], [200, { ok: true }]);
  const incident = await incidentOf(hub, made.id);
  t.match(incident, { message: 'kuma-job: run failed' });
  t.equal((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.logs, 'disk check failed');
  t.equal((await ping(hub, `/api/push/${key}?status=up&msg=OK&ping=12`)).status, 200);
  t.equal((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.status, 'resolved');
  t.same(await ping(hub, '/api/push/00000000-0000-4000-8000-000000000000').then((r) => [r.status, JSON.parse(r.text)]), [404, { ok: false, msg: 'not found' }]);
});
