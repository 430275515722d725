/**
 * The hub process through database faults (issue 11): its PostgreSQL connections go through a
 * TCP proxy of the test's own, which kills them as soon as the hub has connected again, 25
 * times, then refuses every connection while /readyz tries twenty times, while an agent writes
 * and the REST API is asked. The hub must never exit, /readyz must say
 * when the database is away and when it is back, and writes must flow again afterwards.
 * PostgreSQL only (PGlite is in-process: there is no connection to lose).
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { freePort, spawnHub } from '../../../scripts/hub-process.ts';
import { ScriptedAgent, eventually } from './helpers.ts';

const SERVER = process.env.DATABASE_URL;

class FlakyProxy {
  readonly sockets = new Set<Socket>();
  /** Connections the hub has made through the proxy. */
  accepted = 0;
  server: Server | null = null;
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {}

  async listen(): Promise<void> {
    this.server = createServer((client) => {
      this.accepted++;
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Every connection through the proxy dies at once, as with pg_terminate_backend. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  /** Refuse connections (nothing listens) until `open` is called. */
  async refuse(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = null;
  }

  async close(): Promise<void> {
    this.cut();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

if (!SERVER) {
  t.comment('not run: needs DATABASE_URL (PostgreSQL)');
} else {
  t.test('the hub stays up through killed connections and a database that refuses them', async (t) => {
    t.setTimeout(180_000);
    const server = new URL(SERVER);
    const dbName = `opspilot_faults_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: SERVER });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    t.teardown(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    });
    const proxy = new FlakyProxy({ host: server.hostname, port: Number(server.port || 5432) });
    await proxy.listen();
    t.teardown(() => proxy.close());
    const url = new URL(SERVER);
    url.port = String(proxy.port);
    url.pathname = `/${dbName}`;

    const healthPort = await freePort();
    const hub = await spawnHub({ DATABASE_URL: url.toString(), OPSPILOT_DATA_DIR: `/tmp/${dbName}`, OPSPILOT_HEALTH_PORT: String(healthPort) });
    const healthReady = () => fetch(`http://127.0.0.1:${healthPort}/readyz`).then(async (r) => ({ status: r.status, body: await r.json() }));
    t.teardown(() => hub.stop());
    const enrolled = await hub.api('POST', '/v1/agents', { hostname: 'faults' });
    await hub.api('POST', '/v1/rules', { name: 'r', match: { type: 'systemd' }, action: { command: 'service_status', params: { service: '{{source}}' } }, verify_s: 1 });
    const am = (await hub.api('POST', '/v1/integrations', { name: 'am', kind: 'alertmanager' })).body as { url_path: string; secret: string };
    const notification = JSON.stringify({
      version: '4',
      status: 'firing',
      receiver: 'opspilot',
      alerts: [0, 1].map((i) => ({ status: 'firing', labels: { alertname: 'DiskFull', instance: `db-${i}:9100` }, annotations: {}, startsAt: '2026-11-29T10:00:00Z', fingerprint: `f${i}` })),
    });
    const deliver = async () => {
      const res = await fetch(`http://127.0.0.1:${hub.port}${am.url_path}`, { method: 'POST', body: notification, headers: { 'content-type': 'application/json', authorization: `Bearer ${am.secret}` } });
      return { status: res.status, body: (await res.json()) as any };
    };
    const wsUrl = `ws://127.0.0.1:${hub.port}/v1/stream`;
    let agent = await ScriptedAgent.connect(wsUrl, enrolled.body.token);
    await agent.next('welcome');

    // Traffic during the faults: alerts from the agent (reconnecting when closed) and REST calls.
    let stop = false;
    let seq = 0;
    const traffic = (async () => {
      while (!stop) {
        if (agent.ws.readyState !== agent.ws.OPEN) agent = await ScriptedAgent.connect(wsUrl, enrolled.body.token).catch(() => agent);
        else agent.send('alert', { type: 'systemd', source: `u${seq % 5}.service`, message: 'failed' }, { id: `a${++seq}` });
        await hub.api('GET', '/v1/incidents?limit=5').catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    for (let i = 0; i < 25; i++) {
      const before = proxy.accepted;
      proxy.cut();
      await eventually(async () => proxy.accepted > before, 15_000, 'the hub connected again');
      t.equal(hub.child.exitCode, null, `alive after ${i + 1} cuts`);
    }
    t.ok(proxy.accepted > 25, `the hub connected again after every cut (${proxy.accepted} connections)`);
    await proxy.refuse();
    // Once the hub's own upkeep has not reached the database for 8 s, each /readyz asks it: each 503 is a connection refused.
    let refused = 0;
    await eventually(async () => (await hub.api('GET', '/readyz')).status === 503 && ++refused >= 20, 30_000, '/readyz to say not ready twenty times');
    t.equal(hub.child.exitCode, null, 'alive after twenty refused connections and the traffic meanwhile');
    t.match(await healthReady(), { status: 503, body: { error: { code: 'HUB_UNAVAILABLE', retry: true } } }, 'the health port says so too');
    // An integration's delivery while the database is away: 503 with retry, so its sender retries.
    t.match(await deliver(), { status: 503, body: { error: { code: 'HUB_UNAVAILABLE', retry: true } } });
    await proxy.listen();
    await eventually(async () => (await hub.api('GET', '/readyz')).status === 200, 30_000, '/readyz ready again');
    t.match(await healthReady(), { status: 200, body: { status: 'ready' } }, 'and the health port');
    stop = true;
    await traffic;

    // The sender's retry is taken, whole and once; nothing of the failed attempt was kept.
    t.match(await deliver(), { status: 200, body: { duplicate: false, changed: 2 } });
    t.match(await deliver(), { status: 200, body: { duplicate: true, changed: 0 } });
    const external = (await hub.api('GET', '/v1/incidents?integration=am')).body.incidents as { count: number }[];
    t.same(external.map((i) => i.count), [1, 1], 'each alert once');

    // Writes flow again.
    const fresh = await ScriptedAgent.connect(wsUrl, enrolled.body.token);
    await fresh.next('welcome');
    fresh.send('alert', { type: 'log', source: '/var/log/after.log', message: 'fatal: after the outage' }, { id: 'after-outage' });
    await fresh.acked(['after-outage'], 15_000);
    const incidents = (await hub.api('GET', `/v1/incidents?agent_id=${enrolled.body.id}&limit=100`)).body.incidents as { source: string }[];
    t.ok(incidents.some((i) => i.source === '/var/log/after.log'), 'stored after the outage');
    t.equal(hub.child.exitCode, null, 'never exited');
    t.notMatch(hub.output(), /unhandled rejection; exiting/);
    fresh.close();
    agent.close();
  });
}
