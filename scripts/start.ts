/**
 * `pnpm start`: the hub and an agent for this machine, enrolled automatically.
 *
 * The first run enrols the local agent with the admin token the hub prints at its first start
 * (or OPSPILOT_ADMIN_TOKEN) and saves the agent's config, token included, to
 * <data dir>/agent/agent.json (mode 600); later runs reuse it. Environment as for the hub
 * (OPSPILOT_PORT, OPSPILOT_DATA_DIR, DATABASE_URL, ...). Ctrl-C stops both. The hub prints a one-time
 * link that signs the dashboard in (OPSPILOT_SIGNIN_LINK=0 turns it off); the banner repeats it.
 */
import { HUB_BUNDLE, buildHub, hubBundleStale } from './build-hub.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { buildDashboard, dashboardBuilt } from '../packages/dashboard/build.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const dataDir = path.resolve(process.env.OPSPILOT_DATA_DIR || './data');
const port = Number(process.env.OPSPILOT_PORT || 8080);
const localHost = !process.env.OPSPILOT_HOST || process.env.OPSPILOT_HOST === '0.0.0.0' ? '127.0.0.1' : process.env.OPSPILOT_HOST;
const hubHttp = `http://${localHost}:${port}`;
// An agent's token belongs to one database: each database the hub has run on gets its own
// enrolment (the embedded one in <data>/agent, a PostgreSQL one in <data>/agent/postgresql-<id>),
// so moving the checkout to PostgreSQL and back enrols once on each and never reuses a token the
// other database has never seen.
const agentDir = process.env.DATABASE_URL ? path.join(dataDir, 'agent', `postgresql-${databaseId(process.env.DATABASE_URL)}`) : path.join(dataDir, 'agent');
const agentConfigPath = path.join(agentDir, 'agent.json');

/** Which PostgreSQL database a URL names (host, port, database, user; never the password). */
function databaseId(url: string): string {
  let key = url;
  try {
    const u = new URL(url);
    key = `${u.hostname}:${u.port || 5432}/${u.pathname.slice(1)}?user=${u.username}&${u.searchParams.get('options') ?? ''}`;
  } catch {
    // not a URL (a libpq keyword string): the whole string, hashed, still tells databases apart
  }
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

const children: ChildProcess[] = [];
let stopping = false;

function run(script: string, args: string[], env: NodeJS.ProcessEnv, prefix: string, onLine?: (line: string) => void): ChildProcess {
  // A bundle (.mjs) runs as it is; sources through tsx.
  const argv = script.endsWith('.mjs') ? [script, ...args] : ['--import', 'tsx', path.join(ROOT, script), ...args];
  const child = spawn(process.execPath, argv, { cwd: process.cwd(), env, stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      process.stdout.write(prefix + line + '\n');
      onLine?.(line);
    }
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`opspilot: ${prefix.trim() || 'hub'} exited (${signal ?? code}); stopping\n`);
      void stop(code ?? 1);
    }
  });
  children.push(child);
  return child;
}

async function stop(code = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

// The dashboard the hub serves at /: built when missing or older than its sources (a second or two).
if (!dashboardBuilt()) {
  const { dir, bytes } = await buildDashboard();
  process.stdout.write(`opspilot: dashboard built (${Math.round(bytes / 1024)} KB in ${path.relative(ROOT, dir)})\n`);
}

// The hub runs from its bundle, as `pnpm hub` runs it: built when missing or older than its sources.
if (hubBundleStale()) await buildHub();

let printedAdminToken: string | undefined;
let signinLink: string | undefined;
const hub = run(HUB_BUNDLE, [], { OPSPILOT_SIGNIN_LINK: '1', ...process.env, OPSPILOT_DATA_DIR: dataDir }, '', (line) => {
  printedAdminToken ??= /^\s+(opk_[A-Za-z0-9_-]{43})\s*$/.exec(line)?.[1];
  signinLink ??= /^\s+(http\S+\/#signin=[A-Za-z0-9_-]+)\s*$/.exec(line)?.[1];
});

for (let i = 0; ; i++) {
  if (await fetch(`${hubHttp}/readyz`).then((r) => r.ok, () => false)) break;
  if (hub.exitCode !== null || i > 600) {
    process.stderr.write('opspilot: the hub did not start\n');
    await stop(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}

if (!existsSync(agentConfigPath)) {
  const admin = process.env.OPSPILOT_ADMIN_TOKEN || printedAdminToken;
  if (!admin) {
    process.stdout.write(
      `\nopspilot: the hub is up at ${hubHttp}, but the local agent is not enrolled and no admin token is at hand.\n` +
        `  Set OPSPILOT_ADMIN_TOKEN to the admin token and run pnpm start again, or enrol an agent yourself (README).\n\n`,
    );
  } else {
    const res = await fetch(`${hubHttp}/v1/agents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hostname: hostname(), labels: { enrolled_by: 'pnpm-start' } }),
    });
    if (res.status !== 201) {
      process.stderr.write(`opspilot: enrolling the local agent failed: HTTP ${res.status} ${await res.text()}\n`);
      await stop(1);
    }
    const { token } = (await res.json()) as { id: string; token: string };
    mkdirSync(agentDir, { recursive: true, mode: 0o700 });
    writeFileSync(agentConfigPath, JSON.stringify({ hub_url: `ws://${localHost}:${port}/v1/stream`, token, state_dir: path.join(agentDir, 'state') }, null, 2) + '\n', { mode: 0o600 });
  }
}

if (existsSync(agentConfigPath)) {
  const agentEnv = { ...process.env };
  for (const key of ['OPSPILOT_HUB_URL', 'OPSPILOT_AGENT_TOKEN', 'OPSPILOT_AGENT_STATE_DIR', 'OPSPILOT_AGENT_CONFIG']) delete agentEnv[key];
  let announced = false;
  run('packages/agent/src/main.ts', ['--config', agentConfigPath], agentEnv, '[agent] ', (line) => {
    const agentId = /"msg":"connected to the hub","agent_id":"([^"]+)"/.exec(line)?.[1];
    if (!agentId || announced) return;
    announced = true;
    const cfg = JSON.parse(readFileSync(agentConfigPath, 'utf8')) as { hub_url: string };
    process.stdout.write(
      [
        '',
        '  OpsPilot is running:',
        signinLink ? `    dashboard    ${signinLink}   (one-time sign-in; later, the admin token or an API token)` : `    dashboard    ${hubHttp}/   (sign in with the admin token)`,
        `    hub          ${hubHttp}   (API docs: ${hubHttp}/docs)`,
        `    local agent  ${agentId}   (${cfg.hub_url}; metrics every 15 s)`,
        '',
        '  Look at it (ADMIN is the admin token):',
        `    curl -s -H "Authorization: Bearer $ADMIN" ${hubHttp}/v1/agents/${agentId}`,
        `    curl -s -H "Authorization: Bearer $ADMIN" ${hubHttp}/v1/agents/${agentId}/metrics`,
        `    curl -s -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' ${hubHttp}/v1/admin/exec \\`,
        `      -d '{"agent_id":"${agentId}","command":"disk_usage"}'`,
        '',
        '',
      ].join('\n'),
    );
  });
}
