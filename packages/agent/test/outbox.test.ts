import t, { type Test } from 'tap';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { newId } from '@opspilot/protocol';
import { Outbox } from '../src/outbox.ts';

function dir(t: Test): string {
  const d = mkdtempSync(path.join(tmpdir(), 'opspilot-outbox-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('entries survive a restart until acked, in sending order', async (t) => {
  const d = dir(t);
  const ids = [newId(), newId(), newId()];
  const first = new Outbox({ dir: d, maxEntries: 100 });
  first.put({ id: ids[0]!, type: 'alert', frame: '{"a":1}' });
  first.put({ id: ids[1]!, type: 'exec_result', frame: '{"a":2}' });
  first.put({ id: ids[2]!, type: 'resolve', frame: '{"a":3}' });
  first.put({ id: ids[0]!, type: 'alert', frame: '{"changed":true}' }); // same id: kept once, as first written
  first.ack([ids[1]!, 'unknown-id']);

  const second = new Outbox({ dir: d, maxEntries: 100 });
  t.same(second.pending(), [
    { id: ids[0], type: 'alert', frame: '{"a":1}' },
    { id: ids[2], type: 'resolve', frame: '{"a":3}' },
  ]);
  second.ack([ids[0]!, ids[2]!]);
  t.equal(new Outbox({ dir: d, maxEntries: 100 }).size, 0);
  t.same(readdirSync(d), []);
});

t.test('a half-written temp file from a crash is discarded, not sent', async (t) => {
  const d = dir(t);
  writeFileSync(path.join(d, `${newId()}.alert.json.tmp`), '{"trunc');
  writeFileSync(path.join(d, 'stray.txt'), 'x');
  const box = new Outbox({ dir: d, maxEntries: 10 });
  t.equal(box.size, 0);
  t.notOk(readdirSync(d).some((n) => n.endsWith('.tmp')));
});

t.test('bounded: the oldest non-alert goes first, alerts last', async (t) => {
  const d = dir(t);
  const dropped: string[] = [];
  const box = new Outbox({ dir: d, maxEntries: 3, onDrop: (e) => dropped.push(`${e.type}`) });
  box.put({ id: newId(), type: 'alert', frame: 'a1' });
  box.put({ id: newId(), type: 'exec_result', frame: 'r1' });
  box.put({ id: newId(), type: 'alert', frame: 'a2' });
  box.put({ id: newId(), type: 'alert', frame: 'a3' }); // full: the exec_result goes
  t.same(box.pending().map((e) => e.frame), ['a1', 'a2', 'a3']);
  box.put({ id: newId(), type: 'resolve', frame: 's1' }); // only alerts left: the oldest alert goes
  t.same(box.pending().map((e) => e.frame), ['a2', 'a3', 's1']);
  t.same(dropped, ['exec_result', 'alert']);
  t.equal(readdirSync(d).length, 3, 'the files follow');
});

t.test('ids that could escape the directory are refused', async (t) => {
  const box = new Outbox({ dir: dir(t), maxEntries: 10 });
  for (const id of ['../x', 'a/b', '', 'x'.repeat(65)]) {
    t.throws(() => box.put({ id, type: 'alert', frame: '{}' }), /invalid outbox id/);
  }
});
