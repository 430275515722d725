import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentConfigError, DEFAULT_LOG_PATTERN, loadAgentConfig, normalizeHubUrl, resolveAgentConfig } from '../src/config.ts';

const base = { hub_url: 'ws://hub:8080', token: 'opa_x' };
const resolve = (extra: Record<string, unknown>) => resolveAgentConfig({ ...base, ...extra }, { stateDir: '/tmp/state' });

t.test('defaults', async (t) => {
  const c = resolve({});
  t.match(c, {
    hub_url: 'ws://hub:8080/v1/stream',
    state_dir: '/tmp/state',
    heartbeat_interval_s: 10,
    metrics_interval_s: 15,
    systemd: { enabled: true, settle_s: 30 },
    logs: [],
    thresholds: { cpu_pct: 90, mem_pct: 95, disk_pct: 95, for_s: 300 },
    actions: {},
  });
  t.notOk('units' in c.systemd, 'all units when none are listed');
  t.ok(Object.isFrozen(c));
});

t.test('hub URLs', async (t) => {
  t.equal(normalizeHubUrl('http://hub:8080'), 'ws://hub:8080/v1/stream');
  t.equal(normalizeHubUrl('https://hub.example.com/'), 'wss://hub.example.com/v1/stream');
  t.equal(normalizeHubUrl('wss://hub/custom/path'), 'wss://hub/custom/path');
  t.throws(() => normalizeHubUrl('ftp://hub'), /must be a ws/);
  t.throws(() => normalizeHubUrl('not a url'), /is not a URL/);
  t.throws(() => normalizeHubUrl('ws://user:pw@hub'), /credentials/);
});

t.test('every bad value is refused with its key named', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ hub_urll: 'x' }, /hub_urll: unknown key/],
    [{ token: '' }, /token: must be a non-empty string/],
    [{ heartbeat_interval_s: 0 }, /heartbeat_interval_s: must be an integer/],
    [{ heartbeat_interval_s: '10' }, /heartbeat_interval_s/],
    [{ systemd: { enabled: 'yes' } }, /systemd.enabled/],
    [{ systemd: { unit: ['x'] } }, /systemd.unit: unknown key/],
    [{ systemd: { units: ['nginx; reboot'] } }, /systemd.units\[0\]: is not a unit name/],
    [{ systemd: { settle_s: 0 } }, /systemd.settle_s: must be an integer from 1 to 3600/],
    [{ systemd: { settle_s: '30' } }, /systemd.settle_s/],
    [{ logs: [{ path: 'relative.log' }] }, /logs\[0\].path: must be an absolute path/],
    [{ logs: [{ path: '/var/log/x', pattern: '(' }] }, /logs\[0\].pattern: is not a valid regular expression/],
    [{ logs: [{ path: '/var/log/x', pattern: 'error(?! ignored)' }] }, /logs\[0\].pattern: is not a valid regular expression: .*RE2 syntax: no lookaround/],
    [{ actions: { x: { argv: ['/bin/echo', '{n}'], params: { n: { type: 'string', pattern: '^(a)\\1$' } } } } }, /actions.x.params.n.pattern: .*no backreferences/],
    [{ logs: [{ path: '/var/log/x', level: 'x' }] }, /logs\[0\].level: unknown key/],
    [{ thresholds: { cpu_pct: 101 } }, /thresholds.cpu_pct/],
    [{ actions: { x: { argv: ['ls'] } } }, /actions.x.argv\[0\]: must be an absolute path/],
    [{ actions: { x: { argv: [] } } }, /actions.x.argv: must be a non-empty array/],
    [{ actions: { x: { argv: ['/bin/echo', '{missing}'] } } }, /names parameter "missing"/],
    [{ actions: { x: { argv: ['/bin/echo', '--name={n}'], params: { n: { type: 'string', pattern: '^a$' } } } } }, /whole argument/],
    [{ actions: { x: { argv: ['/bin/echo', '{n}'], params: { n: { type: 'string', pattern: 'a' } } } } }, /must be anchored/],
    [{ actions: { x: { argv: ['/bin/echo'], params: { n: { type: 'float' } } } } }, /actions.x.params.n.type/],
    [{ actions: { x: { argv: ['/bin/echo'], shell: true } } }, /actions.x.shell: unknown key/],
    [{ actions: { 'bad name': { argv: ['/bin/echo'] } } }, /action names/],
  ];
  for (const [extra, message] of cases) {
    t.throws(() => resolve(extra), message, JSON.stringify(extra));
  }
});

t.test('operator actions', async (t) => {
  const c = resolve({
    logs: [{ path: '/var/log/app.log' }],
    actions: {
      flush_cache: {
        argv: ['/usr/local/bin/app-ctl', 'flush', '{region}'],
        params: { region: { type: 'string', pattern: '^[a-z]{2}-[a-z]+-[0-9]$', required: true } },
        timeout_ms: 5000,
      },
    },
  });
  t.equal(c.logs[0]!.pattern, DEFAULT_LOG_PATTERN);
  t.same(c.actions.flush_cache, {
    argv: ['/usr/local/bin/app-ctl', 'flush', '{region}'],
    params: { region: { type: 'string', pattern: '^[a-z]{2}-[a-z]+-[0-9]$', required: true } },
    timeout_ms: 5000,
  });
});

t.test('file, flag and environment', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-agent-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ hub_url: 'ws://from-file:1', token: 'opa_file', metrics_interval_s: 30 }));
  const fromFile = loadAgentConfig(['--config', file], {}, false);
  t.match(fromFile, { hub_url: 'ws://from-file:1/v1/stream', token: 'opa_file', metrics_interval_s: 30 });
  t.equal(fromFile.state_dir, path.resolve('data/agent'), 'not root: ./data/agent');
  const overridden = loadAgentConfig([], { OPSPILOT_AGENT_CONFIG: file, OPSPILOT_HUB_URL: 'ws://env:2', OPSPILOT_AGENT_TOKEN: 'opa_env', OPSPILOT_AGENT_STATE_DIR: '/srv/state' }, true);
  t.match(overridden, { hub_url: 'ws://env:2/v1/stream', token: 'opa_env', state_dir: '/srv/state', metrics_interval_s: 30 });
  t.equal(loadAgentConfig([], { OPSPILOT_HUB_URL: 'ws://env:2', OPSPILOT_AGENT_TOKEN: 'opa_env' }, true).state_dir, '/var/lib/opspilot', 'root: /var/lib/opspilot');
  t.throws(() => loadAgentConfig(['--config', path.join(dir, 'missing.json')], {}, false), /cannot read .*ENOENT/);
  writeFileSync(file, '{"hub_url": ');
  t.throws(() => loadAgentConfig(['--config', file], {}, false), /is not JSON/);
  t.throws(() => loadAgentConfig(['--config'], {}, false), /--config: needs a file path/);
  t.throws(() => loadAgentConfig([], {}, false), AgentConfigError, 'no hub and no token anywhere');
});

t.test("the README's example config is valid as printed", async (t) => {
  const readme = readFileSync(path.resolve(import.meta.dirname, '../../../README.md'), 'utf8');
  const example = /### The agent[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)?.[1];
  t.ok(example, 'the example is there');
  const c = resolveAgentConfig(JSON.parse(example!.replace('opa_…', 'opa_example_token_0123456789')), { stateDir: '/tmp/state' });
  t.match(c, { hub_url: 'wss://hub.example.com/v1/stream', systemd: { settle_s: 30 }, actions: { flush_cache: { argv: ['/usr/local/bin/app-ctl', 'flush', '{region}'] } } });
});
