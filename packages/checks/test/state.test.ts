import t from 'tap';
import { monitorState, nextLocationState, type LocationCounters } from '../src/state.ts';

t.test('a location moves by its thresholds', async (t) => {
  const m = { failure_threshold: 3, success_threshold: 2 };
  let l: LocationCounters = { state: 'unknown', failures: 0, successes: 0 };
  l = nextLocationState(l, true, m);
  t.same(l, { state: 'up', failures: 0, successes: 1 }, 'a location never seen is up at its first success');
  for (const expected of ['up', 'up', 'down'] as const) {
    l = nextLocationState(l, false, m);
    t.equal(l.state, expected, `after ${l.failures} failures: ${expected}`);
  }
  l = nextLocationState(l, true, m);
  t.same(l, { state: 'down', failures: 0, successes: 1 }, 'one success is not up');
  l = nextLocationState(l, false, m);
  t.same(l, { state: 'down', failures: 1, successes: 0 }, 'a failure between resets the successes');
  l = nextLocationState(nextLocationState(l, true, m), true, m);
  t.equal(l.state, 'up');
  t.same(nextLocationState({ state: 'unknown', failures: 0, successes: 0 }, false, { failure_threshold: 1, success_threshold: 1 }), { state: 'down', failures: 1, successes: 0 }, 'a threshold of 1 is down at once');
});

t.test('a monitor is down when a quorum of its locations is; unknown when none can tell', async (t) => {
  t.equal(monitorState([], null), 'unknown', 'no location at all');
  t.equal(monitorState(['unknown', 'unknown'], null), 'unknown', 'no location has a state (every agent offline)');
  t.equal(monitorState(['down', 'up', 'up'], null), 'up', 'one of three down is not an outage');
  t.equal(monitorState(['down', 'down', 'up'], null), 'down', 'a majority of three is');
  t.equal(monitorState(['down', 'down', 'unknown'], null), 'down', 'two of three down, the third offline: still a majority');
  t.equal(monitorState(['down', 'unknown', 'unknown'], null), 'unknown', 'one down, the others offline: too few to decide, and nobody sees it up');
  t.equal(monitorState(['up', 'unknown', 'unknown'], null), 'up', 'one up, the others offline');
  t.equal(monitorState(['down', 'up', 'up'], 1), 'down', 'an explicit quorum of 1');
  t.equal(monitorState(['down', 'down'], 3), 'down', 'a quorum larger than the locations asks for all of them');
  t.equal(monitorState(['down', 'up'], 3), 'up');
  t.equal(monitorState(['down'], null), 'down');
  t.equal(monitorState(['down', 'down', 'up', 'up'], null), 'up', 'half of four is not a majority');
  t.equal(monitorState(['down', 'down', 'up', 'up'], 2), 'down', 'but meets a quorum of 2');
});
