import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Backoff } from '../src/backoff.ts';
import { HubClient, type Logger } from '../src/client.ts';
import { BUILTIN_ACTIONS } from '../src/exec/catalogue.ts';
import { ExecRunner } from '../src/exec/runner.ts';
import { Outbox } from '../src/outbox.ts';
import { FakeHub } from './fake-hub.ts';
import { eventually } from './util.ts';

const TOKEN = 'opa_test_token';

function stateDir(t: Test): string {
  const d = mkdtempSync(path.join(tmpdir(), 'opspilot-client-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

function client(t: Test, hub: FakeHub, dir: string, extra: { slowRetryMs?: number; log?: Logger; random?: () => number } = {}) {
  const outbox = new Outbox({ dir: path.join(dir, 'outbox'), maxEntries: 100 });
  const runner = new ExecRunner({
    actions: { ...BUILTIN_ACTIONS, echo: { argv: [process.execPath, '-e', 'process.stdout.write(process.argv[1])', '{text}'], params: { text: { type: 'string', pattern: '^[a-z ]*$', required: true } }, timeout_ms: 5000 } },
    stateDir: dir,
    maxConcurrent: 2,
    env: { PATH: process.env.PATH },
  });
  const c = new HubClient({
    url: hub.url,
    token: TOKEN,
    hello: () => ({ protocol: 1, agent_version: 'test', hostname: 'h', os: 'linux', arch: 'x64', actions: runner.actionNames }),
    heartbeat: () => ({ uptime_s: 1 }),
    heartbeatIntervalS: 10,
    outbox,
    exec: (e) => runner.run(e),
    log: extra.log ?? recordingLog(),
    backoff: new Backoff({ baseMs: 20, capMs: 100, resetAfterMs: 60_000, ...(extra.random ? { random: extra.random } : {}) }),
    slowRetryMs: extra.slowRetryMs ?? 200,
    reconnectSpreadMs: 400,
  });
  t.teardown(() => c.stop());
  return { c, outbox };
}

async function startHub(t: Test, port = 0): Promise<FakeHub> {
  const hub = new FakeHub(TOKEN);
  await hub.listen(port);
  t.teardown(() => hub.close());
  return hub;
}

t.test('bearer at the upgrade, hello with the catalogue first, heartbeats at the welcomed interval', async (t) => {
  const hub = await startHub(t);
  const { c } = client(t, hub, stateDir(t));
  c.start();
  t.equal(await c.welcomed(), 'agent-1');
  await hub.until((r) => r.length >= 1);
  t.same(hub.authHeaders, [`Bearer ${TOKEN}`]);
  t.equal(hub.received[0]!.type, 'hello');
  t.match(hub.received[0]!.payload, { protocol: 1, actions: ['restart_service', 'start_service', 'stop_service', 'service_status', 'service_logs', 'disk_usage', 'top_processes', 'echo'] });
  await hub.until((r) => r.some((m) => m.type === 'heartbeat'), 3000); // welcome said 1 s
});

t.test('alerts are kept until acked and resent with the same id after a reconnect and a restart', async (t) => {
  const hub = await startHub(t);
  hub.acking = false;
  const dir = stateDir(t);
  const first = client(t, hub, dir);
  first.c.start();
  await first.c.welcomed();
  const id = first.c.sendDurable('alert', { type: 'log', source: '/var/log/app.log', message: 'fatal: disk' });
  await hub.until((r) => r.some((m) => m.id === id));
  await first.c.stop();
  t.equal(first.outbox.size, 1, 'not acked: still in the outbox');

  // A new process with the same state directory: the alert goes again, same id, and is acked.
  hub.acking = true;
  const second = client(t, hub, dir);
  second.c.start();
  await second.c.welcomed();
  await hub.until((r) => r.filter((m) => m.id === id).length === 2);
  t.ok(await eventually(async () => second.outbox.size === 0, 5000, 'the ack'), 'acked: gone');
  const copies = hub.received.filter((m) => m.id === id);
  t.same(copies[0]!.payload, copies[1]!.payload);
});

t.test('written while the hub is down, delivered when it returns', async (t) => {
  const hub = await startHub(t);
  const port = hub.port;
  const { c, outbox } = client(t, hub, stateDir(t));
  c.start();
  await c.welcomed();
  const down = c.welcomed(); // resolves when it is back: meanwhile it is down
  await hub.close();
  await eventually(async () => c.agentId === null, 5000, 'the client sees the hub go');
  const ids = [c.sendDurable('alert', { type: 'systemd', source: 'a.service', message: 'failed' }), c.sendDurable('resolve', { type: 'systemd', source: 'a.service' })];
  t.equal(c.sendVolatile('heartbeat', {}), false, 'heartbeats are not queued');
  const back = await startHub(t, port);
  await back.until((r) => ids.every((id) => r.some((m) => m.id === id)), 5000);
  t.same(back.received.filter((m) => m.id).map((m) => m.type), ['alert', 'resolve'], 'in order');
  await down;
  t.ok(await eventually(async () => outbox.size === 0, 5000, 'the acks'), 'acked: the outbox is empty');
});

t.test('a NUL or a lone surrogate never leaves the agent; an entry the hub refuses is set aside, not resent', async (t) => {
  const hub = await startHub(t);
  const dir = stateDir(t);
  const log = recordingLog();
  const first = client(t, hub, dir, { log });
  first.c.start();
  await first.c.welcomed();
  // A log line with a NUL byte and broken UTF-16: replaced, so the hub's checks pass.
  const clean = first.c.sendDurable('alert', { type: 'log', source: '/var/log/app.log', message: 'fatal\u0000 in worker', logs: 'x\ud800y', context: { ['k\u0000']: 'v' } });
  await hub.until((r) => r.some((m) => m.id === clean));
  t.match(hub.received.find((m) => m.id === clean)!.payload, { message: 'fatal\u2400 in worker', logs: 'x\ufffdy', context: { ['k\u2400']: 'v' } });

  // Whatever else the hub refuses for what it is (an error naming its id) is set aside.
  hub.acking = false;
  const refused = first.c.sendDurable('alert', { type: 'log', source: '/var/log/app.log', message: 'from an older agent' });
  await hub.until((r) => r.some((m) => m.id === refused));
  hub.send('error', { code: 'PROTO_SCHEMA', message: 'alert message: contains a NUL character', ref_id: refused });
  await hub.until(() => first.outbox.size === 0);
  const aside = JSON.parse(readFileSync(path.join(dir, 'outbox', 'rejected', `${refused}.alert.json`), 'utf8'));
  t.match(aside, { reason: 'PROTO_SCHEMA: alert message: contains a NUL character' }, 'kept for a person, with the reason');
  t.ok(log.lines.some((l) => l.startsWith('error an outbox entry the hub refused was set aside')));

  // It is not resent after a reconnect, and what comes after it flows.
  await first.c.stop();
  hub.acking = true;
  const second = client(t, hub, dir);
  second.c.start();
  await second.c.welcomed();
  const next = second.c.sendDurable('resolve', { type: 'log', source: '/var/log/app.log' });
  await hub.until((r) => r.some((m) => m.id === next));
  // The outbox is replayed at the welcome, before anything new: had it been resent, it came before `next`.
  t.equal(hub.received.filter((m) => m.id === refused).length, 1, 'sent once, never again');
  t.ok(await eventually(async () => second.outbox.size === 0, 5000, 'the ack of next'), 'and what came after it is acked');
});

t.test('exec requests run once and their results are durable', async (t) => {
  const hub = await startHub(t);
  const { c } = client(t, hub, stateDir(t));
  c.start();
  await c.welcomed();
  hub.send('exec', { request_id: 'req-1', command: 'echo', params: { text: 'hello there' }, timeout_ms: 5000 });
  hub.send('exec', { request_id: 'req-1', command: 'echo', params: { text: 'hello there' }, timeout_ms: 5000 });
  hub.send('exec', { request_id: 'req-2', command: 'rm_everything', params: {}, timeout_ms: 5000 });
  await hub.until((r) => r.filter((m) => m.type === 'exec_result').length === 3);
  const results = hub.received.filter((m) => m.type === 'exec_result').map((m) => m.payload as Record<string, unknown>);
  t.match(results.find((r) => r.request_id === 'req-1' && r.ok), { stdout: 'hello there', exit_code: 0 });
  t.match(results.find((r) => r.request_id === 'req-1' && !r.ok), { error_code: 'EXEC_DUPLICATE' });
  t.match(results.find((r) => r.request_id === 'req-2'), { ok: false, error_code: 'EXEC_NOT_ALLOWED' });
  t.ok(hub.received.filter((m) => m.type === 'exec_result').every((m) => m.id), 'results carry ids (outbox)');
});

t.test('1012 and drops reconnect with backoff; a bad token is an error retried slowly', async (t) => {
  const hub = await startHub(t);
  const log = recordingLog();
  const { c } = client(t, hub, stateDir(t), { log, slowRetryMs: 300, random: () => 0.9 });
  c.start();
  await c.welcomed();
  const again = c.welcomed();
  hub.socket!.close(1012, 'hub restarting');
  t.equal(await again, 'agent-1', 'back after 1012');
  const delay = (l: string) => Number(/"retry_in_ms":(\d+)/.exec(l)?.[1]);
  t.equal(delay(log.lines.find((l) => l.includes('"code":1012'))!), 360, 'the first reconnect after a restart is drawn from the wide window (0.9 of 400 ms), not the 20 ms base');

  hub.token = 'rotated';
  const attemptsBefore = hub.authHeaders.length;
  hub.socket!.close(4401, 'token rotated');
  const rejected = await eventually(async () => log.lines.find((l) => l.startsWith('error the hub rejected this agent token')), 5000, 'the error');
  t.match(rejected, /"retry_in_s":0\b/, 'a clear error, with the slow delay it waits (300 ms here)');
  hub.token = TOKEN;
  await c.welcomed();
  t.equal(hub.authHeaders.length, attemptsBefore + 1, 'one retry, after the slow delay: no fast retry loop on a bad token');
});
