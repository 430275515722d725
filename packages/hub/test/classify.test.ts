import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BUILTIN_RULES, classify, loadRules, type IncidentFacts } from '../src/incidents/classify.ts';

const at = new Date('2026-11-22T10:00:00Z');
const facts = (type: string, message: string, extra: Partial<IncidentFacts> = {}): IncidentFacts => ({
  type,
  message,
  logs: null,
  status: null,
  count: 1,
  firstSeenAt: at,
  lastSeenAt: at,
  ...extra,
});

/** One incident per built-in rule, as the agents and the original systems send them. */
const EXAMPLES: Record<string, IncidentFacts> = {
  agent_offline: facts('agent', 'agent web-1 missed 3 heartbeats'),
  unit_failing_repeatedly: facts('systemd', "api.service: Failed with result 'exit-code'.", { count: 3, lastSeenAt: new Date(at.getTime() + 9 * 60_000) }),
  disk_full: facts('log', 'write /var/lib/postgresql/15/main/base/16384: No space left on device'),
  oom_kill: facts('systemd', "worker.service: Failed with result 'oom-kill'.", { status: 'oom-kill' }),
  address_in_use: facts('systemd', "nginx.service: Failed with result 'exit-code'.", { logs: 'nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)' }),
  permission_denied: facts('log', "open() \"/var/log/app/app.log\" failed (13: Permission denied)"),
  config_syntax_error: facts('systemd', 'nginx.service: Control process exited, code=exited, status=1/FAILURE', { logs: 'nginx: [emerg] unknown directive "sever_name" in /etc/nginx/sites-enabled/default:3\nnginx: configuration file /etc/nginx/nginx.conf test failed' }),
  segfault: facts('log', 'kernel: app[2231]: segfault at 0 ip 000055d0 sp 00007ffd error 4 in app'),
  dependency_failed: facts('systemd', "Dependency failed for app.service - App.", { status: 'dependency' }),
  database_connection: facts('log', 'Error: could not connect to database: connection refused (postgres at 10.0.0.5:5432)'),
  http_502_503: facts('http', 'GET /checkout returned 502 Bad Gateway'),
  data_loss: facts('log', 'ERROR: invalid page in block 4242 of relation base/16384/2619: data corruption detected'),
  timeout: facts('log', 'upstream timed out (110: Connection timed out) while reading response header'),
  http_500: facts('http', 'POST /api/orders responded 500 Internal Server Error'),
  javascript_error: facts('log', "TypeError: Cannot read properties of undefined (reading 'id')"),
  network_error: facts('log', 'Error: read ECONNRESET at TLSWrap.onStreamRead'),
  slow_query: facts('log', 'LOG:  duration: 12034.551 ms  statement: SELECT * FROM orders'),
  http_429: facts('http', 'payment provider answered 429 Too Many Requests'),
  deprecation: facts('log', 'Buffer() is deprecated due to security and usability issues'),
  warning: facts('log', 'WARNING: cache hit ratio below 80%'),
  http_404: facts('http', 'GET /favicon.ico 404'),
  service_failed: facts('systemd', "backup.service: Failed with result 'exit-code'."),
  host_threshold: facts('host', 'CPU at 97% for 300 s (limit 90%)'),
  unclassified: facts('log', 'FATAL: something unusual happened'),
};

t.test('every built-in rule has an example that it, and nothing before it, matches', async (t) => {
  t.same(Object.keys(EXAMPLES).sort(), BUILTIN_RULES.map((r) => r.name).sort(), 'one example per rule');
  for (const rule of BUILTIN_RULES) {
    const got = classify(BUILTIN_RULES, EXAMPLES[rule.name]!);
    t.same(got, { severity: rule.severity, category: rule.category, rule: rule.name }, rule.name);
  }
});

t.test('severities follow the original systems', async (t) => {
  const sev = (name: string) => classify(BUILTIN_RULES, EXAMPLES[name]!).severity;
  for (const n of ['database_connection', 'http_502_503', 'data_loss']) t.equal(sev(n), 'critical', n);
  for (const n of ['timeout', 'http_500', 'javascript_error', 'network_error']) t.equal(sev(n), 'high', n);
  for (const n of ['slow_query', 'http_429', 'deprecation']) t.equal(sev(n), 'medium', n);
  for (const n of ['warning', 'http_404']) t.equal(sev(n), 'low', n);
});

t.test('repeats count only within their window', async (t) => {
  const slow = facts('systemd', "api.service: Failed with result 'exit-code'.", { count: 5, lastSeenAt: new Date(at.getTime() + 11 * 60_000) });
  t.equal(classify(BUILTIN_RULES, slow).rule, 'service_failed', '5 failures over 11 minutes is not "3 in 10"');
  t.equal(classify(BUILTIN_RULES, { ...slow, count: 2, lastSeenAt: at }).rule, 'service_failed');
});

t.test('operator rules come first; a bad rules file is refused with the place named', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'rules.json');
  writeFileSync(file, JSON.stringify([{ name: 'payments_down', severity: 'critical', category: 'payments', pattern: 'stripe|adyen', types: ['log', 'http'] }]));
  const rules = loadRules(file);
  t.same(classify(rules, facts('http', 'adyen answered 404')), { severity: 'critical', category: 'payments', rule: 'payments_down' });
  t.equal(classify(rules, facts('systemd', 'adyen-sync.service failed')).rule, 'service_failed', 'types limit it');
  t.equal(loadRules(null).length, BUILTIN_RULES.length);

  const bad: [unknown, RegExp][] = [
    [{}, /must be a JSON array/],
    [[{ name: 'x', severity: 'urgent', category: 'c', pattern: 'a' }], /\[0\]\.severity/],
    [[{ name: 'x', severity: 'low', category: 'c', pattern: '(' }], /\[0\]\.pattern/],
    [[{ name: 'x', severity: 'low', category: 'c' }], /would match everything/],
    [[{ name: 'x', severity: 'low', category: 'c', pattern: 'a', colour: 'red' }], /\[0\]\.colour: unknown key/],
    [[{ name: 'x', severity: 'low', category: 'c', pattern: 'a' }, { name: 'x', severity: 'low', category: 'c', pattern: 'b' }], /used twice/],
    [[{ name: 'x', severity: 'low', category: 'c', repeats: { count: 1, within_s: 60 } }], /\[0\]\.repeats/],
  ];
  for (const [content, message] of bad) {
    writeFileSync(file, JSON.stringify(content));
    t.throws(() => loadRules(file), message);
  }
  writeFileSync(file, '[{');
  t.throws(() => loadRules(file), /rules file .*: file:/);
});
