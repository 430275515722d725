import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ExecParams } from '@opspilot/protocol';
import { BUILTIN_ACTIONS, buildArgv, type ActionSpec } from '../src/exec/catalogue.ts';
import { ExecRunner, OUTPUT_CAP_BYTES } from '../src/exec/runner.ts';

const node = process.execPath;
const ACTIONS: Record<string, ActionSpec> = {
  ...BUILTIN_ACTIONS,
  echo_arg: { argv: [node, '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', '{text}'], params: { text: { type: 'string', pattern: '^[\\s\\S]*$', required: true } }, timeout_ms: 10_000 },
  flood: { argv: [node, '-e', "process.stdout.write('x'.repeat(200000)); process.stderr.write('y'.repeat(100000))"], params: {}, timeout_ms: 10_000 },
  sleep: { argv: [node, '-e', 'setTimeout(() => {}, 30000)'], params: {}, timeout_ms: 60_000 },
  fail: { argv: [node, '-e', 'process.stderr.write("boom"); process.exit(3)'], params: {}, timeout_ms: 10_000 },
  missing: { argv: ['/nonexistent/opspilot-binary'], params: {}, timeout_ms: 10_000 },
};

function runner(t: Test, opts: { maxConcurrent?: number; stateDir?: string } = {}): ExecRunner {
  const stateDir = opts.stateDir ?? mkdtempSync(path.join(tmpdir(), 'opspilot-exec-'));
  if (!opts.stateDir) t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  return new ExecRunner({ actions: ACTIONS, stateDir, maxConcurrent: opts.maxConcurrent ?? 4, env: { PATH: process.env.PATH } });
}

let seq = 0;
const exec = (command: string, params: ExecParams = {}, timeout_ms = 10_000) => ({ request_id: `r${++seq}`, command, params, timeout_ms });

t.test('injection attempts never reach a command', async (t) => {
  const r = runner(t);
  const hostile = ['nginx; rm -rf /', '$(touch /tmp/pwned)', '`id`', 'nginx\nreboot', '../../etc/passwd', 'a b', '-H attacker', '--help', 'x|y', 'x&&y', '', '${IFS}'];
  for (const service of hostile) {
    const res = await r.run(exec('restart_service', { service }));
    t.match(res, { ok: false, exit_code: null, error_code: 'EXEC_BAD_PARAMS' }, JSON.stringify(service));
  }
  t.match(await r.run(exec('restart_service', {})), { error_code: 'EXEC_BAD_PARAMS' }, 'missing service');
  t.match(await r.run(exec('restart_service', { service: 5 })), { error_code: 'EXEC_BAD_PARAMS' }, 'number for a string');
  t.match(await r.run(exec('restart_service', { service: 'nginx', extra: 'x' })), { error_code: 'EXEC_BAD_PARAMS' }, 'unknown parameter');
  t.match(await r.run(exec('service_logs', { service: 'nginx', lines: 1001 })), { error_code: 'EXEC_BAD_PARAMS' }, 'lines over 1000');
  t.match(await r.run(exec('service_logs', { service: 'nginx', lines: 1.5 })), { error_code: 'EXEC_BAD_PARAMS' }, 'fractional lines');
});

t.test('an argument with shell syntax stays one literal argument', async (t) => {
  const r = runner(t);
  for (const text of ['a; rm -rf /', '$(id)', '`id`', "it's \"quoted\"", 'line1\nline2', '*']) {
    const res = await r.run(exec('echo_arg', { text }));
    t.equal(res.ok, true);
    t.same(JSON.parse(res.stdout), [text], JSON.stringify(text));
  }
});

t.test('unknown actions are refused; prototype names are not actions', async (t) => {
  const r = runner(t);
  for (const command of ['format_disk', 'constructor', 'toString', '__proto__']) {
    t.match(await r.run(exec(command)), { ok: false, error_code: 'EXEC_NOT_ALLOWED' }, command);
  }
});

t.test('a request id runs at most once, across restarts too', async (t) => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'opspilot-exec-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const first = runner(t, { stateDir });
  const req = exec('echo_arg', { text: 'once' });
  t.equal((await first.run(req)).ok, true);
  t.match(await first.run(req), { ok: false, error_code: 'EXEC_DUPLICATE' });
  const second = runner(t, { stateDir });
  t.match(await second.run(req), { ok: false, error_code: 'EXEC_DUPLICATE' }, 'after a restart');
});

t.test('the long request log is compacted by replacing the file, never rewriting it in place', async (t) => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'opspilot-exec-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const log = path.join(stateDir, 'exec-requests.log');
  writeFileSync(log, Array.from({ length: 20_001 }, (_, i) => `old-${i}`).join('\n') + '\n', { mode: 0o600 });
  const before = statSync(log).ino;
  const r = runner(t, { stateDir });
  const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  t.equal(lines.length, 10_000, 'the last 10,000 ids are kept');
  t.equal(lines.at(-1), 'old-20000');
  t.not(statSync(log).ino, before, 'a new file was renamed over the old one (a crash leaves one or the other whole)');
  t.equal(statSync(log).mode & 0o777, 0o600);
  t.notOk(existsSync(`${log}.tmp`), 'no temp file is left');
  t.match(await r.run({ ...exec('echo_arg', { text: 'x' }), request_id: 'old-20000' }), { ok: false, error_code: 'EXEC_DUPLICATE' }, 'a kept id still refuses');
});

t.test('output is capped at 64 KiB per stream', async (t) => {
  const res = await runner(t).run(exec('flood'));
  t.equal(res.ok, true);
  t.equal(res.truncated, true);
  t.equal(Buffer.byteLength(res.stdout), OUTPUT_CAP_BYTES);
  t.equal(Buffer.byteLength(res.stderr), OUTPUT_CAP_BYTES);
});

t.test('a command past its timeout is killed and reported', async (t) => {
  t.setTimeout(15_000); // the command would sleep 30 s: an answer at all means it was killed
  const res = await runner(t).run(exec('sleep', {}, 300));
  t.match(res, { ok: false, error_code: 'EXEC_TIMEOUT' });
});

t.test('exit codes and start failures', async (t) => {
  const r = runner(t);
  t.match(await r.run(exec('fail')), { ok: false, exit_code: 3, stderr: 'boom' });
  t.notOk((await r.run(exec('fail'))).error_code, 'a failing command is not an agent error');
  t.match(await r.run(exec('missing')), { ok: false, exit_code: null, error_code: 'EXEC_FAILED_TO_START' });
});

t.test('the concurrency limit refuses instead of queueing', async (t) => {
  const r = runner(t, { maxConcurrent: 2 });
  const a = r.run(exec('sleep', {}, 500));
  const b = r.run(exec('sleep', {}, 500));
  t.match(await r.run(exec('echo_arg', { text: 'x' })), { error_code: 'EXEC_BUSY' });
  await Promise.all([a, b]);
  t.equal((await r.run(exec('echo_arg', { text: 'x' }))).ok, true, 'free again');
});

t.test('built-in argv are fixed arrays with whole-argument parameters', async (t) => {
  t.same(buildArgv(BUILTIN_ACTIONS.restart_service!, { service: 'nginx.service' }).argv, ['systemctl', 'restart', 'nginx.service']);
  t.same(buildArgv(BUILTIN_ACTIONS.service_logs!, { service: 'sshd@1.service' }).argv, [
    'journalctl', '--no-pager', '--output=short-iso', '--unit', 'sshd@1.service', '--lines', '100',
  ]);
  t.same(buildArgv(BUILTIN_ACTIONS.disk_usage!, {}).argv, ['df', '-P', '-k']);
  const top = await runner(t).run(exec('top_processes', { limit: 3 }));
  t.equal(top.ok, true);
  t.equal(top.stdout.trim().split('\n').length, 4, 'header and three processes');
  const df = await runner(t).run(exec('disk_usage'));
  t.match(df.stdout, /^Filesystem/);
});

t.test('a negative integer never becomes an argument, whatever the range allows (it would read as an option)', async (t) => {
  const offset: ActionSpec = { argv: [node, '-e', 'process.stdout.write(process.argv[1])', '{n}'], params: { n: { type: 'integer', min: -100, max: 100, required: true } }, timeout_ms: 5000 };
  t.throws(() => buildArgv(offset, { n: -5 }), /must not be negative/);
  t.same(buildArgv(offset, { n: 5 }).argv.at(-1), '5');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'opspilot-exec-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const refused = await new ExecRunner({ actions: { offset }, stateDir, maxConcurrent: 1 }).run(exec('offset', { n: -5 }));
  t.match(refused, { ok: false, error_code: 'EXEC_BAD_PARAMS', exit_code: null });
});
