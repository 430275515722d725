import t from 'tap';
import { globMatch, matches } from '../src/remediation/match.ts';

t.test('globs: * any run, ? one character, the rest literal, the whole text', async (t) => {
  const yes: [string, string][] = [
    ['api*.service', 'api.service'],
    ['api*.service', 'api-2.service'],
    ['*', ''],
    ['*', 'anything/with/slashes'],
    ['a?c', 'abc'],
    ['*.service', 'x.y.service'],
    ['a*b*c', 'aXbYbZc'],
    ['?', '🚀'],
    ['[x]+(y)', '[x]+(y)'],
    ['**a**', 'ba'],
  ];
  const no: [string, string][] = [
    ['api*.service', 'api.services'],
    ['api*.service', 'xapi.service'],
    ['a?c', 'ac'],
    ['a.c', 'abc'],
    ['[x]+', 'xx'],
    ['a*b', 'a'],
    ['?', ''],
  ];
  for (const [g, s] of yes) t.ok(globMatch(g, s), `${g} matches ${JSON.stringify(s)}`);
  for (const [g, s] of no) t.notOk(globMatch(g, s), `${g} does not match ${JSON.stringify(s)}`);
});

t.test('a hostile glob is just a glob: the silence pattern that blocked the hub 16.7 s gives its answer', async (t) => {
  const hostile = '*?'.repeat(200) + '#';
  t.notOk(globMatch(hostile, 'a'.repeat(1024)));
  t.ok(globMatch(hostile, `${'a'.repeat(1023)}#`));
  t.ok(matches({ source: hostile.slice(0, 512) }, { type: 'systemd', source: 'a'.repeat(300), severity: null, category: null, agent_id: 'x', integration_id: null, service: null, labels: {} }) === false);
});
