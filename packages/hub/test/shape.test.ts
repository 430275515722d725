// A statement built once and bound to each call's values (storage/shape.ts) must be, for every
// call, exactly the statement Kysely would have built for that call's values: the same text and
// the same parameters in the same order.
import t from 'tap';
import { sql, type Kysely } from 'kysely';
import { compileOnly, statementShape } from '../src/storage/shape.ts';
import { alertQuery, alertStatement, type AlertShape, type AlertValues } from '../src/storage/incidents.ts';
import type { Database } from '../src/storage/tables.ts';

const db = compileOnly();

t.test('a shape binds each call its own values, and keeps the constants it was built with', async (t) => {
  let builds = 0;
  const shape = statementShape((db: Kysely<Database>, v: { id: string; at: Date; n: number | null }) => {
    builds++;
    return db.updateTable('incidents').set({ last_seen_at: v.at, count: v.n as number }).where('id', '=', v.id).where('status', '<>', 'resolved');
  });
  const a = new Date(0);
  const b = new Date(1000);
  const first = shape(db, { id: 'one', at: a, n: 1 });
  const second = shape(db, { id: 'two', at: b, n: null });
  t.equal(builds, 1, 'built once');
  t.equal(first.sql, second.sql);
  t.equal(first.sql, 'update "incidents" set "last_seen_at" = $1, "count" = $2 where "id" = $3 and "status" <> $4');
  t.same(first.parameters, [a, 1, 'one', 'resolved']);
  t.same(second.parameters, [b, null, 'two', 'resolved'], 'a constant operand stays');
  t.not(first.queryId, second.queryId, 'each call its own query');
});

t.test('a shape refuses a build that writes a slot into the text, changes it, or reads inside it, and a call without a value', async (t) => {
  const inText = statementShape((db: Kysely<Database>, v: { name: string }) => db.selectFrom('agents').select(sql.lit(v.name).as('x')));
  t.throws(() => inText(db, { name: 'a' }), /written into the text/);
  const changed = statementShape((db: Kysely<Database>, v: { name: string }) => db.selectFrom('agents').selectAll().where('hostname', '=', `${v.name}.local`));
  t.throws(() => changed(db, { name: 'a' }), /changed, not passed/);
  const inside = statementShape((db: Kysely<Database>, v: { at: Date }) => db.selectFrom('agents').selectAll().where('created_at', '>', new Date(v.at.getTime() - 1)));
  t.throws(() => inside(db, { at: new Date() }));
  const ok = statementShape((db: Kysely<Database>, v: { id: string }) => db.selectFrom('agents').selectAll().where('id', '=', v.id));
  t.throws(() => ok(db, {} as { id: string }), /no value for id/);
  t.equal(ok(db, { id: 'x' }).parameters[0], 'x', 'and the shape still works after a refused call');
});

const base: AlertValues = {
  id: 'inc1',
  agentId: 'agent1',
  type: 'unit_failed',
  source: 'nginx.service',
  message: 'nginx failed',
  exitCode: 1,
  unitStatus: 'failed',
  context: '{"k":"v"}',
  logs: 'line 1\nline 2',
  at: new Date('2026-12-02T00:00:00Z'),
  atText: '2026-12-02T00:00:00.000Z',
  reopenSince: new Date('2026-12-01T23:30:00Z'),
  changeEventId: 'ev1',
  classifiedEventId: 'ev2',
  actor: 'agent',
  severity: 'high',
  category: 'service',
  rule: 'unit_failed',
  fresh: '{"severity":"high"}',
  openedDetail: '{"message":"nginx failed"}',
  msgId: null,
  receivedAt: null,
  notificationId: 'n1',
};

t.test("recordAlert's bound statement is, call after call, what Kysely builds for the same values", async (t) => {
  const claim = { msgId: 'm1', receivedAt: '2026-12-02T00:00:01.000Z' };
  const variants: [AlertValues, AlertShape][] = [
    [base, { claimed: false, notify: false }],
    [{ ...base, exitCode: null, unitStatus: null, context: null, logs: null }, { claimed: false, notify: false }],
    [{ ...base, id: 'inc2', message: "it's $1 and \u0000 and ${x}", logs: 'x'.repeat(300_000), at: new Date(5), atText: new Date(5).toISOString() }, { claimed: false, notify: true }],
    [{ ...base, ...claim }, { claimed: true, notify: false }],
    [{ ...base, msgId: 'm2', receivedAt: '2026-12-02T00:00:02.000Z', exitCode: null, logs: null }, { claimed: true, notify: false }],
    [{ ...base, ...claim, notificationId: 'n2' }, { claimed: true, notify: true }],
    [{ ...base, notificationId: 'n3', context: null }, { claimed: false, notify: true }],
  ];
  for (const [values, shape] of variants) {
    const bound = alertQuery(db, values, shape);
    const built = alertStatement(db, values, shape).compile();
    t.equal(bound.sql, built.sql, `text (${JSON.stringify(shape)})`);
    t.same(bound.parameters, built.parameters, `parameters (${JSON.stringify(shape)}, message ${values.message.slice(0, 12)})`);
    t.equal(bound.parameters.length, built.parameters.length);
  }
  const texts = new Set([false, true].flatMap((claimed) => [false, true].map((notify) => alertQuery(db, { ...base, ...claim }, { claimed, notify }).sql)));
  t.equal(texts.size, 4, 'four shapes');
  t.notMatch(alertQuery(db, base, { claimed: false, notify: false }).sql, /notifications/, 'without Slack, no notification step');
  t.match(alertQuery(db, base, { claimed: false, notify: true }).sql, /insert into "notifications"/, 'with Slack, the message queued');
});
