import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildAgent } from '../../../scripts/build-agent.ts';
import { resolveAgentConfig } from '../src/config.ts';
import { PROTOCOL_VERSION } from '@opspilot/protocol';
import { FakeHub } from './fake-hub.ts';

const INSTALL = path.resolve(import.meta.dirname, '../../../scripts/install-agent.sh');
const TOKEN = 'opa_packaging_test_token_0123456789';

const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-packaging-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const bundle = await buildAgent(path.join(dir, 'opspilot-agent.mjs'));

t.test('the single-file bundle runs with nothing but Node', async (t) => {
  const hub = new FakeHub(TOKEN);
  await hub.listen();
  t.teardown(() => hub.close());
  // Run from an empty directory: no node_modules anywhere near it.
  const cwd = mkdtempSync(path.join(tmpdir(), 'opspilot-bare-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const child = spawn(process.execPath, [bundle], {
    cwd,
    env: { PATH: process.env.PATH ?? '', OPSPILOT_HUB_URL: hub.url, OPSPILOT_AGENT_TOKEN: TOKEN, OPSPILOT_AGENT_STATE_DIR: path.join(cwd, 'state') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await hub.until((r) => r.some((m) => m.type === 'hello'), 15_000);
  t.match(hub.received.find((m) => m.type === 'hello')!.payload, { protocol: PROTOCOL_VERSION, agent_version: '0.1.0', actions: ['restart_service', 'start_service', 'stop_service', 'service_status', 'service_logs', 'disk_usage', 'top_processes'] });
  hub.send('exec', { request_id: 'bundle-1', command: 'disk_usage', params: {}, timeout_ms: 5000 });
  await hub.until((r) => r.some((m) => m.type === 'exec_result'), 10_000);
  t.match(hub.received.find((m) => m.type === 'exec_result')!.payload, { request_id: 'bundle-1', ok: true, stdout: /^Filesystem/ });
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  t.notOk(out.includes(TOKEN), 'the token is never logged');
});

t.test('install-agent.sh lays out a hardened unit, a private config and a narrow polkit rule', async (t) => {
  const root = path.join(dir, 'root');
  const run = (args: string[]) => spawnSync('bash', [INSTALL, ...args], { encoding: 'utf8' });
  const res = run(['--root', root, '--hub-url', 'wss://hub.example.com', '--token', TOKEN, '--bundle', bundle]);
  t.equal(res.status, 0, res.stderr);

  const config = path.join(root, 'etc/opspilot/agent.json');
  t.equal(statSync(config).mode & 0o777, 0o640, 'config is not world-readable');
  t.equal(statSync(path.join(root, 'var/lib/opspilot')).mode & 0o777, 0o700);
  const parsed = resolveAgentConfig(JSON.parse(readFileSync(config, 'utf8')), { stateDir: '/x' });
  t.match(parsed, { hub_url: 'wss://hub.example.com/v1/stream', token: TOKEN, state_dir: '/var/lib/opspilot' });
  t.same(readFileSync(path.join(root, 'usr/local/lib/opspilot/opspilot-agent.mjs')), readFileSync(bundle));

  const unitPath = path.join(root, 'etc/systemd/system/opspilot-agent.service');
  const unit = readFileSync(unitPath, 'utf8');
  for (const line of ['User=opspilot', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/opspilot', 'CapabilityBoundingSet=', 'PrivateTmp=yes']) {
    t.match(unit, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), line);
  }
  t.match(unit, /^ExecStart=\S+ \/usr\/local\/lib\/opspilot\/opspilot-agent\.mjs --config \/etc\/opspilot\/agent\.json$/m);
  const analyze = spawnSync('systemd-analyze', ['verify', unitPath], { encoding: 'utf8' });
  if (analyze.error === undefined) t.equal(analyze.stdout + analyze.stderr, '', 'systemd-analyze verify finds nothing wrong');

  const rules = readFileSync(path.join(root, 'etc/polkit-1/rules.d/50-opspilot-agent.rules'), 'utf8');
  t.match(rules, /org\.freedesktop\.systemd1\.manage-units/);
  t.match(rules, /verb === "start" \|\| verb === "stop" \|\| verb === "restart"/);

  // A second run keeps an operator's edited config.
  const again = run(['--root', root, '--hub-url', 'wss://other.example.com', '--token', TOKEN, '--bundle', bundle]);
  t.equal(again.status, 0);
  t.match(again.stdout, /keeping the existing/);
  t.match(readFileSync(config, 'utf8'), /hub\.example\.com/);
});

t.test('install-agent.sh refuses bad input before touching anything', async (t) => {
  const root = path.join(dir, 'refused');
  const cases: [string[], RegExp][] = [
    [['--hub-url', 'ftp://x', '--token', TOKEN], /--hub-url must be/],
    [['--hub-url', 'wss://x', '--token', 'short'], /--token must be/],
    [['--hub-url', 'wss://x', '--token', 'opa_"; rm -rf / #aaaaaaaaaa'], /--token must be/],
    [['--hub-url', 'wss://x', '--token', TOKEN, '--bundle', '/nonexistent.mjs'], /no agent bundle/],
    [['--frobnicate'], /unknown option/],
  ];
  for (const [args, message] of cases) {
    const res = spawnSync('bash', [INSTALL, '--root', root, '--bundle', bundle, ...args], { encoding: 'utf8' });
    t.not(res.status, 0, args.join(' '));
    t.match(res.stderr, message);
  }
  t.throws(() => statSync(root), 'nothing was written');
});
