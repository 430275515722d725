/**
 * How many statements the events lane sends for what it stores, counted from Kysely's log of
 * every statement (BEGIN and COMMIT included), on both databases: a lone alert with its envelope
 * id is one statement and no transaction, with Slack on or off; a repeat that changes the
 * classification and a reopen commit their follow-up together after it; a copy seen before is
 * one statement that changes nothing; several events in one batch share one transaction; a lone
 * exec result is one statement.
 */
import t from 'tap';
import { sql } from 'kysely';
import type { AlertPayload, ExecResultPayload } from '@opspilot/protocol';
import { eachBackend, postgres } from './helpers.ts';
import { migrate } from '../src/storage/migrate.ts';
import { storeEvents } from '../src/ingest/events.ts';
import { createExecRequest } from '../src/storage/exec-requests.ts';
import type { EventItem } from '../src/storage/ingest-batch.ts';
import type { LifecycleOptions } from '../src/incidents/lifecycle.ts';

const AGENT = 'agent-1';
/** Past one repeat within ten minutes, a systemd failure is critical: a repeat reclassifies it. */
const RULES: LifecycleOptions['rules'] = [{ name: 'keeps-failing', severity: 'critical', category: 'service', types: ['systemd'], repeats: { count: 2, withinS: 600 } }];
const failed = (source: string): AlertPayload => ({ type: 'systemd', source, message: `${source} failed` });

eachBackend(t, 'a lone alert is one statement; its rare follow-ups commit after it; a batch is one transaction', async (t, backend) => {
  let sent: string[] = [];
  const db = await backend.open(t, {
    log: (e) => {
      if (e.level === 'query') sent.push(e.query.sql);
    },
  });
  await migrate(db);
  await sql`INSERT INTO agents (id, hostname, token_hash) VALUES (${AGENT}, 'web-1', 'h')`.execute(db.db);
  let clock = Date.parse('2026-12-02T06:00:00Z');
  const at = () => new Date((clock += 1000));
  /** Store `items` as the events lane does; the statements it sent. */
  const store = async (notify: boolean, ...items: EventItem[]) => {
    sent = [];
    const outcome = await storeEvents(db.db, { items, ids: [], receivedAt: at() }, { rules: RULES, notify });
    return { outcome, sent: sent.map((s) => (/^(begin|commit|rollback)$/i.test(s) ? s.toLowerCase() : s.slice(0, 40))) };
  };
  const alert = (msgId: string | undefined, payload: AlertPayload): EventItem => ({ kind: 'alert', agentId: AGENT, at: at(), payload, ...(msgId ? { msgId } : {}) });
  const incident = async (source: string) =>
    (await sql<{ id: string; count: number; severity: string; status: string }>`SELECT id, count, severity, status FROM incidents WHERE source = ${source}`.execute(db.db)).rows[0]!;
  const timeline = async (id: string) => (await sql<{ kind: string }>`SELECT kind FROM incident_events WHERE incident_id = ${id} ORDER BY id`.execute(db.db)).rows.map((r) => r.kind);
  const messages = async (id: string) =>
    (await sql<{ version: number }>`SELECT version FROM notifications WHERE incident_id = ${id} AND kind = 'message'`.execute(db.db)).rows.map((r) => Number(r.version));

  // A new incident, Slack off: one statement, with its timeline and remediation queue entry.
  let r = await store(false, alert('m1', failed('api.service')));
  t.equal(r.sent.length, 1, `one statement: ${JSON.stringify(r.sent)}`);
  t.notOk(r.sent.includes('begin'), 'no transaction');
  const api = await incident('api.service');
  t.match(api, { count: 1, status: 'new' });
  t.not(api.severity, 'critical', 'one failure: not the repeat rule');
  t.same(await timeline(api.id), ['opened', 'classified']);
  t.equal(Number((await sql<{ n: number }>`SELECT count(*) AS n FROM remediation_queue WHERE incident_id = ${api.id}`.execute(db.db)).rows[0]!.n), 1, 'queued for the remediation rules');
  t.same(r.outcome.opened, [api.id]);

  // Slack on: still one statement, and the incident's message is queued by it.
  r = await store(true, alert('m2', failed('db.service')));
  t.equal(r.sent.length, 1, `one statement with Slack on: ${JSON.stringify(r.sent)}`);
  const dbInc = await incident('db.service');
  t.same(await messages(dbInc.id), [1], 'its Slack message queued in the same statement');

  // The same envelope again: one statement, nothing recorded.
  r = await store(true, alert('m2', failed('db.service')));
  t.equal(r.sent.length, 1);
  t.equal((await incident('db.service')).count, 1, 'a copy seen before changes nothing');
  t.same(r.outcome.incidents, []);
  t.same(await messages(dbInc.id), [1]);

  // A repeat within ten minutes: the rule reclassifies it. The statement, then the follow-up in
  // one transaction of its own, the Slack message edited again to show the new severity.
  r = await store(true, alert('m3', failed('db.service')));
  t.equal(r.sent[1], 'begin', `the follow-up after the statement: ${JSON.stringify(r.sent)}`);
  t.equal(r.sent.at(-1), 'commit');
  t.match(await incident('db.service'), { count: 2, severity: 'critical' });
  t.same(await timeline(dbInc.id), ['opened', 'classified', 'repeated', 'classified']);
  t.same(await messages(dbInc.id), [3], 'queued by the statement, then again with the new classification');

  // A repeat that changes nothing else: one statement.
  r = await store(true, alert('m4', failed('db.service')));
  t.equal(r.sent.length, 1, `a plain repeat: ${JSON.stringify(r.sent)}`);
  t.same(await messages(dbInc.id), [4]);

  // Resolved, then failing again within 30 minutes: reopened, and checked for flapping after the statement.
  r = await store(false, { kind: 'resolve', agentId: AGENT, msgId: 'm5', at: at(), payload: { type: 'systemd', source: 'api.service' } });
  t.equal(r.sent[0], 'begin', 'a resolve goes in a transaction');
  t.equal((await incident('api.service')).status, 'resolved');
  r = await store(false, alert('m6', failed('api.service')));
  t.equal(r.sent[1], 'begin', `the flapping check after the reopen: ${JSON.stringify(r.sent)}`);
  t.equal(r.sent.at(-1), 'commit');
  t.match(await incident('api.service'), { status: 'new', count: 2 });
  t.same(await timeline(api.id), ['opened', 'classified', 'resolved', 'reopened', 'classified']);

  // Two alerts in one batch: one transaction around both.
  r = await store(false, alert('m7', failed('a.service')), alert('m8', failed('b.service')));
  t.equal(r.sent[0], 'begin', `a batch: ${JSON.stringify(r.sent)}`);
  t.equal(r.sent.at(-1), 'commit');
  t.equal(r.sent.length, 4, 'begin, two statements, commit');

  // An alert without an envelope id (the hub's own, or an old agent's) keeps its transaction: a
  // retry after a failure would count it twice.
  r = await store(false, alert(undefined, failed('c.service')));
  t.equal(r.sent[0], 'begin', `no envelope id: ${JSON.stringify(r.sent)}`);

  // A lone exec result: one statement.
  await createExecRequest(db.db, { id: 'ex-1', agentId: AGENT, command: 'service_status', params: { service: 'db' }, timeoutMs: 5000, requestedBy: 'token:admin', origin: 'rest', at: at() });
  const result: ExecResultPayload = { request_id: 'ex-1', ok: true, exit_code: 0, stdout: 'active', stderr: '', duration_ms: 3, truncated: false };
  r = await store(false, { kind: 'exec_result', agentId: AGENT, msgId: 'm9', at: at(), payload: result });
  t.equal(r.sent.length, 1, `an exec result: ${JSON.stringify(r.sent)}`);
  t.same(r.outcome.completedExecs.map((e) => e.id), ['ex-1']);
});

eachBackend(t, 'a lone alert whose follow-up fails is stored once: the retry finds its envelope claimed', async (t, backend) => {
  const db = await backend.open(t);
  await migrate(db);
  await sql`INSERT INTO agents (id, hostname, token_hash) VALUES (${AGENT}, 'web-1', 'h')`.execute(db.db);
  const at = new Date('2026-12-02T06:00:00Z');
  const first = { kind: 'alert' as const, agentId: AGENT, msgId: 'm1', at, payload: failed('db.service') };
  await storeEvents(db.db, { items: [first], ids: [], receivedAt: at }, { rules: RULES, notify: false });
  // The follow-up's table refuses writes: the repeat's statement commits, its reclassification fails.
  await sql`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$`.execute(db.db);
  await sql`CREATE TRIGGER refuse BEFORE UPDATE OF severity ON incidents FOR EACH ROW EXECUTE FUNCTION refuse()`.execute(db.db);
  const repeat = { ...first, msgId: 'm2', at: new Date(at.getTime() + 1000) };
  await t.rejects(storeEvents(db.db, { items: [repeat], ids: [], receivedAt: repeat.at }, { rules: RULES, notify: false }), /refused/);
  await sql`DROP TRIGGER refuse ON incidents`.execute(db.db);
  // The lane retries the batch: the claim makes it a no-op, so the alert is counted once.
  const retried = await storeEvents(db.db, { items: [repeat], ids: [], receivedAt: repeat.at }, { rules: RULES, notify: false });
  t.same(retried.incidents, [], 'the retry records nothing');
  const row = (await sql<{ count: number; severity: string }>`SELECT count, severity FROM incidents`.execute(db.db)).rows[0]!;
  t.equal(Number(row.count), 2, 'counted once');
  t.not(row.severity, 'critical', 'the reclassification waits for the next alert');
  // And the next alert brings it.
  const third = { ...first, msgId: 'm3', at: new Date(at.getTime() + 2000) };
  await storeEvents(db.db, { items: [third], ids: [], receivedAt: third.at }, { rules: RULES, notify: false });
  t.equal((await sql<{ severity: string }>`SELECT severity FROM incidents`.execute(db.db)).rows[0]!.severity, 'critical');
});

t.test('a lone alert\'s follow-up does not overwrite the classification of an alert that came after it at another hub', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL (several hubs need PostgreSQL)' }, async (t) => {
  // Two repeat rules: a second failure is one thing, a third another (the first that matches wins).
  const rules: LifecycleOptions['rules'] = [
    { name: 'third-failure', severity: 'critical', category: 'service', types: ['systemd'], repeats: { count: 3, withinS: 600 } },
    { name: 'second-failure', severity: 'low', category: 'service', types: ['systemd'], repeats: { count: 2, withinS: 600 } },
  ];
  const schema = `t_follow_${process.pid}`;
  /** Run once, right after hub A's next statement has committed and before A goes on to its follow-up. */
  let between: (() => Promise<void>) | null = null;
  const a = await postgres.open(t, {
    searchPath: schema,
    log: async (e) => {
      if (e.level !== 'query' || !between) return;
      const run = between;
      between = null;
      await run(); // Kysely waits for its logger: A's next step waits for this
    },
  });
  const b = await postgres.open(t, { searchPath: schema });
  t.teardown(async () => {
    await b.exec(`DROP SCHEMA ${schema} CASCADE`);
  });
  await migrate(a);
  await sql`INSERT INTO agents (id, hostname, token_hash) VALUES (${AGENT}, 'web-1', 'h')`.execute(a.db);
  const start = Date.parse('2026-12-02T06:00:00Z');
  const item = (msgId: string, s: number): EventItem => ({ kind: 'alert', agentId: AGENT, msgId, at: new Date(start + s * 1000), payload: failed('db.service') });
  const store = (db: typeof a, it: EventItem) => storeEvents(db.db, { items: [it], ids: [], receivedAt: it.at }, { rules, notify: false });

  await store(a, item('m1', 0));
  // Hub A takes the second failure; between its statement and its follow-up, hub B takes the third.
  between = async () => {
    await store(b, item('m3', 2));
  };
  await store(a, item('m2', 1));
  t.equal(between, null, 'hub B ran between hub A\'s statement and its follow-up');
  const row = (await sql<{ count: number; rule: string; severity: string }>`SELECT count, rule, severity FROM incidents`.execute(a.db)).rows[0]!;
  t.match(row, { count: 3, rule: 'third-failure', severity: 'critical' }, 'the classification of the newest count stays');
  const classified = (await sql<{ detail: { rule: string } }>`SELECT detail FROM incident_events WHERE kind = 'classified' ORDER BY id`.execute(a.db)).rows.map((r) => r.detail.rule);
  t.equal(classified.length, 2, `the first classification and the third failure's only: ${JSON.stringify(classified)}`);
  t.equal(classified.at(-1), 'third-failure');
});
