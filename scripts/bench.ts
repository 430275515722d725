/**
 * `pnpm bench`: the hub under N simulated agents over real sockets, storing into PostgreSQL,
 * beside a bare `ws` receive loop measured in the same run with the same load generator.
 *
 * Prints envelopes/s stored by the hub, envelopes/s received by the bare loop, exec round-trip
 * p50/p99 under load, and the hub's RSS; then the agent's footprint (scripts/bench/agent.ts).
 * Then Slack interaction answers (scripts/bench/slack.ts), and unit failure to incident on a real
 * systemd (scripts/bench/systemd.ts; root, as the real-systemd test); then the event-loop delay
 * under hostile input (scripts/bench/hostile.ts). `pnpm bench hub`, `pnpm bench slack`,
 * `pnpm bench agent`, `pnpm bench systemd`, `pnpm bench hostile` or `pnpm bench intake` runs one
 * part (intake: Alertmanager notifications stored, beside a bare JSON server). Environment:
 *   BENCH_MONITORS, BENCH_MONITOR_SECONDS  HTTP monitors at 1-minute intervals (1200), window (60)
 *   BENCH_EVENT_STREAMS, BENCH_EVENT_ALERTS  open event streams (100), alerts timed one at a time (200)
 *   BENCH_DASHBOARD_INCIDENTS  incidents the dashboard's first load lists from (1000)
 *   `pnpm bench idle`: the idle hub on the embedded database, first start and restart, bundle vs sources
 *   `pnpm bench statements`: an alert's statement built each time vs bound to its shape (no database)
 *   `pnpm bench hop`: a byte to another process and back, idle and with the CPUs kept from halting (BENCH_HOPS, 3000)
 *   BENCH_FLEET_HUBS, BENCH_FLEET_KILL  hubs behind HAProxy (1), kill one after the window (0; 1 kills, stop stops it)
 *   BENCH_FLEET_AGENTS, BENCH_FLEET_SECONDS, BENCH_FLEET_SAMPLES  `pnpm bench fleet` (not in all):
 *                  agents at real intervals (10000), window (30), execs and alerts timed (200 each)
 *   BENCH_INTAKE_SINGLES, BENCH_INTAKE_GROUPS, BENCH_INTAKE_CONCURRENCY  notifications of 1 alert
 *                  (2000) and of 100 (100), and how many at a time (4)
 *   BENCH_HOSTILE_SECONDS  seconds per phase of the hostile-input part (20)
 *   BENCH_FAILURES  unit failures to time on the real systemd (24)
 *   BENCH_CLICKS, BENCH_CLICK_CONCURRENCY  Slack clicks to time (500), and how many at a time (10)
 *   BENCH_AGENT_SECONDS  agent measurement window (120)
 *   BENCH_AGENTS   simulated agents (2000)
 *   BENCH_SECONDS  measured seconds per phase (20)
 *   BENCH_EXECS    exec round trips to time during the hub phase (200)
 *   BENCH_GZIP_METRICS=1  the flood's metrics batches gzipped, as the encoder sent them before it left payloads under 900 bytes plain
 *   BENCH_HUB_PROFILE_DIR  write the hub's CPU profile (node --cpu-prof) there: the flood phase's, or each fleet hub's
 *   BENCH_HUB_NODE_FLAGS  more node options for each hub, space-separated (e.g. --trace-gc)
 *   BENCH_HUB_CPU  fleet: the hubs pinned to this CPU (taskset), the bench and its clients to the others
 *   BENCH_HUB_NICE  fleet: each hub's main thread at this nice value (e.g. -5; negative needs root)
 *   BENCH_HUB_LOG_DIR  fleet: each hub's log (at warn) there
 *   BENCH_BALANCER_LOG_DIR  fleet: each HAProxy's log of its sessions there (each connection's queue, connect and response times)
 *   DATABASE_URL   PostgreSQL server to use (postgres://postgres@127.0.0.1:5432/test); a
 *                  throwaway database is created on it and dropped at the end
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { processes } from './bench/procs.ts';
import pg from 'pg';
import WebSocket from 'ws';
import { agentBench } from './bench/agent.ts';
import { hostileBench, type HostileResult } from './bench/hostile.ts';
import { slackBench } from './bench/slack.ts';
import { intakeBench, type IntakeRow } from './bench/intake.ts';
import { monitorsBench, type MonitorsRow } from './bench/monitors.ts';
import { eventsBench, type EventsRow } from './bench/events.ts';
import { dashboardBench, type LoadRow } from './bench/dashboard.ts';
import { fleetBench, hubNodeFlags, type FleetRow } from './bench/fleet.ts';
import { systemdBench } from './bench/systemd.ts';
import { statementsBench } from './bench/statements.ts';
import { hopBench, type HopRow } from './bench/hop.ts';
import { HUB_MESSAGE_TYPES, decodeFrame, encodeEnvelope, type PayloadOf } from '@opspilot/protocol';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const EXECS = Number(process.env.BENCH_EXECS ?? 200);
const SERVER_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROOT = path.resolve(import.meta.dirname, '..');
const ADMIN = `bench-admin-${randomBytes(8).toString('hex')}`;
const WARMUP_S = 3;
const RESPONDERS = 10;

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
  const profileDir = process.env.BENCH_HUB_PROFILE_DIR;
  const isHub = script.includes('hub/src/main');
  const prof = profileDir && isHub ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const child = spawn(process.execPath, [...prof, ...(isHub ? hubNodeFlags() : []), '--import', 'tsx', script, ...args], {
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
function runLoad(url: string, tokensFile: string, onConnected: (loadPid: number) => void): Promise<{ connected: number; sent: number; execs: number }> {
  // A few seconds past the measured window, so the generator is still running when it closes.
  const child = node('scripts/bench/load.ts', [url, tokensFile, String(AGENTS), String(SECONDS + WARMUP_S + 5)]);
  return new Promise((resolve, reject) => {
    lines(child, (line) => {
      const msg = JSON.parse(line);
      if (msg.event === 'connected') onConnected(child.pid!);
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

/** CPU seconds used so far by each group of processes: the hub, the load generator, PostgreSQL. */
function cpuSeconds(pids: { hub?: number; load?: number; receiver?: number }): Record<string, number> {
  const out: Record<string, number> = { hub: 0, load: 0, receiver: 0, postgres: 0 };
  const byPid = new Map(Object.entries(pids).map(([k, v]) => [v, k]));
  for (const { pid, cmd, cpu } of processes()) {
    const group = byPid.get(pid) ?? (cmd.startsWith('postgres') ? 'postgres' : undefined);
    if (group) out[group]! += cpu;
  }
  return out;
}

function cpuShare(before: Record<string, number>, after: Record<string, number>, seconds: number): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((k) => [k, Math.round(((after[k]! - before[k]!) / seconds) * 100)]));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * Agents that behave like real ones (a heartbeat every 10 s) and answer execs at once. Execs are
 * timed against these, not against the flooding agents: a flooding agent's exec_result would
 * queue behind megabytes of its own heartbeats in its TCP connection, which measures the load
 * generator, not the hub.
 */
async function startResponders(url: string, tokens: string[]): Promise<() => void> {
  const sockets = await Promise.all(
    tokens.map(
      (token, i) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
          let seq = 0;
          ws.on('open', () => {
            ws.send(encodeEnvelope('hello', { protocol: 1, agent_version: 'bench', hostname: `responder-${i}`, os: 'linux', arch: 'x64', actions: ['service_status'] }, { id: 'hello' }));
            resolve(ws);
          });
          ws.on('error', reject);
          ws.on('message', (data) => {
            const { message } = decodeFrame(data.toString(), HUB_MESSAGE_TYPES);
            if (message.type !== 'exec') return;
            const exec = message.payload as PayloadOf<'exec'>;
            ws.send(
              encodeEnvelope(
                'exec_result',
                { request_id: exec.request_id, ok: true, exit_code: 0, stdout: 'active (running)', stderr: '', duration_ms: 2, truncated: false },
                { id: `res-${++seq}` },
              ),
            );
          });
        }),
    ),
  );
  const timer = setInterval(() => sockets.forEach((ws) => ws.send(encodeEnvelope('heartbeat', {}))), 10_000);
  return () => {
    clearInterval(timer);
    sockets.forEach((ws) => ws.terminate());
  };
}

async function bareLoop(): Promise<{ rate: number; cpu: Record<string, number> }> {
  const port = await freePort();
  const receiver = node('scripts/bench/bare-receiver.ts', [String(port)]);
  await new Promise<void>((resolve) => lines(receiver, (l) => l === 'ready' && resolve()));
  const count = async () => ((await (await fetch(`http://127.0.0.1:${port}/count`)).json()) as { count: number }).count;
  let measuring: Promise<{ rate: number; cpu: Record<string, number> }> | undefined;
  await runLoad(`ws://127.0.0.1:${port}/`, '-', (loadPid) => {
    measuring = (async () => {
      await sleep(WARMUP_S * 1000);
      const pids = { load: loadPid, receiver: receiver.pid! };
      const cpu0 = cpuSeconds(pids);
      const c0 = await count();
      const t0 = performance.now();
      await sleep(SECONDS * 1000 - 500);
      const elapsed = (performance.now() - t0) / 1000;
      return { rate: ((await count()) - c0) / elapsed, cpu: cpuShare(cpu0, cpuSeconds(pids), elapsed) };
    })();
  });
  const measured = await measuring!;
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
    // Enrolling 2,000 agents and timing 200 execs is more than the default 600 requests a minute.
    OPSPILOT_API_RATE_LIMIT: '1000000',
    // This phase measures the write path under a flood: each simulated agent sends far more than
    // a real one may (120 bulk messages a minute, 240 samples), and would otherwise be read more slowly.
    OPSPILOT_BULK_PER_MINUTE: '1000000',
    OPSPILOT_METRIC_SAMPLES_PER_MINUTE: '1000000',
  });
  hub.stdout!.pipe(process.stderr); // warnings and errors only (OPSPILOT_LOG_LEVEL=warn)
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
    if (i > 300 || hub.exitCode !== null) throw new Error(`hub did not start${hub.exitCode !== null ? ` (exited ${hub.exitCode})` : ''}`);
    await sleep(100);
  }

  log(`enrolling ${AGENTS} agents and ${RESPONDERS} exec responders`);
  const ids: string[] = [];
  const tokens: string[] = [];
  const total = AGENTS + RESPONDERS;
  for (let i = 0; i < total; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, total - i) }, (_, j) => api('POST', '/v1/agents', { hostname: `bench-${i + j}` })),
    );
    for (const r of batch) {
      const body = JSON.parse(r.text);
      ids.push(body.id);
      tokens.push(body.token);
    }
  }
  const responderIds = ids.splice(AGENTS);
  const stopResponders = await startResponders(`ws://127.0.0.1:${port}/v1/stream`, tokens.splice(AGENTS));
  const tokensFile = path.join(dataDir, 'tokens');
  writeFileSync(tokensFile, tokens.join('\n'), { mode: 0o600 });

  const scrape = async () => {
    const text = (await api('GET', '/metrics')).text;
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return {
      frames: value('opspilot_ingest_frames_total'),
      batches: value('opspilot_ingest_batches_total'),
      connected: value('opspilot_agents_connected'),
      lagP99: value('opspilot_hub_nodejs_eventloop_lag_p99_seconds') * 1000,
      lagMax: value('opspilot_hub_nodejs_eventloop_lag_max_seconds') * 1000,
    };
  };

  log(`hub phase: ${AGENTS} agents for ${SECONDS} s after ${WARMUP_S} s warm-up`);
  let measuring: Promise<{ stored: number; batches: number; connected: number; p50: number; p99: number; execOk: number; execs: number; lagP99: number; lagMax: number; rss: number; peak: number; cpu: Record<string, number> }> | undefined;
  await runLoad(`ws://127.0.0.1:${port}/v1/stream`, tokensFile, (loadPid) => {
    measuring = (async () => {
      await sleep(WARMUP_S * 1000);
      const pids = { hub: hub.pid!, load: loadPid };
      const cpu0 = cpuSeconds(pids);
      const s0 = await scrape();
      const t0 = performance.now();
      const windowEnd = t0 + SECONDS * 1000 - 500;
      const latencies: number[] = [];
      const spacing = (SECONDS * 1000 - 1500) / EXECS;
      let ok = 0;
      // Execs run beside the window, not inside it: a slow one must not stretch the window.
      const execs = (async () => {
        for (let i = 0; i < EXECS && performance.now() < windowEnd - 1000; i++) {
          const started = performance.now();
          const r = await api('POST', '/v1/admin/exec', { agent_id: responderIds[i % responderIds.length], command: 'service_status', params: { service: 'nginx' } });
          latencies.push(performance.now() - started);
          if (r.status === 200) ok++;
          const wait = started + spacing - performance.now();
          if (wait > 0) await sleep(wait);
        }
      })();
      await sleep(windowEnd - performance.now());
      const cpu = cpuShare(cpu0, cpuSeconds(pids), (performance.now() - t0) / 1000);
      const s1 = await scrape();
      const elapsed = (performance.now() - t0) / 1000;
      await execs;
      latencies.sort((a, b) => a - b);
      return {
        stored: (s1.frames - s0.frames) / elapsed,
        batches: (s1.batches - s0.batches) / elapsed,
        connected: s1.connected,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        execOk: ok,
        execs: latencies.length,
        lagP99: s1.lagP99,
        lagMax: s1.lagMax,
        cpu,
        ...rssOf(hub.pid!),
      };
    })();
  });
  const result = await measuring!;
  stopResponders();
  hub.kill('SIGTERM');
  await new Promise((r) => hub.once('exit', r));
  return result;
}

/** What making an alert's statement costs the hub's thread: built each time, or bound to its shape. */
function statementsPart(): void {
  log("statements: an alert's statement built by Kysely each time vs bound to its shape; its prepared name by SHA-1 vs a map");
  const r = statementsBench();
  console.log(
    [
      `Statements — an alert's (${r.text_chars} characters), per alert, on the hub's thread`,
      `  built by Kysely and compiled   ${r.built_us} µs`,
      `  bound to its shape             ${r.bound_us} µs`,
      `  named by a SHA-1 of the text   ${r.sha1_us} µs`,
      `  named by a map of texts        ${r.map_us} µs (a text never hashed), ${r.map_same_us} µs (a shape's text: the same string each time)`,
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

/** The machine's floor under a hop between two processes (not in `all`: it spins every CPU for a while). */
async function hopPart(): Promise<void> {
  log('hop: one byte to an echo server in another process and back, one at a time 0-10 ms apart; idle, then with every CPU kept busy at SCHED_IDLE');
  const r = await hopBench();
  const row = (h: HopRow) => `p50 ${h.p50} ms, p99 ${h.p99} ms, p99.9 ${h.p999} ms, max ${h.max} ms (${h.n}; ${h.over_1ms} over 1 ms)`;
  console.log(
    [
      'Hop — a byte echoed by another process over loopback TCP',
      `  idle machine                           ${row(r.idle)}`,
      `  CPUs kept busy by SCHED_IDLE spinners  ${r.spinning ? row(r.spinning) : 'not run (taskset or chrt missing)'}`,
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

async function main(): Promise<void> {
  const part = process.argv[2] ?? 'all';
  if (part === 'all' || part === 'hub') await hubBench();
  if (part === 'all' || part === 'slack') await slackPart();
  if (part === 'all' || part === 'intake') await intakePart();
  if (part === 'all' || part === 'monitors') await monitorsPart();
  if (part === 'all' || part === 'events') await eventsPart();
  if (part === 'all' || part === 'dashboard') await dashboardPart();
  // Not in `all`: tens of thousands of sockets and several minutes.
  if (part === 'fleet') await fleetPart();
  if (part === 'all' || part === 'statements') statementsPart();
  if (part === 'hop') await hopPart();
  if (part === 'all' || part === 'idle') await idlePart();
  if (part === 'all' || part === 'systemd') await systemdPart();
  if (part === 'all' || part === 'hostile') await hostilePart();
  if (part === 'all' || part === 'agent') {
    const seconds = Number(process.env.BENCH_AGENT_SECONDS ?? 120);
    log(`agent footprint: ${seconds} s at default intervals, beside prometheus-node-exporter scraped every 15 s and the same agent running 20 HTTP checks every 10 s`);
    const { agent, nodeExporter, withChecks } = await agentBench(seconds);
    const row = (f: { rss_mib: number; peak_rss_mib: number; cpu_pct: number; bytes_per_s: number }) =>
      `RSS ${f.rss_mib} MiB (peak ${f.peak_rss_mib}), CPU ${f.cpu_pct}% of a core, ${f.bytes_per_s} bytes/s`;
    console.log(
      [
        `Agent footprint — ${seconds} s, heartbeat 10 s, metrics 15 s`,
        `  opspilot-agent (bundle)    ${row(agent)}`,
        `  prometheus-node-exporter   ${typeof nodeExporter === 'string' ? nodeExporter : row(nodeExporter)}`,
        `  opspilot-agent running ${withChecks.checks} HTTP checks every ${withChecks.interval_s} s (${withChecks.results_per_s} results/s)`,
        `                             ${row(withChecks)}`,
        `    extra for the checks     RSS ${Math.round((withChecks.rss_mib - agent.rss_mib) * 10) / 10} MiB, CPU ${Math.round((withChecks.cpu_pct - agent.cpu_pct) * 100) / 100}% of a core`,
      ].join('\n'),
    );
    console.log(JSON.stringify({ seconds, agent, node_exporter: nodeExporter, with_checks: withChecks }));
  }
}

/** A database of its own on the server, dropped at the end; its URL and a client on the server. */
async function throwawayDatabase(): Promise<{ url: URL; admin: pg.Client }> {
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
  return { url, admin };
}

/** Event-loop delay while hostile inputs arrive, beside benign ones, on both databases. */
async function hostilePart(): Promise<void> {
  const seconds = Number(process.env.BENCH_HOSTILE_SECONDS ?? 20);
  const results: HostileResult[] = [];
  for (const database of (process.env.BENCH_HOSTILE_DB ? [process.env.BENCH_HOSTILE_DB] : ['postgresql', 'pglite']) as ('postgresql' | 'pglite')[]) {
    log(`hostile input on ${database}: ${seconds} s of benign inputs, then ${seconds} s of the red-team inputs`);
    const url = database === 'postgresql' ? (await throwawayDatabase()).url.toString() : null;
    results.push(await hostileBench({ databaseUrl: url, port: await freePort(), seconds, root: ROOT }));
  }
  const row = (p: HostileResult['baseline']) =>
    `loop delay max ${p.loop_max_ms} ms (p99 ${p.loop_p99_ms}), /healthz p99 ${p.healthz_p99_ms} ms (max ${p.healthz_max_ms}), heartbeat ack p99 ${p.heartbeat_ack_p99_ms} ms (max ${p.heartbeat_ack_max_ms}), ${p.inputs} inputs`;
  console.log(
    [
      `Event-loop delay under hostile input — ${seconds} s per phase (goal: no stall over 100 ms)`,
      ...results.flatMap((r) => [`  ${r.database}`, `    baseline (benign inputs)   ${row(r.baseline)}`, `    hostile inputs             ${row(r.hostile)}`]),
    ].join('\n'),
  );
  console.log(JSON.stringify(results));
}

/** Unit failure to committed incident on a real systemd, beside the same alert sent directly. */
async function systemdPart(): Promise<void> {
  const { url } = await throwawayDatabase();
  const failures = Number(process.env.BENCH_FAILURES ?? 24);
  log(`systemd: ${failures} unit failures in a systemd-nspawn guest, then the same alerts sent straight over the protocol`);
  const r = await systemdBench({ databaseUrl: url.toString(), failures });
  const row = (s: typeof r.systemd) => `median ${s.median_ms} ms, p95 ${s.p95_ms} ms (min ${s.min_ms}, max ${s.max_ms}, n ${s.n})`;
  console.log(
    [
      `Unit failure to committed incident — ${failures} failures on systemd 252 under nspawn`,
      `  via the agent (journal → incident row)   ${row(r.systemd)}`,
      `  baseline: alert sent over the protocol   ${row(r.direct)}`,
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

/** Alertmanager notifications stored, and request-to-committed latency, beside a bare JSON server. */
async function intakePart(): Promise<void> {
  const { url } = await throwawayDatabase();
  const concurrency = Number(process.env.BENCH_INTAKE_CONCURRENCY ?? 4);
  const plan = [
    { group: 1, requests: Number(process.env.BENCH_INTAKE_SINGLES ?? 2000) },
    { group: 100, requests: Number(process.env.BENCH_INTAKE_GROUPS ?? 100) },
  ];
  log(`intake: Alertmanager notifications of 1 and of 100 new alerts, ${concurrency} at a time, then the same to a bare JSON server`);
  const r = await intakeBench({ databaseUrl: url.toString(), concurrency, plan });
  const row = (x: IntakeRow) => `${x.notifications_per_s} notifications/s (${x.alerts_per_s} alerts/s), latency p50 ${x.p50_ms} ms, p99 ${x.p99_ms} ms, max ${x.max_ms} ms`;
  console.log(
    [
      `Alertmanager intake — ${concurrency} requests at a time; an answer means the incidents are committed (${r.incidents_stored} stored)`,
      ...r.rows.flatMap(({ hub, bare }) => [
        `  groups of ${hub.group} (${hub.requests} notifications)`,
        `    hub (stored, PostgreSQL)        ${row(hub)}`,
        `    baseline: bare JSON server      ${row(bare)}`,
      ]),
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

/** HTTP monitors at 1-minute intervals on one hub: checks/s, CPU and RSS, beside the probes alone. */
async function monitorsPart(): Promise<void> {
  const { url } = await throwawayDatabase();
  const monitors = Number(process.env.BENCH_MONITORS ?? 1200);
  const seconds = Number(process.env.BENCH_MONITOR_SECONDS ?? 60);
  log(`monitors: ${monitors} HTTP monitors at 1-minute intervals, ${seconds} s windows; first the same checks by packages/checks alone`);
  const r = await monitorsBench({ databaseUrl: url.toString(), monitors, seconds, root: ROOT });
  const row = (x: MonitorsRow) => `${x.checks_per_s} checks/s, CPU ${x.cpu_pct}% of a core, RSS ${x.rss_mib} MiB (peak ${x.peak_rss_mib})`;
  console.log(
    [
      `HTTP monitors — ${r.monitors} at 1-minute intervals (${r.failed_results} failed results)`,
      `  hub (checked, stored, decided)   ${row(r.hub)}`,
      `  baseline: the probes alone       ${row(r.baseline)}`,
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

/** The delay from an alert's commit to its event at 100 open streams, beside a bare SSE fan-out. */
async function eventsPart(): Promise<void> {
  const { url } = await throwawayDatabase();
  const streams = Number(process.env.BENCH_EVENT_STREAMS ?? 100);
  const alerts = Number(process.env.BENCH_EVENT_ALERTS ?? 200);
  log(`events: ${alerts} alerts, one at a time, to ${streams} open event streams; first a bare SSE server's fan-out`);
  const r = await eventsBench({ databaseUrl: url.toString(), streams, alerts, root: ROOT });
  const row = (x: EventsRow) => `p50 ${x.p50_ms} ms, p99 ${x.p99_ms} ms; the slowest of the ${x.streams} per event: p50 ${x.slowest_stream_p50_ms} ms, p99 ${x.slowest_stream_p99_ms} ms`;
  console.log(
    [
      `Live events — ${r.hub.alerts} alerts to ${r.hub.streams} streams`,
      `  hub: alert committed (ack) → event at each stream   ${row(r.hub)}`,
      `  baseline: bare SSE server, write → each stream      ${row(r.bare)}`,
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

/**
 * A fleet at real intervals: on one hub (BENCH_FLEET_HUBS=1) or several behind HAProxy, beside a
 * bare ws server holding as many sockets as one hub; BENCH_FLEET_KILL=1 kills a hub after the
 * window and times its agents' return (=stop: stops it with SIGTERM, as a rolling deploy would).
 */
async function fleetPart(): Promise<void> {
  const agents = Number(process.env.BENCH_FLEET_AGENTS ?? 10_000);
  const seconds = Number(process.env.BENCH_FLEET_SECONDS ?? 30);
  const samples = Number(process.env.BENCH_FLEET_SAMPLES ?? 200);
  const hubs = Number(process.env.BENCH_FLEET_HUBS ?? 1);
  const killEnv = process.env.BENCH_FLEET_KILL;
  const kill = killEnv === '1' ? 'kill' : killEnv === 'stop' ? 'stop' : undefined;
  const { url } = await throwawayDatabase();
  log(`fleet: ${agents} agents at real intervals (heartbeat 10 s) on ${hubs} hub(s), ${seconds} s window, ${samples} execs, ${samples} alerts, ${samples} GET /healthz, ${samples} one-row commits and ${samples} echoed bytes, each one at a time, and an 8 KB fdatasync every 20 ms${kill === 'kill' ? ', then one hub killed' : kill === 'stop' ? ', then one hub stopped (SIGTERM)' : ''}`);
  const r = await fleetBench({ databaseUrl: url.toString(), agents, seconds, samples, hubs, kill });
  const fmt = (s: FleetRow['exec']) => (s ? `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms (${s.n} ok, ${s.failed} failed; ${s.over_20} over 20 ms${s.over_20_in_stall !== undefined ? `, ${s.over_20_in_stall} of them during a disk stall` : ''})` : '-');
  console.log(
    [
      `Fleet — ${agents} agents, heartbeat every 10 s, ${hubs} hub(s) on PostgreSQL${r.balancers ? ` behind ${r.balancers} HAProxy process(es)` : ''}`,
      ...r.perHub.map((h, i) => `  hub ${i + 1}: ${h.connected} agents, RSS ${h.rss_mib} MiB, CPU ${h.cpu_pct}% of a core, event-loop delay p99 ${h.loop_p99_ms} ms, max ${h.loop_max_ms} ms, a /metrics scrape ${h.scrape_ms} ms; its main thread waited ${h.main_waited_ms} ms for a CPU, preempted ${h.main_preempted} times`),
      `  all hubs: ${r.total.connected} connected, RSS ${r.total.rss_mib} MiB, CPU ${r.total.cpu_pct}% of a core`,
      `    exec round trip  ${fmt(r.total.exec)}`,
      `      its legs (ms: asked → row written, → sent, → result in, → answered): the median exec ${r.exec_legs.median.join(' / ')}; the slowest ${r.exec_legs.slowest_n}, on average ${r.exec_legs.slowest.join(' / ')}`,
      `    alert → ack      ${fmt(r.total.ack)}`,
      `      (execs and alerts to and from ${r.probes} probe agents in a process of their own) the simulated agents' own event-loop delay: the probes' process p99 ${r.client_loop.probes.p99} ms, max ${r.client_loop.probes.max} ms; the fleet's worst process p99 ${r.client_loop.fleet.p99} ms, max ${r.client_loop.fleet.max} ms`,
      `    GET /healthz     ${fmt(r.total.http_floor)} (the HTTP floor under an exec, same window)`,
      `    INSERT, commit   ${fmt(r.total.commit_floor)} (PostgreSQL's floor: an exec commits twice, an alert once; same window)`,
      `    8 KB fdatasync   ${fmt(r.total.disk_floor)} (the disk's floor under a commit, every 20 ms through the window)`,
      `    a byte echoed    ${fmt(r.total.hop_floor)} (by another process over loopback TCP: the floor under each of an exec's ~8 hops between processes, an ack's ~4)`,
      ...(r.total.balancer_floor ? [`    GET /healthz through HAProxy  ${fmt(r.total.balancer_floor)} (the balancer's hop, which an exec crosses twice and an ack twice)`] : []),
      `  the machine over the window (cores busy, of ${cpus().length}): hubs ${r.window_cores.hubs}, clients ${r.window_cores.clients}, balancers ${r.window_cores.balancers}, PostgreSQL ${r.window_cores.postgres}, the bench ${r.window_cores.bench}, kernel threads ${r.window_cores.kernel}, interrupts ${r.window_cores.interrupts}, stolen ${r.window_cores.steal}, other ${r.window_cores.other}, idle ${r.window_cores.idle}`,
      `  bare ws server, ${r.bare.connected} sockets (one hub's share): RSS ${r.bare.rss_mib} MiB, CPU ${r.bare.cpu_pct}% of a core`,
      ...(r.kill
        ? [
            `  one hub ${r.kill.how === 'stop' ? `stopped (SIGTERM; exited after ${r.kill.exit_ms} ms)` : 'killed'} with ${r.kill.orphans} agents: ${r.kill.reconnected} reconnected through the balancer, first ${r.kill.first_ms} ms, median ${r.kill.median_ms} ms, last ${r.kill.last_ms} ms after the kill; offline incidents ${r.kill.offline_incidents}; agents held by no hub at the end ${r.kill.lost}`,
            `    back after their offline deadline ${r.kill.past_deadline}; in after their drawn time by p50 ${r.kill.late_ms.p50} / p99 ${r.kill.late_ms.p99} / max ${r.kill.late_ms.max} ms; ${r.kill.failed_attempts} failed attempts (${Object.entries(r.kill.failures).map(([why, n]) => `${n}× ${why}`).join(', ') || 'none'}); accept-queue overflows on the machine ${r.kill.listen_overflows}`,
            `    the storm (${r.kill.storm_s} s, kill to last reconnect) cost ${r.kill.storm_commits} database commits and ${r.kill.storm_hub_cpu_s} s of the surviving hubs' CPU (${r.kill.storm_hub_system_s} s of it in the kernel, ${r.kill.storm_hub_main_thread_s} s on the main threads; ${Math.round((r.kill.storm_hub_cpu_s * 1e6) / Math.max(1, r.kill.reconnected))} µs a reconnect); ${r.kill.disconnections.audited} disconnections audited, in ${r.kill.disconnections.transactions} transactions`,
            `    the machine over the storm (CPU seconds, ${availableParallelism()} cores): surviving hubs ${r.kill.machine_cpu_s.hubs}, clients ${r.kill.machine_cpu_s.clients}, balancers ${r.kill.machine_cpu_s.balancers}, PostgreSQL ${r.kill.machine_cpu_s.postgres}, the bench ${r.kill.machine_cpu_s.bench}, kernel threads ${r.kill.machine_cpu_s.kernel}, interrupts ${r.kill.machine_cpu_s.interrupts}, stolen by the hypervisor ${r.kill.machine_cpu_s.steal}, other ${r.kill.machine_cpu_s.other}, idle ${r.kill.machine_cpu_s.idle}`,
          ]
        : []),
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

/**
 * The idle hub on the embedded database: RSS 30 s after /readyz (it settles as start-up garbage
 * is collected), on a new data directory (initdb) and again on restart; the hub as `pnpm hub` runs
 * it (the bundle) beside the same hub from its sources through tsx, in the same run.
 */
async function idlePart(): Promise<void> {
  const { spawnHub } = await import('./hub-process.ts');
  const rows: { name: string; first: number; restart: number }[] = [];
  const rss = (pid: number) => Math.round(Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
  for (const [name, bundle] of [['bundle (pnpm hub)', true], ['sources through tsx', false]] as const) {
    const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-bench-idle-'));
    const measure = async () => {
      const hub = await spawnHub({ OPSPILOT_DATA_DIR: dir, OPSPILOT_LOG_LEVEL: 'error' }, { bundle });
      await new Promise((r) => setTimeout(r, 30_000));
      const mib = rss(hub.child.pid!);
      await hub.stop();
      return mib;
    };
    log(`idle: ${name}, first start and restart on the embedded database`);
    const first = await measure();
    const restart = await measure();
    rows.push({ name, first, restart });
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(['Idle hub on the embedded database, RSS 30 s after it is ready', ...rows.map((r) => `  ${r.name.padEnd(30)} first start ${r.first} MiB, restart ${r.restart} MiB`)].join('\n'));
  console.log(JSON.stringify(rows));
}

/** The dashboard's first load with 1,000 incidents, beside the same rows as a plain HTML table. */
async function dashboardPart(): Promise<void> {
  const { url } = await throwawayDatabase();
  const incidents = Number(process.env.BENCH_DASHBOARD_INCIDENTS ?? 1000);
  log(`dashboard: first load in Chromium with ${incidents} incidents (10 loads each, empty cache), beside a plain HTML table of the same rows`);
  const r = await dashboardBench({ databaseUrl: url.toString(), incidents });
  const row = (x: LoadRow) => `${x.bytes} bytes transferred, to the list on screen: median ${x.median_ms} ms, max ${x.max_ms} ms`;
  console.log(
    [
      `Dashboard first load — ${r.incidents} incidents, the newest 200 listed`,
      `  dashboard (signed in, empty cache)          ${row(r.dashboard)}`,
      `  baseline: the same rows as a static table   ${row(r.baseline)}`,
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

/** Slack interaction answers: a hub of its own on a throwaway database. */
async function slackPart(): Promise<void> {
  const { url } = await throwawayDatabase();
  const clicks = Number(process.env.BENCH_CLICKS ?? 500);
  const concurrency = Number(process.env.BENCH_CLICK_CONCURRENCY ?? 10);
  log(`slack: ${clicks} signed Logs clicks, ${concurrency} at a time; each runs an exec`);
  const r = await slackBench({ databaseUrl: url.toString(), port: await freePort(), clicks, concurrency, root: ROOT });
  console.log(
    [
      `Slack interactions — ${r.clicks} clicks, ${r.concurrency} at a time, ${r.clicks_per_s} clicks/s`,
      `  answer to Slack (ack)     p50 ${r.ack_p50_ms} ms, p99 ${r.ack_p99_ms} ms, max ${r.ack_max_ms} ms (goal: under 1 s)`,
    ].join('\n'),
  );
  console.log(JSON.stringify(r));
}

async function hubBench(): Promise<void> {
  const { url, admin } = await throwawayDatabase();

  log(`bare ws loop: ${AGENTS} agents for ${SECONDS} s after ${WARMUP_S} s warm-up`);
  const bare = await bareLoop();
  const hub = await hubPhase(url.toString());

  const pgVersion = (await admin.query('SHOW server_version')).rows[0].server_version;
  // Check the hub really wrote what it counted: two in five envelopes carry one metric sample.
  const check = new pg.Client({ connectionString: url.toString() });
  await check.connect();
  const samplesStored = Number((await check.query('SELECT count(*) AS n FROM metric_samples')).rows[0].n);
  await check.end();
  const mib = (n: number) => (n / 1024 / 1024).toFixed(0);
  const report = {
    machine: `${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL ${pgVersion}`,
    agents: AGENTS,
    seconds: SECONDS,
    bare_ws_envelopes_per_s: Math.round(bare.rate),
    hub_envelopes_stored_per_s: Math.round(hub.stored),
    ratio: Number((hub.stored / bare.rate).toFixed(2)),
    cpu_pct_bare_phase: bare.cpu,
    cpu_pct_hub_phase: hub.cpu,
    hub_transactions_per_s: Number(hub.batches.toFixed(1)),
    agents_connected: hub.connected,
    exec_round_trips: `${hub.execOk}/${hub.execs} ok`,
    exec_p50_ms: Number(hub.p50.toFixed(1)),
    exec_p99_ms: Number(hub.p99.toFixed(1)),
    hub_event_loop_lag_p99_ms: Math.round(hub.lagP99),
    hub_event_loop_lag_max_ms: Math.round(hub.lagMax),
    metric_samples_in_database: samplesStored,
    hub_rss_mib: Number(mib(hub.rss)),
    hub_peak_rss_mib: Number(mib(hub.peak)),
  };
  console.log(
    [
      `OpsPilot bench — ${report.machine}`,
      `  ${AGENTS} agents, ${SECONDS} s measured per phase, heartbeat:metrics = 3:2, ${process.env.BENCH_GZIP_METRICS === '1' ? 'metrics gzipped (BENCH_GZIP_METRICS=1)' : 'frames as the protocol encoder sends them'}`,
      `  bare ws receive loop      ${report.bare_ws_envelopes_per_s.toLocaleString('en')} envelopes/s received`,
      `  hub → PostgreSQL          ${report.hub_envelopes_stored_per_s.toLocaleString('en')} envelopes/s stored (${report.ratio}× the bare loop) in ${report.hub_transactions_per_s} transactions/s`,
      `  exec round trip (loaded)  p50 ${report.exec_p50_ms} ms, p99 ${report.exec_p99_ms} ms (${report.exec_round_trips})`,
      `  hub event-loop lag        p99 ${report.hub_event_loop_lag_p99_ms} ms, max ${report.hub_event_loop_lag_max_ms} ms (since the hub started)`,
      `  hub RSS                   ${report.hub_rss_mib} MiB (peak ${report.hub_peak_rss_mib} MiB)`,
      `  metric samples in the DB  ${samplesStored.toLocaleString('en')} (whole run, warm-up and drain included)`,
      `  CPU % of one core          bare phase: load ${bare.cpu.load}, receiver ${bare.cpu.receiver}; hub phase: load ${hub.cpu.load}, hub ${hub.cpu.hub}, PostgreSQL ${hub.cpu.postgres}`,
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
