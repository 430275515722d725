/**
 * Uptime monitors run by the hub against real servers on 127.0.0.1, with the hub's clock moved
 * from one run to the next: thresholds, the incident opened when the monitor is down and resolved
 * when it is up, uptime and percentiles, a certificate near its expiry, and bad monitors refused.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { TestClock, eachBackend, startHub, type TestHub } from './helpers.ts';

async function listen(t: Test, server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

/** Move the hub's clock past the interval (60 s, give or take 5 %) and let the runner do what came due. */
async function nextRun(hub: TestHub, clock: TestClock, ms = 63_000): Promise<void> {
  clock.advance(ms);
  hub.app.hub.monitors.kick();
  await hub.app.hub.monitors.idle();
}
const monitor = async (hub: TestHub, id: string) => (await hub.api('GET', `/v1/monitors/${id}`)).body;
const incidentOf = async (hub: TestHub, key: string) => ((await hub.api('GET', '/v1/incidents?integration=monitors')).body.incidents as any[]).find((i) => i.source === key);

eachBackend(t, 'an HTTP monitor: down after its failure threshold with an incident, up after its success threshold, with uptime and percentiles', async (t, backend) => {
  let healthy = true;
  const port = await listen(
    t,
    http.createServer((_req, res) => {
      if (healthy) res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      else res.writeHead(503, { 'content-type': 'application/json' }).end('{"status":"degraded"}');
    }),
  );
  const clock = new TestClock();
  clock.fastForward();
  const hub = await startHub(t, await backend.open(t), { monitorAllowInternal: true }, false, clock);
  const made = await hub.api('POST', '/v1/monitors', {
    name: 'api-health',
    kind: 'http',
    target: `http://127.0.0.1:${port}/health`,
    interval_s: 60,
    failure_threshold: 2,
    success_threshold: 2,
    conditions: ['[STATUS] == 200', '[BODY].status == "ok"', '[RESPONSE_TIME] < 5000'],
    labels: { team: 'payments' },
  });
  t.equal(made.status, 201, made.text);
  const id = made.body.id as string;
  await hub.app.hub.monitors.idle();
  t.match(await monitor(hub, id), { status: 'up', locations: [{ location: 'hub', state: 'up', last_ok: true, last_status: 200 }] }, 'the first check runs at once');

  healthy = false;
  await nextRun(hub, clock);
  t.match(await monitor(hub, id), { status: 'up', locations: [{ state: 'up', failures: 1 }] }, 'one failure is not down');
  t.notOk(await incidentOf(hub, id));
  await nextRun(hub, clock);
  t.match(await monitor(hub, id), { status: 'down', locations: [{ state: 'down', failures: 2, last_status: 503 }] });
  const incident = await incidentOf(hub, id);
  t.match(incident, { type: 'http', service: 'api-health', severity: 'high', labels: { team: 'payments', monitor: 'api-health' }, message: /^api-health: down from hub \(\[STATUS\] == 200 \(found 503\)/ });
  t.match((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.logs, /hub: 2 failures in a row; last status 503/);

  healthy = true;
  await nextRun(hub, clock);
  t.match(await monitor(hub, id), { status: 'down', locations: [{ successes: 1 }] }, 'one success is not up');
  await nextRun(hub, clock);
  t.equal((await monitor(hub, id)).status, 'up');
  t.match(await hub.api('GET', `/v1/incidents/${incident.id}`), { body: { status: 'resolved', resolved_by: 'integration:monitors' } });

  const full = await monitor(hub, id);
  t.match(full.uptime['24h'], { results: 5, uptime_pct: 60 });
  t.ok(full.uptime['24h'].p50_ms > 0 && full.uptime['24h'].p99_ms >= full.uptime['24h'].p50_ms, 'response-time percentiles');
  const results = (await hub.api('GET', `/v1/monitors/${id}/results`)).body.results as any[];
  t.same(results.map((r) => r.ok), [true, true, false, false, true], 'every result, newest first');
  t.match(results[2], { status: 503, error: /\[BODY\]\.status == "ok" \(found "degraded"\)/ });
  const early = (await hub.api('GET', `/v1/monitors/${id}/results?until=${encodeURIComponent(results[2].at)}`)).body.results as any[];
  t.equal(early.length, 2, 'until: results before it');

  // Paused: no more runs.
  t.equal((await hub.api('PATCH', `/v1/monitors/${id}`, { enabled: false })).body.enabled, false);
  await nextRun(hub, clock);
  t.equal((await hub.api('GET', `/v1/monitors/${id}/results`)).body.results.length, 5);
  t.equal((await hub.api('DELETE', `/v1/monitors/${id}`)).status, 204);
  t.equal((await hub.api('GET', `/v1/monitors/${id}`)).status, 404);
});

eachBackend(t, 'a TLS monitor: a certificate near its expiry opens a low-severity incident; an unreachable TCP port is down', async (t, backend) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-cert-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-days', '3', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const port = await listen(t, tls.createServer({ key: readFileSync(path.join(dir, 'k.pem')), cert: readFileSync(path.join(dir, 'c.pem')) }, (s) => s.end()));
  const clock = new TestClock();
  clock.fastForward();
  const hub = await startHub(t, await backend.open(t), { monitorAllowInternal: true }, false, clock);
  const made = await hub.api('POST', '/v1/monitors', { name: 'edge-cert', kind: 'tls', target: `127.0.0.1:${port}`, tls: { verify: false }, cert_warn_days: 14 });
  t.equal(made.status, 201, made.text);
  await hub.app.hub.monitors.idle();
  t.equal((await monitor(hub, made.body.id)).status, 'up');
  t.match(await incidentOf(hub, `cert:${made.body.id}`), { type: 'tls', severity: 'low', message: /^edge-cert: the certificate expires in 2 days/ });

  const closed = net.createServer();
  const closedPort = await listen(t, closed);
  closed.close();
  const tcp = await hub.api('POST', '/v1/monitors', { name: 'db-port', kind: 'tcp', target: `127.0.0.1:${closedPort}`, failure_threshold: 1 });
  await hub.app.hub.monitors.idle();
  t.match(await monitor(hub, tcp.body.id), { status: 'down', locations: [{ state: 'down', last_error: /ECONNREFUSED/ }] });
  t.match(await incidentOf(hub, tcp.body.id), { type: 'tcp', message: /^db-port: down from hub/ });
});

eachBackend(t, 'REST: a monitor that cannot run is refused with the problem named', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const bad = async (body: Record<string, unknown>, code: string, message?: RegExp) => {
    const r = await hub.api('POST', '/v1/monitors', { name: 'm', kind: 'http', target: 'http://127.0.0.1:9/', ...body });
    t.match([r.status, r.body.error?.code, r.body.error?.message], [code === 'HUB_NAME_TAKEN' ? 409 : 400, code, message ?? /./], `${JSON.stringify(body)}: ${r.body.error?.message}`);
  };
  await bad({ conditions: ['[STATUS] = 200'] }, 'HUB_INVALID_MONITOR', /conditions: condition "\[STATUS\] = 200"/);
  await bad({ conditions: ['[STATE] == 1'] }, 'HUB_INVALID_MONITOR', /\[STATE\] is not a placeholder/);
  await bad({ target: 'not a url' }, 'HUB_INVALID_MONITOR', /not a URL/);
  await bad({ target: 'ftp://x/' }, 'HUB_INVALID_MONITOR', /http:\/\/ or https:\/\//);
  await bad({ target: 'http://user:pw@x/' }, 'HUB_INVALID_MONITOR', /credentials/);
  await bad({ kind: 'tcp', target: 'db-1' }, 'HUB_INVALID_MONITOR', /host:port/);
  await bad({ kind: 'dns', target: 'bad..name' }, 'HUB_INVALID_MONITOR', /not a DNS name/);
  await bad({ kind: 'tcp', target: 'db-1:5432', http: { method: 'GET' } }, 'HUB_INVALID_MONITOR', /options for another kind/);
  await bad({ interval_s: 5 }, 'HUB_BAD_REQUEST');
  await bad({ run_on: { agents: ['01J'] } }, 'HUB_INVALID_MONITOR', /^run_on\.agents: no agent 01J$/);
  await bad({ run_on: { hub: false } }, 'HUB_INVALID_MONITOR', /^run_on: name where the check runs/);
  await bad({ run_on: {} }, 'HUB_BAD_REQUEST');
  await bad({ run_on: { labels: {} } }, 'HUB_BAD_REQUEST');
  await bad({ run_on: { agents: [] } }, 'HUB_BAD_REQUEST');
  await bad({ run_on: { agents: ['a', 'a'] } }, 'HUB_BAD_REQUEST');
  await bad({ run_on: { agents: ["a'; DROP TABLE agents; --"] } }, 'HUB_BAD_REQUEST');
  await bad({ run_on: 'everywhere' }, 'HUB_BAD_REQUEST');
  await bad({ http: { headers: { 'x-a': 'line\r\nInjected: 1' } } }, 'HUB_BAD_REQUEST');
  t.equal((await hub.api('POST', '/v1/monitors', { name: 'm', kind: 'http', target: 'http://127.0.0.1:9/', enabled: false })).status, 201);
  await bad({}, 'HUB_NAME_TAKEN');
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] })).body.token as string;
  t.equal((await hub.api('POST', '/v1/monitors', { name: 'x', kind: 'http', target: 'http://127.0.0.1:9/' }, { authorization: `Bearer ${reader}` })).status, 403);
  t.match((await hub.api('GET', '/v1/monitors', undefined, { authorization: `Bearer ${reader}` })).body.monitors, [{ name: 'm', status: 'unknown', interval_s: 60, timeout_ms: 10_000, failure_threshold: 3, success_threshold: 2 }]);
});

eachBackend(t, "by default the hub's monitors do not reach its loopback, link-local or metadata addresses", async (t, backend) => {
  const port = await listen(t, http.createServer((_req, res) => res.writeHead(200).end('secret admin page')));
  const hub = await startHub(t, await backend.open(t));
  const targets = [`http://127.0.0.1:${port}/`, `http://localhost:${port}/`, 'http://169.254.169.254/latest/meta-data/', `http://[::1]:${port}/`];
  for (const [i, target] of targets.entries()) {
    const made = await hub.api('POST', '/v1/monitors', { name: `internal-${i}`, kind: 'http', target, failure_threshold: 1 });
    t.equal(made.status, 201, made.text);
  }
  const tcp = await hub.api('POST', '/v1/monitors', { name: 'internal-tcp', kind: 'tcp', target: `127.0.0.1:${port}`, failure_threshold: 1 });
  t.equal(tcp.status, 201);
  await hub.app.hub.monitors.idle();
  const all = (await hub.api('GET', '/v1/monitors')).body.monitors as { id: string; name: string }[];
  for (const m of all) {
    const full = await monitor(hub, m.id);
    t.match(full, { status: 'down', locations: [{ last_ok: false, last_error: /^refused: .* \(a hub-run monitor may reach it only with OPSPILOT_MONITOR_ALLOW_INTERNAL=true\)$/ }] }, `${m.name} refused`);
  }
});

