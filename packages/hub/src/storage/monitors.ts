import { sql, type Selectable } from 'kysely';
import type { Db } from './database.ts';
import type { MonitorLocationsTable, MonitorResultsTable, MonitorState, MonitorsTable } from './tables.ts';

export type Monitor = Selectable<MonitorsTable>;
export type MonitorLocation = Selectable<MonitorLocationsTable>;
export type MonitorResult = Selectable<MonitorResultsTable>;

export type MonitorInput = Pick<
  Monitor,
  'name' | 'kind' | 'target' | 'interval_s' | 'timeout_ms' | 'run_on' | 'quorum' | 'conditions' | 'options' | 'failure_threshold' | 'success_threshold' | 'cert_warn_days' | 'labels' | 'enabled'
>;

const json = (i: Partial<MonitorInput>) => ({
  ...i,
  ...(i.run_on !== undefined ? { run_on: JSON.stringify(i.run_on) } : {}),
  ...(i.conditions !== undefined ? { conditions: JSON.stringify(i.conditions) } : {}),
  ...(i.options !== undefined ? { options: JSON.stringify(i.options) } : {}),
  ...(i.labels !== undefined ? { labels: JSON.stringify(i.labels) } : {}),
});

export async function createMonitor(db: Db, m: MonitorInput & { id: string; at: Date; by: string; next_run_at: Date }): Promise<Monitor | undefined> {
  const { at, by, ...rest } = m;
  return db
    .insertInto('monitors')
    .values({ ...json(rest), id: m.id, status: 'unknown', next_run_at: m.next_run_at, created_at: at, created_by: by, updated_at: at } as never)
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function listMonitors(db: Db): Promise<Monitor[]> {
  return db.selectFrom('monitors').selectAll().orderBy('name').execute();
}

export async function getMonitor(db: Db, id: string): Promise<Monitor | undefined> {
  return db.selectFrom('monitors').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function monitorNameTaken(db: Db, name: string, except: string): Promise<boolean> {
  return (await db.selectFrom('monitors').select('id').where('name', '=', name).where('id', '<>', except).executeTakeFirst()) !== undefined;
}

export async function updateMonitor(db: Db, id: string, patch: Partial<MonitorInput> & { updated_at: Date; next_run_at?: Date }): Promise<Monitor | undefined> {
  return db
    .updateTable('monitors')
    .set(json(patch) as never)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteMonitor(db: Db, id: string): Promise<Monitor | undefined> {
  return db.deleteFrom('monitors').where('id', '=', id).returningAll().executeTakeFirst();
}

/**
 * Monitors the hub runs whose time has come, each moved to its next run: taken by one hub
 * (another skips the locked rows). The next run is an interval after this one, give or take 5 %.
 */
export async function claimDueMonitors(db: Db, now: Date, limit: number): Promise<Monitor[]> {
  const due = await db
    .selectFrom('monitors')
    .select('id')
    .where('enabled', '=', true)
    .where('next_run_at', '<=', now)
    .where(sql<boolean>`run_on = '"hub"'::jsonb`)
    .orderBy('next_run_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  if (due.length === 0) return [];
  return db
    .updateTable('monitors')
    // ±5 % (60 s ± 3 s): monitors made together drift apart instead of running in one burst each interval.
    .set({ next_run_at: sql`${now.toISOString()}::timestamptz + make_interval(secs => interval_s * (0.95 + random() * 0.1))` })
    .where(
      'id',
      'in',
      due.map((d) => d.id),
    )
    .returningAll()
    .execute();
}

export async function recordResult(db: Db, r: MonitorResult): Promise<void> {
  await db.insertInto('monitor_results').values(r).execute();
}

/** A location's row, locked for the result's transaction (made when first seen). */
export async function lockLocation(db: Db, monitorId: string, location: string): Promise<MonitorLocation> {
  await db
    .insertInto('monitor_locations')
    .values({ monitor_id: monitorId, location, state: 'unknown', failures: 0, successes: 0 })
    .onConflict((oc) => oc.columns(['monitor_id', 'location']).doNothing())
    .execute();
  return db.selectFrom('monitor_locations').selectAll().where('monitor_id', '=', monitorId).where('location', '=', location).forUpdate().executeTakeFirstOrThrow();
}

export async function setLocation(db: Db, l: MonitorLocation): Promise<void> {
  const { monitor_id, location, ...rest } = l;
  await db.updateTable('monitor_locations').set(rest).where('monitor_id', '=', monitor_id).where('location', '=', location).execute();
}

export async function locationsOf(db: Db, monitorId: string): Promise<MonitorLocation[]> {
  return db.selectFrom('monitor_locations').selectAll().where('monitor_id', '=', monitorId).orderBy('location').execute();
}

export async function setMonitorStatus(db: Db, id: string, status: MonitorState, at: Date): Promise<void> {
  await db.updateTable('monitors').set({ status, status_since: at }).where('id', '=', id).where('status', '<>', status).execute();
}

export async function listResults(db: Db, monitorId: string, since: Date, until: Date, limit: number): Promise<MonitorResult[]> {
  return db
    .selectFrom('monitor_results')
    .selectAll()
    .where('monitor_id', '=', monitorId)
    .where('at', '>=', since)
    .where('at', '<', until)
    .orderBy('at', 'desc')
    .limit(limit)
    .execute();
}

/** Share of results that were ok since `since`, and response-time percentiles (ms), computed by the database. */
export async function monitorStats(db: Db, monitorId: string, since: Date): Promise<{ results: number; uptime_pct: number | null; p50_ms: number | null; p95_ms: number | null; p99_ms: number | null }> {
  const row = await sql<{ n: string | number; ok: string | number; p50: number | null; p95: number | null; p99: number | null }>`
    SELECT count(*) AS n, count(*) FILTER (WHERE ok) AS ok,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY response_ms) AS p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY response_ms) AS p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY response_ms) AS p99
    FROM monitor_results WHERE monitor_id = ${monitorId} AND at >= ${since.toISOString()}::timestamptz`.execute(db);
  const r = row.rows[0]!;
  const n = Number(r.n);
  const round = (v: number | null) => (v === null ? null : Math.round(Number(v) * 10) / 10);
  return { results: n, uptime_pct: n === 0 ? null : Math.round((Number(r.ok) / n) * 100_000) / 1000, p50_ms: round(r.p50), p95_ms: round(r.p95), p99_ms: round(r.p99) };
}
