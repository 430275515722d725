/**
 * Load generator: N agents on real WebSockets, each sending heartbeats and metric batches (3:2,
 * as at the default 10 s / 15 s intervals) as fast as its socket drains, and answering every exec
 * at once. Frames are encoded once up front, as the protocol encoder does by default (both go
 * uncompressed: a heartbeat's stats and a one-sample metrics batch are under GZIP_MIN_BYTES; with
 * BENCH_GZIP_METRICS=1 the metrics batch is gzipped, as before), so the generator spends its CPU
 * on sending.
 *
 * Usage: node --import tsx load.ts <ws-url> <tokens-file|-> <agents> <seconds>
 * Prints one JSON line when done: {connected, sent, execs}.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { HUB_MESSAGE_TYPES, decodeFrame, encodeEnvelope, type PayloadOf } from '@opspilot/protocol';

const [url, tokensFile, agentsArg, secondsArg] = process.argv.slice(2);
const agents = Number(agentsArg);
const seconds = Number(secondsArg);
const tokens = tokensFile && tokensFile !== '-' ? readFileSync(tokensFile, 'utf8').trim().split('\n') : [];

const heartbeat = encodeEnvelope('heartbeat', { uptime_s: 86400, cpu_pct: 12.5, mem_pct: 41.2, load1: 0.42 });
const metrics = encodeEnvelope('metrics', {
  samples: [
    {
      ts: Math.floor(Date.now() / 1000),
      cpu_pct: 12.5,
      mem_used: 3_400_000_000,
      mem_total: 8_200_000_000,
      swap_used: 0,
      load1: 0.42,
      load5: 0.38,
      load15: 0.31,
      disks: [
        { mount: '/', used: 21_000_000_000, size: 64_000_000_000 },
        { mount: '/var', used: 5_000_000_000, size: 32_000_000_000 },
        { mount: '/boot', used: 120_000_000, size: 500_000_000 },
      ],
      net: [
        { iface: 'eth0', rx_bps: 125_000, tx_bps: 48_000 },
        { iface: 'lo', rx_bps: 2_000, tx_bps: 2_000 },
      ],
    },
  ],
}, process.env.BENCH_GZIP_METRICS === '1' ? { compression: 'gzip' } : {});
const PATTERN = [heartbeat, metrics, heartbeat, metrics, heartbeat];
const HIGH_WATER = 16 * 1024; // stop writing to a socket while this much waits in its buffer

let sent = 0;
let execs = 0;
let connected = 0;
let resultSeq = 0;
const sockets: WebSocket[] = [];

function connect(i: number): Promise<void> {
  return new Promise((resolve) => {
    const token = tokens[i];
    const ws = new WebSocket(url!, {
      perMessageDeflate: false,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    ws.on('open', () => {
      connected++;
      sockets.push(ws);
      resolve();
    });
    ws.on('error', () => resolve());
    ws.on('message', (data) => {
      const text = data.toString();
      if (!text.includes('"exec"')) return;
      const { message } = decodeFrame(text, HUB_MESSAGE_TYPES);
      if (message.type !== 'exec') return;
      const exec = message.payload as PayloadOf<'exec'>;
      execs++;
      ws.send(
        encodeEnvelope(
          'exec_result',
          { request_id: exec.request_id, ok: true, exit_code: 0, stdout: 'active (running)', stderr: '', duration_ms: 3, truncated: false },
          { id: `r${process.pid}-${++resultSeq}` },
        ),
      );
    });
  });
}

// Connect in waves so the hub's token lookups are not one thundering herd.
for (let i = 0; i < agents; i += 100) {
  await Promise.all(Array.from({ length: Math.min(100, agents - i) }, (_, j) => connect(i + j)));
}
process.stdout.write(JSON.stringify({ event: 'connected', connected }) + '\n');

const stopAt = Date.now() + seconds * 1000;
let turn = 0;
function pump(): void {
  if (Date.now() >= stopAt) {
    process.stdout.write(JSON.stringify({ event: 'done', connected, sent, execs }) + '\n');
    for (const ws of sockets) ws.terminate();
    setTimeout(() => process.exit(0), 100);
    return;
  }
  const frame = PATTERN[turn++ % PATTERN.length]!;
  for (const ws of sockets) {
    if (ws.readyState === ws.OPEN && ws.bufferedAmount < HIGH_WATER) {
      ws.send(frame);
      sent++;
    }
  }
  setImmediate(pump);
}
pump();
