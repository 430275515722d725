import t from 'tap';
import { gzipSync } from 'node:zlib';
import { CLOSE_CODES, PROTOCOL_VERSION, type ProtocolErrorCode } from '@opspilot/protocol';
import { HELLO, ScriptedAgent, eachBackend, startHub } from './helpers.ts';

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64');
const env = (fields: Record<string, unknown>) =>
  JSON.stringify({ ver: '1.0', ts: Math.floor(Date.now() / 1000), type: 'alert', compression: 'none', ...fields });
const alertData = b64(JSON.stringify({ type: 'log', source: '/var/log/app.log', message: 'fatal: boom' }));

/** Every kind of bad frame, and the error code PROTOCOL.md says it gets. */
const BAD_FRAMES: [string, string | Buffer, ProtocolErrorCode, boolean?][] = [
  ['not JSON', 'this is not json', 'PROTO_BAD_JSON'],
  ['JSON array', '[1,2,3]', 'PROTO_BAD_JSON'],
  ['binary frame', Buffer.from(env({ data: alertData })), 'PROTO_BAD_JSON', true],
  ['bad base64', env({ id: 'bad-b64', data: 'not*base64' }), 'PROTO_BAD_BASE64'],
  ['bad gzip', env({ data: alertData, compression: 'gzip' }), 'PROTO_BAD_GZIP'],
  ['gzip bomb (50 MB of zeros)', env({ data: b64(gzipSync(Buffer.alloc(50 * 1024 * 1024), { level: 9 })), compression: 'gzip' }), 'PROTO_TOO_LARGE'],
  ['payload not JSON', env({ data: b64('{{{') }), 'PROTO_BAD_JSON'],
  ['schema: alert without source', env({ data: b64('{"type":"log","message":"x"}') }), 'PROTO_SCHEMA'],
  ['schema: metrics with a string cpu', env({ type: 'metrics', data: b64('{"samples":[{"ts":1,"cpu_pct":"high"}]}') }), 'PROTO_SCHEMA'],
  ['schema: bad id', env({ id: 'no spaces allowed', data: alertData }), 'PROTO_SCHEMA'],
  ['unknown type', env({ type: 'reboot_everything', data: alertData }), 'PROTO_UNKNOWN_TYPE'],
  ['hub-only type', env({ type: 'exec', data: alertData }), 'PROTO_UNKNOWN_TYPE'],
  ['another version', env({ ver: '2.0', data: alertData }), 'PROTO_VERSION'],
];

eachBackend(t, 'each bad frame gets an error envelope and the connection stays', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { badFramesPerMinute: 1000 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  for (const [name, frame, code, binary] of BAD_FRAMES) {
    agent.sendRaw(frame, binary ?? false);
    const error = await agent.next('error');
    t.equal(error.code, code, name);
  }
  t.equal(agent.ws.readyState, agent.ws.OPEN, 'still connected');
  // The hub is healthy: a good alert still becomes an incident, and REST answers.
  agent.send('alert', { type: 'log', source: '/var/log/app.log', message: 'fatal: after the storm' }, { id: 'good-1' });
  await agent.acked(['good-1']);
  const incidents = await hub.api('GET', `/v1/incidents?agent_id=${id}`);
  t.equal(incidents.body.incidents.length, 1);
  t.equal((await hub.api('GET', '/readyz')).status, 200);
  agent.close();
});

eachBackend(t, "text no database can store is refused at the edge: the sender keeps its connection, nobody's batch fails", async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { badFramesPerMinute: 1000 });
  const poisoner = await hub.enroll();
  const bystander = await hub.enroll();
  const bad = await ScriptedAgent.connect(hub.wsUrl, poisoner.token);
  const good = await ScriptedAgent.connect(hub.wsUrl, bystander.token);
  await bad.next('welcome');
  await good.next('welcome');
  const poisons: [string, string][] = [
    ['nul-message', '{"type":"log","source":"/var/log/app.log","message":"a\\u0000b"}'],
    ['surrogate-context', '{"type":"log","source":"/var/log/app.log","message":"m","context":{"line":"\\ud800"}}'],
    ['deep-context', `{"type":"log","source":"/var/log/app.log","message":"m","context":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`],
    ['nul-hostname', '{"protocol":1,"agent_version":"1","hostname":"web\\u0000","os":"linux","arch":"x64","actions":[]}'],
  ];
  for (const [id, payload] of poisons) {
    bad.sendRaw(env({ id, type: id === 'nul-hostname' ? 'hello' : 'alert', data: b64(payload) }));
    good.send('alert', { type: 'log', source: `/var/log/${id}.log`, message: 'fatal: real trouble' }, { id: `good-${id}` });
    t.match(await bad.next('error'), { code: 'PROTO_SCHEMA', ref_id: id }, id);
  }
  await good.acked(poisons.map(([id]) => `good-${id}`));
  t.equal((await hub.api('GET', `/v1/incidents?agent_id=${bystander.id}`)).body.incidents.length, poisons.length, "the other agent's alerts are all stored");
  bad.send('alert', { type: 'log', source: '/var/log/app.log', message: 'fatal: a clean one' }, { id: 'clean-1' });
  await bad.acked(['clean-1']);
  t.equal(bad.ws.readyState, bad.ws.OPEN, 'the sender keeps its connection, and its clean alerts go in');
  bad.close();
  good.close();
});

eachBackend(t, "a message the database refuses fails alone: the others in its batch are stored, its sender gets an error and keeps its connection", async (t, backend) => {
  // A fingerprint the incidents index cannot hold (1,024 three-byte characters: 3 KiB, over the
  // B-tree row limit): it passes every check at the edge, and only the database can say no.
  const huge = Array.from({ length: 1024 }, (_, i) => String.fromCodePoint(0x4e00 + ((i * 7919) % 20000))).join('');
  const hub = await startHub(t, await backend.open(t), { flushIntervalMs: 50 });
  const agents = await Promise.all([0, 1, 2].map(() => hub.enroll()));
  const sockets = await Promise.all(agents.map((a) => ScriptedAgent.connect(hub.wsUrl, a.token)));
  for (const s of sockets) await s.next('welcome');
  // Same 50 ms window: one batch holds the poison and the others' alerts.
  sockets[1]!.send('alert', { type: 'log', source: '/var/log/a.log', message: 'fatal: before' }, { id: 'before' });
  sockets[0]!.send('alert', { type: 'log', source: huge, message: 'fatal: poison' }, { id: 'poison' });
  sockets[2]!.send('alert', { type: 'log', source: '/var/log/c.log', message: 'fatal: after' }, { id: 'after' });
  sockets[0]!.send('alert', { type: 'log', source: '/var/log/own.log', message: 'fatal: its own next one' }, { id: 'own-next' });
  t.match(await sockets[0]!.next('error'), { code: 'PROTO_REFUSED', ref_id: 'poison', message: /could not store this alert/ });
  await sockets[0]!.acked(['own-next']);
  await sockets[1]!.acked(['before']);
  await sockets[2]!.acked(['after']);
  for (const [i, s] of sockets.entries()) t.equal(s.ws.readyState, s.ws.OPEN, `agent ${i} still connected`);
  const sources = (await hub.api('GET', '/v1/incidents?limit=100')).body.incidents.map((i: { source: string }) => i.source).sort();
  t.same(sources, ['/var/log/a.log', '/var/log/c.log', '/var/log/own.log'], 'everything but the poison is stored');
  t.equal(hub.app.hub.writer.stats.failedBatches, 0, 'no batch failed');
  for (const s of sockets) s.close();
});

eachBackend(t, "a bulk row the database refuses fails alone: other agents' heartbeats and samples are stored, the sender stays seen", async (t, backend) => {
  // The protocol refuses a byte count past 9e18 now; this goes behind it, to the writer, for
  // whatever else a database might refuse one day: a bigint column cannot hold 1e20.
  const hub = await startHub(t, await backend.open(t), { flushIntervalMs: 50 });
  const agents = await Promise.all([0, 1, 2].map(() => hub.enroll()));
  const writer = hub.app.hub.writer;
  const sample = (mem: number) => ({ ts: Math.floor(Date.now() / 1000), cpu_pct: 5, mem_used: mem, mem_total: 2e9, load1: 0, load5: 0, load15: 0, disks: [], net: [] });
  const targets = agents.map((a) => {
    const got = { acked: [] as string[], refused: [] as string[], storeFailed: 0 };
    return { got, target: { agentId: a.id, ack: (ids: string[]) => got.acked.push(...ids), refuse: (id: string) => got.refused.push(id), storeFailed: () => got.storeFailed++ } };
  });
  const at = new Date();
  writer.add({ agentId: agents[1]!.id, at, stats: { uptime_s: 1 }, msgId: 'hb-1', ackTo: targets[1]!.target });
  writer.add({ agentId: agents[0]!.id, at, hello: { ...HELLO, hostname: 'poisoner' }, msgId: 'hello-0', ackTo: targets[0]!.target });
  writer.add({ agentId: agents[0]!.id, at, samples: [sample(1e20)], msgId: 'poison', ackTo: targets[0]!.target });
  writer.add({ agentId: agents[0]!.id, at, samples: [sample(3e9)], msgId: 'fine-0', ackTo: targets[0]!.target });
  writer.add({ agentId: agents[2]!.id, at, samples: [sample(1e9)], msgId: 'm-2', ackTo: targets[2]!.target });
  await writer.flush();
  t.same(targets[0]!.got, { acked: ['hello-0', 'fine-0'], refused: ['poison'], storeFailed: 0 }, 'only the poison is refused');
  t.same(targets[1]!.got, { acked: ['hb-1'], refused: [], storeFailed: 0 });
  t.same(targets[2]!.got, { acked: ['m-2'], refused: [], storeFailed: 0 });
  t.equal(writer.stats.failedBatches, 0);
  const mem = async (i: number) => (await hub.api('GET', `/v1/agents/${agents[i]!.id}/metrics`)).body.samples.map((s: { mem_used: number }) => s.mem_used);
  t.same(await mem(0), [3e9], "the sender's good sample is stored");
  t.same(await mem(2), [1e9]);
  const poisoner = (await hub.api('GET', `/v1/agents/${agents[0]!.id}`)).body;
  t.equal(poisoner.facts.hostname, 'poisoner');
  t.ok(poisoner.last_seen_at, 'the sender is seen');
  t.equal((await hub.api('GET', `/v1/agents/${agents[1]!.id}`)).body.stats.uptime_s, 1);
});

eachBackend(t, 'the error names the offending envelope id', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.sendRaw(env({ id: 'frame-42', data: '%%%%' }));
  t.same(await agent.next('error'), { code: 'PROTO_BAD_BASE64', message: 'data is not standard base64', ref_id: 'frame-42' });
  agent.close();
});

eachBackend(t, 'more than 10 bad frames in a minute close the connection with 4400', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  for (let i = 0; i < 10; i++) agent.sendRaw('nope');
  for (let i = 0; i < 10; i++) await agent.next('error');
  t.equal(agent.ws.readyState, agent.ws.OPEN, 'ten are tolerated');
  agent.sendRaw('nope');
  t.equal((await agent.closed).code, CLOSE_CODES.protocolViolation);
});

eachBackend(t, 'a frame over the frame limit closes with 1009', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { maxFrameBytes: 64 * 1024 });
  const { id, token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  agent.send('alert', { type: 'log', source: 's', message: 'm', logs: 'x'.repeat(100 * 1024) }, { compression: 'none' });
  t.equal((await agent.closed).code, CLOSE_CODES.tooLarge);
  // The hub still serves the agent when it reconnects.
  const again = await ScriptedAgent.connect(hub.wsUrl, token);
  t.equal((await again.next('welcome')).agent_id, id);
  again.close();
});

eachBackend(t, 'a payload over the payload limit is refused without closing', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { maxPayloadBytes: 16 * 1024 });
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  agent.send('alert', { type: 'log', source: 's', message: 'y'.repeat(32 * 1024) }, { compression: 'gzip', id: 'big-1' });
  t.same(await agent.next('error'), { code: 'PROTO_TOO_LARGE', message: 'payload inflates past the 16384-byte limit', ref_id: 'big-1' });
  t.equal(agent.ws.readyState, agent.ws.OPEN);
  agent.close();
});

eachBackend(t, 'frames sent before the first-frame auth completes are kept in order', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = new ScriptedAgent(hub.wsUrl);
  await agent.opened;
  agent.send('heartbeat', {}, { token });
  for (let i = 0; i < 20; i++) agent.send('alert', { type: 'log', source: 'burst', message: `line ${i}` }, { id: `burst-${i}` });
  agent.send('resolve', { type: 'log', source: 'burst' }, { id: 'burst-resolve' });
  await agent.acked([...Array.from({ length: 20 }, (_, i) => `burst-${i}`), 'burst-resolve']);
  const list = await hub.api('GET', `/v1/agents/${id}/incidents`);
  t.equal(list.body.incidents.length, 1);
  t.match(list.body.incidents[0], { count: 20, status: 'resolved', message: 'line 19' });
  agent.close();
});

eachBackend(t, 'hello.protocol is negotiated: the lower version is used, an agent too old to serve is refused', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const newer = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, newer.token);
  t.match(await agent.next('welcome'), { protocol: PROTOCOL_VERSION }, 'the welcome says which message set the hub speaks');
  agent.send('hello', { ...HELLO, protocol: PROTOCOL_VERSION + 5 }, { id: 'h-new' });
  await agent.acked(['h-new']);
  t.equal(hub.app.hub.registry.get(newer.id)?.protocol, PROTOCOL_VERSION, 'a newer agent is spoken to in the hub\'s version');
  t.equal((await hub.api('GET', `/v1/agents/${newer.id}`)).body.facts.protocol, PROTOCOL_VERSION + 5, 'and what it speaks is recorded');

  const older = await hub.enroll();
  const old = await ScriptedAgent.connect(hub.wsUrl, older.token);
  await old.next('welcome');
  old.send('hello', { ...HELLO, protocol: 0 }, { id: 'h-old' });
  t.match(await old.next('error'), { code: 'PROTO_VERSION', ref_id: 'h-old', message: /older than this hub serves/ });
  t.equal((await hub.api('GET', `/v1/agents/${older.id}`)).body.facts, null, 'its hello is not stored');
  t.equal(old.ws.readyState, old.ws.OPEN, 'one refused frame does not close the connection');
  agent.close();
  old.close();
});
