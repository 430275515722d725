/**
 * The pinger's schedule on its own: every connection visited once an interval, the same few at
 * every tick (not all at once), a late tick catching up without visiting anyone twice, and a
 * removed connection never visited again. (The pings themselves, and closing a connection that
 * misses two pongs, are in stream-auth.test.ts.)
 */
import t from 'tap';
import { PingWheel } from '../src/ingest/ping-wheel.ts';

const INTERVAL = 15_000;
const TICK = 25;

function visitsOver(wheel: PingWheel<number>, fromMs: number, toMs: number, stepMs: number): { counts: Map<number, number>; perTick: number[] } {
  const counts = new Map<number, number>();
  const perTick: number[] = [];
  for (let now = fromMs; now < toMs; now += stepMs) {
    let n = 0;
    wheel.due(now, (m) => {
      counts.set(m, (counts.get(m) ?? 0) + 1);
      n++;
    });
    perTick.push(n);
  }
  return { counts, perTick };
}

t.test('10,000 connections: each visited once an interval, ~17 at every tick', async (t) => {
  const wheel = new PingWheel<number>(INTERVAL, TICK);
  for (let i = 0; i < 10_000; i++) wheel.add(i);
  t.equal(wheel.size, 10_000);
  const { counts, perTick } = visitsOver(wheel, 1_000_000, 1_000_000 + INTERVAL, TICK);
  const firstTen: number[] = [];
  visitsOver(wheel, 1_000_000 + INTERVAL, 1_000_000 + 2 * INTERVAL, TICK); // a turn, then look where 0..9 sit
  for (let now = 1_000_000 + 2 * INTERVAL, k = 0; k < 600; now += TICK, k++) wheel.due(now, (m) => m < 10 && firstTen.push(k));
  const gaps = firstTen.sort((a, b) => a - b).map((k, i, a) => (i === 0 ? k + 600 - a.at(-1)! : k - a[i - 1]!));
  t.ok(Math.min(...gaps) >= 20, `connections made one after another are pinged far apart (closest ${Math.min(...gaps)} ticks)`);
  t.equal(counts.size, 10_000, 'every one visited');
  t.ok([...counts.values()].every((c) => c === 1), 'each once');
  t.equal(Math.max(...perTick), 17, 'at most 17 in a tick (10,000 over 600 ticks: 16.7)');
  t.equal(Math.min(...perTick), 16, 'at least 16');

  const again = visitsOver(wheel, 1_000_000 + 3 * INTERVAL, 1_000_000 + 5 * INTERVAL, TICK);
  t.ok([...again.counts.values()].every((c) => c === 2), 'twice over two intervals');
});

t.test('a late tick catches up on the slots it missed, once each; a stall of more than a turn visits each once', async (t) => {
  const wheel = new PingWheel<number>(INTERVAL, TICK);
  for (let i = 0; i < 600; i++) wheel.add(i);
  const seen: number[] = [];
  wheel.due(0, (m) => seen.push(m));
  const first = seen.length;
  wheel.due(1000, (m) => seen.push(m)); // 40 ticks late
  t.equal(seen.length, first + 40, 'the 40 slots that came up meanwhile, one member each');
  t.equal(new Set(seen).size, seen.length, 'nobody twice');

  const all: number[] = [];
  wheel.due(1000 + 5 * INTERVAL, (m) => all.push(m)); // the event loop held for five turns
  t.equal(all.length, 600, 'every member once, not five times');
  t.equal(new Set(all).size, 600);

  const none: number[] = [];
  wheel.due(1000 + 5 * INTERVAL, (m) => none.push(m));
  t.same(none, [], 'the same moment again visits nobody');
});

t.test('removed members are not visited; adding twice is once; an interval shorter than a tick is one slot', async (t) => {
  const wheel = new PingWheel<string>(INTERVAL, TICK);
  wheel.add('a');
  wheel.add('a');
  wheel.add('b');
  wheel.delete('b');
  wheel.delete('never-added');
  t.equal(wheel.size, 1);
  const seen: string[] = [];
  for (let now = 0; now < INTERVAL; now += TICK) wheel.due(now, (m) => seen.push(m));
  t.same(seen, ['a']);

  const tiny = new PingWheel<string>(10, 25);
  tiny.add('x');
  const hits: string[] = [];
  tiny.due(0, (m) => hits.push(m));
  tiny.due(25, (m) => hits.push(m));
  t.same(hits, ['x', 'x'], 'every tick');
});
