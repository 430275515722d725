/**
 * The schema is code you can upgrade: a database made by the last release (0.1.0, which ran
 * migrations/0001 at every start and recorded nothing) is migrated in place, keeps its rows, and
 * ends up equal to one made fresh from schema.sql, on PGlite and PostgreSQL.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { sql } from 'kysely';
import { migrate, readMigrations, MIGRATIONS_DIR, SCHEMA_PATH } from '../src/storage/migrate.ts';
import { EXEC_ORIGINS, EXEC_STATUSES, INCIDENT_STATUSES, ATTEMPT_STATUSES, ANALYSIS_STATUSES, NOTIFICATION_KINDS, RULE_MODES, INTEGRATION_KINDS, HEARTBEAT_STATUSES, PING_KINDS, MONITOR_KINDS, MONITOR_STATES } from '../src/storage/tables.ts';
import { TIMELINE_ACTORS, TIMELINE_KINDS } from '../src/storage/timeline.ts';
import { SEVERITIES } from '../src/incidents/classify.ts';
import type { HubDatabase } from '../src/storage/database.ts';
import { eachBackend, postgres } from './helpers.ts';

/** The shape of the database in the current schema: columns, constraints, indexes, triggers, functions. */
async function shape(hdb: HubDatabase) {
  const schema = (await sql<{ s: string }>`SELECT current_schema() AS s`.execute(hdb.db)).rows[0]!.s;
  // Definitions name the schema (each test works in its own): compare them without it.
  const q = async (text: string) => JSON.parse(JSON.stringify((await sql.raw(text).execute(hdb.db)).rows).replaceAll(`${schema}.`, '')) as Record<string, unknown>[];
  const here = `table_schema = current_schema()`;
  return {
    // Column order is left out: a column added by ALTER comes last, where schema.sql lists it by meaning.
    columns: await q(`SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE ${here} ORDER BY 1, 2`),
    constraints: await q(`SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
                           WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2`),
    indexes: await q(`SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1, 2`),
    triggers: await q(`SELECT event_object_table, trigger_name, event_manipulation, action_timing, action_statement FROM information_schema.triggers WHERE trigger_schema = current_schema() ORDER BY 1, 2, 3`),
    functions: await q(`SELECT proname, pg_get_functiondef(oid) AS def FROM pg_proc WHERE pronamespace = current_schema()::regnamespace ORDER BY 1`),
    migrations: await q(`SELECT version, name FROM schema_migrations ORDER BY 1`),
  };
}

const release010 = () => readFileSync(`${MIGRATIONS_DIR}/0001-release-0.1.0.sql`, 'utf8');

eachBackend(t, 'a database of the last release, migrated, equals one made fresh from schema.sql', async (t, backend) => {
  // Two databases side by side: on PGlite, two instances (the shared one switches search_path).
  const fresh = await backend.open(t, { pgliteDir: 'memory://' });
  t.same(await migrate(fresh), { from: null, to: readMigrations().length, applied: ['schema.sql'] });

  const old = await backend.open(t, { pgliteDir: 'memory://' });
  await old.exec(release010());
  // Rows the release wrote, of every kind the upgrade touches.
  await old.exec(`
    INSERT INTO agents (id, hostname, token_hash) VALUES ('a1', 'web-1', 'h1');
    INSERT INTO incidents (id, agent_id, type, source, message, status, first_seen_at, last_seen_at, severity, analysis_status)
      VALUES ('i1', 'a1', 'systemd', 'nginx.service', 'failed', 'open', now(), now(), 'high', 'done');
    INSERT INTO silences (id, match, starts_at, ends_at, cron, duration_s, reason, created_by, created_at)
      VALUES ('s1', '{"source":"api*"}', now(), now() + interval '1 day', '0 2 * * 0', 7200, 'backups', 'token:admin', now());
    INSERT INTO incident_events (id, incident_id, agent_id, at, actor, kind) VALUES ('e1', 'i1', 'a1', now(), 'agent', 'opened');`);

  const result = await migrate(old);
  t.same(result, { from: 0, to: readMigrations().length, applied: readMigrations().map((m) => m.name) });
  t.same(await shape(old), await shape(fresh), 'the same columns, constraints, indexes, triggers, functions and recorded versions');

  const kept = await sql<{ n: number }>`SELECT (SELECT count(*) FROM incidents WHERE id = 'i1' AND severity = 'high') + (SELECT count(*) FROM silences WHERE id = 's1') + (SELECT count(*) FROM incident_events WHERE id = 'e1') AS n`.execute(old.db);
  t.equal(Number(kept.rows[0]!.n), 3, 'every row is kept');

  t.same(await migrate(old), { from: readMigrations().length, to: readMigrations().length, applied: [] }, 'a second start changes nothing');
  await t.rejects(old.exec(`UPDATE incidents SET status = 'bogus' WHERE id = 'i1'`), /incidents_status_check/, 'the constraints hold');
});

eachBackend(t, 'a step that fails leaves the database as it was, and says which step', async (t, backend) => {
  const old = await backend.open(t);
  await old.exec(release010());
  // A row 0002's constraints refuse: the upgrade stops, names the step and the constraint, changes nothing.
  await old.exec(`INSERT INTO agents (id, token_hash) VALUES ('a1', 'h1');
    INSERT INTO incidents (id, agent_id, type, source, message, status, first_seen_at, last_seen_at) VALUES ('i1', 'a1', 't', 's', 'm', 'weird', now(), now());`);
  await t.rejects(migrate(old), /0002-checks-and-open-ended-silences\.sql failed, nothing was changed: .*incidents_status_check/);
  const tables = await sql<{ n: string | null }>`SELECT to_regclass('schema_migrations')::text AS n`.execute(old.db);
  t.equal(tables.rows[0]!.n, null, 'not even the version table was made');
  const silences = await sql<{ nullable: string }>`SELECT is_nullable AS nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'silences' AND column_name = 'ends_at'`.execute(old.db);
  t.equal(silences.rows[0]!.nullable, 'NO', "the step's earlier statements were rolled back");
});

eachBackend(t, 'a database newer than this hub is refused, not touched', async (t, backend) => {
  const db = await backend.open(t);
  await migrate(db);
  await db.exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999-future.sql', now())`);
  await t.rejects(migrate(db), /schema version 999, newer than this hub knows/);
});

t.test('two hubs starting at once on one PostgreSQL take turns', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL' }, async (t) => {
  const schema = `t_race_${process.pid}`;
  const [a, b] = [await postgres.open(t, { searchPath: schema }), await postgres.open(t, { searchPath: schema })];
  t.teardown(async () => {
    await a.exec(`DROP SCHEMA ${schema} CASCADE`);
  });
  const results = await Promise.all([migrate(a), migrate(b)]);
  t.same(results.map((r) => r.applied).sort(), [[], ['schema.sql']], 'one made it, the other found it made');
});

t.test('schema.sql lists the values the code uses', async (t) => {
  const text = readFileSync(SCHEMA_PATH, 'utf8');
  const listed = (table: string, column: string): string[] => {
    const body = text.slice(text.indexOf(`CREATE TABLE ${table} (`));
    const m = new RegExp(`CHECK \\(${column} IN \\(([^)]*)\\)\\)`).exec(body.slice(0, body.indexOf('\n);')));
    return m ? [...m[1]!.matchAll(/'([^']+)'/g)].map((x) => x[1]!) : [];
  };
  t.same(listed('incidents', 'status'), INCIDENT_STATUSES);
  t.same(listed('incidents', 'severity'), SEVERITIES);
  t.same(listed('incidents', 'analysis_status'), ANALYSIS_STATUSES);
  t.same(listed('exec_requests', 'status'), EXEC_STATUSES);
  t.same(listed('exec_requests', 'origin'), EXEC_ORIGINS);
  t.same(listed('incident_events', 'actor'), TIMELINE_ACTORS);
  t.same(listed('incident_events', 'kind'), TIMELINE_KINDS);
  t.same(listed('notifications', 'kind'), NOTIFICATION_KINDS);
  t.same(listed('remediation_rules', 'mode'), RULE_MODES);
  t.same(listed('remediation_attempts', 'status'), ATTEMPT_STATUSES);
  t.same(listed('integrations', 'kind'), INTEGRATION_KINDS);
  t.same(listed('heartbeat_checks', 'status'), HEARTBEAT_STATUSES);
  t.same(listed('heartbeat_pings', 'kind'), PING_KINDS);
  t.same(listed('monitors', 'kind'), MONITOR_KINDS);
  t.same(listed('monitors', 'status'), MONITOR_STATES);
  t.same(listed('monitor_locations', 'state'), MONITOR_STATES);
});

t.test('migration files are numbered without a gap', async (t) => {
  const steps = readMigrations();
  t.same(steps.map((s) => s.version), steps.map((_, i) => i + 1));
  t.ok(steps.length >= 2);
});
