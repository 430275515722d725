/**
 * `pnpm bench intake`: Alertmanager notifications into a hub process on PostgreSQL, in groups of
 * 1 and of 100 new alerts, C requests at a time; each answer comes after the delivery and its
 * incidents are committed, so a request's latency is the time from the request to the incident
 * committed. Beside it, in the same run, a bare node:http server that reads and parses the same
 * bodies and answers: the floor of HTTP and JSON alone.
 */
import { createServer } from 'node:http';
import pg from 'pg';
import { spawnHub } from '../hub-process.ts';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

let seq = 0;
/** An Alertmanager notification (version 4) of `size` alerts never seen before. */
function notification(size: number): string {
  const alerts = Array.from({ length: size }, () => {
    const n = ++seq;
    return {
      status: 'firing',
      labels: { alertname: 'HighLatency', instance: `web-${n % 500}:9100`, job: 'api', severity: n % 3 ? 'warning' : 'critical' },
      annotations: { summary: `p99 above 500 ms on web-${n % 500}`, description: 'api answers slowly; see the dashboard' },
      startsAt: new Date().toISOString(),
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus.example:9090/graph?g0.expr=latency',
      fingerprint: `bench${n.toString(16).padStart(12, '0')}`,
    };
  });
  return JSON.stringify({ version: '4', groupKey: `{}:{alertname="HighLatency",n="${seq}"}`, truncatedAlerts: 0, status: 'firing', receiver: 'opspilot', groupLabels: { alertname: 'HighLatency' }, commonLabels: { alertname: 'HighLatency', job: 'api' }, commonAnnotations: {}, externalURL: 'http://alertmanager.example:9093', alerts });
}

export interface IntakeRow {
  group: number;
  requests: number;
  notifications_per_s: number;
  alerts_per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** Send `requests` notifications of `group` alerts, `concurrency` at a time; every answer must be 200. */
async function drive(url: string, headers: Record<string, string>, group: number, requests: number, concurrency: number): Promise<IntakeRow> {
  const bodies = Array.from({ length: requests }, () => notification(group));
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= requests) return;
        const t0 = performance.now();
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: bodies[i] });
        await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        if (res.status !== 200) throw new Error(`intake answered ${res.status}`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const ms = (v: number) => Math.round(v * 10) / 10;
  return {
    group,
    requests,
    notifications_per_s: Math.round(requests / seconds),
    alerts_per_s: Math.round((requests * group) / seconds),
    p50_ms: ms(percentile(latencies, 50)),
    p99_ms: ms(percentile(latencies, 99)),
    max_ms: ms(latencies.at(-1)!),
  };
}

export async function intakeBench(opts: { databaseUrl: string; concurrency: number; plan: { group: number; requests: number }[] }) {
  // The baseline: read, parse, answer.
  const bare = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { alerts: unknown[] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', alerts: body.alerts.length }));
    });
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  const barePort = (bare.address() as { port: number }).port;

  const hub = await spawnHub({ DATABASE_URL: opts.databaseUrl, OPSPILOT_LOG_LEVEL: 'error', OPSPILOT_INTAKE_RATE_LIMIT: '1000000' });
  const base = hub.url;
  try {
    const { url_path: urlPath, secret } = (await hub.api('POST', '/v1/integrations', { name: 'bench', kind: 'alertmanager' })).body as { url_path: string; secret: string };
    // Warm up both (JIT, connection pool) with a few requests that are not counted.
    await drive(`${base}${urlPath}`, { authorization: `Bearer ${secret}` }, 1, 50, opts.concurrency);
    await drive(`http://127.0.0.1:${barePort}/`, {}, 1, 50, opts.concurrency);
    const rows: { hub: IntakeRow; bare: IntakeRow }[] = [];
    for (const step of opts.plan) {
      const hubRow = await drive(`${base}${urlPath}`, { authorization: `Bearer ${secret}` }, step.group, step.requests, opts.concurrency);
      const bareRow = await drive(`http://127.0.0.1:${barePort}/`, {}, step.group, step.requests, opts.concurrency);
      rows.push({ hub: hubRow, bare: bareRow });
    }
    // Check the hub stored what it answered for.
    const db = new pg.Client({ connectionString: opts.databaseUrl });
    await db.connect();
    const stored = Number((await db.query("SELECT count(*) AS n FROM incidents WHERE type = 'alertmanager'")).rows[0].n);
    await db.end();
    const expected = 50 + opts.plan.reduce((n, s) => n + s.group * s.requests, 0);
    if (stored !== expected) throw new Error(`the hub stored ${stored} incidents for ${expected} alerts`);
    return { concurrency: opts.concurrency, rows, incidents_stored: stored };
  } finally {
    await hub.stop();
    await new Promise<void>((r) => bare.close(() => r()));
  }
}
