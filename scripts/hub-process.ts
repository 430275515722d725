/**
 * The hub as its own process, started the way `pnpm hub` starts it, for end-to-end tests and
 * benchmarks: waits for /readyz, and gives a small REST client with the admin token.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { HUB_BUNDLE, buildHub, hubBundleStale } from './build-hub.ts';

const MAIN = path.resolve(import.meta.dirname, '../packages/hub/src/main.ts');

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface HubProcess {
  child: ChildProcess;
  port: number;
  /** The health port (`OPSPILOT_HEALTH_PORT`), when the hub was given one. */
  healthPort: number | null;
  url: string;
  adminToken: string;
  output(): string;
  exited: Promise<number | null>;
  /** A REST call with the admin token; the body parsed as JSON. */
  api<T = any>(method: string, p: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** SIGTERM, then SIGKILL after 15 s. */
  stop(): Promise<number | null>;
}

/**
 * `bundle`: run the hub as `pnpm hub` does, from its bundle (built first if older than its
 * sources). `nodeArgs`: node's own options before the script (a benchmark's `--cpu-prof`).
 * `healthPort`: give it a health port (a free one), as behind a load balancer.
 */
export async function spawnHub(env: Record<string, string> = {}, opts: { bundle?: boolean; nodeArgs?: string[]; healthPort?: boolean } = {}): Promise<HubProcess> {
  const port = await freePort();
  const healthPort = opts.healthPort ? await freePort() : env.OPSPILOT_HEALTH_PORT ? Number(env.OPSPILOT_HEALTH_PORT) : null;
  if (opts.healthPort) env = { ...env, OPSPILOT_HEALTH_PORT: String(healthPort) };
  const adminToken = env.OPSPILOT_ADMIN_TOKEN ?? `opk_${randomBytes(24).toString('base64url')}`;
  if (opts.bundle && hubBundleStale()) await buildHub();
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), ...(opts.bundle ? [HUB_BUNDLE] : ['--import', 'tsx', MAIN])], {
    env: { PATH: process.env.PATH ?? '', OPSPILOT_PORT: String(port), OPSPILOT_HOST: '127.0.0.1', OPSPILOT_ADMIN_TOKEN: adminToken, OPSPILOT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4_000_000)));
  child.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4_000_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const hub: HubProcess = {
    child,
    port,
    healthPort,
    url,
    adminToken,
    output: () => output,
    exited,
    async api(method, p, body) {
      const res = await fetch(url + p, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hub exited early:\n${output}`);
    if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) return hub;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`hub did not become ready:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The README's HAProxy configuration (its haproxy block), with these ports: what the cluster
 * tests and `pnpm bench fleet` run, so the documented file is the tested one. Each hub is checked
 * on its health port where it has one (`check port`). `maxconn` replaces the global limit;
 * `source` sets the address the balancer connects to the hubs from.
 */
export function haproxyConfig(port: number, hubs: { port: number; healthPort: number | null }[], opts: { maxconn?: number; source?: string } = {}): string {
  const readme = readFileSync(path.resolve(import.meta.dirname, '../README.md'), 'utf8');
  const block = /```haproxy\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!block) throw new Error('README.md has no haproxy block');
  const lines = block.split('\n');
  const servers = lines.filter((l) => /^\s*server hub\d 127\.0\.0\.1:\d+ check port \d+$/.test(l));
  const bind = /^\s*bind \*:8080$/;
  const maxconn = /^\s*maxconn \d+$/;
  if (servers.length === 0 || !lines.some((l) => bind.test(l)) || !lines.some((l) => maxconn.test(l))) throw new Error('the README haproxy block changed shape');
  const source = opts.source ? ` source ${opts.source}` : '';
  const out: string[] = [];
  for (const line of lines) {
    if (bind.test(line)) out.push(`  bind 127.0.0.1:${port}`);
    else if (maxconn.test(line) && opts.maxconn !== undefined) out.push(`  maxconn ${opts.maxconn}`);
    else if (line === servers[0]) out.push(...hubs.map((h, i) => `  server hub${i + 1} 127.0.0.1:${h.port} check${h.healthPort ? ` port ${h.healthPort}` : ''}${source}`));
    else if (!servers.includes(line)) out.push(line);
  }
  return out.join('\n');
}
