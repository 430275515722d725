import t from 'tap';
import { ReadBudget } from '../src/ingest/read-budget.ts';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('the budget is per event-loop turn', async (t) => {
  const budget = new ReadBudget(3, 2);
  t.same([budget.take(), budget.take(), budget.take(), budget.take()], [true, true, true, false]);
  const turn = budget.turn;
  await nextTurn();
  t.equal(budget.turn, turn + 1, 'a new turn');
  t.equal(budget.take(), true, 'and a fresh budget');
});

t.test('deferred readers resume in later turns, a few per turn, in order', async (t) => {
  const budget = new ReadBudget(1, 2);
  const resumed: number[] = [];
  for (let i = 0; i < 5; i++) budget.defer(() => resumed.push(i));
  t.same(resumed, [], 'nothing resumes in the same turn');
  await nextTurn();
  t.same(resumed, [0, 1]);
  await nextTurn();
  t.same(resumed, [0, 1, 2, 3]);
  await nextTurn();
  t.same(resumed, [0, 1, 2, 3, 4]);
});
