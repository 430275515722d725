import { CronExpressionParser } from 'cron-parser';
import type { Db } from './database.ts';
import type { MatchSubject, Silence } from './tables.ts';

/**
 * The window of a silence that contains `at`, if any: a one-off silence is its own window; a
 * recurring one opens at each cron occurrence for `duration_s`, between starts_at and ends_at.
 */
export function activeWindow(s: Pick<Silence, 'starts_at' | 'ends_at' | 'cron' | 'duration_s'>, at: Date): { from: Date; until: Date } | null {
  if (at < s.starts_at || at >= s.ends_at) return null;
  if (!s.cron || !s.duration_s) return { from: s.starts_at, until: s.ends_at };
  // The latest occurrence at or before `at` (cron's minute resolution: look from the next second).
  const last = CronExpressionParser.parse(s.cron, { currentDate: new Date(at.getTime() + 1000), tz: 'UTC' }).prev().toDate();
  const until = new Date(Math.min(last.getTime() + s.duration_s * 1000, s.ends_at.getTime()));
  return last <= at && at < until ? { from: last, until } : null;
}

/** Throws with the reason when the expression is not a cron expression. */
export function checkCron(expr: string): void {
  CronExpressionParser.parse(expr, { tz: 'UTC' });
}

export async function liveSilences(db: Db, at: Date): Promise<Silence[]> {
  return db.selectFrom('silences').selectAll().where('deleted_at', 'is', null).where('starts_at', '<=', at).where('ends_at', '>', at).execute();
}

/** What a silence is matched against, for one incident. */
export async function subjectOf(db: Db, incidentId: string): Promise<MatchSubject | undefined> {
  const row = await db
    .selectFrom('incidents as i')
    .innerJoin('agents as a', 'a.id', 'i.agent_id')
    .select(['i.type', 'i.source', 'i.severity', 'i.category', 'i.agent_id', 'a.labels'])
    .where('i.id', '=', incidentId)
    .executeTakeFirst();
  return row ? { ...row, labels: row.labels ?? {} } : undefined;
}

export async function createSilence(db: Db, s: Omit<Silence, 'deleted_at'>): Promise<void> {
  await db.insertInto('silences').values({ ...s, match: JSON.stringify(s.match) }).execute();
}

export async function listSilences(db: Db, includeEnded: boolean, at: Date): Promise<Silence[]> {
  let q = db.selectFrom('silences').selectAll().where('deleted_at', 'is', null);
  if (!includeEnded) q = q.where('ends_at', '>', at);
  return q.orderBy('id').execute();
}

/** Silences are ended, not erased (the audit trail names them). */
export async function deleteSilence(db: Db, id: string, at: Date): Promise<Silence | undefined> {
  return db.updateTable('silences').set({ deleted_at: at }).where('id', '=', id).where('deleted_at', 'is', null).returningAll().executeTakeFirst();
}
