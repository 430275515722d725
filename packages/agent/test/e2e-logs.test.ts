/**
 * End to end with the real hub and the real agent as processes: a log line becomes an incident,
 * and alerts made while the hub is down (some while the agent itself was down) each arrive
 * exactly once when it returns.
 */
import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually, freePort, proc } from './util.ts';

const HUB_MAIN = path.resolve(import.meta.dirname, '../../hub/src/main.ts');
const AGENT_MAIN = path.resolve(import.meta.dirname, '../src/main.ts');
const ADMIN = 'e2e-admin-token-0123456789abcdef';

t.test('log lines → incidents, exactly once across hub and agent restarts', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-e2e-logs-'));
  const running: ChildProcess[] = [];
  t.teardown(() => {
    for (const c of running) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(base + p, { method, headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    return (await res.json()) as any;
  };
  const startHub = async () => {
    const hub = proc(HUB_MAIN, [], { OPSPILOT_PORT: String(port), OPSPILOT_HOST: '127.0.0.1', OPSPILOT_DATA_DIR: path.join(dir, 'hub'), OPSPILOT_ADMIN_TOKEN: ADMIN, OPSPILOT_LOG_LEVEL: 'warn' });
    running.push(hub.child);
    await eventually(async () => (await fetch(`${base}/readyz`)).ok, 60_000, 'the hub');
    return hub;
  };
  const logFile = path.join(dir, 'app.log');
  writeFileSync(logFile, 'started\n');
  const startAgent = () => {
    const agent = proc(AGENT_MAIN, ['--config', path.join(dir, 'agent.json')], {});
    running.push(agent.child);
    return agent;
  };
  const stop = async (p: { child: ChildProcess; exited: Promise<number | null> }) => {
    p.child.kill('SIGTERM');
    return p.exited;
  };

  let hub = await startHub();
  const { id, token } = await api('POST', '/v1/agents', { hostname: 'e2e-logs' });
  writeFileSync(
    path.join(dir, 'agent.json'),
    JSON.stringify({ hub_url: `ws://127.0.0.1:${port}`, token, state_dir: path.join(dir, 'agent-state'), metrics_interval_s: 3600, logs: [{ path: logFile }] }),
    { mode: 0o600 },
  );
  let agent = startAgent();
  await eventually(async () => (await api('GET', `/v1/agents/${id}`)).status === 'online', 30_000, 'the agent online');

  const incident = async () => (await api('GET', `/v1/agents/${id}/incidents`)).incidents.find((i: { source: string }) => i.source === logFile);
  appendFileSync(logFile, 'ERROR: payment worker crashed (code 137)\n');
  const first = await eventually(incident, 15_000, 'the incident');
  t.match(first, { type: 'log', source: logFile, message: 'ERROR: payment worker crashed (code 137)', count: 1, status: 'open' });

  // The hub goes away. A line while the agent runs (merged, the 60 s window is still open; the
  // agent reads the file once more as it stops), the agent stops (the merged alert goes to its
  // outbox), a line while both are down, the agent starts again with no hub to talk to and
  // puts the line's alert in its outbox (its read position reaches the end only then).
  t.equal(await stop(hub), 0);
  appendFileSync(logFile, 'ERROR: second failure\n');
  t.equal(await stop(agent), 0);
  appendFileSync(logFile, 'FATAL: third, written while the agent was down\n');
  agent = startAgent();
  const tailState = path.join(dir, 'agent-state', 'logs');
  await eventually(async () => {
    const saved = readdirSync(tailState).map((f) => JSON.parse(readFileSync(path.join(tailState, f), 'utf8')) as { offset: number });
    return saved.length === 1 && saved[0]!.offset === statSync(logFile).size;
  }, 30_000, 'the third line read into the outbox with no hub');

  hub = await startHub();
  const latest = await eventually(async () => {
    const i = await incident();
    return i?.count === 3 && i;
  }, 90_000, 'both alerts after the hub came back');
  t.equal(latest.message, 'FATAL: third, written while the agent was down');

  // Another agent restart sends nothing again: a line written after it comes next, alone. (The
  // agent reads in file order and sends its outbox in order, so a line sent twice would arrive
  // before it.)
  t.equal(await stop(agent), 0);
  agent = startAgent();
  await eventually(async () => (await api('GET', `/v1/agents/${id}`)).status === 'online', 60_000, 'the agent back');
  appendFileSync(logFile, 'ERROR: fourth, after the restart\n');
  const after = await eventually(async () => {
    const i = await incident();
    return i?.message === 'ERROR: fourth, after the restart' && i;
  }, 30_000, 'the line after the restart');
  t.equal(after.count, 4, 'each alert exactly once');
  t.notOk(agent.output().includes(token) || hub.output().includes(token), 'the agent token is in no output');
  await stop(agent);
  await stop(hub);
});
