/**
 * `pnpm bench fleet`: a fleet at real intervals against one hub process on PostgreSQL, beside a
 * bare `ws` server holding the same sockets, in one run. N agents (BENCH_FLEET_AGENTS, 10,000) are
 * enrolled over REST and connected from client processes of at most 5,000 each, each from its own
 * source address (127.0.0.10, .11, …); each says hello, sends a heartbeat every 10 s and answers
 * execs at once. Once all are connected and a heartbeat round has passed, over the window
 * (BENCH_FLEET_SECONDS, 30): the hub's CPU and RSS, `POST /v1/admin/exec` round trips to random
 * agents one at a time, and alert → ack (the incident committed) one at a time from random agents
 * (BENCH_FLEET_SAMPLES, 200 each). Then the same clients against the bare server: its RSS and CPU.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnHub, freePort } from '../hub-process.ts';

const CLIENT = path.join(import.meta.dirname, 'fleet-client.ts');
const BARE = path.join(import.meta.dirname, 'bare-receiver.ts');
const PER_CLIENT = 5000;
const HEARTBEAT_S = 10;

export interface FleetRow {
  connected: number;
  rss_mib: number;
  cpu_pct: number;
  exec?: { n: number; failed: number; p50: number; p99: number; max: number };
  ack?: { n: number; failed: number; p50: number; p99: number; max: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssMib = (pid: number) => Math.round((Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024) * 10) / 10;
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
function summary(ms: number[], failed: number) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => Math.round((s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN) * 10) / 10;
  return { n: s.length, failed, p50: at(50), p99: at(99), max: Math.round((s.at(-1) ?? NaN) * 10) / 10 };
}

interface Clients {
  procs: ChildProcess[];
  connected: number;
  alert(index: number, id: string): Promise<number>;
  stop(): Promise<void>;
}

async function startClients(url: string, tokensFile: string, agents: number): Promise<Clients> {
  const procs: ChildProcess[] = [];
  const acked = new Map<string, (ms: number) => void>();
  let connected = 0;
  const ready: Promise<void>[] = [];
  for (let from = 0, k = 0; from < agents; from += PER_CLIENT, k++) {
    const count = Math.min(PER_CLIENT, agents - from);
    const child = fork(CLIENT, [url, tokensFile, String(from), String(count), `127.0.0.${10 + k}`, String(HEARTBEAT_S)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    procs.push(child);
    ready.push(
      new Promise((resolve) =>
        child.on('message', (m: { event: string; connected?: number; id?: string; ms?: number }) => {
          if (m.event === 'connected') {
            connected += m.connected!;
            resolve();
          } else if (m.event === 'acked') acked.get(m.id!)?.(m.ms!);
        }),
      ),
    );
  }
  await Promise.all(ready);
  return {
    procs,
    connected,
    alert(index, id) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => (acked.delete(id), resolve(-1)), 10_000);
        acked.set(id, (ms) => {
          clearTimeout(timer);
          acked.delete(id);
          resolve(ms);
        });
        procs[Math.floor(index / PER_CLIENT)]!.send({ cmd: 'alert', index: index % PER_CLIENT, id });
      });
    },
    async stop() {
      await Promise.all(procs.map((p) => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.send({ cmd: 'stop' }))))));
    },
  };
}

export async function fleetBench(opts: { databaseUrl: string; agents: number; seconds: number; samples: number; hubEnv?: Record<string, string> }): Promise<{ agents: number; hub: FleetRow; bare: FleetRow }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-bench-fleet-'));
  const hub = await spawnHub({
    DATABASE_URL: opts.databaseUrl,
    OPSPILOT_LOG_LEVEL: 'error',
    OPSPILOT_API_RATE_LIMIT: '10000000',
    OPSPILOT_ALERTS_PER_MINUTE: '100000',
    OPSPILOT_MAX_CONNECTIONS: String(opts.agents + 1000),
    ...opts.hubEnv,
  });
  try {
    // Enrolled over REST, 32 at a time.
    const tokens: string[] = new Array(opts.agents);
    const ids: string[] = new Array(opts.agents);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < opts.agents; i = next++) {
          const r = await hub.api('POST', '/v1/agents', { hostname: `fleet-${i}` });
          if (r.status !== 201) throw new Error(`enrolling agent ${i}: ${r.status} ${JSON.stringify(r.body)}`);
          tokens[i] = r.body.token;
          ids[i] = r.body.id;
        }
      }),
    );
    const tokensFile = path.join(dir, 'tokens');
    writeFileSync(tokensFile, tokens.join('\n'));

    const clients = await startClients(`ws://127.0.0.1:${hub.port}/v1/stream`, tokensFile, opts.agents);
    await sleep((HEARTBEAT_S + 2) * 1000); // a heartbeat round, every hello stored
    const cpu0 = cpuSeconds(hub.child.pid!);
    const t0 = performance.now();
    const execMs: number[] = [];
    const ackMs: number[] = [];
    let execFailed = 0;
    let ackFailed = 0;
    const deadline = Date.now() + opts.seconds * 1000;
    const pick = () => Math.floor(Math.random() * opts.agents);
    // Execs and alerts, each one at a time, side by side, spread over the window.
    const gap = (opts.seconds * 1000) / opts.samples;
    await Promise.all([
      (async () => {
        for (let i = 0; i < opts.samples && Date.now() < deadline; i++) {
          const s = performance.now();
          const r = await hub.api('POST', '/v1/admin/exec', { agent_id: ids[pick()], command: 'service_status', params: { service: 'nginx.service' } });
          if (r.status === 200 && r.body.status === 'succeeded') execMs.push(performance.now() - s);
          else execFailed++;
          await sleep(Math.max(0, gap - (performance.now() - s)));
        }
      })(),
      (async () => {
        for (let i = 0; i < opts.samples && Date.now() < deadline; i++) {
          const s = performance.now();
          const ms = await clients.alert(pick(), `fleet-alert-${i}`);
          if (ms >= 0) ackMs.push(ms);
          else ackFailed++;
          await sleep(Math.max(0, gap - (performance.now() - s)));
        }
      })(),
    ]);
    await sleep(Math.max(0, deadline - Date.now()));
    const seconds = (performance.now() - t0) / 1000;
    const hubRow: FleetRow = {
      connected: clients.connected,
      rss_mib: rssMib(hub.child.pid!),
      cpu_pct: Math.round(((cpuSeconds(hub.child.pid!) - cpu0) / seconds) * 1000) / 10,
      exec: summary(execMs, execFailed),
      ack: summary(ackMs, ackFailed),
    };
    await clients.stop();
    await hub.stop();

    // The same sockets and heartbeats on a bare ws server.
    const port = await freePort();
    const bare = spawn(process.execPath, ['--import', 'tsx', BARE, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => bare.stdout!.once('data', () => r()));
    try {
      const bareClients = await startClients(`ws://127.0.0.1:${port}/`, '-', opts.agents);
      await sleep((HEARTBEAT_S + 2) * 1000);
      const b0 = cpuSeconds(bare.pid!);
      await sleep(opts.seconds * 1000);
      const bareRow: FleetRow = { connected: bareClients.connected, rss_mib: rssMib(bare.pid!), cpu_pct: Math.round(((cpuSeconds(bare.pid!) - b0) / opts.seconds) * 1000) / 10 };
      await bareClients.stop();
      return { agents: opts.agents, hub: hubRow, bare: bareRow };
    } finally {
      bare.kill('SIGKILL');
    }
  } finally {
    await hub.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
