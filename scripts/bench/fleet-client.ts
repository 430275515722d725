/**
 * A slice of a fleet at real intervals, as one process (one process holds at most ~20,000
 * sockets here, so `pnpm bench fleet` runs several, each from its own source address 127.0.0.x):
 * each agent connects with its token, says hello, sends a heartbeat every 10 s (spread over the
 * interval) and answers every exec at once. The parent (IPC) asks for alerts and is told how long
 * each took to be acked (committed by the hub).
 *
 * Usage (forked with IPC): fleet-client.ts <ws-url> <tokens-file> <from> <count> <local-address> <heartbeat-s>
 * Sends {event: 'connected', connected, failed}, then answers {cmd: 'alert', index, id} with
 * {event: 'acked', id, ms}; {cmd: 'loop'} with {event: 'loop', p99, max} (this process's event-loop
 * delay since the last, ms); {cmd: 'stop'} closes every socket and exits. A socket the hub side
 * closes is reconnected as the agent does (the first attempt drawn from up to 30 s, narrowed to
 * one interval before the agent's offline deadline), reported as {event: 'reconnected', at,
 * late_ms, past_deadline, failures} (how long after its drawn time it got in, whether after its
 * deadline, attempts that failed first); each failed attempt as {event: 'reconnect_failed', reason}.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { HUB_MESSAGE_TYPES, PROTOCOL_VERSION, decodeFrame, encodeEnvelope, type PayloadOf } from '@opspilot/protocol';

const [url, tokensFile, fromArg, countArg, localAddress, heartbeatArg] = process.argv.slice(2);
const from = Number(fromArg);
const count = Number(countArg);
const heartbeatS = Number(heartbeatArg);
const tokens = tokensFile && tokensFile !== '-' ? readFileSync(tokensFile, 'utf8').trim().split('\n').slice(from, from + count) : [];

const hello = encodeEnvelope('hello', { protocol: PROTOCOL_VERSION, agent_version: 'fleet-bench', hostname: 'fleet', os: 'linux', arch: 'x64', actions: ['service_status', 'disk_usage'] });
const heartbeat = encodeEnvelope('heartbeat', { uptime_s: 86400, cpu_pct: 12.5, mem_pct: 41.2, load1: 0.42 });

const sockets: (WebSocket | undefined)[] = new Array(count);
const waiting = new Map<string, number>();
let connected = 0;
let failed = 0;
let resultSeq = 0;

let stopping = false;
const lastHeartbeat: number[] = new Array(count).fill(0);

/** The agent's rule (packages/agent/src/client.ts): up to 30 s, back one interval before the deadline. */
function spreadMs(i: number): number {
  const interval = heartbeatS * 1000;
  return Math.max(1000, Math.min(30_000, lastHeartbeat[i]! + 3 * interval - Date.now() - interval));
}

/** For a reconnect after a lost hub: when the socket closed, when the attempt was drawn for, how many failed. */
const lost = new Map<number, { closedAt: number; drawnAt: number; deadline: number; failures: number }>();

function connect(i: number, again = false, attempt = 0): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url!, {
      perMessageDeflate: false,
      localAddress,
      headers: tokens[i] ? { authorization: `Bearer ${tokens[i]}` } : {},
    });
    ws.on('open', () => {
      if (again) {
        const at = Date.now();
        const l = lost.get(i);
        lost.delete(i);
        process.send!({ event: 'reconnected', at, ...(l ? { late_ms: at - l.drawnAt, past_deadline: at > l.deadline, failures: l.failures } : {}) });
      } else connected++;
      sockets[i] = ws;
      lastHeartbeat[i] = Date.now();
      ws.send(hello);
      // Heartbeats at the real interval, each agent at its own phase.
      const phase = Math.random() * heartbeatS * 1000;
      const beat = () => {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(heartbeat);
        lastHeartbeat[i] = Date.now();
      };
      const timer = setTimeout(() => {
        beat();
        const every = setInterval(beat, heartbeatS * 1000);
        ws.once('close', () => clearInterval(every));
      }, phase);
      ws.once('close', () => {
        clearTimeout(timer);
        if (stopping) return;
        const now = Date.now();
        const delay = Math.random() * spreadMs(i);
        lost.set(i, { closedAt: now, drawnAt: now + delay, deadline: lastHeartbeat[i]! + 3 * heartbeatS * 1000, failures: 0 });
        setTimeout(() => void connect(i, true), delay);
      });
      resolve();
    });
    ws.on('error', (err) => {
      if (sockets[i] === ws) return; // an open socket's error: its close reconnects
      if (again) {
        const l = lost.get(i);
        if (l) l.failures++;
        // Why an attempt failed, in a few words (a refused connection, a 503 from a balancer…).
        process.send!({ event: 'reconnect_failed', reason: err.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'ADDR').slice(0, 80) });
        if (!stopping) setTimeout(() => void connect(i, true), 1000 + Math.random() * 2000);
        return;
      }
      // A first connection refused (a busy hub, a balancer's queue): tried again, as an agent would.
      if (attempt < 5) setTimeout(() => void connect(i, false, attempt + 1).then(resolve), 1000 + Math.random() * 2000);
      else {
        failed++;
        resolve();
      }
    });
    ws.on('message', (data) => {
      const text = data.toString();
      // Only acks of timed alerts and execs matter; the rest is skipped without decoding.
      if (!text.includes('"exec"') && !(waiting.size > 0 && text.includes('"ack"'))) return;
      const { message } = decodeFrame(text, HUB_MESSAGE_TYPES);
      if (message.type === 'ack') {
        for (const id of (message.payload as PayloadOf<'ack'>).ids) {
          const t0 = waiting.get(id);
          if (t0 === undefined) continue;
          waiting.delete(id);
          process.send!({ event: 'acked', id, ms: performance.now() - t0 });
        }
        return;
      }
      if (message.type !== 'exec') return;
      const exec = message.payload as PayloadOf<'exec'>;
      ws.send(
        encodeEnvelope(
          'exec_result',
          { request_id: exec.request_id, ok: true, exit_code: 0, stdout: '● nginx.service - active (running)', stderr: '', duration_ms: 3, truncated: false },
          { id: `r${process.pid}-${++resultSeq}` },
        ),
      );
    });
  });
}

// In waves, so the hub's token lookups are not one thundering herd.
for (let i = 0; i < count; i += 200) await Promise.all(Array.from({ length: Math.min(200, count - i) }, (_, j) => connect(i + j)));
process.send!({ event: 'connected', connected, failed });

// This process's own event-loop delay: a simulated agent answering late is the bench's, not the hub's.
const LOOP_RESOLUTION_MS = 2;
const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loop.enable();

process.on('message', (m: { cmd: string; index?: number; id?: string }) => {
  if (m.cmd === 'loop') {
    // The histogram holds whole intervals between the monitor's ticks: past its resolution is delay.
    const past = (ns: number) => Math.max(0, Math.round((ns / 1e6 - LOOP_RESOLUTION_MS) * 10) / 10);
    process.send!({ event: 'loop', p99: past(loop.percentile(99)), max: past(loop.max) });
    loop.reset();
  } else if (m.cmd === 'alert') {
    const ws = sockets[m.index!];
    if (!ws || ws.readyState !== ws.OPEN) return process.send!({ event: 'acked', id: m.id, ms: -1 });
    waiting.set(m.id!, performance.now());
    ws.send(encodeEnvelope('alert', { type: 'systemd', source: `bench-${m.id}.service`, message: `bench-${m.id}.service failed` }, { id: m.id! }));
  } else if (m.cmd === 'stop') {
    stopping = true;
    for (const ws of sockets) ws?.terminate();
    setTimeout(() => process.exit(0), 200);
  }
});
