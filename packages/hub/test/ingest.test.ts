import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { GO_ALERT, GO_HEARTBEAT } from '@opspilot/protocol/vectors';
import net from 'node:net';
import { sql } from 'kysely';
import { HELLO, ScriptedAgent, eachBackend, eventually, startHub } from './helpers.ts';
import { claimAgents, releaseAgents } from '../src/storage/cluster.ts';
import { OFFLINE_FINGERPRINT } from '../src/incidents/offline.ts';

eachBackend(t, 'the original Go envelopes give an online agent and an incident', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll({ hostname: 'legacy-1' });
  const agent = new ScriptedAgent(hub.wsUrl);
  await agent.opened;
  const before = hub.clock.now().getTime();
  agent.sendRaw(GO_HEARTBEAT.replace('my-secret-token', token));
  agent.sendRaw(GO_ALERT.replace('my-secret-token', token));
  await agent.next('welcome');
  const incident = await eventually(async () => (await hub.api('GET', `/v1/incidents?agent_id=${id}`)).body.incidents[0], 5000, 'incident');
  t.match(incident, { agent_id: id, type: 'systemd', source: 'nginx', message: 'nginx crashed', exit_code: 1, status: /^(new|analyzing|open)$/, count: 1 });
  const full = await hub.api('GET', `/v1/incidents/${incident.id}`);
  t.equal(full.body.logs, 'error logs');
  // The vector's ts is from 2024: too old to be an event time, so the hub's clock is used.
  const seen = Date.parse(full.body.first_seen_at);
  t.ok(seen >= before && seen <= hub.clock.now().getTime(), 'first seen when the hub received it');
  t.equal((await hub.api('GET', `/v1/agents/${id}`)).body.status, 'online');
  agent.close();
});

eachBackend(t, 'hello facts and catalogue, and the latest heartbeat, show on the agent', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll({ labels: { env: 'prod', role: 'web' } });
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('hello', HELLO);
  agent.send('heartbeat', { uptime_s: 10, cpu_pct: 1, mem_pct: 2, load1: 0.1 });
  agent.send('heartbeat', { uptime_s: 20, cpu_pct: 3, mem_pct: 4, load1: 0.2 }, { id: 'hb-last' });
  await agent.acked(['hb-last']);
  const res = await hub.api('GET', `/v1/agents/${id}`);
  t.match(res.body, {
    id,
    hostname: 'web-1',
    labels: { env: 'prod', role: 'web' },
    status: 'online',
    facts: { agent_version: '0.1.0-test', hostname: 'web-1', os: 'linux', arch: 'x64', kernel: '6.1.0', boot_time: 1706000000 },
    actions: HELLO.actions,
    stats: { uptime_s: 20, cpu_pct: 3, mem_pct: 4, load1: 0.2 },
  });
  t.ok(res.body.last_seen_at && res.body.connected_at);
  agent.close();
});

eachBackend(t, 'heartbeats are coalesced: many frames, few transactions', async (t, backend) => {
  // Far over an agent's bulk budget (budgets.test.ts): lifted, this is about batching.
  const hub = await startHub(t, await backend.open(t), { flushIntervalMs: 50, bulkPerMinute: 100_000 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  const writer = hub.app.hub.writer;
  const before = { ...writer.stats };
  for (let i = 1; i <= 500; i++) agent.send('heartbeat', { uptime_s: i }, { compression: 'none' });
  agent.send('heartbeat', { uptime_s: 501 }, { id: 'hb-501' });
  await agent.acked(['hb-501']);
  const frames = writer.stats.frames - before.frames;
  const batches = writer.stats.batches - before.batches;
  t.equal(frames, 501, 'every heartbeat was taken');
  t.ok(batches <= 20, `${frames} heartbeats in ${batches} transactions`);
  t.equal((await hub.api('GET', `/v1/agents/${id}`)).body.stats.uptime_s, 501, 'the latest wins');
  agent.close();
});

eachBackend(t, 'metric batches are stored and queried by time range', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { metricSamplesPerMinute: 100_000 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  const now = Math.floor(Date.now() / 1000);
  const sample = (ts: number, cpu: number) => ({
    ts,
    cpu_pct: cpu,
    mem_used: 2 ** 33, // past 32 bits: bigint columns come back as numbers
    mem_total: 2 ** 34,
    swap_used: 0,
    load1: 0.5,
    load5: 0.4,
    load15: 0.3,
    disks: [{ mount: '/', used: 10, size: 100 }],
    net: [{ iface: 'eth0', rx_bps: 1000, tx_bps: 2000 }],
  });
  agent.send('metrics', { samples: Array.from({ length: 300 }, (_, i) => sample(now - 300 + i, i % 100)) }, { id: 'm-1' });
  agent.send('metrics', { samples: [sample(now - 7200, 99)] }, { id: 'm-2' });
  await agent.acked(['m-1', 'm-2']);

  const lastHour = await hub.api('GET', `/v1/agents/${id}/metrics?limit=10000`);
  t.equal(lastHour.status, 200);
  t.equal(lastHour.body.samples.length, 300, 'default range is the last hour');
  t.same(lastHour.body.samples[0], { ...sample(now - 300, 0), period_s: 0 }, 'as sent');
  const since = new Date((now - 7300) * 1000).toISOString();
  const until = now - 7000;
  const old = await hub.api('GET', `/v1/agents/${id}/metrics?since=${since}&until=${until}`);
  t.same(old.body.samples.map((s: { cpu_pct: number }) => s.cpu_pct), [99], 'ISO and Unix-seconds bounds');
  t.equal((await hub.api('GET', `/v1/agents/${id}/metrics?since=yesterday`)).body.error.code, 'HUB_BAD_REQUEST');
  t.equal((await hub.api('GET', `/v1/agents/${id}/metrics?since=2024-13-45T99:99:99Z`)).body.error.code, 'HUB_BAD_REQUEST');
  t.equal((await hub.api('GET', '/v1/agents/01NOPE/metrics')).status, 404);
  agent.close();
});

eachBackend(t, 'with tiny batches every sample is stored; fractional byte counts are rounded, not refused', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { maxBatchItems: 100, flushIntervalMs: 1000, metricSamplesPerMinute: 100_000 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  const now = Math.floor(Date.now() / 1000);
  const sample = { ts: now, cpu_pct: 1, mem_used: 1.5, mem_total: 1024.4, swap_used: 0.5, load1: 0, load5: 0, load15: 0, disks: [], net: [] };
  for (let i = 0; i < 20; i++) agent.send('metrics', { samples: Array.from({ length: 50 }, () => sample) }, { id: `mb-${i}` });
  await agent.acked(Array.from({ length: 20 }, (_, i) => `mb-${i}`));
  const res = await hub.api('GET', `/v1/agents/${id}/metrics?limit=10000`);
  t.equal(res.body.samples.length, 1000);
  t.match(res.body.samples[0], { mem_used: 2, mem_total: 1024, swap_used: 1 });
  agent.close();
});

eachBackend(t, 'an event keeps its envelope time only when it was sent seconds before it arrived', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  // The hub's time stands at x.500 s: a frame stamped x-1 (whole seconds) looks 1.5 s old.
  hub.clock.fastForward();
  hub.clock.advance(1500 - (hub.clock.now().getTime() % 1000));
  const now = hub.clock.now().getTime();
  const second = Math.floor(now / 1000);
  agent.send('alert', { type: 'systemd', source: 'a.service', message: 'failed' }, { id: 'last-second', ts: second - 1 });
  agent.send('alert', { type: 'systemd', source: 'b.service', message: 'failed' }, { id: 'resent', ts: second - 5 });
  await agent.acked(['last-second', 'resent']);
  const incidents = (await hub.api('GET', `/v1/agents/${id}/incidents`)).body.incidents as { source: string; first_seen_at: string }[];
  const seen = (source: string) => Date.parse(incidents.find((i) => i.source === source)!.first_seen_at);
  // Stamped in the second before: a fresh frame whose stamp lost its milliseconds (12.999 read at
  // 13.001), so the hub's time, not a time before what the hub stamped since.
  t.equal(seen('a.service'), now, 'the hub time for a frame stamped the second before');
  t.equal(seen('b.service'), (second - 5) * 1000, 'its own time for a frame sent 5 s before');
  agent.close();
});

eachBackend(t, 'duplicate ids are acked every time and stored once', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const alert = { type: 'systemd', source: 'nginx.service', message: 'failed', exit_code: 1 };
  let agent = await ScriptedAgent.connect(hub.wsUrl, token);
  for (let i = 0; i < 3; i++) agent.send('alert', alert, { id: 'alert-1' });
  agent.send('metrics', { samples: [{ ts: Math.floor(Date.now() / 1000), cpu_pct: 1, mem_used: 1, mem_total: 2, load1: 0, load5: 0, load15: 0, disks: [], net: [] }] }, { id: 'metrics-1' });
  agent.send('metrics', { samples: [{ ts: Math.floor(Date.now() / 1000), cpu_pct: 1, mem_used: 1, mem_total: 2, load1: 0, load5: 0, load15: 0, disks: [], net: [] }] }, { id: 'metrics-1' });
  await agent.acked(['alert-1', 'metrics-1']);
  // An outbox replay after a reconnect resends the same id.
  agent.close();
  agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('alert', alert, { id: 'alert-1' });
  await agent.acked(['alert-1']);
  let incidents = (await hub.api('GET', `/v1/agents/${id}/incidents`)).body.incidents;
  t.equal(incidents.length, 1);
  t.equal(incidents[0].count, 1, 'one alert, however often it was sent');
  t.equal((await hub.api('GET', `/v1/agents/${id}/metrics`)).body.samples.length, 1, 'one metrics batch');

  // New ids for the same fingerprint are repeats of the open incident.
  agent.send('alert', { ...alert, message: 'failed again', exit_code: 2 }, { id: 'alert-2' });
  agent.send('alert', alert, { id: 'alert-3' });
  await agent.acked(['alert-2', 'alert-3']);
  incidents = (await hub.api('GET', `/v1/agents/${id}/incidents`)).body.incidents;
  t.equal(incidents.length, 1);
  t.match(incidents[0], { count: 3, message: 'failed', exit_code: 1 });
  t.ok(Date.parse(incidents[0].last_seen_at) >= Date.parse(incidents[0].first_seen_at));
  agent.close();
});

eachBackend(t, 'envelope ids are remembered for the retention window, then pruned', async (t, backend) => {
  const db = await backend.open(t);
  const hub = await startHub(t, db, { dedupeRetentionDays: 30 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('alert', { type: 'log', source: 'old', message: 'm' }, { id: 'old-1' });
  agent.send('heartbeat', {}, { id: 'old-2' });
  await agent.acked(['old-1', 'old-2']);
  hub.clock.advance(31 * 86_400_000);
  agent.send('alert', { type: 'log', source: 'new', message: 'm' }, { id: 'new-1' });
  agent.send('heartbeat', {}, { id: 'new-2' });
  await agent.acked(['new-1', 'new-2']);
  t.match(await hub.app.hub.retention.run(), { envelopeIds: 2 }, "31 days on the hub's clock: the old ids (an event's and a heartbeat's) go");
  const left = await db.db.selectFrom('received_envelopes').select('msg_id').where('agent_id', '=', id).execute();
  t.same(left.map((r) => r.msg_id).sort(), ['new-1', 'new-2']);
  agent.close();
});

eachBackend(t, 'resolve closes the incident; an alert of a resolve it never saw changes nothing', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('alert', { type: 'systemd', source: 'db.service', message: 'down' }, { id: 'a1' });
  agent.send('alert', { type: 'systemd', source: 'web.service', message: 'down' }, { id: 'a2' });
  agent.send('resolve', { type: 'systemd', source: 'db.service', message: 'active' }, { id: 'r1' });
  agent.send('resolve', { type: 'systemd', source: 'never-failed.service' }, { id: 'r2' });
  await agent.acked(['a1', 'a2', 'r1', 'r2']);
  const all = (await hub.api('GET', `/v1/agents/${id}/incidents`)).body.incidents;
  t.equal(all.length, 2, 'no incident for a resolve of nothing');
  const resolved = (await hub.api('GET', `/v1/incidents?agent_id=${id}&status=resolved`)).body.incidents;
  t.equal(resolved.length, 1);
  t.match(resolved[0], { source: 'db.service', status: 'resolved', resolved_by: 'agent' });
  t.match(all.find((i: { source: string }) => i.source === 'web.service'), { status: /^(new|analyzing|open)$/ });
  agent.close();
});

eachBackend(t, 'incidents are classified as they are stored, and again on repeats', async (t, backend) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rulesFile = path.join(dir, 'rules.json');
  writeFileSync(rulesFile, JSON.stringify([{ name: 'payments', severity: 'critical', category: 'payments', pattern: 'stripe' }]));
  const hub = await startHub(t, await backend.open(t), { rulesFile });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('alert', { type: 'systemd', source: 'nginx.service', message: "nginx.service: Failed with result 'exit-code'.", logs: 'nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)', status: 'exit-code' }, { id: 'c1' });
  agent.send('alert', { type: 'log', source: '/var/log/app.log', message: 'stripe webhook rejected' }, { id: 'c2' });
  for (let i = 0; i < 2; i++) agent.send('alert', { type: 'systemd', source: 'api.service', message: "api.service: Failed with result 'exit-code'." }, { id: `c3-${i}` });
  await agent.acked(['c1', 'c2', 'c3-0', 'c3-1']);
  const bySource = async (): Promise<Record<string, any>> => Object.fromEntries(((await hub.api('GET', `/v1/agents/${id}/incidents`)).body.incidents as { source: string }[]).map((i) => [i.source, i]));
  let incidents = await bySource();
  t.match(incidents['nginx.service'], { severity: 'high', category: 'network', rule: 'address_in_use' });
  t.match(incidents['/var/log/app.log'], { severity: 'critical', category: 'payments', rule: 'payments' }, 'operator rules come first');
  t.match(incidents['api.service'], { count: 2, severity: 'high', rule: 'service_failed' });
  agent.send('alert', { type: 'systemd', source: 'api.service', message: "api.service: Failed with result 'exit-code'." }, { id: 'c3-2' });
  await agent.acked(['c3-2']);
  incidents = await bySource();
  t.match(incidents['api.service'], { count: 3, severity: 'critical', rule: 'unit_failing_repeatedly' }, 'the third failure in 10 minutes escalates');
  t.match((await hub.api('GET', `/v1/incidents/${incidents['api.service'].id}`)).body, { severity: 'critical', category: 'availability' });
  agent.close();
});

eachBackend(t, 'an exec_result for no known request is acked and ignored', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('exec_result', { request_id: 'nope', ok: true, exit_code: 0, stdout: 'x', stderr: '', duration_ms: 1, truncated: false }, { id: 'er-1' });
  await agent.acked(['er-1']);
  t.equal((await hub.api('GET', '/v1/exec/nope')).status, 404);
  agent.close();
});

eachBackend(t, 'closing the hub flushes writes still waiting for their batch', async (t, backend) => {
  const db = await backend.open(t);
  const hub = await startHub(t, db, { flushIntervalMs: 60_000, bulkIntervalMs: 60_000 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  const conn = hub.app.hub.registry.get(id)!;
  conn.lastSeenMs = 0; // set again when the alert is read (the same millisecond as the welcome or not)
  agent.send('alert', { type: 'systemd', source: 'late.service', message: 'failed' }, { id: 'late-1' });
  await eventually(async () => conn.lastSeenMs > 0, 5000, 'frame received');
  t.equal(hub.app.hub.writer.stats.batches, 0, 'nothing written yet');
  await hub.close();
  const rows = await db.db.selectFrom('incidents').select(['source']).where('agent_id', '=', id).execute();
  t.same(rows, [{ source: 'late.service' }]);
});

eachBackend(t, "a stopping hub frees its agents and audits each one's disconnection, many in one statement, before its database closes", async (t, backend) => {
  const db = await backend.open(t);
  const hub = await startHub(t, db);
  const hubId = hub.app.hub.cluster.hubId;
  const enrolled = await Promise.all(Array.from({ length: 60 }, (_, i) => hub.enroll({ hostname: `web-${i}` })));
  const agents = await Promise.all(enrolled.map(({ token }) => ScriptedAgent.connect(hub.wsUrl, token)));
  await Promise.all(agents.map((a) => a.next('welcome')));
  // And one that stops reading: it never answers the close handshake, and is cut off 2 s later.
  const silent = await hub.enroll({ hostname: 'silent' });
  const raw = net.connect(hub.port, '127.0.0.1');
  raw.write(
    `GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${silent.token}\r\n\r\n`,
  );
  await new Promise<void>((resolve) => raw.once('data', () => resolve()));
  raw.pause();
  t.teardown(() => raw.destroy());
  const held = () => db.db.selectFrom('agents').select(({ fn }) => fn.countAll<string>().as('n')).where('hub_id', '=', hubId).executeTakeFirstOrThrow();
  await eventually(async () => Number((await held()).n) === 61, 5000, 'every agent claimed');

  await hub.close();
  t.equal(Number((await held()).n), 0, 'no agent held by the stopped hub');
  const rows = await sql<{ agent_id: string; code: number; tx: string }>`
    SELECT agent_id, (detail->>'code')::int AS code, xmin::text AS tx FROM incident_events WHERE kind = 'agent_disconnected'`.execute(db.db);
  const codes = new Map(rows.rows.map((r) => [r.agent_id, r.code]));
  t.equal(rows.rows.length, 61, 'one disconnection per agent on the audit trail');
  t.ok(enrolled.every(({ id }) => codes.get(id) === 1012), 'each told the hub is restarting (1012)');
  t.equal(codes.get(silent.id), 1006, 'the silent one, cut off');
  const statements = new Set(rows.rows.map((r) => r.tx)).size;
  t.ok(statements <= 10, `61 disconnections in ${statements} transactions`);
  await Promise.all(agents.map((a) => a.closed));
});

eachBackend(t, "a closed connection frees its agent only if it is still this hub's by that connection's number; the audit row is written either way", async (t, backend) => {
  const db = await backend.open(t);
  const hub = await startHub(t, db);
  const hubId = hub.app.hub.cluster.hubId;
  const ids = (await Promise.all(Array.from({ length: 5 }, (_, i) => hub.enroll({ hostname: `web-${i}` })))).map((e) => e.id);
  const at = new Date();
  const claimed = await claimAgents(db.db, ids.map((agentId) => ({ agentId, at })), hubId, OFFLINE_FINGERPRINT);
  const epoch = (i: number) => claimed[i]!.epoch;
  await sql`UPDATE agents SET hub_id = 'another-hub' WHERE id = ${ids[4]!}`.execute(db.db);
  await releaseAgents(
    db.db,
    [
      { agentId: ids[0]!, epoch: epoch(0), closed: { at, code: 1000 } }, // this connection: freed
      { agentId: ids[1]!, epoch: epoch(1) - 1, closed: { at, code: 4409 } }, // an older one: a newer connection holds it
      { agentId: ids[2]!, epoch: null, closed: { at, code: 1006 } }, // closed before its claim returned
      { agentId: ids[3]!, epoch: epoch(3) }, // its claim returned after it closed: freed, audited before
      { agentId: ids[4]!, epoch: epoch(4), closed: { at, code: 1001 } }, // another hub's by now
    ],
    hubId,
  );
  const holders = await db.db.selectFrom('agents').select(['id', 'hub_id']).where('id', 'in', ids).execute();
  const holder = new Map(holders.map((r) => [r.id, r.hub_id]));
  t.same(ids.map((id) => holder.get(id)), [null, hubId, hubId, null, 'another-hub']);
  const audit = await db.db.selectFrom('incident_events').select(['agent_id', 'detail', 'actor']).where('kind', '=', 'agent_disconnected').execute();
  t.same(
    new Map(audit.map((r) => [r.agent_id, r.detail])),
    new Map([
      [ids[0], { code: 1000 }],
      [ids[1], { code: 4409 }],
      [ids[2], { code: 1006 }],
      [ids[4], { code: 1001 }],
    ]),
  );
  t.ok(audit.every((r) => r.actor === 'hub'));
  await releaseAgents(db.db, [], hubId);
});

eachBackend(t, 'state survives a hub restart', async (t, backend) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-restart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const schema = `restart_${randomBytes(4).toString('hex')}`;
  const open = (tt: typeof t) => backend.open(tt, backend.name === 'pglite' ? { pgliteDir: dir } : { searchPath: schema });

  let id = '';
  let token = '';
  await t.test('first run', async (t) => {
    const hub = await startHub(t, await open(t));
    ({ id, token } = await hub.enroll({ hostname: 'persist-1' }));
    const agent = await ScriptedAgent.connect(hub.wsUrl, token);
    agent.send('hello', HELLO);
    agent.send('alert', { type: 'systemd', source: 'nginx', message: 'crashed' }, { id: 'p-1' });
    agent.send('heartbeat', { uptime_s: 42 });
    await agent.acked(['p-1']);
    await hub.close();
    t.equal((await agent.closed).code, 1012, 'agents are told the hub is restarting');
  });
  await t.test('second run', async (t) => {
    const hub = await startHub(t, await open(t));
    const agentView = await hub.api('GET', `/v1/agents/${id}`);
    t.match(agentView.body, { hostname: 'persist-1', status: 'offline', actions: HELLO.actions, stats: { uptime_s: 42 } });
    const incidents = (await hub.api('GET', `/v1/agents/${id}/incidents`)).body.incidents;
    t.match(incidents, [{ source: 'nginx', count: 1 }]);
    const agent = await ScriptedAgent.connect(hub.wsUrl, token);
    t.equal((await agent.next('welcome')).agent_id, id, 'the token still works');
    agent.send('alert', { type: 'systemd', source: 'nginx', message: 'crashed' }, { id: 'p-1' });
    await agent.acked(['p-1']);
    t.equal((await hub.api('GET', `/v1/agents/${id}/incidents`)).body.incidents[0].count, 1, 'dedupe survives too');
    agent.close();
  });
  if (backend.name === 'postgres') {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
});

eachBackend(t, "an alert's logs are kept up to 256 KiB: longer ones keep their beginning and end, and the rules still read the end", async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  const logs = 'first line\n' + 'filler line\n'.repeat(150_000) + 'kernel: Out of memory: Killed process 42 (worker)\n';
  agent.send('alert', { type: 'log', source: '/var/log/big.log', message: 'worker died', logs }, { id: 'big-logs' });
  await agent.acked(['big-logs']);
  const listed = (await hub.api('GET', `/v1/incidents?agent_id=${id}`)).body.incidents[0];
  const full = (await hub.api('GET', `/v1/incidents/${listed.id}`)).body;
  t.ok(full.logs.startsWith('first line\nfiller line\n'), 'the beginning is kept');
  t.ok(full.logs.endsWith('Killed process 42 (worker)\n'), 'the end is kept');
  t.match(full.logs, /\n\[… \d+ characters cut by the hub …\]\n/, 'with a line saying what was cut');
  t.ok(full.logs.length < 256 * 1024 + 100, `stored ${full.logs.length} characters of ${logs.length}`);
  t.equal(full.rule, 'oom_kill', 'classified from the end of the logs');
  agent.close();
});
