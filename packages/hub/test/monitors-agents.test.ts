/**
 * Monitors run by agents (protocol 2), with scripted agents over real sockets on both databases:
 * each agent gets the checks it runs after its hello and again when they change (an agent of
 * protocol 1 never does), its results decide its location, a quorum of locations decides the
 * monitor, an agent cut off turns its location unknown, all of them offline make the monitor
 * unknown, and what was stored survives a restart of the hub.
 */
import t from 'tap';
import type { PayloadOf } from '@opspilot/protocol';
import { recordResult } from '../src/storage/monitors.ts';
import { HELLO, ScriptedAgent, TestClock, eachBackend, eventually, startHub, type TestHub } from './helpers.ts';

const monitor = async (hub: TestHub, id: string) => (await hub.api('GET', `/v1/monitors/${id}`)).body;
const incidentOf = async (hub: TestHub, key: string) => ((await hub.api('GET', '/v1/incidents?integration=monitors')).body.incidents as any[]).find((i) => i.source === key);

let seq = 0;
/** Send one check result and wait for its ack (stored). */
async function report(agent: ScriptedAgent, clock: TestClock, monitorId: string, ok: boolean, extra: Partial<PayloadOf<'check_results'>['results'][number]> = {}): Promise<void> {
  const id = `r-${++seq}`;
  agent.send('check_results', { results: [{ monitor_id: monitorId, at: clock.now().getTime() / 1000, ok, response_ms: ok ? 12 : 5000, ...(ok ? { status: 200 } : { status: 503, error: 'status 503 is not accepted (200-399)' }), ...extra }] }, { id });
  await agent.acked([id]);
}

async function agentOf(hub: TestHub, hostname: string, labels: Record<string, string>, protocol: number): Promise<{ id: string; agent: ScriptedAgent }> {
  const { id, token } = await hub.enroll({ hostname, labels });
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.clock = hub.clock;
  await agent.next('welcome');
  agent.send('hello', { ...HELLO, hostname, protocol }, { id: `hello-${hostname}` });
  await agent.acked([`hello-${hostname}`]);
  return { id, agent };
}

eachBackend(t, 'agents run a monitor: sets after hello and on change, a quorum of three decides, one cut off, all offline is unknown, a restart keeps it', async (t, backend) => {
  const db = await backend.open(t);
  const clock = new TestClock();
  let hub = await startHub(t, db, { heartbeatIntervalS: 10 }, false, clock);

  // A monitor made before the agents connect reaches them with their hello.
  const made = await hub.api('POST', '/v1/monitors', {
    name: 'shop',
    kind: 'http',
    target: 'http://shop.internal:8080/health',
    run_on: { labels: { site: 'dc1' } },
    failure_threshold: 2,
    success_threshold: 1,
    conditions: ['[STATUS] == 200'],
  });
  t.equal(made.status, 201, made.text);
  const id = made.body.id as string;
  const edges = [];
  for (const name of ['edge-0', 'edge-1', 'edge-2']) edges.push(await agentOf(hub, name, { site: 'dc1', role: 'edge' }, 2));
  const legacy = await agentOf(hub, 'legacy-1', { site: 'dc2' }, 1);
  const sets = await Promise.all(edges.map((e) => e.agent.next('monitors')));
  for (const set of sets) t.same(set.monitors, [{ id, kind: 'http', target: 'http://shop.internal:8080/health', interval_s: 60, timeout_ms: 10_000, conditions: ['[STATUS] == 200'] }], 'what to check and how often, nothing else');
  t.equal(new Set(sets.map((s) => s.version)).size, 1, 'the same set has the same version');

  // One naming an agent of protocol 1: it is never sent (it would not understand); its location stays unknown.
  const legacyMonitor = (await hub.api('POST', '/v1/monitors', { name: 'legacy-db', kind: 'tcp', target: 'db.internal:5432', run_on: { agents: [legacy.id] } })).body;
  legacy.agent.send('heartbeat', {}, { id: 'legacy-beat' });
  await legacy.agent.acked(['legacy-beat']); // anything sent before this ack has arrived by now
  t.equal(legacy.agent.received.filter((m) => m.type === 'monitors').length, 0, 'an agent of protocol 1 gets no monitors');
  t.match(await monitor(hub, legacyMonitor.id), { status: 'unknown', locations: [{ location: legacy.id, name: 'legacy-1', state: 'unknown' }] });

  for (const e of edges) await report(e.agent, clock, id, true);
  await eventually(async () => (await monitor(hub, id)).status === 'up', 5000, 'up from three agents');
  t.match((await monitor(hub, id)).locations, edges.map((e, i) => ({ location: e.id, name: `edge-${i}`, state: 'up', last_status: 200 })));

  // One location down is one host's trouble, not an outage.
  await report(edges[0]!.agent, clock, id, false);
  await report(edges[0]!.agent, clock, id, false);
  await eventually(async () => (await monitor(hub, id)).locations[0].state === 'down', 5000, 'edge-0 down');
  t.equal((await monitor(hub, id)).status, 'up', 'one of three down: up');
  t.notOk(await incidentOf(hub, id));

  // Two of three are a quorum: one incident, naming where it failed.
  await report(edges[1]!.agent, clock, id, false);
  await report(edges[1]!.agent, clock, id, false);
  const incident = await eventually(() => incidentOf(hub, id), 5000, 'the incident');
  t.match(incident, { type: 'http', service: 'shop', resolved_at: null, message: /^shop: down from edge-0, edge-1 \(status 503 is not accepted/ });
  t.match((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.logs, /edge-0: 2 failures in a row; last status 503, 5000 ms/);
  t.equal((await monitor(hub, id)).status, 'down');
  await report(edges[1]!.agent, clock, id, false);
  t.equal(((await hub.api('GET', '/v1/incidents?integration=monitors')).body.incidents as any[]).filter((i) => i.source === id).length, 1, 'one incident, however many failures follow');

  // edge-2 (the one that sees it up) is cut off: past the offline deadline its location is unknown; two of three still down.
  edges[2]!.agent.ws.terminate();
  // The two that remain heartbeat meanwhile, as live agents do: the hub's own sweep may run at
  // any moment on the advanced clock, and must find only edge-2 quiet. (Advanced 31 s at once, a
  // sweep before their results were written made all three unknown.)
  clock.advance(20_000);
  for (const e of edges.slice(0, 2)) {
    e.agent.send('heartbeat', {}, { id: `beat-${e.id}` });
    await e.agent.acked([`beat-${e.id}`]);
  }
  clock.advance(11_000);
  for (const e of edges.slice(0, 2)) await report(e.agent, clock, id, false);
  await hub.app.hub.writer.flush(); // their last-seen marks (the bulk lane) written too, as they are within 100 ms
  await hub.app.hub.monitors.sweep();
  t.match((await monitor(hub, id)).locations.map((l: any) => l.state), ['down', 'down', 'unknown']);
  t.equal((await monitor(hub, id)).status, 'down', 'the quorum holds without the agent cut off');

  // The two that remain see it up again: resolved.
  for (const e of edges.slice(0, 2)) await report(e.agent, clock, id, true);
  await eventually(async () => (await hub.api('GET', `/v1/incidents/${incident.id}`)).body.status === 'resolved', 5000, 'resolved');
  t.equal((await monitor(hub, id)).status, 'up');

  // A result for a monitor an agent does not run, or that does not exist, is acked and dropped.
  await report(legacy.agent, clock, id, false);
  await report(edges[0]!.agent, clock, '01NOSUCHMONITOR000000000000', false);
  t.notOk((await monitor(hub, id)).locations.some((l: any) => l.location === legacy.id), 'legacy-1 does not run shop');

  // A change reaches the agents that run it; a removal too.
  t.equal((await hub.api('PATCH', `/v1/monitors/${id}`, { target: 'http://shop.internal:8081/health' })).status, 200);
  t.match(await edges[0]!.agent.next('monitors', (s) => s.version !== sets[0]!.version), { monitors: [{ id, target: 'http://shop.internal:8081/health' }] });
  t.equal((await hub.api('PATCH', `/v1/monitors/${id}`, { run_on: { agents: [edges[1]!.id] } })).status, 200);
  t.same((await edges[0]!.agent.next('monitors', (s) => s.monitors.length === 0)).monitors, [], 'an agent no longer named gets an empty set');
  t.match((await monitor(hub, id)).locations, [{ location: edges[1]!.id, state: 'up' }], 'only the agents it runs on are its locations');
  t.equal((await hub.api('PATCH', `/v1/monitors/${id}`, { run_on: { labels: { site: 'dc1' } } })).status, 200);

  // Every agent offline: unknown, not up or down.
  for (const e of edges.slice(0, 2)) e.agent.ws.terminate();
  clock.advance(31_000);
  await hub.app.hub.monitors.sweep();
  t.match(await monitor(hub, id), { status: 'unknown', locations: [{ state: 'unknown' }, { state: 'unknown' }, { state: 'unknown' }] });

  // A restart of the hub keeps every result and state.
  const before = (await hub.api('GET', `/v1/monitors/${id}/results?limit=100`)).body.results as any[];
  t.equal(before.length, 12, 'every result was stored (3 + 2 + 3 + 2 + 2; the two dropped are not)');
  await hub.close();
  hub = await startHub(t, db, { heartbeatIntervalS: 10 }, false, clock);
  t.same((await hub.api('GET', `/v1/monitors/${id}/results?limit=100`)).body.results, before, 'the same results after a restart');
  t.match(await monitor(hub, id), { status: 'unknown', uptime: { '24h': { results: 12, uptime_pct: 41.667 } } });
  // And an agent that comes back gets its set again.
  const back = await ScriptedAgent.connect(hub.wsUrl, (await hub.api('POST', `/v1/agents/${edges[0]!.id}/token`)).body.token);
  await back.next('welcome');
  back.send('hello', { ...HELLO, hostname: 'edge-0', protocol: 2 });
  t.match(await back.next('monitors'), { monitors: [{ id }] });
  back.close();
});

eachBackend(t, 'results older than the raw window become one row per location and hour; uptime counts every check', async (t, backend) => {
  const db = await backend.open(t);
  const clock = new TestClock();
  const hub = await startHub(t, db, { monitorResultsRawDays: 7, monitorResultsRetentionDays: 30 }, false, clock);
  const { id: agentId } = await hub.enroll({ hostname: 'edge-0' });
  const m = (await hub.api('POST', '/v1/monitors', { name: 'old', kind: 'tcp', target: 'db.internal:5432', run_on: { agents: [agentId] } })).body;
  const now = clock.now().getTime();
  const hour = (h: number) => Math.floor((now - 10 * 86_400_000) / 3_600_000) * 3_600_000 + h * 3_600_000;
  let n = 0;
  const put = (at: number, ok: boolean, ms: number, location = agentId) =>
    recordResult(db.db, { id: `res-${++n}`, monitor_id: m.id, location, at: new Date(at), ok, status: null, response_ms: ms, error: ok ? null : 'refused', cert_expires_at: null });
  // Two hours ten days ago: 60 checks each, 6 failed in the first; plus one 31 days ago (expired) and one an hour ago (kept as is).
  for (let i = 0; i < 60; i++) await put(hour(0) + i * 60_000, i >= 6, 10 + i);
  for (let i = 0; i < 60; i++) await put(hour(1) + i * 60_000, true, 20);
  await put(now - 31 * 86_400_000, false, 1);
  await put(now - 3_600_000, true, 5);
  const report = await hub.app.hub.retention.run(clock.now());
  t.match(report, { downsampledResults: 120, expiredResults: 1 });
  const rows = (await hub.api('GET', `/v1/monitors/${m.id}/results?since=${new Date(now - 30 * 86_400_000).toISOString()}`)).body.results as any[];
  t.equal(rows.length, 3, 'two hourly rows and the recent result');
  const [recent, second, first] = rows;
  t.match(recent, { period_s: 0, checks: 1, ok_checks: 1, response_ms: 5 });
  t.match(second, { period_s: 3600, checks: 60, ok_checks: 60, ok: true, response_ms: 20, max_response_ms: 20, at: new Date(hour(1)).toISOString() });
  t.match(first, { period_s: 3600, checks: 60, ok_checks: 54, ok: false, response_ms: 39.5, max_response_ms: 69, error: 'refused' });
  t.match((await hub.api('GET', `/v1/monitors/${m.id}`)).body.uptime['30d'], { results: 121, uptime_pct: 95.041 }, '115 of 121 checks ok');
  // A late result for an hour already downsampled is added into it.
  await put(hour(0) + 30_000, false, 100);
  t.match(await hub.app.hub.retention.run(clock.now()), { downsampledResults: 1 });
  const again = (await hub.api('GET', `/v1/monitors/${m.id}/results?since=${new Date(now - 30 * 86_400_000).toISOString()}`)).body.results as any[];
  t.match(again[2], { checks: 61, ok_checks: 54, max_response_ms: 100 });
  t.equal(again.length, 3);
});

eachBackend(t, 'a certificate an agent sees near its expiry opens a low incident ahead; renewed, it resolves', async (t, backend) => {
  const clock = new TestClock();
  const hub = await startHub(t, await backend.open(t), {}, false, clock);
  const edge = await agentOf(hub, 'edge-0', { site: 'dc1' }, 2);
  const m = (await hub.api('POST', '/v1/monitors', { name: 'shop-cert', kind: 'tls', target: 'shop.internal:443', run_on: { agents: [edge.id] }, cert_warn_days: 14 })).body;
  await edge.agent.next('monitors');
  const day = 86_400;
  const now = clock.now().getTime() / 1000;
  await report(edge.agent, clock, m.id, true, { status: undefined, cert_expires_at: now + 60 * day });
  await eventually(async () => (await monitor(hub, m.id)).status === 'up', 5000, 'up');
  t.notOk(await incidentOf(hub, `cert:${m.id}`), 'sixty days left: nothing to say');
  await report(edge.agent, clock, m.id, true, { cert_expires_at: now + 5 * day + 3600 });
  const warned = await eventually(() => incidentOf(hub, `cert:${m.id}`), 5000, 'the warning');
  t.match(warned, { type: 'tls', severity: 'low', service: 'shop-cert', message: /^shop-cert: the certificate expires in 5 days/ });
  await report(edge.agent, clock, m.id, true, { cert_expires_at: now + 90 * day });
  await eventually(async () => (await hub.api('GET', `/v1/incidents/${warned.id}`)).body.status === 'resolved', 5000, 'resolved once renewed');
  t.equal((await monitor(hub, m.id)).status, 'up', 'a certificate warning is not an outage');

  // An agent whose clock is days ahead: its result is taken at the hub's time (give or take a minute), not in the future.
  await report(edge.agent, clock, m.id, true, { at: now + 10 * day });
  const newest = (await hub.api('GET', `/v1/monitors/${m.id}/results?since=${new Date((now - day) * 1000).toISOString()}&until=${new Date((now + 20 * day) * 1000).toISOString()}&limit=1`)).body.results[0];
  t.ok(Date.parse(newest.at) <= clock.now().getTime() + 60_000, `stored at ${newest.at}, not ten days ahead`);
});
