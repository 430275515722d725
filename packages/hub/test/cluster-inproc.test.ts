// Several hubs on one PostgreSQL, in one process (the process-level runs behind HAProxy are in
// cluster.test.ts): messages between hubs, hostile ones, dead hubs, the lead passing on.
import t, { type Test } from 'tap';
import pg from 'pg';
import { newId } from '@opspilot/protocol';
import { HELLO, postgres, runningAgent, startHub, type TestHub } from './helpers.ts';
import type { Db, HubDatabase } from '../src/storage/database.ts';
import { RULE } from './rules.ts';
import { MAX_MESSAGE_BYTES, split } from '../src/cluster.ts';
import { claimAgents, clusterNames, registerHub, releaseAgents, removeHub, type ClusterChannel } from '../src/storage/cluster.ts';
import { storeBulk } from '../src/storage/ingest-batch.ts';
import { OFFLINE_FINGERPRINT, sweepOfflineAgents } from '../src/incidents/offline.ts';
import { completeExecRequests, createExecRequest } from '../src/storage/exec-requests.ts';

/** One agent's claim, alone in its statement. */
const claimOne = async (db: Db, agentId: string, hubId: string, notice: ClusterChannel | null) => (await claimAgents(db, [{ agentId, at: new Date() }], hubId, OFFLINE_FINGERPRINT, notice))[0];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.test('an event too large for one message is cut into pieces that each fit, keeping every id once', async (t) => {
  const ids = Array.from({ length: 2000 }, () => newId());
  const pieces = split({ incidentIds: ids, opened: ids.slice(0, 700) });
  t.ok(pieces.length > 1, `${pieces.length} pieces`);
  t.ok(pieces.every((p) => Buffer.byteLength(JSON.stringify({ k: 'event', name: 'incident.changed', data: p, from: newId(), to: newId() })) <= MAX_MESSAGE_BYTES), 'each fits');
  t.same(pieces.flatMap((p) => p.incidentIds as string[]), ids);
  t.same(pieces.flatMap((p) => p.opened as string[]), ids.slice(0, 700));
  t.same(split({ incidentIds: ['a'], opened: [] }), [{ incidentIds: ['a'], opened: [] }], 'a small one is one piece');
});

/** Two hubs on one new PostgreSQL database; a, started first, leads. */
async function twoHubs(t: Test): Promise<{ db: HubDatabase; a: TestHub; b: TestHub }> {
  const db = await postgres.open(t);
  const a = await startHub(t, db);
  const b = await startHub(t, db);
  t.same([a.app.hub.cluster.isLeader, b.app.hub.cluster.isLeader], [true, false], 'the first started leads');
  return { db, a, b };
}

if (!process.env.DATABASE_URL) {
  t.comment('not run: several hubs need PostgreSQL (set DATABASE_URL)');
} else {
  t.test('hubs on one database: hostile messages cost nothing, a silent or expired hub fails an exec at once, the lead passes when the leader stops', async (t) => {
    t.setTimeout(120_000);
    const { db, a, b } = await twoHubs(t);
    const { id, token } = await a.enroll({ hostname: 'web-1' });
    const agent = await runningAgent(b, token, () => ({ ok: true, exit_code: 0, stdout: 'fine', stderr: '', duration_ms: 1, truncated: false }));
    let closedWith: number | null = null;
    void agent.closed.then((c) => (closedWith = c.code));
    const exec = () => a.api('POST', '/v1/admin/exec', { agent_id: id, command: 'service_status', params: { unit: 'nginx.service' }, timeout_ms: 3000 });
    await until('the agent held by hub b', async () => (await exec()).status === 200);

    // Anyone who can reach the database can NOTIFY the channel: nothing it sends is acted on unless well formed.
    const { channel } = await clusterNames(db.db);
    const raw = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await raw.connect();
    t.teardown(() => raw.end());
    const hubA = a.app.hub.cluster.hubId;
    const hostile = [
      'not json',
      '[]',
      'null',
      JSON.stringify({ k: 'exec' }),
      JSON.stringify({ k: 'exec', from: 'x', to: hubA, id: { $ne: 1 }, agent: id, command: 'service_status', params: {}, timeout_ms: 1 }),
      JSON.stringify({ k: 'exec_done', from: 'x', ids: 'all' }),
      JSON.stringify({ k: 'exec_refused', from: 'x', id: 'abc', code: 'HUB_INTERNAL', message: 'x' }),
      JSON.stringify({ k: 'replaced', from: 'x', agent: id, epoch: 1e300 }),
      JSON.stringify({ k: 'replaced', from: 'x', agent: id, epoch: 'Infinity' }),
      JSON.stringify({ k: 'event', from: 'x', name: '__proto__', data: {} }),
      JSON.stringify({ k: 'event', from: 'x', name: 'monitor.results', data: { monitorIds: ['m'], certificates: [{ at: 5 }] } }),
      JSON.stringify({ k: 'event', from: 'x', name: 'incident.changed', data: { incidentIds: 'x' } }),
      JSON.stringify({ k: 'nonsense', from: 'x' }),
      JSON.stringify({ k: 'exec', from: 'x', padding: 'z'.repeat(7000) }),
    ];
    for (const payload of hostile) await raw.query('SELECT pg_notify($1, $2)', [channel, payload]);
    await sleep(300);
    const after = await exec();
    t.match(after, { status: 200, body: { status: 'succeeded' } }, 'both hubs go on serving');
    t.equal(closedWith, null, "the agent's connection stands: no forged 'replaced' closed it");

    // A hub that holds an agent but never answers (it died without its lease running out yet):
    // the exec fails in seconds, not after its timeout, and its row says so.
    const ghost = newId();
    await registerHub(db.db, { id: ghost, name: 'ghost', startedAt: new Date(), leaseMs: 60_000 });
    const { id: orphan } = await a.enroll({ hostname: 'web-2' });
    await raw.query(`SELECT set_config('search_path', $1, false)`, [await searchPath(db)]);
    await raw.query('UPDATE agents SET hub_id = $1 WHERE id = $2', [ghost, orphan]);
    const started = Date.now();
    const silent = await a.api('POST', '/v1/admin/exec', { agent_id: orphan, command: 'service_status', params: { unit: 'x.service' }, timeout_ms: 60_000 });
    t.match(silent, { status: 502, body: { error: { code: 'HUB_EXEC_NOT_DELIVERED' } } });
    t.ok(Date.now() - started < 10_000, `answered in ${Date.now() - started} ms`);
    const row = (await a.api('GET', `/v1/exec?agent_id=${orphan}`)).body.execs[0];
    t.equal(row.status, 'undelivered');

    // A hub whose lease ran out holds nobody: offline at once.
    await raw.query(`UPDATE hubs SET lease_until = now() - interval '1 second' WHERE id = $1`, [ghost]);
    t.match(await a.api('POST', '/v1/admin/exec', { agent_id: orphan, command: 'service_status', params: { unit: 'x.service' } }), { status: 409, body: { error: { code: 'HUB_AGENT_OFFLINE' } } });

    // The leader stops: the other takes the lead (and the background work) within seconds.
    await a.close();
    await until('hub b leads', () => b.app.hub.cluster.isLeader, 10_000);
    t.ok(b.app.hub.cluster.isLeader, 'the lead passed');
    agent.send('alert', { type: 'systemd', source: 'nginx.service', message: 'failed' }, { id: 'al-1' });
    await agent.acked(['al-1']);
    const incident = await until('the alert analysed by the new leader', async () => {
      const events = (await b.api('GET', '/v1/audit?order=desc&limit=50')).body.events as { kind: string }[];
      return events.find((e) => e.kind === 'analyzed');
    });
    t.ok(incident, 'analysed');
    const hubs = await until('the hub whose lease ran out removed by the new leader', async () => {
      const list = (await b.api('GET', '/v1/hubs')).body.hubs as { name: string; this_hub: boolean }[];
      return list.some((h) => h.name === 'ghost') ? undefined : list;
    });
    t.same(hubs.map((h) => h.this_hub), [true], 'the stopped hub left; the one whose lease ran out was removed');
  });

  t.test("the leader's remediation rules act on an agent held by another hub, and verify through it", async (t) => {
    t.setTimeout(60_000);
    const { db, a, b } = await twoHubs(t);
    t.equal((await a.api('POST', '/v1/rules', RULE)).status, 201);
    const { id, token } = await a.enroll({ hostname: 'web-1' });
    const done = { ok: true, exit_code: 0, stdout: 'active', stderr: '', duration_ms: 1, truncated: false };
    const agent = await runningAgent(b, token, () => done, { ...HELLO, actions: ['restart_service', 'service_status'] });
    await until('the agent held by hub b, as the leader sees it', () => a.app.hub.broker.reachable(id));
    agent.send('alert', { type: 'systemd', source: 'api.service', message: 'failed', status: 'failed' }, { id: 'al-r' });
    await agent.acked(['al-r']);
    await until('the restart, sent by the leader through hub b', () => agent.execs.some((e) => e.command === 'restart_service'));
    // Its result stored: the verification deadline is set from the leader's clock, before that clock moves.
    await until('the attempt verifying', async () => (await db.db.selectFrom('remediation_attempts').select('status').executeTakeFirst())?.status === 'verifying');
    a.clock.advance((RULE.verify_s + 1) * 1000); // past verify_s on the leader's clock
    await until('the fix verified by asking the unit through hub b', async () => {
      await a.app.hub.remediation!.sweep();
      const row = await db.db.selectFrom('remediation_attempts').selectAll().executeTakeFirst();
      return row?.status === 'verified' ? row : undefined;
    });
    t.same(agent.execs.map((e) => e.command), ['restart_service', 'service_status'], 'restarted, then its status asked');
    t.same(await db.db.selectFrom('remediation_queue').selectAll().execute(), [], 'nothing left queued');
    agent.close();
  });

  t.test('an exec passed on to the hub holding the agent: that hub stamps when it sent it, with the result, and the asking hub writes nothing more', async (t) => {
    t.setTimeout(60_000);
    const { a, b, db } = await twoHubs(t);
    b.clock.advance(3_600_000); // hub b's clock an hour ahead: whose time is on the row tells who wrote it
    const { id, token } = await a.enroll({ hostname: 'web-1' });
    const agent = await runningAgent(b, token, () => ({ ok: true, exit_code: 0, stdout: 'fine', stderr: '', duration_ms: 1, truncated: false }));
    await until('the agent held by hub b, as hub a sees it', () => a.app.hub.broker.reachable(id));
    const asked = a.clock.now().getTime();
    const r = await a.api('POST', '/v1/admin/exec', { agent_id: id, command: 'service_status', params: { unit: 'nginx.service' } });
    t.match(r, { status: 200, body: { status: 'succeeded' } });
    const row = await db.db.selectFrom('exec_requests').selectAll().where('id', '=', r.body.id).executeTakeFirstOrThrow();
    t.ok(row.sent_at && row.sent_at.getTime() >= asked + 3_500_000, "sent_at is hub b's: written by b's result statement, not by a separate mark from hub a");
    t.ok(row.sent_at! <= row.completed_at!, 'sent before it completed');
    t.equal(new Date(r.body.sent_at).getTime(), row.sent_at!.getTime(), 'the answer carries the stored time');
    agent.close();
  });

  t.test('a request and its NOTIFY to the holding hub are one statement, and so are results and their exec_done', async (t) => {
    t.setTimeout(60_000);
    const { a, b, db } = await twoHubs(t);
    const { id: agentId } = await a.enroll({ hostname: 'web-1' });
    const { heard, probe } = await listenToHubs(t, db.db);
    const ask = { agentId, command: 'service_status', params: { unit: 'nginx.service' }, timeoutMs: 1000, requestedBy: 'test', origin: 'rest' as const, at: new Date() };
    const passOn = (id: string) => a.app.hub.cluster.encode(b.app.hub.cluster.hubId, { k: 'exec', id, agent: agentId, command: ask.command, params: ask.params, timeout_ms: 1000 })!;

    const id = newId();
    await createExecRequest(db.db, { ...ask, id }, passOn(id));
    const told = await until('the request passed on', () => heard.find((m) => m.k === 'exec' && m.id === id));
    t.match(told, { from: a.app.hub.cluster.hubId, to: b.app.hub.cluster.hubId, agent: agentId });
    // The same id again: the insert fails, and nobody is told of a request that is not there.
    await t.rejects(createExecRequest(db.db, { ...ask, id }, passOn(id)));

    // 250 results in one statement: exec_done in pieces of at most 100 ids, each fitting a NOTIFY.
    const ids = Array.from({ length: 250 }, () => newId());
    for (const rid of ids) await createExecRequest(db.db, { ...ask, id: rid });
    const result = (request_id: string) => ({ agentId, msgId: undefined, at: new Date(), result: { request_id, ok: true, exit_code: 0, stdout: 'fine', stderr: '', duration_ms: 1, truncated: false } });
    const notice = b.app.hub.cluster.channel!;
    const done = await completeExecRequests(db.db, ids.map(result), notice);
    t.equal(done.length, 250);
    const pieces = await until('every result announced', () => {
      const p = heard.filter((m) => m.k === 'exec_done' && m.from === notice.from);
      return p.flatMap((m) => m.ids as string[]).length >= 250 && p;
    });
    t.same(pieces.flatMap((m) => m.ids as string[]).sort(), [...ids].sort(), 'each id once');
    t.ok(pieces.every((m) => (m.ids as string[]).length <= 100), `${pieces.length} pieces of at most 100`);
    // Results for requests already finished store nothing, and announce nothing.
    const before = heard.length;
    t.same(await completeExecRequests(db.db, ids.slice(0, 3).map(result), notice), []);
    await createExecRequest(db.db, { ...ask, id: newId() });
    await until('a later notification', async () => (await probe()) && heard.length > before);
    t.same(heard.slice(before).map((m) => m.k), ['probe'], 'no exec_done for results not stored');
    t.equal(heard.filter((m) => m.k === 'exec' && m.id === id).length, 1, 'the failed insert told nobody');
  });

  t.test("a claim tells the hub that held the agent (`replaced`) in its own statement, and nobody else", async (t) => {
    t.setTimeout(60_000);
    const { a, b, db } = await twoHubs(t);
    const { id: agentId, token } = await a.enroll({ hostname: 'web-1' });
    const { heard, probe } = await listenToHubs(t, db.db);
    const quiet = async (why: string) => {
      const before = heard.length;
      await probe();
      await until('the probe', () => heard.length > before);
      t.same(heard.slice(before).map((m) => m.k), ['probe'], why);
    };
    const hubA = a.app.hub.cluster.hubId;
    const hubB = b.app.hub.cluster.hubId;

    const first = await claimOne(db.db, agentId, hubA, a.app.hub.cluster.channel);
    t.match(first, { previousHub: null });
    await quiet('held by nobody before: nobody told');
    const again = await claimOne(db.db, agentId, hubA, a.app.hub.cluster.channel);
    t.equal(again!.epoch, first!.epoch + 1);
    await quiet('held by the same hub: nobody told');
    const moved = await claimOne(db.db, agentId, hubB, b.app.hub.cluster.channel);
    t.match(moved, { previousHub: hubA, epoch: again!.epoch + 1 });
    const told = await until('the previous hub told', () => heard.find((m) => m.k === 'replaced'));
    t.same(told, { k: 'replaced', agent: agentId, epoch: moved!.epoch, from: hubB, to: hubA }, 'the message Cluster.send would have sent');
    t.same(await claimOne(db.db, newId(), hubB, b.app.hub.cluster.channel), undefined, 'an unknown agent: no claim');
    await quiet('and nobody told');

    // Through the hubs: a newer connection on b closes the one on a (4409), told by b's claim alone.
    const cluster = b.app.hub.cluster;
    const send = cluster.send.bind(cluster);
    let sentReplaced = 0;
    cluster.send = async (to, msg) => {
      if (msg.k === 'replaced') sentReplaced++;
      return send(to, msg);
    };
    const older = await runningAgent(a, token, () => ({ ok: true, exit_code: 0, stdout: '', stderr: '', duration_ms: 1, truncated: false }));
    await until('held by hub a', async () => (await db.db.selectFrom('agents').select('hub_id').where('id', '=', agentId).executeTakeFirst())?.hub_id === hubA);
    const closed = new Promise<number>((resolve) => older.ws.once('close', (code: number) => resolve(code)));
    const newer = await runningAgent(b, token, () => ({ ok: true, exit_code: 0, stdout: '', stderr: '', duration_ms: 1, truncated: false }));
    t.equal(await closed, 4409, 'the older connection, on hub a, replaced');
    t.equal(sentReplaced, 0, 'no NOTIFY of its own');
    newer.close();
  });

  t.test('many claims in one statement: each agent its own answer, notice and audit entry; two hubs claiming the same agents in opposite orders take turns', async (t) => {
    t.setTimeout(60_000);
    const { a, b, db } = await twoHubs(t);
    const ids = (await Promise.all(Array.from({ length: 30 }, (_, i) => a.enroll({ hostname: `web-${i}` })))).map((e) => e.id);
    const { heard, probe } = await listenToHubs(t, db.db);
    const hubA = a.app.hub.cluster.hubId;
    const hubB = b.app.hub.cluster.hubId;
    const now = new Date();
    const hourAgo = new Date(now.getTime() - 3_600_000);

    // Five agents last seen an hour ago go offline; the other twenty-five were seen now.
    const unknown = newId();
    const first = await claimAgents(db.db, [...ids.map((agentId, i) => ({ agentId, at: i < 5 ? hourAgo : now })), { agentId: unknown, at: now }], hubA, OFFLINE_FINGERPRINT, a.app.hub.cluster.channel);
    t.equal(first.length, 31, 'one answer per claim');
    t.equal(first[30], undefined, 'an unknown agent: no claim');
    t.ok(first.slice(0, 30).every((c) => c && c.previousHub === null && !c.offlineOpen), 'held by nobody before, none offline');
    t.same(new Set(await sweepOfflineAgents(db.db, { rules: [], notify: false }, 10, now)), new Set(ids.slice(0, 5)), 'the five seen an hour ago are offline');

    const moved = await claimAgents(db.db, ids.map((agentId) => ({ agentId, at: now })), hubB, OFFLINE_FINGERPRINT, b.app.hub.cluster.channel);
    t.same(moved.map((c) => c!.offlineOpen), ids.map((_, i) => i < 5), 'offline incidents open for exactly those five');
    t.same(moved.map((c) => c!.previousHub), ids.map(() => hubA));
    t.same(moved.map((c) => c!.epoch), first.slice(0, 30).map((c) => c!.epoch + 1), 'each its next connection number');
    const told = await until('every previous holder told', () => {
      const r = heard.filter((m) => m.k === 'replaced');
      return r.length >= 30 && r;
    });
    t.same(new Set(told.map((m) => m.agent)), new Set(ids), 'one replaced notice per agent');
    t.ok(told.every((m) => m.to === hubA && m.from === hubB), 'each to hub a, from hub b');

    // Both hubs claim all thirty at once, in opposite orders, five times over: no deadlock, and the
    // numbers of each agent grow by one per claim whichever hub won each turn.
    const before = new Map(moved.map((c, i) => [ids[i]!, c!.epoch]));
    const reversed = [...ids].reverse();
    const rounds = await Promise.all(
      Array.from({ length: 5 }, () => [
        claimAgents(db.db, ids.map((agentId) => ({ agentId, at: now })), hubA, OFFLINE_FINGERPRINT, a.app.hub.cluster.channel),
        claimAgents(db.db, reversed.map((agentId) => ({ agentId, at: now })), hubB, OFFLINE_FINGERPRINT, b.app.hub.cluster.channel),
      ]).flat(),
    );
    for (const [i, agentId] of ids.entries()) {
      const epochs = rounds.map((r, k) => r[k % 2 === 0 ? i : ids.length - 1 - i]!.epoch).sort((x, y) => x - y);
      if (!t.same(epochs, Array.from({ length: 10 }, (_, n) => before.get(agentId)! + n + 1), `${agentId}: ten claims, ten numbers`)) break;
    }
    // A bulk write (heartbeats) of the same agents, in the opposite order, beside each hub's claims: no deadlock either.
    const bulk = () => storeBulk(db.db, { seen: new Map(reversed.map((agentId) => [agentId, { at: new Date() }])), metrics: [], ids: [] });
    await Promise.all(Array.from({ length: 3 }, () => [bulk(), claimAgents(db.db, ids.map((agentId) => ({ agentId, at: now })), hubA, OFFLINE_FINGERPRINT, a.app.hub.cluster.channel)]).flat());
    await Promise.all(Array.from({ length: 3 }, () => [bulk(), claimAgents(db.db, reversed.map((agentId) => ({ agentId, at: now })), hubB, OFFLINE_FINGERPRINT, b.app.hub.cluster.channel)]).flat());
    // And the hub that holds them all stops (its agents freed in one statement) while the other claims them.
    const [, held] = await Promise.all([removeHub(db.db, hubB), claimAgents(db.db, ids.map((agentId) => ({ agentId, at: now })), hubA, OFFLINE_FINGERPRINT, null), bulk()]);
    // Their connections on hub a close (freed in one statement, in the opposite order) while hub b claims them all: every agent ends on b.
    await Promise.all([
      releaseAgents(db.db, reversed.map((agentId) => ({ agentId, epoch: held[ids.indexOf(agentId)]!.epoch, closed: { at: now, code: 1006 } })), hubA),
      claimAgents(db.db, ids.map((agentId) => ({ agentId, at: now })), hubB, OFFLINE_FINGERPRINT, null),
      bulk(),
    ]);
    const holders = await db.db.selectFrom('agents').select('hub_id').where('id', 'in', ids).execute();
    t.same(new Set(holders.map((r) => r.hub_id)), new Set([hubB]), 'a release never frees the newer claim');

    const audit = await db.db.selectFrom('incident_events').select(({ fn }) => ['agent_id', fn.countAll<string>().as('n')]).where('kind', '=', 'agent_connected').groupBy('agent_id').execute();
    t.same(new Set(audit.map((r) => Number(r.n))), new Set([20]), 'each agent connected twenty times on the audit trail');
    const gone = await db.db.selectFrom('incident_events').select('agent_id').where('kind', '=', 'agent_disconnected').execute();
    t.same(gone.map((r) => r.agent_id).sort(), [...ids].sort(), 'and disconnected once');
    await probe();
  });

  t.test("a result reaches the asking hub even when the holding hub's word that it sent the exec is lost", async (t) => {
    t.setTimeout(60_000);
    const { a, b } = await twoHubs(t);
    const { id, token } = await a.enroll({ hostname: 'web-1' });
    const agent = await runningAgent(b, token, () => ({ ok: true, exit_code: 0, stdout: 'fine', stderr: '', duration_ms: 1, truncated: false }));
    await until('the agent held by hub b, as hub a sees it', () => a.app.hub.broker.reachable(id));
    const cluster = b.app.hub.cluster;
    const send = cluster.send.bind(cluster);
    let dropped = 0;
    let relayed = 0;
    cluster.send = async (to, msg) => {
      if (msg.k === 'exec_sent') return void dropped++;
      if (msg.k === 'exec_done') relayed++;
      return send(to, msg);
    };
    const r = await a.api('POST', '/v1/admin/exec', { agent_id: id, command: 'service_status', params: { unit: 'nginx.service' } });
    t.match(r, { status: 200, body: { status: 'succeeded', stdout: 'fine' } }, 'the result stands for the word');
    t.equal(dropped, 1, 'the word was lost');
    t.equal(relayed, 0, 'hub a heard of the result from the statement that stored it, not from a NOTIFY of its own');
    agent.close();
  });
}

/** A client LISTENing on the hubs' channel: every message heard, parsed; `probe` sends one of its own ({k: 'probe'}), to know all before it arrived. */
async function listenToHubs(t: Test, db: import('../src/storage/database.ts').Db): Promise<{ heard: Record<string, unknown>[]; probe(): Promise<true> }> {
  const { channel } = await clusterNames(db);
  const listener = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await listener.connect();
  t.teardown(() => listener.end());
  const heard: Record<string, unknown>[] = [];
  listener.on('notification', (n) => heard.push(JSON.parse(n.payload!)));
  await listener.query(`LISTEN "${channel}"`);
  return { heard, probe: async () => (await listener.query('SELECT pg_notify($1, $2)', [channel, '{"k":"probe"}']), true) };
}

async function searchPath(db: { db: import('../src/storage/database.ts').Db }): Promise<string> {
  const { sql } = await import('kysely');
  return (await sql<{ s: string }>`SELECT current_schema() AS s`.execute(db.db)).rows[0]!.s;
}
