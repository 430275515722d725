import t, { type Test } from 'tap';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ID_PATTERN, alertPayload, type AlertPayload } from '@opspilot/protocol';
import { LogTail } from '../src/collectors/log-tail.ts';

function setup(t: Test) {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-logtail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'app.log');
  const stateDir = path.join(dir, 'state');
  const sent: { id: string; alert: AlertPayload }[] = [];
  let now = 0;
  const tail = (extra: Partial<{ windowMs: number; pattern: string }> = {}) =>
    new LogTail({
      path: file,
      pattern: extra.pattern ?? 'error|fatal',
      stateDir,
      windowMs: extra.windowMs ?? 0,
      contextLines: 2,
      send: (id, alert) => sent.push({ id, alert }),
      now: () => now,
    });
  return { file, sent, tail, advance: (ms: number) => (now += ms) };
}

t.test('first run starts at the end: old lines are history', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, 'error: old\nerror: older\n');
  const w = tail();
  w.poll();
  t.same(sent, []);
  appendFileSync(file, 'ok line\nFATAL: disk gone\n');
  w.poll();
  t.equal(sent.length, 1);
  t.match(sent[0]!.alert, { type: 'log', source: file, message: 'FATAL: disk gone', logs: 'ok line\nFATAL: disk gone' });
  t.match(sent[0]!.id, ID_PATTERN);
  t.same(alertPayload(sent[0]!.alert, ''), sent[0]!.alert, 'a valid alert payload');
});

t.test('a partial line waits for its newline', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  const w = tail();
  appendFileSync(file, 'error: half');
  w.poll();
  t.same(sent, []);
  appendFileSync(file, ' and the rest\n');
  w.poll();
  t.equal(sent[0]?.alert.message, 'error: half and the rest');
});

t.test('a restart neither re-sends nor skips', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  const a = tail();
  appendFileSync(file, 'error: one\n');
  a.poll();
  a.close();
  appendFileSync(file, 'error: two (written while the agent was down)\n');
  const b = tail();
  b.poll();
  t.same(sent.map((s) => s.alert.message), ['error: one', 'error: two (written while the agent was down)']);
});

t.test('rotation by rename: the old file is finished, the new one read from its start', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  const w = tail();
  appendFileSync(file, 'error: before rotation\n');
  w.poll();
  appendFileSync(file, 'error: written just before the rename\nerror: last line without newline');
  renameSync(file, `${file}.1`);
  writeFileSync(file, 'error: first in the new file\n');
  w.poll();
  t.same(sent.map((s) => s.alert.message), [
    'error: before rotation',
    'error: written just before the rename',
    'error: last line without newline',
    'error: first in the new file',
  ]);
});

t.test('rotation by truncation (copytruncate)', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  const w = tail();
  appendFileSync(file, 'error: a long line before the truncation\n');
  w.poll();
  truncateSync(file, 0);
  appendFileSync(file, 'error: after\n');
  w.poll();
  t.same(sent.map((s) => s.alert.message), ['error: a long line before the truncation', 'error: after']);
});

t.test('a rotation while the agent was down: the new file is read from its start', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  tail().close();
  renameSync(file, `${file}.1`);
  writeFileSync(file, 'error: in the new file\n');
  tail().poll();
  t.same(sent.map((s) => s.alert.message), ['error: in the new file']);
});

t.test('a burst is one alert, then one merged follow-up per window', async (t) => {
  const { file, sent, tail, advance } = setup(t);
  writeFileSync(file, '');
  const w = tail({ windowMs: 60_000 });
  appendFileSync(file, Array.from({ length: 100 }, (_, i) => `error: burst ${i}`).join('\n') + '\n');
  w.poll();
  t.equal(sent.length, 1, 'the first line at once');
  advance(30_000);
  w.poll();
  t.equal(sent.length, 1, 'the rest waits for the window');
  advance(30_000);
  w.poll();
  t.equal(sent.length, 2);
  t.match(sent[1]!.alert, { message: '99 matching lines in 60 s; latest: error: burst 99', context: { merged_lines: 99 } });
  t.match(sent[1]!.alert.logs, /… and 79 more$/);
});

t.test('lines read twice give the same ids (so the outbox and the hub store them once)', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  const a = tail();
  appendFileSync(file, 'error: x\nerror: y\n');
  a.poll();
  a.close();
  const first = sent.splice(0).map((s) => s.id);
  t.equal(new Set(first).size, 2, 'one id per line');
  // A crash between the outbox write and the state write leaves an older offset behind.
  const stateFile = path.join(path.dirname(file), 'state', readdirSync(path.join(path.dirname(file), 'state')).find((n) => n.startsWith('log-'))!);
  writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(readFileSync(stateFile, 'utf8')), offset: 0 }));
  tail().poll();
  t.same(sent.map((s) => s.id), first, 'the same lines, the same ids');
});

t.test('a file with no newlines cannot grow memory without bound', async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  const w = tail();
  appendFileSync(file, 'error ' + 'x'.repeat(200 * 1024));
  w.poll();
  t.ok(sent.length >= 1);
  t.ok(sent.every((s) => s.alert.message.length <= 4096));
});

t.test("the operator's pattern runs in linear time: one exponential on V8 would hang past the test timeout", async (t) => {
  const { file, sent, tail } = setup(t);
  writeFileSync(file, '');
  const w = tail({ pattern: '^(a|a)*b$' });
  appendFileSync(file, 'a'.repeat(60) + '\n' + 'a'.repeat(16 * 1024) + '\naab\n');
  w.poll();
  t.same(sent.map((s) => s.alert.message), ['aab']);
});
