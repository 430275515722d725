/**
 * `pnpm bench dashboard`: the dashboard's first load in Debian's Chromium (playwright-core,
 * headless), against a hub process on PostgreSQL holding 1,000 incidents: bytes transferred
 * (every response, as the network saw it: headers and bodies, compressed or not) and the time from
 * navigation to the incident list (`/#/incidents`) on screen (its first 200 rows, the newest), signed in and with
 * an empty cache; median of 10 loads. Baseline in the same run, same browser: the same 200 rows as
 * a plain HTML table from a bare node:http server (no script, no API call): the floor of showing
 * this list in this browser.
 */
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { chromium, type Browser } from 'playwright-core';
import { encodeEnvelope } from '@opspilot/protocol';
import { buildDashboard } from '../../packages/dashboard/build.ts';
import { spawnHub } from '../hub-process.ts';

const CHROMIUM = process.env.OPSPILOT_CHROMIUM ?? '/usr/bin/chromium';
const LOADS = 10;

export interface LoadRow {
  bytes: number;
  median_ms: number;
  max_ms: number;
}

async function measure(browser: Browser, url: string, ready: string, signIn?: { token: string }): Promise<LoadRow> {
  const times: number[] = [];
  let bytes = 0;
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext();
    if (signIn) await context.request.post(new URL('/v1/sessions', url).toString(), { data: { token: signIn.token } });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    let transferred = 0;
    cdp.on('Network.loadingFinished', (e: { encodedDataLength: number }) => (transferred += e.encodedDataLength));
    const t0 = performance.now();
    await page.goto(url);
    await page.waitForSelector(ready);
    times.push(performance.now() - t0);
    bytes = transferred;
    await context.close();
  }
  times.sort((a, b) => a - b);
  return { bytes, median_ms: Math.round(times[Math.floor(times.length / 2)]! * 10) / 10, max_ms: Math.round(times.at(-1)! * 10) / 10 };
}

export async function dashboardBench(opts: { databaseUrl: string; incidents: number }): Promise<{ incidents: number; dashboard: LoadRow; baseline: LoadRow }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-bench-dashboard-'));
  const built = await buildDashboard(path.join(dir, 'dist'));
  const hub = await spawnHub({ DATABASE_URL: opts.databaseUrl, OPSPILOT_LOG_LEVEL: 'error', OPSPILOT_DASHBOARD_DIR: built.dir, OPSPILOT_ALERTS_PER_MINUTE: '1000000', OPSPILOT_API_RATE_LIMIT: '1000000' });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    // N incidents from one agent, each its own (a different source), all acked (stored).
    const { token } = (await hub.api('POST', '/v1/agents', { hostname: 'bench-dashboard' })).body as { token: string };
    const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/v1/stream`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    let acked = 0;
    const all = new Promise<void>((resolve) =>
      ws.on('message', (raw) => {
        const m = JSON.parse(raw.toString()) as { type: string; data: string };
        if (m.type !== 'ack') return;
        acked += (JSON.parse(Buffer.from(m.data, 'base64').toString()) as { ids: string[] }).ids.length;
        if (acked >= opts.incidents) resolve();
      }),
    );
    for (let i = 0; i < opts.incidents; i++) ws.send(encodeEnvelope('alert', { type: 'systemd', source: `svc-${i}.service`, message: `svc-${i}.service failed: exit status 1`, logs: 'Main process exited, code=exited, status=1/FAILURE' }, { id: `b${i}` }));
    await all;
    ws.close();
    // Measured at rest: every incident analysed (by the heuristics), not while the hub still works on them.
    for (;;) {
      const busy = await Promise.all(['new', 'analyzing'].map(async (status) => ((await hub.api('GET', `/v1/incidents?status=${status}&limit=1`)).body as { incidents: unknown[] }).incidents.length));
      if (busy.every((n) => n === 0)) break;
      await new Promise((r) => setTimeout(r, 250));
    }

    const dashboard = await measure(browser, `${hub.url}/#/incidents`, 'tbody tr:nth-child(200)', { token: hub.adminToken });
    const rows = ((await hub.api('GET', '/v1/incidents?limit=200')).body as { incidents: { severity: string | null; status: string; message: string; count: number }[] }).incidents;
    const escape = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Incidents</title></head><body><table><thead><tr><th>Severity</th><th>Status</th><th>Incident</th><th>Count</th></tr></thead><tbody>${rows
      .map((r) => `<tr><td>${r.severity ?? '-'}</td><td>${r.status}</td><td>${escape(r.message)}</td><td>${r.count}</td></tr>`)
      .join('')}</tbody></table></body></html>`;
    const bare = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html));
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const baseline = await measure(browser, `http://127.0.0.1:${(bare.address() as { port: number }).port}/`, 'tbody tr:nth-child(200)');
    bare.close();
    return { incidents: opts.incidents, dashboard, baseline };
  } finally {
    await browser.close();
    await hub.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
