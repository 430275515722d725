import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BUILTIN_RULES, classify, loadRules, scannedText, type IncidentFacts } from '../src/incidents/classify.ts';

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

/**
 * Alerts the agent sent from a real systemd (Debian bookworm, systemd 252, under nspawn), each
 * with the rule it must get: real programs failing for real reasons, with their real journal
 * lines. Recorded by scripts/record-systemd-fixtures.ts.
 */
const RECORDED = (JSON.parse(readFileSync(path.join(import.meta.dirname, 'fixtures/systemd-alerts.json'), 'utf8')) as { cases: { rule: string; alert: Record<string, any> }[] }).cases;
const recorded = (rule: string): IncidentFacts => {
  const c = RECORDED.find((x) => x.rule === rule)!;
  return facts(c.alert.type, c.alert.message, { logs: c.alert.logs, status: c.alert.status, exitCode: c.alert.exit_code });
};

/** One incident per built-in rule: recorded from a real journal where the rule is about units. */
const EXAMPLES: Record<string, IncidentFacts> = {
  agent_offline: facts('agent', 'agent web-1 missed 3 heartbeats'),
  journal_gap: facts('journal', 'Journal entries from 2026-11-28T01:00:00.000Z to 2026-11-28T03:00:00.000Z were rotated or vacuumed before the agent read them'),
  unit_failing_repeatedly: { ...recorded('service_failed'), count: 3, lastSeenAt: new Date(at.getTime() + 9 * 60_000) },
  unit_start_limit: recorded('unit_start_limit'),
  disk_full: recorded('disk_full'),
  oom_kill: recorded('oom_kill'),
  address_in_use: recorded('address_in_use'),
  permission_denied: recorded('permission_denied'),
  config_syntax_error: recorded('config_syntax_error'),
  executable_not_found: recorded('executable_not_found'),
  segfault: recorded('segfault'),
  dependency_failed: recorded('dependency_failed'),
  database_connection: recorded('database_connection'),
  http_502_503: facts('http', 'GET /checkout returned 502 Bad Gateway'),
  data_loss: facts('log', 'ERROR: invalid page in block 4242 of relation base/16384/2619: data corruption detected'),
  timeout: recorded('timeout'),
  http_500: facts('http', 'POST /api/orders responded 500 Internal Server Error'),
  javascript_error: recorded('javascript_error'),
  network_error: recorded('network_error'),
  slow_query: facts('log', 'LOG:  duration: 12034.551 ms  statement: SELECT * FROM orders'),
  http_429: facts('http', 'payment provider answered 429 Too Many Requests'),
  deprecation: facts('log', 'Buffer() is deprecated due to security and usability issues'),
  warning: facts('log', 'WARNING: cache hit ratio below 80%'),
  http_404: facts('log', '203.0.113.9 - - [28/Nov/2026:10:00:00 +0000] "GET /favicon.ico HTTP/1.1" 404 153 "-" "curl/8.5"'),
  service_failed: recorded('service_failed'),
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

t.test('each failure recorded from a real systemd gets its rule', async (t) => {
  t.ok(RECORDED.length >= 15);
  for (const c of RECORDED) t.equal(classify(BUILTIN_RULES, facts(c.alert.type, c.alert.message, { logs: c.alert.logs, status: c.alert.status, exitCode: c.alert.exit_code })).rule, c.rule, `${c.alert.source}: ${c.rule}`);
});

t.test('rules respect the source: HTTP statuses only in HTTP-shaped text, no log word downgrades a unit failure', async (t) => {
  const worker = recorded('service_failed');
  t.match(worker.logs, /pid 503/, 'the recorded worker says "pid 503"');
  t.match(worker.logs, /warning:/);
  t.match(worker.logs, /404/);
  t.same(classify(BUILTIN_RULES, worker), { severity: 'high', category: 'service', rule: 'service_failed' });
  t.equal(classify(BUILTIN_RULES, recorded('executable_not_found')).rule, 'executable_not_found', '"/opt/app/bin/worker: not found" is no HTTP 404');

  const log = (line: string) => classify(BUILTIN_RULES, facts('log', line)).rule;
  t.equal(log('10.0.0.1 - - [28/Nov/2026:10:00:00 +0000] "POST /api/pay HTTP/2.0" 502 0 "-" "okhttp"'), 'http_502_503', 'an access log line');
  t.equal(log('upstream responded: HTTP/1.1 503 Service Unavailable'), 'http_502_503');
  t.equal(log('{"level":"error","status":500,"path":"/api"}'), 'http_500', 'a JSON status field');
  t.equal(log('worker starting, pid 503'), 'unclassified', 'a pid is not a status');
  t.equal(log('processed 404 records in 500 ms'), 'unclassified', 'nor is a count');
  t.equal(log('/opt/app/bin/worker: not found'), 'unclassified');
  t.equal(classify(BUILTIN_RULES, facts('systemd', "x.service: Failed with result 'exit-code'.", { logs: 'GET /health returned 404\nWARNING: deprecated flag --foo' })).rule, 'service_failed', 'no low or medium rule applies to units');

  for (const rule of BUILTIN_RULES) {
    if (rule.name !== 'unclassified') t.ok(rule.types && rule.types.length > 0, `${rule.name} names the alert types it applies to`);
    if (rule.types?.includes('systemd')) t.ok(['critical', 'high'].includes(rule.severity), `${rule.name} applies to units and is not below high`);
  }
});

t.test('a rule without systemd in its types cannot make a unit failure less than high', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'rules.json');
  writeFileSync(file, JSON.stringify([
    { name: 'noise', severity: 'low', category: 'noise', pattern: 'retrying' },
    { name: 'backup_check', severity: 'low', category: 'backup', types: ['systemd'], pattern: 'backup-check' },
    { name: 'killed', severity: 'critical', category: 'crash', exit_codes: [137] },
  ]));
  const rules = loadRules(file);
  const unit = (logs: string, exitCode: number | null = 1) => classify(rules, facts('systemd', "a.service: Failed with result 'exit-code'.", { logs, exitCode }));
  t.equal(unit('retrying in 5 s').rule, 'service_failed', 'a generic low rule skips unit failures');
  t.equal(classify(rules, facts('log', 'retrying in 5 s')).rule, 'noise', 'and still applies to logs');
  t.equal(unit('backup-check: 2 files differ').rule, 'backup_check', 'a rule written for units may');
  t.equal(unit('x', 137).rule, 'killed', 'exit_codes match the exit code');
  t.equal(unit('x', 1).rule, 'service_failed');
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
    [[{ name: 'x', severity: 'low', category: 'c', exit_codes: [] }], /\[0\]\.exit_codes/],
    [[{ name: 'x', severity: 'low', category: 'c', exit_codes: [256] }], /\[0\]\.exit_codes/],
    [[{ name: 'x', severity: 'low', category: 'c', pattern: 'failed(?! to start)' }], /\[0\]\.pattern: .*linear-time engine, RE2: no lookaround/],
  ];
  for (const [content, message] of bad) {
    writeFileSync(file, JSON.stringify(content));
    t.throws(() => loadRules(file), message);
  }
  writeFileSync(file, '[{');
  t.throws(() => loadRules(file), /rules file .*: file:/);
});

t.test("operator rules run in linear time, on text clipped before it is scanned", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'rules.json');
  // The rule the red team used (5.4 s on 256 KiB with V8), and one exponential on a backtracking engine.
  writeFileSync(
    file,
    JSON.stringify([
      { name: 'dep', severity: 'high', category: 'dependency', pattern: 'dependency job .* failed', types: ['log'] },
      { name: 'nested', severity: 'low', category: 'c', pattern: '(x+x+)+y', types: ['log'] },
      { name: 'tail', severity: 'critical', category: 'c', pattern: 'the real cause', types: ['log'] },
    ]),
  );
  const rules = loadRules(file);
  const hostile = 'dependency job x '.repeat(16_000) + 'x'.repeat(40);
  t.equal(classify(rules, facts('log', 'worker crashed', { logs: hostile })).rule, 'unclassified');
  t.equal(classify(rules, facts('log', 'x'.repeat(40) + 'y')).rule, 'nested');

  const logs = 'head\n' + 'filler line\n'.repeat(30_000) + 'the real cause\n';
  t.equal(classify(rules, facts('log', 'worker crashed', { logs })).rule, 'tail', 'the tail of long logs is read');
  const middle = 'a'.repeat(20_000) + 'the real cause' + 'b'.repeat(60_000);
  t.equal(classify(rules, facts('log', 'worker crashed', { logs: middle })).rule, 'unclassified', 'the middle of long logs is not');
  const text = scannedText({ message: 'm'.repeat(100_000), status: 's'.repeat(100_000), logs: 'l'.repeat(1_000_000) });
  t.ok(text.length <= 8 * 1024 * 2 + 64 * 1024 + 3, `scanned text is bounded (${text.length})`);
});
