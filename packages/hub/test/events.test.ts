/**
 * The live event stream (GET /v1/events) over real sockets on both databases: events as they are
 * committed, filters, resuming with Last-Event-ID (and resync when too far back), keep-alives, the
 * per-token limit, a client that does not read being cut off, and bad requests refused.
 */
import t from 'tap';
import net from 'node:net';
import { recordEvents } from '../src/storage/timeline.ts';
import { ADMIN_TOKEN, HELLO, ScriptedAgent, eachBackend, eventually, startHub, type TestHub } from './helpers.ts';

interface Sse {
  id?: string;
  event?: string;
  data?: any;
  comment?: string;
}

/** An SSE client on fetch: the parsed events as they come, and how to stop. */
async function stream(hub: TestHub, query = '', headers: Record<string, string> = {}) {
  const ctl = new AbortController();
  const res = await fetch(`http://127.0.0.1:${hub.port}/v1/events${query}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers }, signal: ctl.signal });
  const got: Sse[] = [];
  let buffer = '';
  const done = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const e: Sse = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) e.comment = line.slice(1).trim();
            else if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('data: ')) e.data = JSON.parse(line.slice(6));
          }
          got.push(e);
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    res,
    got,
    events: () => got.filter((e) => e.data?.type),
    until: (pred: (e: Sse) => boolean, what: string, ms = 5000) => eventually(async () => got.find(pred), ms, what),
    close: async () => {
      ctl.abort();
      await done;
    },
  };
}

eachBackend(t, 'changes arrive as they are committed, in order, with the incident as it is now; filters choose', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const all = await stream(hub);
  t.teardown(all.close);
  t.equal(all.res.status, 200);
  t.match(all.res.headers.get('content-type'), /^text\/event-stream/);
  const agents = await stream(hub, '?types=agent');
  t.teardown(agents.close);
  const { id: agentId, token } = await hub.enroll({ hostname: 'web-1' });
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await agent.next('welcome');
  agent.send('hello', HELLO);
  await all.until((e) => e.data?.type === 'agent_connected', 'agent online');
  agent.send('alert', { type: 'systemd', source: 'nginx.service', message: 'nginx failed' }, { id: 'a-1' });
  await agent.acked(['a-1']);
  const opened = await all.until((e) => e.data?.type === 'opened', 'the incident opened');
  t.match(opened, { event: 'incident', data: { group: 'incident', agent_id: agentId, incident: { status: /^(new|analyzing|open)$/, type: 'systemd', message: 'nginx failed' } } });
  const incidentId = opened.data.incident_id as string;
  const one = await stream(hub, `?incident_id=${incidentId}`);
  t.teardown(one.close);
  t.equal((await hub.api('POST', `/v1/incidents/${incidentId}/acknowledge`, {})).status, 200);
  await one.until((e) => e.data?.type === 'acknowledged', 'acknowledged, to the stream of that incident');
  t.match(await all.until((e) => e.data?.type === 'acknowledged', 'and to everyone'), { data: { actor: 'user', by: 'token:admin', incident: { status: 'acknowledged' } } });
  agent.close();
  await agents.until((e) => e.data?.type === 'agent_disconnected', 'agent offline');

  const seqs = all.events().map((e) => Number(e.id));
  t.same(seqs, [...seqs].sort((a, b) => a - b), 'in order of position');
  t.equal(new Set(seqs).size, seqs.length, 'each once');
  t.ok(all.events().every((e) => String(e.data.seq) === e.id), 'the id is the position');
  t.same([...new Set(agents.events().map((e) => e.data.group))], ['agent'], 'types=agent: agent events only');
  t.ok(one.events().every((e) => e.data.incident_id === incidentId), 'incident_id: that incident only');
});

eachBackend(t, 'a client that comes back with Last-Event-ID gets what it missed, once; too far back it is told to resync', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { eventStreamMaxReplay: 5 });
  const first = await stream(hub, '?types=config');
  await hub.api('POST', '/v1/tokens', { name: 'one', scopes: ['read'] });
  const seen = await first.until((e) => e.data?.type === 'token_created', 'the first event');
  await first.close();
  for (const name of ['two', 'three', 'four']) await hub.api('POST', '/v1/tokens', { name, scopes: ['read'] });
  const back = await stream(hub, '?types=config', { 'last-event-id': seen.id! });
  t.teardown(back.close);
  await back.until((e) => e.data?.detail?.name === 'four', 'the missed events');
  t.same(back.events().map((e) => e.data.detail.name), ['two', 'three', 'four'], 'what was missed, in order, and not what was seen');
  await hub.api('POST', '/v1/tokens', { name: 'five', scopes: ['read'] });
  await back.until((e) => e.data?.detail?.name === 'five', 'then live');

  for (let i = 0; i < 6; i++) await hub.api('POST', '/v1/tokens', { name: `more-${i}`, scopes: ['read'] });
  const late = await stream(hub, '', { 'last-event-id': seen.id! });
  t.teardown(late.close);
  const resync = await late.until((e) => e.event === 'resync', 'resync');
  t.match(resync.data, { reason: /more than 5 events were missed/ });
  t.equal(late.events().length, 0, 'nothing half-replayed');
});

eachBackend(t, 'keep-alives; a token holds a bounded number of streams; bad requests are refused', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { eventStreamsPerToken: 2, eventStreamKeepAliveMs: 50 });
  const a = await stream(hub);
  t.teardown(a.close);
  await a.until((e) => e.comment === 'keep-alive', 'a keep-alive');
  const b = await stream(hub);
  t.teardown(b.close);
  const c = await fetch(`http://127.0.0.1:${hub.port}/v1/events`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  t.equal(c.status, 429);
  t.match(await c.json(), { error: { code: 'HUB_RATE_LIMITED', message: /already holds 2 event streams/ } });
  await b.close();
  await eventually(async () => hub.app.hub.journal.listeners === 1, 5000, 'the closed stream forgotten');
  const d = await stream(hub);
  t.equal(d.res.status, 200, 'a slot is free again');
  await d.close();

  const reader = (await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] })).body.token as string;
  const r = await fetch(`http://127.0.0.1:${hub.port}/v1/events`, { headers: { authorization: `Bearer ${reader}` } });
  t.equal(r.status, 200, 'any scope may read the stream');
  await r.body?.cancel();
  for (const [query, headers, status] of [
    ['?types=incident,bogus', {}, 400],
    ['?types=%0Aevent:%20x', {}, 400],
    ['?agent_id=..%2F..', {}, 400],
    ['?since=-1', {}, 400],
    ['', { 'last-event-id': '1; drop' }, 400],
    ['', { authorization: 'Bearer nope' }, 401],
  ] as const) {
    const res = await fetch(`http://127.0.0.1:${hub.port}/v1/events${query}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers } });
    t.equal(res.status, status, `${query} ${JSON.stringify(headers)}`);
    await res.body?.cancel();
  }
});

eachBackend(t, 'a client that does not read is disconnected, not buffered without bound; the others go on', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { eventStreamMaxBufferedBytes: 512 * 1024 });
  const reading = await stream(hub, '?types=config');
  t.teardown(reading.close);
  // A raw socket that asks for the stream and never reads from it.
  const stalled = net.connect(hub.port, '127.0.0.1');
  await new Promise((r) => stalled.once('connect', r));
  stalled.pause();
  stalled.write(`GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`);
  t.teardown(() => stalled.destroy());
  await eventually(async () => hub.app.hub.journal.listeners === 2, 5000, 'both streams open');
  // 40 MB of events in bursts of 200 KB, far more than the kernel's socket buffers hold.
  const at = new Date();
  for (let batch = 0; batch < 200; batch++) {
    await recordEvents(
      hub.db.db,
      Array.from({ length: 20 }, (_, i) => ({ incidentId: null, at, actor: 'hub' as const, kind: 'rule_created' as const, detail: { name: `big-${batch}-${i}`, blob: 'x'.repeat(10_000) } })),
    );
    hub.app.hub.journal.kick();
    await reading.until((e) => e.data?.detail?.name === `big-${batch}-19`, `burst ${batch} read`, 20_000);
  }
  await eventually(async () => hub.app.hub.journal.listeners === 1, 20_000, 'the stalled stream cut off');
  t.equal(reading.events().length, 4000, 'every event, to the client that reads');
  t.ok(process.memoryUsage().rss < 1024 * 1024 * 1024, 'the hub did not keep 40 MB per stalled client');
});
