import t from 'tap';
import net from 'node:net';
import { sql } from 'kysely';
import WebSocket from 'ws';
import { CLOSE_CODES, PROTOCOL_VERSION } from '@opspilot/protocol';
import { GO_HEARTBEAT } from '@opspilot/protocol/vectors';
import { HELLO, ScriptedAgent, eachBackend, eventually, startHub } from './helpers.ts';

/** The HTTP status an upgrade was refused with, or 101 if it was accepted. */
async function refusal(agent: ScriptedAgent): Promise<number> {
  return agent.opened.then(
    () => 101,
    () => agent.refusedStatus ?? 0,
  );
}

eachBackend(t, 'bearer header authenticates at the upgrade', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  const welcome = await agent.next('welcome');
  t.same(welcome, { agent_id: id, heartbeat_interval_s: 10, protocol: PROTOCOL_VERSION });
  const res = await hub.api('GET', `/v1/agents/${id}`);
  t.equal(res.body.status, 'online');
  agent.close();
  await agent.closed;
  await eventually(async () => (await hub.api('GET', `/v1/agents/${id}`)).body.status === 'offline', 5000, 'offline');
});

eachBackend(t, 'a bad bearer token is refused with 401 before the upgrade', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  await hub.enroll();
  for (const header of ['Bearer opa_not-a-real-token', 'Bearer ', 'Basic Zm9vOmJhcg==', 'Bearer a b']) {
    const ws = new WebSocket(hub.wsUrl, { headers: { authorization: header } });
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => resolve(101));
      ws.once('error', () => {});
    });
    t.equal(status, 401, `refused: ${header}`);
  }
  t.equal(hub.app.hub.registry.size, 0);
});

eachBackend(t, 'first-frame token authenticates the original Go heartbeat', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = new ScriptedAgent(hub.wsUrl);
  await agent.opened;
  agent.sendRaw(GO_HEARTBEAT.replace('my-secret-token', token));
  t.equal((await agent.next('welcome')).agent_id, id);
  await eventually(async () => (await hub.api('GET', `/v1/agents/${id}`)).body.last_seen_at, 5000, 'last_seen_at');
  // Later frames may carry the token again, or leave it out.
  agent.send('heartbeat', {}, { token });
  agent.send('heartbeat', { cpu_pct: 5 });
  agent.send('heartbeat', { cpu_pct: 7 }, { id: 'hb-1' });
  await agent.acked(['hb-1']);
  t.equal(agent.received.filter((m) => m.type === 'error').length, 0, 'no errors');
  agent.close();
});

eachBackend(t, 'first-frame refusals close with 4401', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { authTimeoutMs: 300 });
  const { token } = await hub.enroll();
  const cases: [string, (a: ScriptedAgent) => void][] = [
    ['unknown token', (a) => a.sendRaw(GO_HEARTBEAT)],
    ['no token', (a) => a.sendRaw(GO_HEARTBEAT.replace('"token":"my-secret-token",', ''))],
    ['not JSON', (a) => a.sendRaw('hello there')],
    ['binary frame', (a) => a.sendRaw(Buffer.from(GO_HEARTBEAT.replace('my-secret-token', token)), true)],
    ['numeric token', (a) => a.sendRaw(GO_HEARTBEAT.replace('"my-secret-token"', '12345'))],
    ['silence past the auth timeout', () => {}],
  ];
  for (const [name, act] of cases) {
    const agent = new ScriptedAgent(hub.wsUrl);
    await agent.opened;
    act(agent);
    const { code } = await agent.closed;
    t.equal(code, CLOSE_CODES.unauthenticated, name);
    t.notOk(agent.received.some((m) => m.type === 'welcome'), `${name}: no welcome`);
  }
});

eachBackend(t, 'a frame with another token closes the connection with 4401', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const a = await hub.enroll();
  const b = await hub.enroll({ hostname: 'web-2' });
  for (const header of [true, false]) {
    const agent = new ScriptedAgent(hub.wsUrl, { token: a.token, header });
    await agent.opened;
    if (!header) agent.send('heartbeat', {}, { token: a.token });
    await agent.next('welcome');
    agent.send('heartbeat', {}, { token: b.token });
    t.equal((await agent.closed).code, CLOSE_CODES.unauthenticated, header ? 'header path' : 'first-frame path');
  }
});

eachBackend(t, 'a newer connection replaces the older with 4409', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const first = await ScriptedAgent.connect(hub.wsUrl, token);
  await first.next('welcome');
  const second = await ScriptedAgent.connect(hub.wsUrl, token);
  await second.next('welcome');
  t.equal((await first.closed).code, CLOSE_CODES.replaced);
  t.equal(hub.app.hub.registry.get(id)?.socket.readyState, 1, 'the newer one is registered');
  const res = await hub.api('GET', `/v1/agents/${id}`);
  t.equal(res.body.status, 'online', 'still online after the old socket closed');
  second.close();
});

eachBackend(t, 'token rotation: the old token stops working and its connection is closed', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  const rotated = await hub.api('POST', `/v1/agents/${id}/token`);
  t.equal(rotated.status, 200);
  t.not(rotated.body.token, token);
  t.equal((await agent.closed).code, CLOSE_CODES.unauthenticated);
  t.equal(await refusal(new ScriptedAgent(hub.wsUrl, { token })), 401, 'old token refused');
  const fresh = await ScriptedAgent.connect(hub.wsUrl, rotated.body.token);
  t.equal((await fresh.next('welcome')).agent_id, id);
  fresh.close();
  t.equal((await hub.api('POST', '/v1/agents/01NOPE/token')).status, 404);
});

eachBackend(t, 'deleting an agent closes its connection and its token stops working', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  const sample = { ts: Math.floor(Date.now() / 1000), cpu_pct: 1, mem_used: 1, mem_total: 2, load1: 0, load5: 0, load15: 0, disks: [], net: [] };
  agent.send('metrics', { samples: [sample, sample] }, { id: 'm-1' });
  agent.send('alert', { type: 'log', source: 'x', message: 'y' }, { id: 'a-1' });
  await agent.acked(['m-1', 'a-1']);
  t.equal((await hub.api('DELETE', `/v1/agents/${id}`)).status, 204);
  t.equal((await agent.closed).code, CLOSE_CODES.unauthenticated);
  t.equal(await refusal(new ScriptedAgent(hub.wsUrl, { token })), 401, 'token refused');
  t.equal((await hub.api('GET', `/v1/agents/${id}`)).status, 404);
  t.equal((await hub.api('DELETE', `/v1/agents/${id}`)).status, 404);
  const { db } = hub.app.hub.database;
  t.same(await db.selectFrom('metric_samples').select('ts').where('agent_id', '=', id).execute(), [], 'no samples outlive the agent');
  t.same(await db.selectFrom('incidents').select('id').where('agent_id', '=', id).execute(), [], 'nor incidents');
});

eachBackend(t, 'a connection that stops answering pings is closed with 4408', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { pingIntervalMs: 50 });
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  // ws answers pings automatically; stop it the way a hung process would.
  (agent.ws as unknown as { pong: () => void }).pong = () => {};
  t.equal((await agent.closed).code, CLOSE_CODES.timeout);
});

eachBackend(t, 'a live connection that answers pings stays open', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { pingIntervalMs: 30 });
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  // Ten pings answered (the ws client pongs by itself): five times the two-miss limit.
  let pings = 0;
  agent.ws.on('ping', () => pings++);
  await eventually(async () => pings >= 10, 5000, 'ten pings');
  t.equal(agent.ws.readyState, agent.ws.OPEN);
  agent.close();
});

eachBackend(t, 'message set 3: an agent heard from is not pinged, a quiet one is (and closed after two missed pongs); older agents are pinged as before', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { pingIntervalMs: 300 });
  const connect = async (protocol: number) => {
    const { token } = await hub.enroll({ hostname: `v${protocol}` });
    const agent = await ScriptedAgent.connect(hub.wsUrl, token);
    await agent.next('welcome');
    agent.send('hello', { ...HELLO, protocol }, { id: `hello-${protocol}` });
    await agent.acked([`hello-${protocol}`]);
    const pings: number[] = [];
    agent.ws.on('ping', () => pings.push(Date.now()));
    t.teardown(() => agent.close());
    return { agent, pings };
  };
  const v3 = await connect(3);
  const v2 = await connect(2);
  // Both send a frame every 20 ms for five intervals.
  const chatter = setInterval(() => [v3, v2].forEach(({ agent }) => agent.send('heartbeat', { uptime_s: 1 }, { compression: 'none' })), 20);
  await new Promise((r) => setTimeout(r, 1500));
  clearInterval(chatter);
  t.ok(v2.pings.length >= 4, `message set 2: pinged every interval while it talks (${v2.pings.length} pings)`);
  t.ok(v3.pings.length <= 1, `message set 3: not pinged while it talks (${v3.pings.length} pings; one allowed for a stalled test process)`);
  // Quiet, the agent of 3 is pinged again, and stays open while it answers.
  const before = v3.pings.length;
  await eventually(async () => v3.pings.length >= before + 2, 5000, 'pings to the quiet agent');
  t.equal(v3.agent.ws.readyState, v3.agent.ws.OPEN, 'answered: open');
  (v3.agent.ws as unknown as { pong: () => void }).pong = () => {};
  t.equal((await v3.agent.closed).code, CLOSE_CODES.timeout, 'no pongs: closed with 4408');
});

eachBackend(t, 'pings are spread over the interval, each connection once an interval', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { pingIntervalMs: 1000 });
  const agents: ScriptedAgent[] = [];
  const pings: number[][] = [];
  for (let i = 0; i < 8; i++) {
    const { token } = await hub.enroll({ hostname: `web-${i}` });
    const agent = await ScriptedAgent.connect(hub.wsUrl, token);
    await agent.next('welcome');
    pings.push([]);
    agent.ws.on('ping', () => pings[i]!.push(Date.now()));
    agents.push(agent);
  }
  t.teardown(() => agents.forEach((a) => a.close()));
  await eventually(async () => pings.every((p) => p.length >= 3), 10_000, 'three pings each');
  for (const p of pings) {
    const gaps = p.slice(1).map((at, i) => at - p[i]!);
    t.ok(gaps.every((g) => g > 500 && g < 1600), `one ping an interval (gaps ${gaps.join(', ')} ms)`);
  }
  // In one round the 8 connections are pinged in slices, 250 ms apart: not all at once.
  const firsts = pings.map((p) => p[1]!).sort((a, b) => a - b);
  t.ok(firsts.at(-1)! - firsts[0]! >= 400, `spread over the interval (${firsts.at(-1)! - firsts[0]!} ms between the first and the last of a round)`);
});

eachBackend(t, 'connections waiting to authenticate are capped; a flood of frames before authentication is not held', async (t, backend) => {
  const db = await backend.open(t);
  const hub = await startHub(t, db, { maxUnauthenticated: 3 });
  const { token } = await hub.enroll();
  const waiting = [new ScriptedAgent(hub.wsUrl), new ScriptedAgent(hub.wsUrl), new ScriptedAgent(hub.wsUrl)];
  for (const w of waiting) await w.opened;
  const fourth = new ScriptedAgent(hub.wsUrl);
  t.equal(await refusal(fourth), 503, 'the fourth header-less connection is refused before the upgrade');
  const known = await ScriptedAgent.connect(hub.wsUrl, token, { header: true });
  t.ok((await known.next('welcome')).agent_id, 'an agent with a bearer header is not held up by them');
  waiting[0]!.close();
  await waiting[0]!.closed;
  await eventually(async () => (await refusal(new ScriptedAgent(hub.wsUrl))) === 101, 5000, 'room again once one of them left');

  // Before its first-frame token is checked, a connection may queue a few frames, not a flood.
  // The token lookup is held up (the agents table locked) so the whole flood arrives before it
  // answers, however the frames are split into reads.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const holding = db.db.transaction().execute(async (trx) => {
    await sql`LOCK TABLE agents IN ACCESS EXCLUSIVE MODE`.execute(trx);
    locked();
    await released;
  });
  await isLocked;
  const flooder = waiting[1]!;
  flooder.sendRaw(GO_HEARTBEAT.replace('my-secret-token', token));
  for (let i = 0; i < 500; i++) flooder.sendRaw(GO_HEARTBEAT.replace('my-secret-token', token));
  const code = (await flooder.closed).code;
  release();
  await holding;
  t.equal(code, CLOSE_CODES.protocolViolation, 'closed with 4400');
  known.close();
  waiting[2]!.close();
});

eachBackend(t, 'raw TCP connections are capped, and one that sends nothing is closed; upgraded agents are not', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { maxConnections: 4, requestHeadersTimeoutMs: 300 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token, { header: true });
  await agent.next('welcome');
  // Node tells which connections it refused for the cap ('drop'); the others got in.
  let dropped = 0;
  hub.app.server.on('drop', () => dropped++);
  const closed: Promise<void>[] = [];
  for (let i = 0; i < 6; i++) {
    const socket = net.connect(hub.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume(); // read, or the server's FIN is never seen
    closed.push(new Promise((resolve) => socket.on('close', () => resolve())));
  }
  // The agent holds one connection (and the test's REST client may keep one alive): of six more,
  // at most three get in; the rest are refused for the cap. Every one of the six is closed: the
  // silent ones that got in by the headers timeout (300 ms, checked every second).
  await Promise.all(closed);
  t.ok(dropped >= 3, `the connections over the cap are refused (${dropped} of 6)`);
  t.ok(dropped < 6, 'and a silent connection that got in is closed by the headers timeout');
  // The check that closed them ran past the agent's own headers timeout (it connected first).
  t.equal(agent.ws.readyState, agent.ws.OPEN, 'the upgraded agent is not subject to it');
  agent.send('heartbeat', { uptime_s: 1 }, { id: 'after-flood' });
  await agent.acked(['after-flood']);
  const res = await hub.api('GET', `/v1/agents/${id}`);
  t.equal(res.status, 200, 'REST answers once the silent connections are gone');
  agent.close();
});
