import t from 'tap';
import { Coalescer } from '../src/ingest/coalesce.ts';

/** A statement the test answers by hand: records each batch it was given. */
function fakeStatement<Res>(answer: (req: string) => Res | Error) {
  const batches: string[][] = [];
  const inFlight: (() => void)[] = [];
  let hold = false;
  const run = async (reqs: string[]): Promise<Res[]> => {
    batches.push(reqs);
    if (hold) await new Promise<void>((resolve) => inFlight.push(resolve));
    const out = reqs.map(answer);
    const failed = out.find((r) => r instanceof Error);
    if (failed) throw failed;
    return out as Res[];
  };
  return {
    run,
    batches,
    hold(on: boolean) {
      hold = on;
    },
    release() {
      for (const r of inFlight.splice(0)) r();
    },
    get inFlight() {
      return inFlight.length;
    },
  };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('requests of one turn share a statement; a lone one goes alone, at the end of its turn', async (t) => {
  const stmt = fakeStatement((r) => r.toUpperCase());
  const c = new Coalescer(stmt.run, { maxBatch: 100 });
  t.same(await Promise.all(['a', 'b', 'c'].map((r) => c.request(r))), ['A', 'B', 'C'], 'each its own answer, in order');
  t.same(stmt.batches, [['a', 'b', 'c']], 'one statement');
  t.equal(await c.request('d'), 'D');
  t.same(stmt.batches.at(-1), ['d'], 'a lone request: a statement of its own');
});

t.test('requests made while a statement is in flight wait and go together as soon as it returns', async (t) => {
  const stmt = fakeStatement((r) => r);
  const c = new Coalescer(stmt.run, { maxBatch: 100 });
  stmt.hold(true);
  const first = c.request('1');
  await turn();
  t.equal(stmt.inFlight, 1, 'the first is in flight');
  const later = Array.from({ length: 50 }, (_, i) => c.request(`x${i}`));
  await turn();
  await turn();
  t.equal(stmt.batches.length, 1, 'nothing else sent while it is in flight');
  t.equal(c.waiting, 50);
  stmt.hold(false);
  stmt.release();
  await first;
  t.same(await Promise.all(later), Array.from({ length: 50 }, (_, i) => `x${i}`));
  t.equal(stmt.batches.length, 2, 'the fifty waiting went in one statement');
  t.same(c.stats, { batches: 2, requests: 51, fallbacks: 0 });
});

t.test('a batch holds at most maxBatch requests, and one per key', async (t) => {
  const stmt = fakeStatement((r) => r);
  const c = new Coalescer(stmt.run, { maxBatch: 3, key: (r: string) => r.split(':')[0]! });
  const reqs = ['a:1', 'a:2', 'b:1', 'c:1', 'd:1', 'a:3'];
  t.same(await Promise.all(reqs.map((r) => c.request(r))), reqs, 'every request answered');
  t.same(stmt.batches, [['a:1', 'b:1', 'c:1'], ['a:2', 'd:1'], ['a:3']], 'no key twice in a batch, no batch over three, order kept per key');
});

t.test('a failed statement fails nobody it need not: its halves are tried, one statement at a time', async (t) => {
  let inFlight = 0;
  let most = 0;
  const batches: string[][] = [];
  const c = new Coalescer(
    async (reqs: string[]) => {
      batches.push(reqs);
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
      if (reqs.includes('poison')) throw new Error('cannot answer poison');
      return reqs;
    },
    { maxBatch: 100 },
  );
  const reqs = Array.from({ length: 16 }, (_, i) => (i === 5 ? 'poison' : `r${i}`));
  const results = await Promise.allSettled(reqs.map((r) => c.request(r)));
  t.same(
    results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    reqs.map((r) => (r === 'poison' ? 'cannot answer poison' : r)),
    'the poison fails alone; every other request answered',
  );
  t.equal(most, 1, 'never two statements at once');
  t.same(batches.map((b) => b.length), [16, 8, 4, 4, 2, 1, 1, 2, 8], 'halved down to the one that failed: 9 statements for 16 requests, not 17');
  t.equal(await c.request('after'), 'after', 'and the next batch goes as usual');
});

t.test('a statement answering the wrong number of rows is a failure, not a misattribution', async (t) => {
  const c = new Coalescer(async (reqs: string[]) => (reqs.length > 1 ? reqs.slice(1) : reqs), { maxBatch: 100 });
  t.same(await Promise.all(['a', 'b'].map((r) => c.request(r))), ['a', 'b'], 'retried alone, each got its own');
  const none = new Coalescer(async () => [] as string[], { maxBatch: 100 });
  await t.rejects(none.request('a'), { message: /a batch of 1 got 0 answers/ });
});

t.test('closing sends what waits, refuses what comes after, and resolves once the last statement returned', async (t) => {
  const stmt = fakeStatement((r) => r);
  const c = new Coalescer(stmt.run, { maxBatch: 100 });
  stmt.hold(true);
  const first = c.request('1');
  await turn();
  const waiting = [c.request('2'), c.request('3')];
  let closed = false;
  const closing = c.close().then(() => (closed = true));
  await t.rejects(c.request('4'), { name: 'CoalescerClosedError' }, 'asked after close: refused at once');
  await turn();
  t.notOk(closed, 'not closed while a statement is in flight');
  stmt.release();
  await first;
  await turn();
  stmt.release();
  t.same(await Promise.all(waiting), ['2', '3'], 'what waited was sent');
  await closing;
  t.ok(closed);
  t.same(stmt.batches, [['1'], ['2', '3']], '4 never sent');
  await new Coalescer(stmt.run, { maxBatch: 1 }).close(); // nothing asked: closes at once
});
