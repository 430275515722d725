/**
 * `pnpm bench`: the hub under N simulated agents over real sockets, storing into PostgreSQL,
 * beside a bare `ws` receive loop measured in the same run with the same load generator.
 *
 * Prints envelopes/s stored by the hub, envelopes/s received by the bare loop, exec round-trip
 * p50/p99 under load, and the hub's RSS. Environment:
 *   BENCH_AGENTS   simulated agents (2000)
 *   BENCH_SECONDS  measured seconds per phase (20)
 *   BENCH_EXECS    exec round trips to time during the hub phase (200)
 *   DATABASE_URL   PostgreSQL server to use (postgres://postgres@127.0.0.1:5432/test); a
 *                  throwaway database is created on it and dropped at the end
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const EXECS = Number(process.env.BENCH_EXECS ?? 200);
const SERVER_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROOT = path.resolve(import.meta.dirname, '..');
const ADMIN = `bench-admin-${randomBytes(8).toString('hex')}`;
const WARMUP_S = 3;

const children: ChildProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function node(script: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return child;
}

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

/** Run the load generator; resolves with its final report, calling `onConnected` once all are in. */
function runLoad(url: string, tokensFile: string, onConnected: () => void): Promise<{ connected: number; sent: number; execs: number }> {
  const child = node('scripts/bench/load.ts', [url, tokensFile, String(AGENTS), String(SECONDS + WARMUP_S)]);
  return new Promise((resolve, reject) => {
    lines(child, (line) => {
      const msg = JSON.parse(line);
      if (msg.event === 'connected') onConnected();
      if (msg.event === 'done') resolve(msg);
    });
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`load generator exited ${code}`))));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function bareLoop(): Promise<number> {
  const port = await freePort();
  const receiver = node('scripts/bench/bare-receiver.ts', [String(port)]);
  await new Promise<void>((resolve) => lines(receiver, (l) => l === 'ready' && resolve()));
  const count = async () => (await (await fetch(`http://127.0.0.1:${port}/count`)).json()).count as number;
  let measured = 0;
  await runLoad(`ws://127.0.0.1:${port}/`, '-', () => {
    void (async () => {
      await sleep(WARMUP_S * 1000);
      const c0 = await count();
      const t0 = performance.now();
      await sleep(SECONDS * 1000 - 500);
      measured = ((await count()) - c0) / ((performance.now() - t0) / 1000);
    })();
  });
  receiver.kill('SIGTERM');
  return measured;
}

async function hubPhase(databaseUrl: string) {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'opspilot-bench-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const hub = node('packages/hub/src/main.ts', [], {
    OPSPILOT_PORT: String(port),
    OPSPILOT_HOST: '127.0.0.1',
    OPSPILOT_ADMIN_TOKEN: ADMIN,
    OPSPILOT_DATA_DIR: dataDir,
    OPSPILOT_LOG_LEVEL: 'warn',
    DATABASE_URL: databaseUrl,
  });
  hub.stdout!.pipe(process.stderr);
  const base = `http://127.0.0.1:${port}`;
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(base + p, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, text: await res.text() };
  };
  for (let i = 0; ; i++) {
    if ((await fetch(`${base}/readyz`).then((r) => r.ok, () => false))) break;
    if (i > 300) throw new Error('hub did not start');
    await sleep(100);
  }

  log(`enrolling ${AGENTS} agents`);
  const ids: string[] = [];
  const tokens: string[] = [];
  for (let i = 0; i < AGENTS; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, AGENTS - i) }, (_, j) => api('POST', '/v1/agents', { hostname: `bench-${i + j}` })),
    );
    for (const r of batch) {
      const body = JSON.parse(r.text);
      ids.push(body.id);
      tokens.push(body.token);
    }
  }
  const tokensFile = path.join(dataDir, 'tokens');
  writeFileSync(tokensFile, tokens.join('\n'), { mode: 0o600 });

  const scrape = async () => {
    const text = (await api('GET', '/metrics')).text;
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { frames: value('opspilot_ingest_frames_total'), batches: value('opspilot_ingest_batches_total'), connected: value('opspilot_agents_connected') };
  };

  let result = { stored: 0, batches: 0, connected: 0, p50: NaN, p99: NaN, execOk: 0, rss: 0, peak: 0 };
  log(`hub phase: ${AGENTS} agents for ${SECONDS} s after ${WARMUP_S} s warm-up`);
  await runLoad(`ws://127.0.0.1:${port}/v1/stream`, tokensFile, () => {
    void (async () => {
      await sleep(WARMUP_S * 1000);
      const s0 = await scrape();
      const t0 = performance.now();
      const latencies: number[] = [];
      const spacing = (SECONDS * 1000 - 1500) / EXECS;
      let ok = 0;
      for (let i = 0; i < EXECS; i++) {
        const started = performance.now();
        const r = await api('POST', '/v1/admin/exec', { agent_id: ids[(i * 7919) % ids.length], command: 'service_status', params: { service: 'nginx' } });
        latencies.push(performance.now() - started);
        if (r.status === 200) ok++;
        const wait = started + spacing - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const remaining = t0 + SECONDS * 1000 - 500 - performance.now();
      if (remaining > 0) await sleep(remaining);
      const s1 = await scrape();
      const elapsed = (performance.now() - t0) / 1000;
      latencies.sort((a, b) => a - b);
      result = {
        stored: (s1.frames - s0.frames) / elapsed,
        batches: (s1.batches - s0.batches) / elapsed,
        connected: s1.connected,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        execOk: ok,
        ...rssOf(hub.pid!),
      };
    })();
  });
  hub.kill('SIGTERM');
  await new Promise((r) => hub.once('exit', r));
  return result;
}

async function main(): Promise<void> {
  const dbName = `opspilot_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: SERVER_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  cleanups.push(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  });
  const url = new URL(SERVER_URL);
  url.pathname = `/${dbName}`;

  log(`bare ws loop: ${AGENTS} agents for ${SECONDS} s after ${WARMUP_S} s warm-up`);
  const bare = await bareLoop();
  const hub = await hubPhase(url.toString());

  const pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version;
  const mib = (n: number) => (n / 1024 / 1024).toFixed(0);
  const report = {
    machine: `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL ${pgVersion}`,
    agents: AGENTS,
    seconds: SECONDS,
    bare_ws_envelopes_per_s: Math.round(bare),
    hub_envelopes_stored_per_s: Math.round(hub.stored),
    ratio: Number((hub.stored / bare).toFixed(2)),
    hub_transactions_per_s: Math.round(hub.batches),
    agents_connected: hub.connected,
    exec_round_trips: `${hub.execOk}/${EXECS} ok`,
    exec_p50_ms: Number(hub.p50.toFixed(1)),
    exec_p99_ms: Number(hub.p99.toFixed(1)),
    hub_rss_mib: Number(mib(hub.rss)),
    hub_peak_rss_mib: Number(mib(hub.peak)),
  };
  console.log(
    [
      `OpsPilot bench — ${report.machine}`,
      `  ${AGENTS} agents, ${SECONDS} s measured per phase, heartbeat:metrics = 3:2`,
      `  bare ws receive loop      ${report.bare_ws_envelopes_per_s.toLocaleString('en')} envelopes/s received`,
      `  hub → PostgreSQL          ${report.hub_envelopes_stored_per_s.toLocaleString('en')} envelopes/s stored (${report.ratio}× the bare loop) in ${report.hub_transactions_per_s} transactions/s`,
      `  exec round trip (loaded)  p50 ${report.exec_p50_ms} ms, p99 ${report.exec_p99_ms} ms (${report.exec_round_trips})`,
      `  hub RSS                   ${report.hub_rss_mib} MiB (peak ${report.hub_peak_rss_mib} MiB)`,
    ].join('\n'),
  );
  console.log(JSON.stringify(report));
}

try {
  await main();
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const f of cleanups.reverse()) await Promise.resolve(f()).catch(() => {});
}
