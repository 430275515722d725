import t, { type Test } from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CLOSE_CODES } from '@opspilot/protocol';
import { GO_ALERT, GO_HEARTBEAT } from '@opspilot/protocol/vectors';
import { ScriptedAgent } from './helpers.ts';

/** End to end: the hub as its own process, started the way `pnpm hub` starts it. */
const MAIN = path.resolve(import.meta.dirname, '../src/main.ts');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface HubProcess {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<number | null>;
}

async function spawnHub(t: Test, env: Record<string, string>): Promise<HubProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { PATH: process.env.PATH ?? '', OPSPILOT_PORT: String(port), OPSPILOT_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hub exited early:\n${output}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`hub did not become ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port, output: () => output, exited };
}

const api = async (port: number, token: string, method: string, p: string, body?: unknown) => {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};

const databases: { name: string; env: (t: Test) => Promise<Record<string, string>> }[] = [
  {
    name: 'pglite',
    env: async (t) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-proc-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      return { OPSPILOT_DATA_DIR: dir };
    },
  },
];
if (process.env.DATABASE_URL) {
  databases.push({
    name: 'postgres',
    env: async (t) => {
      // A database of its own, so the first start really is the first.
      const name = `opspilot_proc_${randomBytes(4).toString('hex')}`;
      const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      t.teardown(async () => {
        const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      });
      const url = new URL(process.env.DATABASE_URL!);
      url.pathname = `/${name}`;
      return { DATABASE_URL: url.toString(), OPSPILOT_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'opspilot-proc-')) };
    },
  });
}

for (const database of databases) {
  t.test(`first start, seed envelopes, SIGTERM, restart [${database.name}]`, async (t) => {
    const env = await database.env(t);
    const first = await spawnHub(t, env);
    const adminToken = /\b(opk_[A-Za-z0-9_-]{43})\b/.exec(first.output())?.[1];
    t.ok(adminToken, 'a generated admin token is printed at first start');

    const { id, token } = (await api(first.port, adminToken!, 'POST', '/v1/agents', { hostname: 'e2e-1' })).body;
    const agent = new ScriptedAgent(`ws://127.0.0.1:${first.port}/v1/stream`);
    await agent.opened;
    agent.sendRaw(GO_HEARTBEAT.replace('my-secret-token', token));
    agent.sendRaw(GO_ALERT.replace('my-secret-token', token).replace('"compression"', '"id":"go-alert-1","compression"'));
    await agent.acked(['go-alert-1']);
    t.equal((await api(first.port, adminToken!, 'GET', `/v1/agents/${id}`)).body.status, 'online');

    first.child.kill('SIGTERM');
    t.equal((await agent.closed).code, CLOSE_CODES.restarting, 'agents get 1012');
    t.equal(await first.exited, 0, 'exit 0 on SIGTERM');
    t.notOk(first.output().includes(token), 'the agent token is not in the hub output');
    t.equal(first.output().split(adminToken!).length - 1, 1, 'the admin token was printed exactly once');

    const second = await spawnHub(t, env);
    t.notOk(/opk_/.test(second.output()), 'no new admin token on the second start');
    const incidents = await api(second.port, adminToken!, 'GET', `/v1/agents/${id}/incidents`);
    t.match(incidents.body.incidents, [{ type: 'systemd', source: 'nginx', message: 'nginx crashed', count: 1 }], 'the incident survived');
    t.equal((await api(second.port, adminToken!, 'GET', `/v1/agents/${id}`)).body.status, 'offline');
    second.child.kill('SIGINT');
    t.equal(await second.exited, 0, 'exit 0 on SIGINT');
  });
}

t.test('a bad environment fails at start, naming the variable', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { PATH: process.env.PATH ?? '', OPSPILOT_PORT: 'http' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  t.equal(code, 2);
  t.match(stderr, /OPSPILOT_PORT: expected an integer/);
});

t.test('a bad rules file stops the hub at start, naming the file and the place', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rules = path.join(dir, 'rules.json');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(rules, JSON.stringify([{ name: 'x', severity: 'urgent', category: 'c', pattern: 'a' }]));
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { PATH: process.env.PATH ?? '', OPSPILOT_DATA_DIR: dir, OPSPILOT_RULES_FILE: rules, OPSPILOT_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  t.equal(code, 2);
  t.match(stderr, new RegExp(`rules file ${rules.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: \\[0\\]\\.severity`));
});

/** Start the hub's process with `env` and wait for it to exit: its code and what it printed to stderr. */
async function failedStart(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stderr };
}

t.test('every start-up problem exits 2 and names the setting to fix', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { writeFileSync } = await import('node:fs');
  const redactions = path.join(dir, 'redactions.json');
  writeFileSync(redactions, JSON.stringify([{ name: 'x', pattern: '(?=lookahead)' }]));
  const bad = await failedStart({ OPSPILOT_DATA_DIR: dir, OPSPILOT_PORT: '0', OPSPILOT_REDACTIONS_FILE: redactions });
  t.equal(bad.code, 2, 'a bad redactions file');
  t.match(bad.stderr, /^opspilot-hub: OPSPILOT_REDACTIONS_FILE: redactions file .*\[0\]\.pattern/m);

  const db = await failedStart({ OPSPILOT_DATA_DIR: dir, OPSPILOT_PORT: '0', DATABASE_URL: 'postgres://opspilot:s3cret@127.0.0.1:1/none' });
  t.equal(db.code, 2, 'a database that does not answer');
  t.match(db.stderr, /^opspilot-hub: DATABASE_URL: cannot (open|prepare) the database: .*ECONNREFUSED/m);
  t.notOk(db.stderr.includes('s3cret'), 'the URL (and its password) is not echoed');

  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => busy.close());
  const port = (busy.address() as AddressInfo).port;
  const inUse = await failedStart({ OPSPILOT_DATA_DIR: dir, OPSPILOT_PORT: String(port), OPSPILOT_HOST: '127.0.0.1' });
  t.equal(inUse.code, 2, 'a port in use');
  t.match(inUse.stderr, new RegExp(`^opspilot-hub: OPSPILOT_PORT: port ${port} on 127.0.0.1 is in use`, 'm'));

  const healthInUse = await failedStart({ OPSPILOT_DATA_DIR: dir, OPSPILOT_PORT: String(await freePort()), OPSPILOT_HOST: '127.0.0.1', OPSPILOT_HEALTH_PORT: String(port) });
  t.equal(healthInUse.code, 2, 'a health port in use');
  t.match(healthInUse.stderr, new RegExp(`^opspilot-hub: OPSPILOT_HEALTH_PORT: port ${port} on 127.0.0.1 is in use`, 'm'));
  const same = await failedStart({ OPSPILOT_DATA_DIR: dir, OPSPILOT_PORT: '9000', OPSPILOT_HEALTH_PORT: '9000' });
  t.equal(same.code, 2, 'the health port on the main port');
  t.match(same.stderr, /^opspilot-hub: invalid config OPSPILOT_HEALTH_PORT: must differ from the main port/m);
});

t.test('the health port (OPSPILOT_HEALTH_PORT) answers /healthz and /readyz on a socket of its own, and nothing else', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const healthPort = await freePort();
  const hub = await spawnHub(t, { OPSPILOT_DATA_DIR: dir, OPSPILOT_ADMIN_TOKEN: 'health-port-admin-token-0123', OPSPILOT_HEALTH_PORT: String(healthPort), OPSPILOT_LOG_LEVEL: 'info' });
  const base = `http://127.0.0.1:${healthPort}`;
  t.match(hub.output(), new RegExp(`"health_port":${healthPort}.*OpsPilot hub ready`), 'the start-up line names it');

  t.same(await (await fetch(`${base}/healthz`)).json(), { status: 'ok' });
  const ready = await fetch(`${base}/readyz?probe=1`);
  t.equal(ready.status, 200);
  t.equal(ready.headers.get('cache-control'), 'no-store');
  const main = await (await fetch(`http://127.0.0.1:${hub.port}/readyz`)).json();
  t.same(await ready.json(), main, 'the same answer as the main port');
  const head = await fetch(`${base}/readyz`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD');
  t.equal(await head.text(), '');

  // Everything else: a stable error, never the API behind it.
  const notFound = await fetch(`${base}/v1/agents`, { headers: { authorization: 'Bearer health-port-admin-token-0123' } });
  t.equal(notFound.status, 404);
  t.match(await notFound.json(), { error: { code: 'HUB_NOT_FOUND', retry: false } });
  const post = await fetch(`${base}/readyz`, { method: 'POST', body: 'x'.repeat(1 << 20) });
  t.equal(post.status, 405);
  t.equal(post.headers.get('allow'), 'GET, HEAD');
  t.match(await post.json(), { error: { code: 'HUB_BAD_REQUEST' } });

  // Raw bytes: a request line that is not HTTP, and headers past the limit, each answered and closed.
  const { connect } = await import('node:net');
  const raw = (bytes: string) =>
    new Promise<string>((resolve) => {
      let got = '';
      const socket = connect(healthPort, '127.0.0.1', () => socket.write(bytes));
      socket.on('data', (c: Buffer) => (got += c.toString()));
      socket.on('error', () => {});
      socket.on('close', () => resolve(got));
    });
  t.match(await raw('\x16\x03\x01 not http at all\r\n\r\n'), /^HTTP\/1\.1 400 /, 'garbage: 400, closed');
  t.match(await raw(`GET /readyz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /, 'headers past 8 KiB: 431, closed');

  // Idle connections are bounded: a peer holding more than 64 open is cut off at the 65th, and a
  // check after it closes them is answered.
  const idle = await Promise.all(
    Array.from({ length: 70 }, () =>
      new Promise<import('node:net').Socket>((resolve) => {
        const s = connect(healthPort, '127.0.0.1', () => resolve(s));
        s.on('error', () => {});
      }),
    ),
  );
  await new Promise((r) => setTimeout(r, 300));
  t.ok(idle.filter((s) => s.destroyed || s.readyState !== 'open').length >= 6, 'connections past 64 are closed');
  for (const s of idle) s.destroy();
  await new Promise((r) => setTimeout(r, 100));
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'answered once they are gone');

  hub.child.kill('SIGTERM');
  t.equal(await hub.exited, 0, 'a clean stop');
  t.equal(await fetch(`${base}/healthz`).then((r) => r.status, () => 'refused'), 'refused', 'the health port closes with the hub');
});

t.test('the bundle `pnpm hub` runs starts on the embedded database and serves the API, its docs and agents', async (t) => {
  const { buildHub } = await import('../../../scripts/build-hub.ts');
  const outDir = mkdtempSync(path.join(path.resolve(import.meta.dirname, '..'), 'dist-test-'));
  t.teardown(() => rmSync(outDir, { recursive: true, force: true }));
  const bundle = await buildHub(path.join(outDir, 'opspilot-hub.mjs'));
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const token = 'bundle-admin-token-0123456789';
  const port = await freePort();
  const child = spawn(process.execPath, [bundle], { env: { PATH: process.env.PATH ?? '', OPSPILOT_PORT: String(port), OPSPILOT_HOST: '127.0.0.1', OPSPILOT_DATA_DIR: dir, OPSPILOT_ADMIN_TOKEN: token, OPSPILOT_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
  for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)); i++) {
    if (child.exitCode !== null || i > 600) throw new Error(`the bundled hub did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The accept queue the kernel gave the listening socket (`ss` shows it as Send-Q): deep enough
  // for a storm of reconnects when another hub dies, as far as net.core.somaxconn allows.
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  const listening = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim().split(/\s+/);
  t.equal(Number(listening[2]), Math.min(4096, somaxconn), `listen backlog (${listening.join(' ')})`);
  const created = await api(port, token, 'POST', '/v1/agents', { hostname: 'bundled' });
  t.equal(created.status, 201, 'migrations found above the bundle, agents enrolled');
  const agent = await ScriptedAgent.connect(`ws://127.0.0.1:${port}/v1/stream`, created.body.token);
  agent.send('alert', { type: 'systemd', source: 'nginx.service', message: 'failed' }, { id: 'b-1' });
  await agent.acked(['b-1']);
  t.pass('an alert stored and acked');
  t.equal((await fetch(`http://127.0.0.1:${port}/docs/json`)).status, 200, 'the API description');
  t.equal((await fetch(`http://127.0.0.1:${port}/docs/static/index.html`)).status, 200, "the docs' static files (outside the bundle)");
  agent.close();
  child.kill('SIGTERM');
  t.equal(await exited, 0, `a clean stop${output.includes('"level":50') ? `: ${output}` : ''}`);
});

t.test('the embedded database serves one hub: a second hub pointed at it exits 2 and says why; a killed hub does not hold it', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await spawnHub(t, { OPSPILOT_DATA_DIR: dir, OPSPILOT_ADMIN_TOKEN: 'first-hub-admin-token-0123' });
  const second = await failedStart({ OPSPILOT_DATA_DIR: dir, OPSPILOT_PORT: '0' });
  t.equal(second.code, 2);
  t.match(second.stderr, new RegExp(`^opspilot-hub: OPSPILOT_DATA_DIR: cannot open the database: the embedded database in \\S+ is in use by another hub \\(process ${first.child.pid}\\).*set DATABASE_URL`, 'm'));
  t.equal((await fetch(`http://127.0.0.1:${first.port}/readyz`)).status, 200, 'the first hub goes on');
  first.child.kill('SIGKILL'); // no clean stop: its lock file stays, naming a process that is gone
  await first.exited;
  const third = await spawnHub(t, { OPSPILOT_DATA_DIR: dir, OPSPILOT_ADMIN_TOKEN: 'first-hub-admin-token-0123' });
  t.equal((await api(third.port, 'first-hub-admin-token-0123', 'GET', '/v1/agents')).status, 200, 'a hub started after a killed one takes the database');
  third.child.kill('SIGTERM');
  t.equal(await third.exited, 0);
});

t.test('OPSPILOT_ADMIN_TOKEN is used as given and never printed', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const chosen = 'my-chosen-admin-token-123456';
  const hub = await spawnHub(t, { OPSPILOT_DATA_DIR: dir, OPSPILOT_ADMIN_TOKEN: chosen, OPSPILOT_LOG_LEVEL: 'debug' });
  t.equal((await api(hub.port, chosen, 'GET', '/v1/agents')).status, 200);
  t.equal((await api(hub.port, 'opk_guess', 'GET', '/v1/agents')).status, 401);
  t.notOk(hub.output().includes(chosen));
  t.notOk(/opk_/.test(hub.output()), 'no token generated');
  hub.child.kill('SIGTERM');
  t.equal(await hub.exited, 0);
});
