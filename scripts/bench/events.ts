/**
 * `pnpm bench events`: the delay from an alert's commit to its event reaching 100 open streams.
 * A hub process on PostgreSQL; 100 clients hold `GET /v1/events?types=incident` open; a scripted
 * agent sends alerts one at a time, each a new incident. The hub acks an alert once its incident
 * is committed: the delay is from that ack to the `opened` event at each stream (p50 over every
 * stream, and the slowest of the 100 per alert). Baseline in the same run: a bare node:http SSE
 * server (its own process) writing one event to 100 streams, from the trigger to each client.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { HUB_MESSAGE_TYPES, decodeFrame, encodeEnvelope } from '@opspilot/protocol';
import { spawnHub } from '../hub-process.ts';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const round = (n: number) => Math.round(n * 100) / 100;

/** SSE clients: `onData(i, data)` for each event's data line. */
function clients(n: number, url: string, headers: Record<string, string>, onData: (data: string) => void): Promise<http.ClientRequest[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<http.ClientRequest>((resolve, reject) => {
          const req = http.get(url, { headers, agent: false }, (res) => {
            if (res.statusCode !== 200) return reject(new Error(`stream: ${res.statusCode}`));
            let buffer = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              buffer += chunk;
              let end: number;
              while ((end = buffer.indexOf('\n\n')) >= 0) {
                const block = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                const data = block.split('\n').find((l) => l.startsWith('data: '));
                if (data) onData(data.slice(6));
              }
            });
            resolve(req);
          });
          req.on('error', reject);
        }),
    ),
  );
}

export interface EventsRow {
  alerts: number;
  streams: number;
  p50_ms: number;
  p99_ms: number;
  slowest_stream_p50_ms: number;
  slowest_stream_p99_ms: number;
}

function summarize(perAlert: number[][], streams: number): EventsRow {
  const all = perAlert.flat().sort((a, b) => a - b);
  const slowest = perAlert.map((d) => Math.max(...d)).sort((a, b) => a - b);
  return { alerts: perAlert.length, streams, p50_ms: round(percentile(all, 50)), p99_ms: round(percentile(all, 99)), slowest_stream_p50_ms: round(percentile(slowest, 50)), slowest_stream_p99_ms: round(percentile(slowest, 99)) };
}

export async function eventsBench(opts: { databaseUrl: string; streams: number; alerts: number; root: string }): Promise<{ hub: EventsRow; bare: EventsRow }> {
  // Baseline: a bare SSE server in a process of its own, fired over stdin.
  const bare = spawn(process.execPath, ['--import', 'tsx', path.join(opts.root, 'scripts/bench/bare-sse.ts')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const barePort = await new Promise<number>((resolve) => bare.stdout!.once('data', (c: Buffer) => resolve(Number(c.toString().trim()))));
  let bareWaiting: { id: string; at: number; got: number[]; done: () => void } | null = null;
  const bareClients = await clients(opts.streams, `http://127.0.0.1:${barePort}/`, {}, (data) => {
    const w = bareWaiting;
    if (w && JSON.parse(data).id === w.id) {
      w.got.push(performance.now() - w.at);
      if (w.got.length === opts.streams) w.done();
    }
  });
  const barePerAlert: number[][] = [];
  for (let i = 0; i < opts.alerts; i++) {
    const id = `b${i}`;
    await new Promise<void>((done) => {
      bareWaiting = { id, at: performance.now(), got: [], done };
      bare.stdin!.write(`${id}\n`);
    });
    barePerAlert.push(bareWaiting!.got);
  }
  for (const c of bareClients) c.destroy();
  bare.kill();

  const hub = await spawnHub({ DATABASE_URL: opts.databaseUrl, OPSPILOT_LOG_LEVEL: 'error', OPSPILOT_EVENT_STREAMS_PER_TOKEN: String(opts.streams + 10), OPSPILOT_ALERTS_PER_MINUTE: '100000' });
  try {
    const waiting = new Map<string, { ackAt: number | null; arrivals: number[]; done: () => void }>();
    const streams = await clients(opts.streams, `${hub.url}/v1/events?types=opened`, { authorization: `Bearer ${hub.adminToken}` }, (data) => {
      const e = JSON.parse(data) as { incident?: { message: string } };
      const w = e.incident && waiting.get(e.incident.message);
      if (!w) return;
      w.arrivals.push(performance.now());
      if (w.arrivals.length === opts.streams && w.ackAt !== null) w.done();
    });
    const { token } = (await hub.api('POST', '/v1/agents', { hostname: 'bench-events' })).body as { token: string };
    const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/v1/stream`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const acks = new Map<string, () => void>();
    ws.on('message', (raw) => {
      const { message } = decodeFrame(raw.toString(), HUB_MESSAGE_TYPES);
      if (message.type === 'ack') for (const id of message.payload.ids) acks.get(id)?.();
    });
    ws.send(encodeEnvelope('hello', { protocol: 2, agent_version: 'bench', hostname: 'bench-events', os: 'linux', arch: 'x64', actions: [] }));
    const hubPerAlert: number[][] = [];
    for (let i = 0; i < opts.alerts + 5; i++) {
      const message = `bench event ${i}`;
      const id = `e${i}`;
      await new Promise<void>((done) => {
        const w = { ackAt: null as number | null, arrivals: [] as number[], done };
        waiting.set(message, w);
        acks.set(id, () => {
          w.ackAt = performance.now();
          if (w.arrivals.length === opts.streams) done();
        });
        ws.send(encodeEnvelope('alert', { type: 'log', source: `bench-${i}`, message }, { id }));
      });
      const w = waiting.get(message)!;
      // The first few warm the hub up; an event that beat the ack (possible: both follow the commit) counts as 0.
      if (i >= 5) hubPerAlert.push(w.arrivals.map((t) => Math.max(0, t - w.ackAt!)));
      waiting.delete(message);
    }
    ws.close();
    for (const s of streams) s.destroy();
    return { hub: summarize(hubPerAlert, opts.streams), bare: summarize(barePerAlert, opts.streams) };
  } finally {
    await hub.stop();
  }
}
