import type { Selectable } from 'kysely';
import type { Db } from './database.ts';
import { hubIntegration, type Integration } from './integrations.ts';
import type { HeartbeatChecksTable, HeartbeatPingsTable, HeartbeatStatus } from './tables.ts';

export type HeartbeatCheck = Selectable<HeartbeatChecksTable>;
export type HeartbeatPing = Selectable<HeartbeatPingsTable>;

export interface CheckInput {
  name: string;
  period_s: number | null;
  cron: string | null;
  tz: string;
  grace_s: number;
  service: string | null;
  host: string | null;
  labels: Record<string, string>;
}

export async function createCheck(db: Db, c: CheckInput & { id: string; ping_key: string; at: Date; by: string }): Promise<HeartbeatCheck | undefined> {
  return db
    .insertInto('heartbeat_checks')
    .values({
      id: c.id,
      ping_key: c.ping_key,
      name: c.name,
      period_s: c.period_s,
      cron: c.cron,
      tz: c.tz,
      grace_s: c.grace_s,
      service: c.service,
      host: c.host,
      labels: JSON.stringify(c.labels),
      status: 'new',
      created_at: c.at,
      created_by: c.by,
      updated_at: c.at,
    })
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function listChecks(db: Db): Promise<HeartbeatCheck[]> {
  return db.selectFrom('heartbeat_checks').selectAll().orderBy('name').execute();
}

export async function getCheck(db: Db, id: string): Promise<HeartbeatCheck | undefined> {
  return db.selectFrom('heartbeat_checks').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The check a ping names, locked for the ping's transaction. */
export async function lockCheckByKey(db: Db, key: string): Promise<HeartbeatCheck | undefined> {
  return db.selectFrom('heartbeat_checks').selectAll().where('ping_key', '=', key).forUpdate().executeTakeFirst();
}

export async function nameTaken(db: Db, name: string, except: string): Promise<boolean> {
  return (await db.selectFrom('heartbeat_checks').select('id').where('name', '=', name).where('id', '<>', except).executeTakeFirst()) !== undefined;
}

/** Change a check's settings or state (the caller decides both, in its transaction). */
export async function setCheck(
  db: Db,
  id: string,
  patch: Partial<Omit<CheckInput, 'labels'>> & { labels?: Record<string, string> } & Partial<
    Pick<HeartbeatCheck, 'status' | 'last_ping_at' | 'last_success_at' | 'started_at' | 'started_rid' | 'due_at' | 'down_at'>
  > & { updated_at?: Date },
): Promise<HeartbeatCheck | undefined> {
  const { labels, ...rest } = patch;
  return db
    .updateTable('heartbeat_checks')
    .set({ ...rest, ...(labels !== undefined ? { labels: JSON.stringify(labels) } : {}) })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteCheck(db: Db, id: string): Promise<HeartbeatCheck | undefined> {
  return db.deleteFrom('heartbeat_checks').where('id', '=', id).returningAll().executeTakeFirst();
}

export async function recordPing(db: Db, p: HeartbeatPing): Promise<void> {
  await db.insertInto('heartbeat_pings').values(p).execute();
}

export async function listPings(db: Db, checkId: string, limit: number): Promise<HeartbeatPing[]> {
  return db.selectFrom('heartbeat_pings').selectAll().where('check_id', '=', checkId).orderBy('id', 'desc').limit(limit).execute();
}

/**
 * Checks whose expected ping is overdue: up (or started) past `due_at` become late. Returns how
 * many turned late.
 */
export async function markLate(db: Db, now: Date): Promise<number> {
  const r = await db
    .updateTable('heartbeat_checks')
    .set({ status: 'late' })
    .where('status', '=', 'up')
    .where('due_at', '<=', now)
    .where((eb) => eb.or([eb('down_at', 'is', null), eb('down_at', '>', now)]))
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/**
 * Checks past their `down_at` (no success within the grace after they were due, or after a run
 * started), taken for this transaction: another hub skips them.
 */
export async function claimDown(db: Db, now: Date, limit: number): Promise<HeartbeatCheck[]> {
  return db
    .selectFrom('heartbeat_checks')
    .selectAll()
    .where('status', 'in', ['up', 'started', 'late'] satisfies HeartbeatStatus[])
    .where('down_at', '<=', now)
    .orderBy('down_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
}

/** The hub's own integration for heartbeat checks' incidents (see hubIntegration). */
export function heartbeatIntegration(db: Db, at: Date): Promise<Pick<Integration, 'id' | 'kind' | 'name'>> {
  return hubIntegration(db, 'heartbeat', at);
}
