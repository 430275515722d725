/**
 * The agent's monitor scheduler with a ManualClock and real servers on 127.0.0.1: when checks
 * run (first within 10 s, then every interval ± 5 %), that a set's unchanged monitors keep their
 * schedule, that one monitor never runs twice at once and at most max_concurrent run together,
 * how results are batched while connected and while not, the set kept across a restart, and the
 * link-local guard.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CheckResultPayload, MonitorDefinition } from '@opspilot/protocol';
import { MonitorScheduler } from '../src/monitors.ts';
import { ManualClock } from './util.ts';

const quiet = { info() {}, warn() {}, error() {} };

async function server(t: Test, handler: http.RequestListener): Promise<number> {
  const s = http.createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return (s.address() as AddressInfo).port;
}

function setup(t: Test, opts: { maxConcurrent?: number; connected?: boolean; stateDir?: string } = {}) {
  const clock = new ManualClock(1_800_000_000_000);
  const sent: CheckResultPayload[][] = [];
  const warnings: string[] = [];
  const stateDir = opts.stateDir ?? mkdtempSync(path.join(tmpdir(), 'opspilot-monitors-'));
  if (!opts.stateDir) t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  let connected = opts.connected ?? true;
  const scheduler = new MonitorScheduler({
    clock,
    send: (results) => sent.push(results),
    connected: () => connected,
    stateDir,
    maxConcurrent: opts.maxConcurrent ?? 8,
    guard: 'link-local',
    log: { ...quiet, warn: (m: string) => warnings.push(m) },
    random: () => 0.5,
  });
  t.teardown(() => scheduler.stop());
  return { clock, sent, warnings, scheduler, stateDir, setConnected: (c: boolean) => (connected = c) };
}

const http10 = (id: string, port: number, extra: Partial<MonitorDefinition> = {}): MonitorDefinition => ({ id, kind: 'http', target: `http://127.0.0.1:${port}/${id}`, interval_s: 10, timeout_ms: 2000, ...extra });

t.test('a check runs within 10 s of arriving, then every interval ± 5 %; its results go out in batches', async (t) => {
  let hits = 0;
  const port = await server(t, (_req, res) => {
    hits++;
    res.writeHead(hits === 2 ? 503 : 200).end('ok');
  });
  const { clock, sent, scheduler } = setup(t);
  const start = clock.now();
  scheduler.set({ version: 'v1', monitors: [http10('a', port, { interval_s: 60 })] });
  clock.advance(4999);
  t.equal(hits, 0, 'not before its spread (random 0.5 of 10 s)');
  clock.advance(1);
  await scheduler.idle();
  t.equal(hits, 1, 'first check at 5 s');
  t.same(sent, [], 'results wait for their batch');
  clock.advance(2000);
  t.equal(sent.length, 1);
  t.match(sent[0], [{ monitor_id: 'a', at: (start + 5000) / 1000, ok: true, status: 200 }]);
  clock.advance(60_000 - 2000 - 1);
  t.equal(hits, 1, 'the next is an interval (60 s ± 5 %: 60 s at 0.5) after the first');
  clock.advance(1);
  await scheduler.idle();
  t.equal(hits, 2);
  clock.advance(2000);
  t.match(sent[1], [{ monitor_id: 'a', ok: false, status: 503, failures: [/status 503 is not accepted/] }]);
});

t.test('a new set keeps the schedule of monitors it did not change; a changed one starts again; a removed one stops', async (t) => {
  const seen: string[] = [];
  const port = await server(t, (req, res) => {
    seen.push(req.url!);
    res.writeHead(200).end();
  });
  const { clock, scheduler } = setup(t);
  scheduler.set({ version: 'v1', monitors: [http10('a', port), http10('b', port)] });
  clock.advance(5000);
  await scheduler.idle();
  t.same(seen.sort(), ['/a', '/b']);
  clock.advance(4000);
  scheduler.set({ version: 'v1', monitors: [] }); // the same version: a resend, ignored
  t.equal(scheduler.size, 2);
  scheduler.set({ version: 'v2', monitors: [http10('a', port), http10('b', port, { timeout_ms: 3000 })] });
  t.equal(scheduler.version, 'v2');
  seen.length = 0;
  clock.advance(5000); // b was made again at 9 s: its first run is 5 s later
  await scheduler.idle();
  t.same(seen, ['/b'], 'b, changed, started again');
  clock.advance(1000); // a runs 10 s after its first run, as it would have anyway
  await scheduler.idle();
  t.same(seen, ['/b', '/a'], 'a kept its schedule');
  scheduler.set({ version: 'v3', monitors: [http10('b', port, { timeout_ms: 3000 })] });
  seen.length = 0;
  clock.advance(60_000);
  await scheduler.idle();
  t.notOk(seen.includes('/a'), 'a removed: never again');
  t.ok(seen.includes('/b'));
});

t.test('one monitor never runs twice at once; at most max_concurrent checks run together', async (t) => {
  let inFlight = 0;
  let most = 0;
  const hold: (() => void)[] = [];
  const port = await server(t, (_req, res) => {
    inFlight++;
    most = Math.max(most, inFlight);
    hold.push(() => {
      inFlight--;
      res.writeHead(200).end();
    });
  });
  const { clock, scheduler, sent } = setup(t, { maxConcurrent: 2 });
  scheduler.set({ version: 'v1', monitors: ['a', 'b', 'c'].map((id) => http10(id, port, { timeout_ms: 60_000 })) });
  clock.advance(5000);
  await t.resolves(until(() => hold.length === 2), 'two checks started');
  clock.advance(10_000); // every one is due again; a and b still run, c waits its turn
  clock.advance(10_000);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(inFlight, 2, 'a third waits while two run');
  hold.shift()!();
  await until(() => hold.length === 2);
  hold.splice(0).forEach((release) => release());
  await scheduler.idle();
  clock.advance(2000);
  t.equal(most, 2, 'never more than two at once');
  const ids = sent.flat().map((r) => r.monitor_id).sort();
  t.same(ids, ['a', 'b', 'c'], 'each ran once though due three times: a run still going skips the next');
});

t.test('while the hub is away results wait longer, in one message; a stop sends what is buffered', async (t) => {
  const port = await server(t, (_req, res) => res.writeHead(200).end());
  const { clock, scheduler, sent } = setup(t, { connected: false });
  scheduler.set({ version: 'v1', monitors: [http10('a', port)] });
  for (let i = 0; i < 5; i++) {
    clock.advance(i === 0 ? 5000 : 10_000);
    await scheduler.idle();
  }
  t.same(sent, [], 'nothing sent within a minute of the first result');
  clock.advance(20_000);
  t.equal(sent.length, 1);
  t.equal(sent[0]!.length, 5, 'five results, one message (one outbox entry)');
  clock.advance(10_000);
  await scheduler.idle();
  scheduler.stop();
  t.equal(sent.length, 2, 'stop sends the rest');
});

t.test('the set is kept in the state directory and taken up again at start; a bad file is ignored', async (t) => {
  const port = await server(t, (_req, res) => res.writeHead(200).end());
  const first = setup(t);
  first.scheduler.set({ version: 'v9', monitors: [http10('a', port)] });
  first.scheduler.stop();
  const again = setup(t, { stateDir: first.stateDir });
  again.scheduler.restore();
  t.equal(again.scheduler.version, 'v9');
  t.equal(again.scheduler.size, 1);
  writeFileSync(path.join(first.stateDir, 'monitors.json'), JSON.stringify({ version: 'v10', monitors: [{ id: 'x', kind: 'exec', target: 'rm -rf /' }] }));
  const bad = setup(t, { stateDir: first.stateDir });
  bad.scheduler.restore();
  t.equal(bad.scheduler.size, 0, 'a set that is not valid is not run');
  t.match(bad.warnings, [/the saved monitor set is not valid/]);
});

t.test("a monitor cannot reach the host's link-local or metadata addresses", async (t) => {
  const { clock, scheduler, sent } = setup(t);
  scheduler.set({
    version: 'v1',
    monitors: [
      { id: 'meta', kind: 'http', target: 'http://169.254.169.254/latest/meta-data/iam/', interval_s: 60, timeout_ms: 1000 },
      { id: 'meta6', kind: 'tcp', target: '[fd00:ec2::254]:80', interval_s: 60, timeout_ms: 1000 },
    ],
  });
  clock.advance(10_000);
  await scheduler.idle();
  clock.advance(2000);
  const results = sent.flat();
  t.equal(results.length, 2);
  for (const r of results) t.match(r, { ok: false, error: /^refused: .* is a link-local or metadata address \(an agent's monitor may reach it only with monitors\.allow_link_local/ }, r.monitor_id);
});

async function until(fn: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
