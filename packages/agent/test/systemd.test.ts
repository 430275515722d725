/**
 * Fixtures: test/fixtures/journal-*.jsonl are the output of the real journalctl (systemd 252)
 * reading a journal file that systemd-journal-remote wrote from journal-entries.export, whose
 * entries carry the fields systemd's catalog messages have (MESSAGE_ID, UNIT, UNIT_RESULT,
 * EXIT_STATUS, JOB_RESULT, ...):
 *   /usr/lib/systemd/systemd-journal-remote --output=fixture.journal journal-entries.export
 *   journalctl --file=fixture.journal -o json MESSAGE_ID=… > journal-unit-events.jsonl
 *   journalctl --file=fixture.journal -o json -u nginx.service -n 50 > journal-nginx-tail.jsonl
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AlertPayload, ResolvePayload } from '@opspilot/protocol';
import { SYSTEMD_MESSAGES, SystemdWatcher, field } from '../src/collectors/systemd.ts';

const FAKE = path.resolve(import.meta.dirname, 'fixtures/fake-journalctl.mjs');

function watcher(t: Test, units?: string[]) {
  const alerts: AlertPayload[] = [];
  const resolves: ResolvePayload[] = [];
  const logs: string[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-systemd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const argsFile = path.join(dir, 'args');
  process.env.FAKE_JOURNALCTL_ARGS = argsFile;
  const w = new SystemdWatcher({
    ...(units ? { units } : {}),
    alert: (a) => alerts.push(a),
    resolve: (r) => resolves.push(r),
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) },
    journalctl: [process.execPath, FAKE],
    isSystemd: () => true,
  });
  t.teardown(() => w.stop());
  return { w, alerts, resolves, logs, args: () => readFileSync(argsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]) };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('a unit failure is one alert with its journal, exit status and result; its next start resolves it', async (t) => {
  const { w, alerts, resolves, args } = watcher(t);
  t.equal(w.start(), true);
  await until(() => resolves.length === 1 && alerts.length === 2);
  const nginx = alerts.find((a) => a.source === 'nginx.service')!;
  t.match(nginx, { type: 'systemd', source: 'nginx.service', message: "nginx.service: Failed with result 'exit-code'.", status: 'exit-code', exit_code: 1, context: { exit_code_kind: 'exited' } });
  t.match(nginx.logs, /bind\(\) to 0\.0\.0\.0:80 failed \(98: Address already in use\)/);
  t.equal(nginx.logs!.split('\n').length, 6, "the unit's journal lines, as journalctl -u gives them");
  t.equal(alerts.filter((a) => a.source === 'nginx.service').length, 1, '"start job failed" right after "unit failed" is the same failure');
  t.match(alerts.find((a) => a.source === 'worker.service'), { status: 'oom-kill', context: { oom_killed: true } });
  t.same(resolves, [{ type: 'systemd', source: 'nginx.service', message: 'Started nginx.service - A high performance web server and a reverse proxy server.' }]);
  const follow = args().find((a) => a.includes('--follow'))!;
  t.ok(follow.includes('--output=json') && follow.includes('--lines=0'), 'structured output, new entries only');
  for (const id of Object.values(SYSTEMD_MESSAGES)) t.ok(follow.includes(`MESSAGE_ID=${id}`), `follows ${id}`);
});

t.test('only the configured units', async (t) => {
  const { w, alerts, resolves } = watcher(t, ['worker.service']);
  w.start();
  await until(() => alerts.length === 1);
  await new Promise((r) => setTimeout(r, 200));
  t.same(alerts.map((a) => a.source), ['worker.service']);
  t.same(resolves, []);
});

t.test('without systemd the watcher says so once and stays off', async (t) => {
  const logs: string[] = [];
  const w = new SystemdWatcher({ alert: () => t.fail('no alert'), resolve: () => t.fail('no resolve'), log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) }, isSystemd: () => false });
  t.equal(w.start(), false);
  t.same(logs, ['systemd watcher off: this host does not run systemd']);
});

t.test('hostile or odd journal lines are ignored', async (t) => {
  const alerts: AlertPayload[] = [];
  const w = new SystemdWatcher({ alert: (a) => alerts.push(a), resolve: () => {}, log: { info() {}, warn() {}, error() {} }, journalctl: [process.execPath, FAKE], isSystemd: () => true });
  for (const line of ['not json', '[]', 'null', '{"MESSAGE_ID":5}', `{"MESSAGE_ID":"${SYSTEMD_MESSAGES.startDone}","UNIT":"x.service","JOB_RESULT":"done"}`]) await w.handleLine(line);
  t.same(alerts, []);
  t.equal(field({ MESSAGE: [104, 105, 0xff] }, 'MESSAGE'), 'hi\ufffd', 'binary fields (byte arrays) are decoded');
});
