/**
 * The ingest group commit on its own, with a store that records what it is given: a lone frame is
 * written at the end of the turn that brought it (no timer to wait for); frames of one turn go
 * together; while a write is in flight the next batch grows and is written as soon as it
 * commits; with `flushIntervalMs` set, a batch waits that long for company and writes start at
 * most that often unless they take longer; acks follow commits.
 */
import t from 'tap';
import { BatchQueue, type AckTarget } from '../src/ingest/batch-queue.ts';

const quiet = { error() {}, warn() {}, info() {}, debug() {} } as never;
const turn = () => new Promise((r) => setImmediate(r));

function queue(opts: { flushIntervalMs?: number; maxRows?: number } = {}) {
  const writes: number[][] = [];
  let gate: (() => void) | null = null;
  let hold = false;
  const q = new BatchQueue<{ rows: number[] }>(
    'test',
    () => ({ rows: [] }),
    async (b) => {
      writes.push(b.rows);
      if (hold) await new Promise<void>((r) => (gate = r));
    },
    { maxRows: opts.maxRows ?? 1000, flushIntervalMs: opts.flushIntervalMs ?? 0, overloadRows: 10_000 },
    quiet,
  );
  const add = (n: number, ack?: { target: AckTarget; id: string }) => {
    q.current.rows.push(n);
    q.added(1, 1, ack);
  };
  return {
    q,
    writes,
    add,
    holdWrites: () => (hold = true),
    release: () => {
      hold = false;
      const g = gate;
      gate = null;
      g?.();
    },
  };
}

t.test('a lone frame is written at the end of its turn; a turn of frames together', async (t) => {
  const { writes, add } = queue();
  add(1);
  t.same(writes, [], 'not in the middle of the turn');
  await turn();
  t.same(writes, [[1]], 'at its end, without a timer');
  add(2);
  add(3);
  add(4);
  await turn();
  t.same(writes, [[1], [2, 3, 4]], 'what one turn brought is one write');
});

t.test('behind a write in flight the next batch grows, and goes as soon as it commits', async (t) => {
  const { writes, add, holdWrites, release } = queue();
  holdWrites();
  add(1);
  await turn();
  t.same(writes, [[1]], 'the first write is in flight');
  for (let i = 2; i <= 6; i++) {
    add(i);
    await turn();
  }
  t.same(writes, [[1]], 'nothing else is written while it is');
  release();
  await turn();
  await turn();
  t.same(writes, [[1], [2, 3, 4, 5, 6]], 'then everything that waited, in one write');
});

t.test('acks follow the commit', async (t) => {
  const { add, holdWrites, release } = queue();
  const acked: string[] = [];
  const target: AckTarget = { agentId: 'a', ack: (ids) => acked.push(...ids), refuse() {}, storeFailed() {} };
  holdWrites();
  add(1, { target, id: 'm1' });
  await turn();
  t.same(acked, [], 'not before the write commits');
  release();
  await turn();
  t.same(acked, ['m1']);
});

t.test('with flushIntervalMs, a batch waits for company; maxRows writes at once', async (t) => {
  const { writes, add } = queue({ flushIntervalMs: 30, maxRows: 3 });
  add(1);
  await turn();
  t.same(writes, [], 'waiting');
  await new Promise((r) => setTimeout(r, 60));
  t.same(writes, [[1]], 'written once the interval passed');
  add(2);
  add(3);
  add(4);
  await turn();
  t.same(writes, [[1], [2, 3, 4]], 'a full batch does not wait');
});

t.test('with flushIntervalMs, what arrives during a write waits out the interval; a slow write is followed at once', async (t) => {
  const { writes, add, holdWrites, release } = queue({ flushIntervalMs: 80, maxRows: 1000 });
  holdWrites();
  add(1); // written in 80 ms, and held for 120 more
  await new Promise((r) => setTimeout(r, 200));
  t.same(writes, [[1]], 'first batch in flight');
  add(2);
  release(); // the write took longer than the interval: the next one starts at once
  await turn();
  await turn();
  t.same(writes, [[1], [2]]);
  add(3); // arrives while [2] is in flight (released at once: it commits in this turn)
  await new Promise((r) => setTimeout(r, 20));
  t.same(writes, [[1], [2]], 'a trickle waits: writes start at most every 80 ms');
  add(4);
  await new Promise((r) => setTimeout(r, 100));
  t.same(writes, [[1], [2], [3, 4]], 'then goes together');
});

t.test('flush writes what waits, at once', async (t) => {
  const { q, writes, add } = queue({ flushIntervalMs: 60_000 });
  add(1);
  await q.flush();
  t.same(writes, [[1]]);
});
