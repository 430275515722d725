/**
 * `pnpm bench monitors`: how many checks a second one hub process runs for HTTP monitors at
 * 1-minute intervals, with its CPU and RSS, on PostgreSQL. N monitors of a local HTTP server (its
 * own process) are made over REST; after a warm-up, the results the hub stored in a window are
 * counted in the database, and its CPU and RSS read from /proc. Baseline in the same run: the same
 * N checks at the same interval run by packages/checks alone (scripts/bench/probe-loop.ts), no
 * database and no decisions.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { spawnHub } from '../hub-process.ts';
import { procStats } from './agent.ts';

export interface MonitorsRow {
  checks_per_s: number;
  cpu_pct: number;
  rss_mib: number;
  peak_rss_mib: number;
}

async function window(pid: number, seconds: number, count: () => Promise<number>): Promise<MonitorsRow> {
  const a = procStats(pid);
  const c0 = await count();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = procStats(pid);
  const c1 = await count();
  const elapsed = (performance.now() - t0) / 1000;
  const mib = (n: number) => Math.round(n / 1024 / 1024);
  return { checks_per_s: Math.round(((c1 - c0) / elapsed) * 10) / 10, cpu_pct: Math.round(((b.cpuSeconds - a.cpuSeconds) / elapsed) * 1000) / 10, rss_mib: mib(b.rss), peak_rss_mib: mib(b.peak) };
}

export async function monitorsBench(opts: { databaseUrl: string; monitors: number; seconds: number; root: string }) {
  // The monitored service: a JSON health endpoint, in this process (the hub's CPU is measured by pid).
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/health`;
  const interval = 60;
  try {
    // Baseline: the probes alone.
    let baselineDone = 0;
    const loop = spawn(process.execPath, ['--import', 'tsx', path.join(opts.root, 'scripts/bench/probe-loop.ts'), url, String(opts.monitors), String(interval), String(opts.seconds + 5)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    loop.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const loopDone = new Promise<void>((r) => loop.once('exit', () => r()));
    // Every check spread over the minute from the start: steady after a few seconds.
    await new Promise((r) => setTimeout(r, 5000));
    const baselineStats = await window(loop.pid!, opts.seconds, async () => 0);
    await loopDone;
    baselineDone = JSON.parse(out.trim()).done as number;
    const baseline: MonitorsRow = { ...baselineStats, checks_per_s: Math.round((baselineDone / (opts.seconds + 5)) * 10) / 10 };

    const hub = await spawnHub({ DATABASE_URL: opts.databaseUrl, OPSPILOT_LOG_LEVEL: 'error', OPSPILOT_API_RATE_LIMIT: '10000000', OPSPILOT_MONITOR_ALLOW_INTERNAL: 'true' });
    const db = new pg.Client({ connectionString: opts.databaseUrl });
    await db.connect();
    try {
      for (let i = 0; i < opts.monitors; i++) {
        const r = await hub.api('POST', '/v1/monitors', { name: `bench-${i}`, kind: 'http', target: url, interval_s: interval, conditions: ['[STATUS] == 200', '[BODY].status == "ok"'] });
        if (r.status !== 201) throw new Error(`monitor ${i}: ${r.status}`);
      }
      // Each runs once when made, then every minute: measured from the second run on.
      await new Promise((r) => setTimeout(r, (interval + 5) * 1000));
      const count = async () => Number((await db.query('SELECT count(*) AS n FROM monitor_results')).rows[0].n);
      const stats = await window(hub.child.pid!, opts.seconds, count);
      const failed = Number((await db.query('SELECT count(*) AS n FROM monitor_results WHERE NOT ok')).rows[0].n);
      return { monitors: opts.monitors, interval_s: interval, seconds: opts.seconds, hub: stats, baseline, failed_results: failed };
    } finally {
      await db.end();
      await hub.stop();
    }
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}
