/**
 * The agent's footprint: the bundled agent at its default intervals (heartbeat 10 s, metrics
 * 15 s) for BENCH_AGENT_SECONDS (120), against a minimal hub that welcomes and acks and counts
 * what arrives; beside Debian's prometheus-node-exporter scraped every 15 s (Prometheus' default)
 * over the same window on the same machine. RSS from /proc/<pid>/status, CPU from
 * /proc/<pid>/stat, bytes on the wire per second (WebSocket frames with their headers; HTTP
 * responses with their headers for node_exporter).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { AGENT_MESSAGE_TYPES, decodeFrame, encodeEnvelope } from '@opspilot/protocol';
import { buildAgent } from '../build-agent.ts';

const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';

export interface Footprint {
  rss_mib: number;
  peak_rss_mib: number;
  cpu_pct: number;
  bytes_per_s: number;
}

export function procStats(pid: number): { cpuSeconds: number; rss: number; peak: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { cpuSeconds: (Number(f[11]) + Number(f[12])) / 100, rss: kb('VmRSS'), peak: kb('VmHWM') };
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

export async function agentBench(seconds: number): Promise<{ agent: Footprint; nodeExporter: Footprint | string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-agent-bench-'));
  const children: ChildProcess[] = [];
  try {
    const bundle = await buildAgent(path.join(dir, 'opspilot-agent.mjs'));

    // A minimal hub: welcome, ack every id, count bytes.
    let agentBytes = 0;
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    wss.on('connection', (ws) => {
      ws.send(encodeEnvelope('welcome', { agent_id: 'bench', heartbeat_interval_s: 10 }));
      ws.on('message', (data) => {
        const text = data.toString();
        agentBytes += wsFrameBytes(Buffer.byteLength(text));
        const { envelope } = decodeFrame(text, AGENT_MESSAGE_TYPES);
        if (envelope.id) ws.send(encodeEnvelope('ack', { ids: [envelope.id] }));
      });
    });
    const { port } = wss.address() as AddressInfo;
    const agent = spawn(process.execPath, [bundle], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', OPSPILOT_HUB_URL: `ws://127.0.0.1:${port}`, OPSPILOT_AGENT_TOKEN: 'opa_bench_token_000000', OPSPILOT_AGENT_STATE_DIR: path.join(dir, 'state') },
      stdio: 'ignore',
    });
    children.push(agent);

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

    // Let both settle (connect, first samples), then measure both over the same window.
    await new Promise((r) => setTimeout(r, 5000));
    const [agentFootprint, exporterFootprint] = await Promise.all([
      measure(agent.pid!, seconds, () => agentBytes),
      exporter ? measure(exporter.pid!, seconds, () => exporterBytes) : Promise.resolve(`not installed: apt-get install prometheus-node-exporter`),
    ]);
    if (scraper) clearInterval(scraper);
    wss.close();
    return { agent: agentFootprint, nodeExporter: exporterFootprint };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
