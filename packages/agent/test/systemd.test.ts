/**
 * The systemd watcher against recorded real journals. fixtures/journal-crash-loop-unit.jsonl is
 * `journalctl -o json -u flapper.service` from a real systemd 252 (scripts/record-systemd-
 * fixtures.ts): a unit under Restart=on-failure that crashed four times, then ran healthy. The
 * test replays it into a journal file that fake-journalctl.mjs serves the way journalctl does,
 * and sets the unit states that fake-systemctl.mjs answers `systemctl show` with. The same code
 * runs on a real systemd in real-systemd.test.ts.
 */
import t, { type Test } from 'tap';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AlertPayload, ResolvePayload } from '@opspilot/protocol';
import { SystemdWatcher, field } from '../src/collectors/systemd.ts';
import { assessRecovery, parseShow, type UnitState } from '../src/collectors/unit-state.ts';
import { SYSTEMD_MESSAGES, cursorTime } from '../src/collectors/journal.ts';
import { ManualClock } from './util.ts';

const FIXTURES = path.resolve(import.meta.dirname, 'fixtures');
const LOOP = readFileSync(path.join(FIXTURES, 'journal-crash-loop-unit.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as Record<string, string>);
const BOOT = LOOP[0]!._BOOT_ID!;
const invocationOf = (e: Record<string, string>) => e.INVOCATION_ID ?? e._SYSTEMD_INVOCATION_ID;
const RUNS = [...new Set(LOOP.map(invocationOf))];
const entriesOf = (run: number) => LOOP.filter((e) => invocationOf(e) === RUNS[run]);
/** An entry before the recording, so the journal has a newest entry when the watcher starts. */
const SEED = { __CURSOR: `s=0a21aff6f1834e578a73afde52a7c2ef;i=1;b=${BOOT};m=1;t=66166a0000000;x=1`, __REALTIME_TIMESTAMP: '1795943200000000', _BOOT_ID: BOOT, MESSAGE: 'seed' };

function host(t: Test) {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-systemd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const journal = path.join(dir, 'journal.jsonl');
  const units = path.join(dir, 'units.json');
  const argsFile = path.join(dir, 'args');
  writeFileSync(journal, JSON.stringify(SEED) + '\n');
  writeFileSync(units, '{}');
  const state: Record<string, Record<string, string>> = {};
  return {
    dir,
    append: (entries: object[]) => appendFileSync(journal, entries.map((e) => JSON.stringify(e) + '\n').join('')),
    rewrite: (entries: object[]) => writeFileSync(journal, entries.map((e) => JSON.stringify(e) + '\n').join('')),
    unit(name: string, props: Record<string, string>) {
      state[name] = props;
      writeFileSync(units, JSON.stringify(state));
    },
    args: (): string[][] => {
      try {
        return readFileSync(argsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]);
      } catch {
        return [];
      }
    },
    watcher(opts: { settleMs?: number; repeatWindowMs?: number; units?: string[]; clock?: ManualClock } = {}) {
      const alerts: AlertPayload[] = [];
      const resolves: (ResolvePayload & { at: number })[] = [];
      const w = new SystemdWatcher({
        settleMs: opts.settleMs ?? 1000,
        repeatWindowMs: opts.repeatWindowMs ?? 500,
        stateDir: dir,
        ...(opts.units ? { units: opts.units } : {}),
        alert: (a) => alerts.push(a),
        resolve: (r) => resolves.push({ ...r, at: opts.clock?.now() ?? Date.now() }),
        log: { info() {}, warn() {}, error() {} },
        journalctl: [process.execPath, path.join(FIXTURES, 'fake-journalctl.mjs'), journal, argsFile],
        systemctl: [process.execPath, path.join(FIXTURES, 'fake-systemctl.mjs'), units],
        isSystemd: () => true,
        ...(opts.clock ? { clock: opts.clock } : {}),
      });
      t.teardown(() => w.stop());
      return { w, alerts, resolves };
    },
  };
}

async function until(cond: () => boolean, ms = 5000, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
const restarting = { ActiveState: 'activating', SubState: 'auto-restart', Result: 'exit-code' };
const running = (run: number, clock?: ManualClock) => ({ ActiveState: 'active', SubState: 'running', Result: 'success', InvocationID: RUNS[run]!, ActiveEnterTimestampMonotonic: String(clock?.monotonicUs() ?? process.hrtime.bigint() / 1000n) });
const KNOWN = new Set<unknown>(Object.values(SYSTEMD_MESSAGES));
/** Append entries and wait until the watcher has read and handled the last one it asks journalctl for. */
async function feed(h: ReturnType<typeof host>, w: SystemdWatcher, entries: Record<string, string>[]): Promise<void> {
  h.append(entries);
  const last = entries.filter((e) => KNOWN.has(e.MESSAGE_ID)).at(-1)?.__CURSOR;
  if (last) await until(() => w.cursor === last, 5000, 'the entries read');
  await w.idle;
}

t.test('a crash loop under Restart=on-failure: alerts with the failing run, merged repeats, one resolve once healthy', async (t) => {
  const h = host(t);
  const clock = new ManualClock();
  const { w, alerts, resolves } = h.watcher({ settleMs: 1000, repeatWindowMs: 2000, clock });
  t.equal(await w.start(), true);
  await until(() => h.args().some((a) => a.includes('--follow')), 5000, 'journalctl --follow');
  const follow = h.args().find((a) => a.includes('--follow'))!;
  t.ok(follow.includes(`--boot=${BOOT}`), 'the boot is named, not taken from /proc (containers)');
  t.ok(follow.includes(`--after-cursor=${SEED.__CURSOR}`), 'followed from the newest entry at start');

  h.unit('flapper.service', restarting);
  await feed(h, w, entriesOf(0));
  t.equal(alerts.length, 1, 'the first failure is reported at once');
  t.match(alerts[0], { type: 'systemd', source: 'flapper.service', message: "flapper.service: Failed with result 'exit-code'.", status: 'exit-code', exit_code: 1, context: { exit_code_kind: 'exited', invocation_id: RUNS[0] } });
  t.same(alerts[0]!.logs!.split('\n'), entriesOf(0).map((e) => e.MESSAGE), "the failing run's lines, nothing of other runs");
  t.match(alerts[0]!.logs, /flapper: lost connection to upstream\nflapper\.service: Main process exited/);

  // Runs 2-4: systemd's restart starts the unit ("Started"), it crashes 300 ms later, within the
  // settle time, and systemd restarts it 200 ms after that.
  for (const run of [1, 2, 3]) {
    const entries = entriesOf(run);
    h.unit('flapper.service', running(run, clock));
    await feed(h, w, entries.slice(0, 1)); // Started
    clock.advance(300);
    h.unit('flapper.service', restarting);
    await feed(h, w, entries.slice(1));
    clock.advance(200);
    await w.idle;
  }
  t.equal(alerts.length, 1, 'repeats within the window wait for it to close');
  clock.advance(2000); // the repeat window closes; then well past the settle time
  await w.idle;
  t.same(resolves, [], 'never resolved while it crash-loops');
  t.equal(alerts.length, 2, 'the three repeats within the window are merged into one alert');
  t.equal(alerts[1]!.context?.failures, 3);
  t.equal(alerts[1]!.context?.invocation_id, RUNS[3], 'with the last failing run');
  t.same(w.failingUnits, ['flapper.service']);

  // Run 5 stays up: resolved once it has been active for the settle time, and not before.
  h.unit('flapper.service', running(4, clock));
  const started = clock.now();
  await feed(h, w, entriesOf(4));
  clock.advance(999);
  await w.idle;
  t.same(resolves, [], 'not before the settle time');
  clock.advance(1);
  await until(() => resolves.length === 1, 5000, 'the resolve');
  t.equal(resolves[0]!.at - started, 1000, 'resolved when the settle time is up');
  t.match(resolves[0], { type: 'systemd', source: 'flapper.service', message: 'flapper.service: active for 1 s' });
  t.same(w.failingUnits, []);
  t.equal(clock.pending, 0, 'no timer left behind');
});

t.test("lines journald could not tie to a run count when they lie within the failing run's span", async (t) => {
  const h = host(t);
  const { w, alerts } = h.watcher();
  await w.start();
  // On a busy host a process that writes and exits at once leaves lines with the unit but no
  // invocation id (seen on the real systemd under load).
  const untied = (e: Record<string, string>) => (e._SYSTEMD_INVOCATION_ID ? (({ _SYSTEMD_INVOCATION_ID: _, ...rest }) => rest)(e) : e);
  h.unit('flapper.service', restarting);
  h.append([...entriesOf(0).map(untied), ...entriesOf(1).slice(0, 3).map(untied)]);
  await until(() => alerts.length === 1, 5000, 'the alert');
  const logs = alerts[0]!.logs!.split('\n');
  t.same(logs, entriesOf(0).map((e) => e.MESSAGE), "the failing run's lines, its untied process output included");
  t.equal(logs.filter((l) => l === 'flapper: starting').length, 1, 'nothing of the next run');
});

t.test('what happened while the agent was down: failures reported, recoveries resolved, nothing twice', async (t) => {
  const h = host(t);
  let { w } = h.watcher();
  await w.start();
  await w.stop();

  // While it is down: flapper fails and stays in its restart loop; other.service fails too, but
  // only systemd's state tells (its journal entries are not in the matched set here).
  h.append(entriesOf(0));
  h.unit('flapper.service', restarting);
  h.unit('other.service', { ActiveState: 'failed', SubState: 'failed', Result: 'exit-code', InvocationID: '9d1aaa27d60140bd96365438aad20286', ExecMainCode: '1', ExecMainStatus: '3' });
  let second = h.watcher();
  await second.w.start();
  await until(() => second.alerts.length === 2, 5000, `both failures (${JSON.stringify(second.alerts)}; journalctl ${JSON.stringify(h.args())})`);
  const [flapper, other] = [second.alerts.find((a) => a.source === 'flapper.service'), second.alerts.find((a) => a.source === 'other.service')];
  t.match(flapper, { exit_code: 1, context: { invocation_id: RUNS[0] } }, 'read from the saved journal position');
  t.match(other, { message: "other.service: Failed with result 'exit-code'.", status: 'exit-code', exit_code: 3, context: { found_at_start: true } }, 'a unit failed at start');
  t.notOk(h.args().some((a) => a.includes('--lines=0')), 'never started from "now" once a position was saved');
  await second.w.stop();

  // Started again: nothing new to say.
  const third = h.watcher();
  await third.w.start();
  await third.w.idle; // it read from its saved position to the end, and handled it
  t.same(third.alerts, [], 'nothing reported twice');
  await third.w.stop();

  // Down again; meanwhile flapper comes back and has been healthy for a while.
  h.unit('flapper.service', { ...running(4), ActiveEnterTimestampMonotonic: String(process.hrtime.bigint() / 1000n - 60_000_000n) });
  const fourth = h.watcher();
  await fourth.w.start();
  await until(() => fourth.resolves.length === 1, 5000, 'the recovery');
  t.match(fourth.resolves[0], { source: 'flapper.service', message: /^flapper\.service: active for 6\d s$/ });
  t.same(fourth.alerts, []);
  ({ w } = fourth);
  t.same(w.failingUnits, ['other.service']);
});

t.test('a journal rotated or vacuumed past the saved position is reported as a gap', async (t) => {
  const h = host(t);
  const first = h.watcher();
  await first.w.start();
  await first.w.stop();
  // The seed (the saved position) and the first run are vacuumed away.
  h.rewrite(LOOP.filter((e) => invocationOf(e) !== RUNS[0]));
  h.unit('flapper.service', restarting);
  const { w, alerts } = h.watcher();
  await w.start();
  await until(() => alerts.some((a) => a.type === 'journal'), 5000, 'the gap');
  const gap = alerts.find((a) => a.type === 'journal')!;
  t.match(gap, { source: 'journal', message: /^Journal entries from .* to .* were rotated or vacuumed before the agent read them/, context: { from: cursorTime(SEED.__CURSOR)!.toISOString() } });
  await until(() => alerts.some((a) => a.source === 'flapper.service'), 5000, 'what could still be read');
});

t.test('only the configured units; hostile or odd lines are ignored', async (t) => {
  const h = host(t);
  const { w, alerts } = h.watcher({ units: ['worker.service'] });
  await w.start();
  h.append(entriesOf(0));
  h.append([
    { __CURSOR: `s=0a21aff6f1834e578a73afde52a7c2ef;i=ff0;b=${BOOT}`, MESSAGE_ID: 5, UNIT: 'worker.service' },
    { __CURSOR: `s=0a21aff6f1834e578a73afde52a7c2ef;i=ff1;b=${BOOT}`, MESSAGE_ID: 'd9b373ed55a64feb8242e02dbe79a49c' },
  ]);
  // The watcher asks journalctl for systemd's own messages only: the odd lines never reach it.
  // Wait until it has read the last line that does.
  const known = new Set<unknown>(Object.values(SYSTEMD_MESSAGES));
  const last = entriesOf(0).filter((e) => known.has(e.MESSAGE_ID)).at(-1)!.__CURSOR;
  await until(() => w.cursor === last, 5000, 'the last matched line read');
  await w.idle;
  t.same(alerts, []);
  t.equal(field({ MESSAGE: [104, 105, 0xff] }, 'MESSAGE'), 'hi\ufffd', 'binary fields (byte arrays) are decoded');
  t.equal(field({ MESSAGE: { x: 1 } }, 'MESSAGE'), undefined);
});

t.test('without systemd the watcher says so once and stays off', async (t) => {
  const logs: string[] = [];
  const w = new SystemdWatcher({ settleMs: 1000, stateDir: tmpdir(), alert: () => t.fail('no alert'), resolve: () => t.fail('no resolve'), log: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) }, isSystemd: () => false });
  t.equal(await w.start(), false);
  t.same(logs, ['systemd watcher off: this host does not run systemd']);
  await w.stop();
});

t.test('recovery is judged from systemd state, never from a start alone', async (t) => {
  const base: UnitState = { id: 'a.service', type: 'simple', loadState: 'loaded', activeState: 'active', subState: 'running', result: 'success', invocation: 'b', activeEnterMonoUs: 1_000_000n, exitStatus: undefined };
  const at = (s: number) => 1_000_000n + BigInt(s) * 1_000_000n;
  t.same(assessRecovery(base, 'a', at(30), 30_000), { kind: 'healthy', message: 'a.service: active for 30 s' });
  t.same(assessRecovery(base, 'a', at(10), 30_000), { kind: 'wait', ms: 20_000 }, 'active, not long enough yet');
  t.same(assessRecovery(base, 'b', at(60), 30_000), { kind: 'not-healthy' }, 'still the run that failed');
  t.same(assessRecovery({ ...base, activeState: 'activating', subState: 'auto-restart' }, 'a', at(60), 30_000), { kind: 'not-healthy' }, "systemd's restart loop");
  t.same(assessRecovery({ ...base, activeState: 'activating', subState: 'start' }, 'a', at(60), 30_000), { kind: 'wait', ms: 30_000 }, 'a slow start');
  t.same(assessRecovery({ ...base, activeState: 'failed' }, 'a', at(60), 30_000), { kind: 'not-healthy' });
  t.same(assessRecovery({ ...base, activeState: 'inactive', subState: 'dead', invocation: undefined }, 'a', at(60), 30_000), { kind: 'not-healthy' }, 'stopped by someone is not recovered');
  const oneshot = { ...base, type: 'oneshot', activeState: 'inactive', subState: 'dead', invocation: undefined };
  t.same(assessRecovery(oneshot, 'a', at(0), 30_000, 'c'), { kind: 'healthy', message: 'a.service: ran successfully' }, 'a oneshot that ran successfully');
  t.same(assessRecovery(oneshot, 'a', at(0), 30_000), { kind: 'not-healthy' }, 'without a run the journal named, a reset is not a success');
  t.same(assessRecovery({ ...oneshot, result: 'exit-code' }, 'a', at(0), 30_000, 'c'), { kind: 'not-healthy' });
});

t.test('systemctl show is parsed per unit', async (t) => {
  const text = 'Type=simple\nResult=success\nExecMainCode=1\nExecMainStatus=3\nId=a.service\nLoadState=loaded\nActiveState=failed\nSubState=failed\nActiveEnterTimestampMonotonic=283434285\nInvocationID=dd6c2fd67e704c049b0f4d11939a8c9b\n\nId=b.service\nActiveEnterTimestampMonotonic=x\nInvocationID=\nExecMainCode=2\nExecMainStatus=9\n';
  const [a, b] = parseShow(text);
  t.match(a, { id: 'a.service', type: 'simple', activeState: 'failed', invocation: 'dd6c2fd67e704c049b0f4d11939a8c9b', activeEnterMonoUs: 283434285n, exitStatus: 3 });
  t.match(b, { id: 'b.service', invocation: undefined, activeEnterMonoUs: 0n, exitStatus: undefined }, 'killed by a signal: no exit status');
});
