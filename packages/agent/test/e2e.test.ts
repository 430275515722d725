/**
 * End to end: `pnpm start`'s script runs the real hub and the real agent as processes; the
 * test talks to the hub's REST API as an operator would.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freePort } from './util.ts';

const START = path.resolve(import.meta.dirname, '../../../scripts/start.ts');

const ROOT = path.resolve(import.meta.dirname, '../../..');

/** `pnpm start` (start.ts directly, or through pnpm in a process group of its own, as a terminal runs it). */
function startStack(dataDir: string, port: number, opts: { viaPnpm?: boolean; env?: Record<string, string> } = {}) {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', OPSPILOT_DATA_DIR: dataDir, OPSPILOT_PORT: String(port), OPSPILOT_HOST: '127.0.0.1', OPSPILOT_LOG_LEVEL: 'warn', ...opts.env };
  const child = opts.viaPnpm
    ? spawn('pnpm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    : spawn(process.execPath, ['--import', 'tsx', START], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

t.test('pnpm start: hub and local agent, metrics, exec round trips, clean stop', async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'opspilot-e2e-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const hub = `http://127.0.0.1:${port}`;
  const stack = startStack(dataDir, port);
  t.teardown(() => {
    if (stack.child.exitCode === null) stack.child.kill('SIGKILL');
  });

  const agentId = await eventually(async () => /local agent\s+([0-9A-Z]{26})/.exec(stack.output())?.[1], 60_000, 'the local agent');
  const admin = /\b(opk_[A-Za-z0-9_-]{43})\b/.exec(stack.output())![1]!;
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(hub + p, { method, headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json()) as any };
  };
  t.equal(statSync(path.join(dataDir, 'agent', 'agent.json')).mode & 0o777, 0o600, 'the saved agent token is private');

  // The dashboard was built and is served; the banner's link signs it in, once.
  const link = /dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/#signin=([A-Za-z0-9_-]{43}))/.exec(stack.output());
  t.ok(link, 'the banner has a one-time sign-in link for the dashboard');
  t.match(await fetch(`${hub}/`).then((r) => r.text()), /<div id="app">/, 'the dashboard is served at /');
  const signIn = () => fetch(`${hub}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: link![2] }) });
  const session = await signIn();
  t.equal(session.status, 201, 'the link signs in');
  t.match(await session.json(), { actor: 'token:admin', scope: 'admin' });
  t.equal((await signIn()).status, 401, 'once');
  t.notOk(stack.output().split('\n').some((l) => l.includes('"msg"') && l.includes(link![2]!)), 'the code is in no log line');

  // The hello is stored by the next ingest batch, a moment after the agent is welcomed.
  const agent = await eventually(async () => {
    const a = (await api('GET', `/v1/agents/${agentId}`)).body;
    return a.facts && a;
  }, 10_000, "the agent's hello");
  t.match(agent, { status: 'online', facts: { os: 'linux' } });
  t.ok(agent.actions.includes('disk_usage') && agent.actions.includes('service_status'), 'the catalogue came with hello');

  const df = await api('POST', '/v1/admin/exec', { agent_id: agentId, command: 'disk_usage' });
  t.match(df.body, { status: 'succeeded', exit_code: 0, stdout: /^Filesystem/ });
  const status = await api('POST', '/v1/admin/exec', { agent_id: agentId, command: 'service_status', params: { service: 'opspilot-e2e-does-not-exist.service' } });
  // No systemd runs on every test machine: the round trip is what is checked, with a stored result.
  t.equal(status.status, 200);
  t.match(status.body, { command: 'service_status', status: /^(succeeded|failed)$/, completed_at: String });
  t.not(status.body.exit_code, 0, 'a unit that does not exist is not reported as fine');
  const refused = await api('POST', '/v1/admin/exec', { agent_id: agentId, command: 'restart_service', params: { service: 'nginx; reboot' } });
  t.match(refused.body, { status: 'failed', error_code: 'EXEC_BAD_PARAMS' }, 'the agent refuses what the hub let through');

  const samples = await eventually(async () => {
    const s = (await api('GET', `/v1/agents/${agentId}/metrics`)).body.samples;
    return s.length > 0 && s;
  }, 30_000, 'the first metrics sample (15 s interval)');
  t.ok(samples[0].mem_total > 0 && samples[0].disks.length > 0, 'real host metrics');

  stack.child.kill('SIGTERM');
  t.equal(await stack.exited, 0, 'Ctrl-C / SIGTERM stops both cleanly');
  const agentToken = JSON.parse(readFileSync(path.join(dataDir, 'agent', 'agent.json'), 'utf8')).token as string;
  t.notOk(stack.output().includes(agentToken), 'the agent token is never printed');

  // A second start, through `pnpm start` as a user runs it, reuses the enrolment: no new admin
  // token, the same agent comes back. Ctrl-C reaches the whole process group (pnpm, its shell,
  // start.ts, the hub and the agent): everything stops once, cleanly, and pnpm reports no failure.
  const again = startStack(dataDir, port, { viaPnpm: true });
  t.teardown(() => {
    if (again.child.exitCode === null) process.kill(-again.child.pid!, 'SIGKILL');
  });
  const sameId = await eventually(async () => /local agent\s+([0-9A-Z]{26})/.exec(again.output())?.[1], 60_000, 'the agent after a restart');
  t.equal(sameId, agentId);
  t.notOk(/opk_/.test(again.output()));
  const secondLink = /#signin=([A-Za-z0-9_-]{43})/.exec(again.output())?.[1];
  t.ok(secondLink && secondLink !== link![2], 'each start prints a new link');
  process.kill(-again.child.pid!, 'SIGINT');
  t.equal(await again.exited, 0, 'Ctrl-C: exit 0');
  t.notOk(/ELIFECYCLE|Command failed/.test(again.output()), 'pnpm reports no failure');
  t.equal(again.output().match(/"msg":"stopping"/g)?.length, 1, 'the agent stops once');

  // The same checkout moved to PostgreSQL: a new database, so a new enrolment (the embedded
  // database's agent token would be rejected there forever); back on the embedded one, the old.
  if (process.env.DATABASE_URL) {
    const schema = `e2e_${process.pid}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    t.teardown(async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    });
    const url = new URL(process.env.DATABASE_URL);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const onPg = startStack(dataDir, port, { env: { DATABASE_URL: url.toString() } });
    t.teardown(() => {
      if (onPg.child.exitCode === null) onPg.child.kill('SIGKILL');
    });
    const pgAgent = await eventually(async () => /local agent\s+([0-9A-Z]{26})/.exec(onPg.output())?.[1], 60_000, 'the agent enrolled on PostgreSQL');
    t.not(pgAgent, agentId, 'enrolled again on the new database');
    t.notOk(/rejected this agent token/.test(onPg.output()), 'the old token is never tried there');
    onPg.child.kill('SIGTERM');
    t.equal(await onPg.exited, 0);
    const back = startStack(dataDir, port);
    t.teardown(() => {
      if (back.child.exitCode === null) back.child.kill('SIGKILL');
    });
    t.equal(await eventually(async () => /local agent\s+([0-9A-Z]{26})/.exec(back.output())?.[1], 60_000, 'the embedded agent again'), agentId);
    back.child.kill('SIGTERM');
    t.equal(await back.exited, 0);
  }
});
