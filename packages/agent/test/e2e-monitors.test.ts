/**
 * End to end with the real hub and three real agents as processes: an HTTP endpoint the agents
 * check from where they stand (127.0.0.1, which the hub itself would refuse) goes down and comes
 * back; one agent is cut off (frozen with SIGSTOP: its socket open, silent) and the quorum of the
 * two others decides; with every agent stopped the monitor is unknown.
 */
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freePort, proc } from './util.ts';

const HUB_MAIN = path.resolve(import.meta.dirname, '../../hub/src/main.ts');
const AGENT_MAIN = path.resolve(import.meta.dirname, '../src/main.ts');
const ADMIN = 'e2e-admin-token-0123456789abcdef';
// A minute on an idle machine (10 s intervals, a 6 s offline deadline); room for a busy one.
t.setTimeout(300_000);

t.test('three agents check an endpoint: down by quorum, one cut off, up again, unknown when all are gone', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-e2e-monitors-'));
  const running: ChildProcess[] = [];
  t.teardown(() => {
    for (const c of running) {
      if (c.exitCode !== null) continue;
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  let healthy = true;
  const target = http.createServer((_req, res) => res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' }).end(healthy ? '{"status":"ok"}' : '{"status":"down"}'));
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => target.close(() => r())));
  const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/health`;

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(base + p, { method, headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    return (await res.json()) as any;
  };
  // Heartbeats every 2 s: an agent counts as offline (and its location unknown) 6 s after its last word.
  const hub = proc(HUB_MAIN, [], { OPSPILOT_PORT: String(port), OPSPILOT_HOST: '127.0.0.1', OPSPILOT_DATA_DIR: path.join(dir, 'hub'), OPSPILOT_ADMIN_TOKEN: ADMIN, OPSPILOT_LOG_LEVEL: 'warn', OPSPILOT_HEARTBEAT_INTERVAL_S: '2' });
  running.push(hub.child);
  await eventually(async () => (await fetch(`${base}/readyz`)).ok, 60_000, 'the hub');

  const agents: { id: string; child: ChildProcess; exited: Promise<number | null>; output: () => string }[] = [];
  for (const name of ['probe-a', 'probe-b', 'probe-c']) {
    const { id, token } = await api('POST', '/v1/agents', { hostname: name, labels: { probes: 'shop' } });
    const config = path.join(dir, `${name}.json`);
    writeFileSync(config, JSON.stringify({ hub_url: `ws://127.0.0.1:${port}`, token, state_dir: path.join(dir, name), metrics_interval_s: 3600, systemd: { enabled: false } }));
    const agent = proc(AGENT_MAIN, ['--config', config], {});
    running.push(agent.child);
    agents.push({ id, ...agent });
  }
  const monitor = await api('POST', '/v1/monitors', { name: 'shop-health', kind: 'http', target: targetUrl, interval_s: 10, timeout_ms: 2000, run_on: { labels: { probes: 'shop' } }, failure_threshold: 1, success_threshold: 1, conditions: ['[STATUS] == 200', '[BODY].status == "ok"'] });
  t.match(monitor, { run_on: { labels: { probes: 'shop' } }, next_run_at: null }, 'made; the hub itself does not run it');
  const view = () => api('GET', `/v1/monitors/${monitor.id}`);
  const states = async () => (await view()).locations.map((l: any) => `${l.name}:${l.state}`).join(' ');

  await eventually(async () => (await states()) === 'probe-a:up probe-b:up probe-c:up', 30_000, 'three agents see it up');
  t.equal((await view()).status, 'up');

  healthy = false;
  await eventually(async () => (await view()).status === 'down', 30_000, 'down');
  const incidents = (await api('GET', '/v1/incidents?integration=monitors')).incidents.filter((i: any) => i.source === monitor.id);
  t.equal(incidents.length, 1, 'one incident');
  t.match(incidents[0], { type: 'http', service: 'shop-health', message: /^shop-health: down from probe-[abc], probe-[abc]/ });

  // probe-c is cut off: frozen, its socket open and silent. Its location turns unknown; two of three still decide.
  agents[2]!.child.kill('SIGSTOP');
  await eventually(async () => (await states()).endsWith('probe-c:unknown'), 40_000, "probe-c's location unknown");
  t.equal((await view()).status, 'down', 'still down by the two that remain');
  healthy = true;
  await eventually(async () => (await view()).status === 'up', 30_000, 'up again');
  t.match(await api('GET', `/v1/incidents/${incidents[0].id}`), { status: 'resolved' }, 'the incident resolves when they see it up');
  t.equal((await api('GET', '/v1/incidents?integration=monitors')).incidents.filter((i: any) => i.source === monitor.id).length, 1, 'and no other was opened');

  // probe-c comes back: it reconnects and reports again.
  agents[2]!.child.kill('SIGCONT');
  await eventually(async () => (await states()) === 'probe-a:up probe-b:up probe-c:up', 90_000, 'probe-c back');

  // Every agent stopped: nobody can tell.
  for (const a of agents) a.child.kill('SIGTERM');
  for (const a of agents) t.equal(await a.exited, 0, 'the agent stops cleanly');
  await eventually(async () => (await view()).status === 'unknown', 40_000, 'unknown with every agent gone');
  t.equal(await states(), 'probe-a:unknown probe-b:unknown probe-c:unknown');
  const results = (await api('GET', `/v1/monitors/${monitor.id}/results?limit=5000`)).results as any[];
  t.ok(results.length >= 9 && new Set(results.map((r) => r.location)).size === 3, `${results.length} results from three places`);

  hub.child.kill('SIGTERM');
  t.equal(await hub.exited, 0);
});
