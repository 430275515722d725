import t from 'tap';
import { Backoff } from '../src/backoff.ts';

t.test('exponential ceiling, capped, with full jitter', async (t) => {
  const top = new Backoff({ baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000, random: () => 0.999999 });
  const ceilings = Array.from({ length: 9 }, () => top.next());
  t.same(ceilings, [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999]);
  const bottom = new Backoff({ baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000, random: () => 0 });
  t.same([bottom.next(), bottom.next(), bottom.next()], [0, 0, 0], 'full jitter reaches zero');
});

t.test('jitter spreads agents across the whole window', async (t) => {
  const delays = Array.from({ length: 2000 }, () => new Backoff({ baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000 }).next());
  const buckets = [0, 0, 0, 0];
  for (const d of delays) buckets[Math.floor(d / 250)]!++;
  for (const b of buckets) t.ok(b > 350 && b < 650, `bucket of ${b} (uniform over 0–1 s)`);
});

t.test('resets only after a connection that lasted long enough', async (t) => {
  let now = 0;
  const b = new Backoff({ baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000, random: () => 0.999999, now: () => now });
  b.next();
  b.next();
  b.next();
  b.connected();
  now += 5_000; // dropped after 5 s: keep backing off
  t.equal(b.next(), 7999);
  b.connected();
  now += 61_000; // stayed up a minute: start again
  t.equal(b.next(), 999);
});

t.test("after a hub restart, 1,000 agents' first reconnects spread over more than 10 s", async (t) => {
  // Each agent is on attempt 0 (connected for a long time), as when a hub restarts.
  const delays = Array.from({ length: 1000 }, () => new Backoff({ baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000 }).next(15_000));
  t.ok(Math.max(...delays) - Math.min(...delays) >= 10_000, `spread ${Math.max(...delays) - Math.min(...delays)} ms`);
  const perSecond = new Map<number, number>();
  for (const d of delays) perSecond.set(Math.floor(d / 1000), (perSecond.get(Math.floor(d / 1000)) ?? 0) + 1);
  t.ok(Math.max(...perSecond.values()) <= 120, `at most ${Math.max(...perSecond.values())} of 1,000 in any one second`);
  const ordinary = new Backoff({ baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000, random: () => 0.999999 });
  t.equal(ordinary.next(), 999, 'an ordinary drop still comes back within a second');
});
