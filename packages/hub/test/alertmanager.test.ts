/**
 * A real Prometheus Alertmanager (Debian's prometheus-alertmanager, which .ci/run installs) sends
 * to the hub: alerts posted to its API are grouped and notified through a `webhook_configs`
 * receiver as the README shows, with the integration's secret as a bearer credential; the hub
 * opens incidents linked to the host they name, and resolves them when Alertmanager says so.
 * Without the binary the file says why it cannot run; with OPSPILOT_REQUIRE_ALERTMANAGER=1 (CI)
 * that is a failure.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HELLO, ScriptedAgent, eachBackend, eventually, startHub } from './helpers.ts';

const BINARY = '/usr/bin/prometheus-alertmanager';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

if (!existsSync(BINARY)) {
  if (process.env.OPSPILOT_REQUIRE_ALERTMANAGER) t.fail(`${BINARY} is required here (apt-get install prometheus-alertmanager)`);
  else t.comment(`not run: ${BINARY} is missing (apt-get install prometheus-alertmanager)`);
} else {
  eachBackend(t, 'a real Alertmanager fires and resolves alerts into incidents, linked to the host they name', async (t, backend) => {
    t.setTimeout(120_000);
    const hub = await startHub(t, await backend.open(t));
    const { id: agentId, token } = await hub.enroll({ hostname: 'web-1' });
    const agent = await ScriptedAgent.connect(hub.wsUrl, token);
    agent.send('hello', { ...HELLO, hostname: 'web-1' }, { id: 'h' });
    await agent.acked(['h']);
    const created = await hub.api('POST', '/v1/integrations', { name: 'alertmanager', kind: 'alertmanager' });
    const { url_path: urlPath, secret } = created.body as { url_path: string; secret: string };

    const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-am-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // The README's example, with the group timings shortened for a test.
    writeFileSync(
      path.join(dir, 'alertmanager.yml'),
      [
        'route:',
        '  receiver: opspilot',
        "  group_by: ['alertname']",
        '  group_wait: 1s',
        '  group_interval: 1s',
        '  repeat_interval: 1h',
        'receivers:',
        '  - name: opspilot',
        '    webhook_configs:',
        `      - url: http://127.0.0.1:${hub.port}${urlPath}`,
        '        send_resolved: true',
        '        http_config:',
        '          authorization:',
        `            credentials: ${secret}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const port = await freePort();
    const am = spawn(
      BINARY,
      [`--config.file=${path.join(dir, 'alertmanager.yml')}`, `--storage.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    am.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    am.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    t.teardown(() => {
      am.kill('SIGKILL');
    });
    const base = `http://127.0.0.1:${port}`;
    await eventually(async () => (await fetch(`${base}/-/ready`).catch(() => null))?.ok === true, 30_000, `Alertmanager ready (${log})`);

    const startsAt = new Date().toISOString();
    const alerts = (endsAt?: string) =>
      [
        { labels: { alertname: 'UnitFailed', instance: 'web-1:9100', name: 'api.service', severity: 'critical', job: 'node' }, annotations: { summary: 'api.service is failed', description: 'systemd reports api.service failed' } },
        { labels: { alertname: 'UnitFailed', instance: 'db-9:9100', name: 'postgresql.service', severity: 'warning', job: 'node' }, annotations: { summary: 'postgresql.service is failed' } },
      ].map((a) => ({ ...a, startsAt, ...(endsAt ? { endsAt } : {}), generatorURL: 'http://prometheus.example/graph' }));
    const post = async (body: unknown) => {
      const res = await fetch(`${base}/api/v2/alerts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      t.equal(res.status, 200, `Alertmanager took the alerts (${await res.text()})`);
    };
    await post(alerts());

    const incidents = await eventually(async () => {
      const list = (await hub.api('GET', '/v1/incidents?integration=alertmanager')).body.incidents as any[];
      return list.length === 2 && list;
    }, 30_000, `both alerts as incidents (Alertmanager said: ${log})`);
    const web1 = incidents.find((i) => i.labels.instance === 'web-1:9100');
    t.match(web1, { type: 'alertmanager', agent_id: agentId, severity: 'critical', service: 'node', message: 'UnitFailed: api.service is failed', status: /^(new|analyzing|open)$/ });
    t.match(incidents.find((i) => i.labels.instance === 'db-9:9100'), { agent_id: null, severity: 'medium' }, 'no agent on db-9');
    const deliveries = (await hub.api('GET', `/v1/integrations/${created.body.id}/deliveries`)).body.deliveries as any[];
    t.match(deliveries.at(-1), { alerts: 2, changed: 2, errors: null });
    t.match(JSON.parse(deliveries.at(-1).body), { version: '4', receiver: 'opspilot', status: 'firing' }, 'the body as Alertmanager sent it');

    // Resolved: Alertmanager sends the resolution at the group's next interval.
    await post(alerts(new Date().toISOString()));
    await eventually(async () => {
      const list = (await hub.api('GET', '/v1/incidents?integration=alertmanager')).body.incidents as any[];
      return list.length === 2 && list.every((i) => i.status === 'resolved');
    }, 30_000, `both resolved (Alertmanager said: ${log})`);
    t.equal((await hub.api('GET', `/v1/incidents/${web1.id}`)).body.resolved_by, 'integration:alertmanager');
    t.notMatch(log, /level=error/, 'Alertmanager logged no error notifying the hub');
    agent.close();
  });
}
