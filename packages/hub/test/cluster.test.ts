// Several hubs on one PostgreSQL behind a real load balancer (HAProxy from Debian's packages):
// hubs, HAProxy and the fake Slack and model servers are real processes and sockets; the agents
// are the agent package's own client and durable outbox, many in this process.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Backoff, HubClient, Outbox, type Logger } from '@opspilot/agent';
import { freePort, haproxyConfig, spawnHub, type HubProcess } from '../../../scripts/hub-process.ts';
import { fakeSlack, BOT_TOKEN, CHANNEL, SIGNING_SECRET } from './fake-slack.ts';
import { fakeModel, completion, type Reply } from './fake-model.ts';

t.setTimeout(480_000); // two clusters started, one hub killed and its agents waited for in real time

const HAPROXY = '/usr/sbin/haproxy';
const BASE_URL = process.env.DATABASE_URL;
const ACTIONS = ['service_status', 'restart_service'];

const ANSWER = { summary: 'the unit failed', root_cause: 'It exited with an error.', confidence: 0.6, suggested_action: { command: 'service_status', params: { unit: 'app.service' }, label: 'Check it' }, rationale: 'Look first.', risk: 'low' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A database of its own (advisory locks and NOTIFY channels are per database), dropped at the end. */
async function freshDatabase(t: Test): Promise<{ url: string; query<R = any>(text: string, params?: unknown[]): Promise<R[]> }> {
  const name = `opspilot_cluster_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: BASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(BASE_URL!);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  t.teardown(async () => {
    await client.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  });
  return { url: url.toString(), query: async (text, params) => (await client.query(text, params as unknown[])).rows };
}

/** HAProxy in front of the hubs: WebSocket-aware (HTTP mode, a long tunnel timeout), health-checked on /readyz. */
async function haproxy(t: Test, hubs: HubProcess[]): Promise<{ port: number; url: string }> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-haproxy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(port, hubs));
  const child = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const url = `http://127.0.0.1:${port}`;
  await until(`HAProxy on ${port}: ${output}`, () => fetch(`${url}/readyz`).then((r) => r.ok, () => false), 15_000);
  return { port, url };
}

const quiet: Logger = { info() {}, warn() {}, error() {} };

interface TestAgent {
  id: string;
  client: HubClient;
  outbox: Outbox;
  /** Request ids run, in order (each must appear once). */
  ran: string[];
  /** When each welcome came. */
  welcomes: number[];
  errors: string[];
  token: string;
}

async function enrollAgents(t: Test, hub: HubProcess, url: string, n: number, opts: { execMs?: number; prefix: string }): Promise<TestAgent[]> {
  const agents: TestAgent[] = [];
  for (let i = 0; i < n; i++) {
    const created = await hub.api('POST', '/v1/agents', { hostname: `${opts.prefix}-${i}` });
    if (created.status !== 201) throw new Error(`enroll: ${created.status} ${JSON.stringify(created.body)}`);
    agents.push(connectAgent(t, url, created.body.id, created.body.token, opts.execMs ?? 0));
  }
  return agents;
}

function connectAgent(t: Test, url: string, id: string, token: string, execMs: number): TestAgent {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-cluster-agent-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const outbox = new Outbox({ dir, maxEntries: 1000 });
  const agent: TestAgent = { id, token, client: null as unknown as HubClient, outbox, ran: [], welcomes: [], errors: [] };
  agent.client = new HubClient({
    url: `${url.replace(/^http/, 'ws')}/v1/stream`,
    token,
    hello: () => ({ protocol: 2, agent_version: 'test', hostname: id, os: 'linux', arch: 'x64', actions: ACTIONS }),
    heartbeat: () => ({ uptime_s: 1 }),
    heartbeatIntervalS: 10,
    outbox,
    exec: async (e) => {
      agent.ran.push(e.request_id);
      await sleep(execMs);
      return { request_id: e.request_id, ok: true, exit_code: 0, stdout: `ran ${e.command}`, stderr: '', duration_ms: execMs, truncated: false };
    },
    welcomed: () => agent.welcomes.push(Date.now()),
    log: { ...quiet, error: (msg) => agent.errors.push(msg) },
    backoff: new Backoff({ baseMs: 200, capMs: 2000, resetAfterMs: 60_000 }),
    slowRetryMs: 120_000,
  });
  agent.client.start();
  t.teardown(() => agent.client.stop());
  return agent;
}

async function readyz(hub: HubProcess): Promise<{ hub_id: string; leader: boolean } | null> {
  return fetch(`${hub.url}/readyz`).then((r) => (r.ok ? (r.json() as Promise<{ hub_id: string; leader: boolean }>) : null), () => null);
}

const HUB_ENV = (url: string, token: string): Record<string, string> => ({ DATABASE_URL: url, OPSPILOT_ADMIN_TOKEN: token });

if (!BASE_URL) {
  t.comment('not run: several hubs need PostgreSQL (set DATABASE_URL)');
} else if (!existsSync(HAPROXY)) {
  if (process.env.OPSPILOT_REQUIRE_HAPROXY) t.fail(`${HAPROXY} is required here (apt-get install haproxy)`);
  else t.comment(`not run: ${HAPROXY} is missing (apt-get install haproxy)`);
} else {
  t.test('two hubs behind HAProxy: an exec asked at either reaches the agent wherever it is, the newest connection wins across hubs, background work runs once', async (t) => {
    t.setTimeout(180_000);
    const db = await freshDatabase(t);
    const slack = await fakeSlack(t);
    const token = `opk_${randomBytes(24).toString('base64url')}`;
    const env = {
      ...HUB_ENV(db.url, token),
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_CHANNEL: CHANNEL,
      OPSPILOT_SLACK_API_URL: slack.apiUrl,
    };
    const a = await spawnHub({ ...env, OPSPILOT_HUB_NAME: 'hub-a' }, { healthPort: true });
    t.teardown(() => a.stop());
    const b = await spawnHub({ ...env, OPSPILOT_HUB_NAME: 'hub-b' }, { healthPort: true });
    t.teardown(() => b.stop());
    t.same([(await readyz(a))?.leader, (await readyz(b))?.leader], [true, false], 'the first hub leads; the second waits');
    const lb = await haproxy(t, [a, b]);

    const agents = await enrollAgents(t, a, lb.url, 4, { prefix: 'web' });
    await until('every agent connected', () => agents.every((x) => x.welcomes.length > 0));
    const holders = await until('every agent held by a hub', async () => {
      const rows = await db.query<{ id: string; hub_id: string | null }>('SELECT id, hub_id FROM agents');
      return rows.every((r) => r.hub_id) ? new Map(rows.map((r) => [r.id, r.hub_id!])) : undefined;
    });
    const ids = { a: (await readyz(a))!.hub_id, b: (await readyz(b))!.hub_id };
    t.same(new Set(holders.values()), new Set([ids.a, ids.b]), 'HAProxy spread the agents over both hubs');

    // Every agent, asked at each hub and through the balancer: each exec runs once, wherever the agent is.
    for (const agent of agents) {
      for (const [where, hub] of [['hub-a', a], ['hub-b', b]] as const) {
        const r = await hub.api('POST', '/v1/admin/exec', { agent_id: agent.id, command: 'service_status', params: { unit: 'nginx.service' }, timeout_ms: 5000 });
        t.equal(r.status, 200, `${where} ran an exec on ${agent.id} (held by ${holders.get(agent.id) === ids.a ? 'hub-a' : 'hub-b'}): ${JSON.stringify(r.body).slice(0, 200)}`);
        t.match(r.body, { status: 'succeeded', stdout: 'ran service_status', agent_id: agent.id });
      }
      t.equal(agent.ran.length, 2, 'each ran once');
      t.equal(new Set(agent.ran).size, 2);
    }
    const remote = agents.find((x) => holders.get(x.id) === ids.b)!;
    const refused = await a.api('POST', '/v1/admin/exec', { agent_id: remote.id, command: 'stop_service', params: { unit: 'x.service' }, timeout_ms: 5000 });
    t.match(refused, { status: 400, body: { error: { code: 'HUB_EXEC_NOT_IN_CATALOGUE' } } }, `the holding hub checks the agent's catalogue for the asking one: ${JSON.stringify(refused)}`);
    const byId = await a.api('GET', `/v1/exec?agent_id=${remote.id}`);
    t.equal(byId.body.execs.filter((e: { status: string }) => e.status === 'succeeded').length, 2, 'each exec is one row, read from any hub');

    const hubs = await b.api('GET', '/v1/hubs');
    t.match(hubs.body.hubs.map((h: { name: string }) => h.name).sort(), ['hub-a', 'hub-b'], 'GET /v1/hubs lists both');
    t.equal(hubs.body.hubs.find((h: { this_hub: boolean }) => h.this_hub).leader, false);

    // A newer connection of an agent on the other hub replaces the older (4409), across hubs.
    const moved = agents.find((x) => holders.get(x.id) === ids.a)!;
    // Another process with the same token connects straight to hub-b.
    const second = connectAgent(t, b.url, moved.id, moved.token, 0);
    await until('the second connection welcomed', () => second.welcomes.length > 0);
    await until('the first told it was replaced', () => moved.errors.some((e) => e.includes('close 4409')));
    const now = await until('hub-b holds the agent', async () => {
      const [row] = await db.query<{ hub_id: string }>('SELECT hub_id FROM agents WHERE id = $1', [moved.id]);
      return row?.hub_id === ids.b ? row : undefined;
    });
    t.equal(now.hub_id, ids.b);
    const viaA = await a.api('POST', '/v1/admin/exec', { agent_id: moved.id, command: 'service_status', params: { unit: 'a.service' }, timeout_ms: 5000 });
    t.match(viaA.body, { status: 'succeeded' }, 'an exec asked at hub-a now goes to hub-b');
    t.equal(second.ran.length, 1, 'the newest connection ran it');
    await moved.client.stop();

    // Background work once: each alert (whichever hub took it) is analysed once and posted to Slack once.
    const alerting = agents.filter((x) => x !== moved);
    for (const [i, x] of alerting.entries()) x.client.sendDurable('alert', { type: 'systemd', source: `app-${i}.service`, message: 'failed' });
    await until('every incident posted', () => slack.of('chat.postMessage').length >= alerting.length);
    await until('every incident analysed', async () => (await db.query(`SELECT 1 FROM incidents WHERE analysis_status = 'done'`)).length === alerting.length);
    await sleep(2500); // a second hub doing the same work would have posted by now
    t.equal(slack.of('chat.postMessage').length, alerting.length, 'one Slack post per incident, not one per hub');
    const analysed = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM incident_events WHERE kind = 'analyzed' GROUP BY incident_id`);
    t.same(analysed.map((r) => r.n), alerting.map(() => 1), 'each incident analysed once');
  });

  t.test('three hubs, the leader killed with agents, execs and analyses in flight: its agents come back through HAProxy spread out, nothing lost or doubled, no false offline incident', async (t) => {
    t.setTimeout(240_000);
    const db = await freshDatabase(t);
    // A slow model: analyses are in flight when the leader dies.
    const slow: Reply = (body, req, res) => void sleep(3000).then(() => completion(JSON.stringify(ANSWER))(body, req, res));
    const model = await fakeModel(t, [slow]);
    const token = `opk_${randomBytes(24).toString('base64url')}`;
    const env = { ...HUB_ENV(db.url, token), OPSPILOT_LLM_BASE_URL: model.baseURL, OPSPILOT_LLM_API_KEY: 'sk-test' };
    const hubs: HubProcess[] = [];
    for (const name of ['hub-1', 'hub-2', 'hub-3']) {
      const h = await spawnHub({ ...env, OPSPILOT_HUB_NAME: name }, { healthPort: true });
      t.teardown(() => h.stop());
      hubs.push(h);
    }
    const lb = await haproxy(t, hubs);
    const agents = await enrollAgents(t, hubs[0]!, lb.url, 24, { prefix: 'node', execMs: 2500 });
    await until('every agent connected', () => agents.every((x) => x.welcomes.length > 0));
    const hubIds = await Promise.all(hubs.map(async (h) => (await readyz(h))!.hub_id));
    const leaderIndex = (await Promise.all(hubs.map(readyz))).findIndex((r) => r?.leader);
    t.equal(leaderIndex, 0, 'the first hub leads');
    const doomed = hubs[leaderIndex]!;
    const holders = await until('every agent held', async () => {
      const rows = await db.query<{ id: string; hub_id: string | null }>('SELECT id, hub_id FROM agents');
      return rows.every((r) => r.hub_id) ? new Map(rows.map((r) => [r.id, r.hub_id!])) : undefined;
    });
    const orphans = agents.filter((x) => holders.get(x.id) === hubIds[leaderIndex]);
    const survivors = hubs.filter((h) => h !== doomed);
    t.ok(orphans.length >= 6, `the leader holds ${orphans.length} of 24 agents`);
    // One agent that will not come back: its offline incident shows the check below can fail.
    const gone = agents.find((x) => !orphans.includes(x))!;
    await gone.client.stop();
    const stayed = agents.filter((x) => x !== gone);

    // In flight at the kill: an alert from every agent (analyses running on the slow model) and
    // execs, asked at another hub, running on two of the leader's agents.
    const alerts = new Map<string, string>();
    for (const [i, x] of stayed.entries()) alerts.set(x.client.sendDurable('alert', { type: 'systemd', source: `svc-${i}.service`, message: 'failed' }), x.id);
    await until('every alert acked', () => stayed.every((x) => x.outbox.size === 0));
    await until('analyses in flight', () => model.requests.length > 0);
    const execs = orphans.slice(0, 2).map((x) =>
      survivors[0]!.api('POST', '/v1/admin/exec', { agent_id: x.id, command: 'restart_service', params: { unit: 'app.service' }, timeout_ms: 4000 }),
    );
    await until('the execs running', () => orphans.slice(0, 2).every((x) => x.ran.length === 1));

    const killedAt = Date.now();
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    // While they are away, the orphans' new alerts wait in their outboxes.
    for (const [i, x] of orphans.entries()) alerts.set(x.client.sendDurable('alert', { type: 'systemd', source: `late-${i}.service`, message: 'failed while away' }), x.id);

    const answers = await Promise.all(execs);
    // The agent reruns nothing; its result waits in its outbox and reaches another hub: in time
    // (the asker gets it) or not (504, and the row completes when it lands).
    for (const r of answers) {
      const ok = (r.status === 200 && r.body.status === 'succeeded') || (r.status === 504 && r.body.error.code === 'HUB_EXEC_TIMEOUT');
      t.ok(ok, `the asker gets the result or a timeout: ${JSON.stringify(r).slice(0, 300)}`);
    }
    await until('every orphan back', () => orphans.every((x) => x.welcomes.length >= 2), 45_000);
    const back = orphans.map((x) => x.welcomes[1]! - killedAt).sort((p, q) => p - q);
    t.comment(`reconnects after the kill: first ${back[0]} ms, median ${back[Math.floor(back.length / 2)]} ms, last ${back[back.length - 1]} ms`);
    t.ok(back[back.length - 1]! - back[0]! >= 5000, `spread out (${back[0]}..${back[back.length - 1]} ms), not all in one second`);
    await until('every outbox empty', () => stayed.every((x) => x.outbox.size === 0), 30_000);

    const newLeaders = (await Promise.all(survivors.map(readyz))).filter((r) => r?.leader);
    t.equal(newLeaders.length, 1, 'one of the others leads now');

    // Nothing lost or doubled: one incident per alert, each counted once.
    const incidents = await db.query<{ source: string; count: number; agent_id: string }>(`SELECT source, count, agent_id FROM incidents WHERE type = 'systemd'`);
    t.equal(incidents.length, alerts.size, `one incident per alert (${alerts.size})`);
    t.ok(incidents.every((i) => i.count === 1), 'none counted twice');
    const envelopes = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM incident_events WHERE kind = 'opened'`);
    t.ok(envelopes[0]!.n >= alerts.size, 'each opened on the timeline');
    // The execs the dead hub had sent: run once, their results stored after the reconnect.
    for (const x of orphans.slice(0, 2)) {
      t.equal(x.ran.length, 1, 'the exec ran once');
      const row = await until('the result stored', async () => (await db.query(`SELECT status, stdout FROM exec_requests WHERE id = $1 AND status = 'succeeded'`, [x.ran[0]]))[0]);
      t.match(row, { status: 'succeeded', stdout: 'ran restart_service' });
    }
    // Analyses: every incident analysed once by whoever leads, including those the dead leader had in flight.
    await until('every incident analysed', async () => (await db.query(`SELECT 1 FROM incidents WHERE type = 'systemd' AND analysis_status = 'done'`)).length === alerts.size, 90_000);
    const analysed = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM incident_events e JOIN incidents i ON i.id = e.incident_id WHERE e.kind = 'analyzed' AND i.type = 'systemd' GROUP BY e.incident_id`,
    );
    t.same(analysed.map((r) => r.n), [...alerts.keys()].map(() => 1), 'each incident analysed once');

    // No agent that came back within its deadline counts as offline; the one that stayed away does.
    await until('the agent that stayed away counted offline', async () => (await db.query(`SELECT 1 FROM incidents WHERE source = 'offline' AND agent_id = $1`, [gone.id]))[0], 90_000);
    const offline = await db.query<{ agent_id: string }>(`SELECT agent_id FROM incidents WHERE source = 'offline'`);
    t.same(offline.map((r) => r.agent_id), [gone.id], 'only the agent that did not come back has an offline incident');
  });
}
