/**
 * The agent's footprint: the bundled agent at its default intervals (heartbeat 10 s, metrics
 * 15 s) for BENCH_AGENT_SECONDS (120), against a minimal hub that welcomes and acks and counts
 * what arrives; beside Debian's prometheus-node-exporter scraped every 15 s (Prometheus' default)
 * over the same window on the same machine; and a second agent, the same bundle, sent 20 HTTP
 * monitors of a local server at the shortest interval (10 s), whose difference from the first is
 * what running checks costs. RSS from /proc/<pid>/status, CPU from /proc/<pid>/stat, bytes on the
 * wire per second (WebSocket frames with their headers; HTTP responses with their headers for
 * node_exporter).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { createServer as createHttpServer } from 'node:http';
import { AGENT_MESSAGE_TYPES, PROTOCOL_VERSION, decodeFrame, encodeEnvelope, type MonitorDefinition } from '@opspilot/protocol';
import { buildAgent } from '../build-agent.ts';
import { statCpu } from './procs.ts';

const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';

export interface Footprint {
  rss_mib: number;
  peak_rss_mib: number;
  cpu_pct: number;
  bytes_per_s: number;
}

export function procStats(pid: number): { cpuSeconds: number; rss: number; peak: number } {
  const { user, system } = statCpu(`/proc/${pid}/stat`);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { cpuSeconds: user + system, rss: kb('VmRSS'), peak: kb('VmHWM') };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const wsFrameBytes = (payload: number) => payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10) + 4; // client frames are masked

async function measure(pid: number, seconds: number, bytes: () => number): Promise<Footprint> {
  const a = procStats(pid);
  const b0 = bytes();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = procStats(pid);
  const elapsed = (performance.now() - t0) / 1000;
  const mib = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;
  return {
    rss_mib: mib(b.rss),
    peak_rss_mib: mib(b.peak),
    cpu_pct: Math.round(((b.cpuSeconds - a.cpuSeconds) / elapsed) * 100 * 100) / 100,
    bytes_per_s: Math.round(((bytes() - b0) / elapsed) * 10) / 10,
  };
}

export async function agentBench(
  seconds: number,
  checks = { count: 20, intervalS: 10 },
): Promise<{ agent: Footprint; nodeExporter: Footprint | string; withChecks: Footprint & { checks: number; interval_s: number; results_per_s: number } }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-agent-bench-'));
  const children: ChildProcess[] = [];
  // What the checking agent checks: a JSON health endpoint in this process.
  const target = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'));
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/health`;
  try {
    const bundle = await buildAgent(path.join(dir, 'opspilot-agent.mjs'));

    // A minimal hub: welcome, ack every id, count bytes; the checking agent (by its token) is sent its monitors after hello.
    const bytes = { plain: 0, checking: 0 };
    let results = 0;
    const monitors: MonitorDefinition[] = Array.from({ length: checks.count }, (_, i) => ({ id: `bench-${i}`, kind: 'http', target: `${targetUrl}?m=${i}`, interval_s: checks.intervalS, timeout_ms: 5000, conditions: ['[STATUS] == 200', '[BODY].status == "ok"'] }));
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    wss.on('connection', (ws, req) => {
      const which = req.headers.authorization?.endsWith('checking') ? 'checking' : 'plain';
      ws.send(encodeEnvelope('welcome', { agent_id: `bench-${which}`, heartbeat_interval_s: 10, protocol: PROTOCOL_VERSION }));
      ws.on('message', (data) => {
        const text = data.toString();
        bytes[which] += wsFrameBytes(Buffer.byteLength(text));
        const { envelope, message } = decodeFrame(text, AGENT_MESSAGE_TYPES);
        if (message.type === 'hello' && which === 'checking') ws.send(encodeEnvelope('monitors', { version: 'bench', monitors }));
        if (message.type === 'check_results') results += message.payload.results.length;
        if (envelope.id) ws.send(encodeEnvelope('ack', { ids: [envelope.id] }));
      });
    });
    const { port } = wss.address() as AddressInfo;
    const start = (which: 'plain' | 'checking') => {
      const child = spawn(process.execPath, [bundle], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', OPSPILOT_HUB_URL: `ws://127.0.0.1:${port}`, OPSPILOT_AGENT_TOKEN: `opa_bench_token_${which}`, OPSPILOT_AGENT_STATE_DIR: path.join(dir, `state-${which}`) },
        stdio: 'ignore',
      });
      children.push(child);
      return child;
    };
    const agent = start('plain');
    const checking = start('checking');

    let exporterBytes = 0;
    let exporter: ChildProcess | null = null;
    let scraper: NodeJS.Timeout | null = null;
    if (existsSync(NODE_EXPORTER)) {
      const exporterPort = await freePort();
      exporter = spawn(NODE_EXPORTER, [`--web.listen-address=127.0.0.1:${exporterPort}`], { stdio: 'ignore' });
      children.push(exporter);
      const scrape = () =>
        new Promise<void>((resolve) => {
          const req = request({ host: '127.0.0.1', port: exporterPort, path: '/metrics' }, (res) => {
            let headerBytes = 0;
            for (let i = 0; i < res.rawHeaders.length; i += 2) headerBytes += res.rawHeaders[i]!.length + res.rawHeaders[i + 1]!.length + 4;
            exporterBytes += headerBytes + 17;
            res.on('data', (c: Buffer) => (exporterBytes += c.length));
            res.on('end', resolve);
          });
          req.on('error', () => resolve());
          req.end();
        });
      await new Promise((r) => setTimeout(r, 1000));
      await scrape();
      scraper = setInterval(() => void scrape(), 15_000);
    }

    // Let them settle (connect, first samples, every check run once), then measure all over the same window.
    await new Promise((r) => setTimeout(r, 12_000));
    const results0 = results;
    const t0 = performance.now();
    const [agentFootprint, checkingFootprint, exporterFootprint] = await Promise.all([
      measure(agent.pid!, seconds, () => bytes.plain),
      measure(checking.pid!, seconds, () => bytes.checking),
      exporter ? measure(exporter.pid!, seconds, () => exporterBytes) : Promise.resolve(`not installed: apt-get install prometheus-node-exporter`),
    ]);
    const resultsPerS = Math.round(((results - results0) / ((performance.now() - t0) / 1000)) * 100) / 100;
    if (scraper) clearInterval(scraper);
    wss.close();
    return { agent: agentFootprint, nodeExporter: exporterFootprint, withChecks: { ...checkingFootprint, checks: checks.count, interval_s: checks.intervalS, results_per_s: resultsPerS } };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await new Promise<void>((r) => target.close(() => r()));
  }
}
