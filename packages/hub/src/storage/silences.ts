import { CronExpressionParser } from 'cron-parser';
import type { Db } from './database.ts';
import type { MatchSubject, Silence } from './tables.ts';

/**
 * The window of a silence that contains `at`, if any: a one-off silence is its own window; a
 * recurring one opens at each cron occurrence for `duration_s`, from starts_at until ends_at (or
 * for good when it has none).
 */
export function activeWindow(s: Pick<Silence, 'starts_at' | 'ends_at' | 'cron' | 'duration_s'>, at: Date): { from: Date; until: Date } | null {
  if (at < s.starts_at || (s.ends_at && at >= s.ends_at)) return null;
  if (!s.cron || !s.duration_s) return s.ends_at ? { from: s.starts_at, until: s.ends_at } : null;
  // The latest occurrence at or before `at` (cron's minute resolution: look from the next second).
  const last = CronExpressionParser.parse(s.cron, { currentDate: new Date(at.getTime() + 1000), tz: 'UTC' }).prev().toDate();
  const end = last.getTime() + s.duration_s * 1000;
  const until = new Date(s.ends_at ? Math.min(end, s.ends_at.getTime()) : end);
  return last <= at && at < until ? { from: last, until } : null;
}

/**
 * When a recurring silence first opens: the first cron occurrence from `from` (inclusive, to the
 * minute) that is before `until`; null if there is none.
 */
export function firstOpening(cron: string, from: Date, until: Date | null): Date | null {
  const next = CronExpressionParser.parse(cron, { currentDate: new Date(from.getTime() - 1000), tz: 'UTC' }).next().toDate();
  return until && next >= until ? null : next;
}

/** Throws with the reason when the expression is not a cron expression. */
export function checkCron(expr: string): void {
  CronExpressionParser.parse(expr, { tz: 'UTC' });
}

export async function liveSilences(db: Db, at: Date): Promise<Silence[]> {
  return db
    .selectFrom('silences')
    .selectAll()
    .where('deleted_at', 'is', null)
    .where('starts_at', '<=', at)
    .where((eb) => eb.or([eb('ends_at', 'is', null), eb('ends_at', '>', at)]))
    .execute();
}

/** What a silence is matched against, for one incident. */
export async function subjectOf(db: Db, incidentId: string): Promise<MatchSubject | undefined> {
  const row = await db
    .selectFrom('incidents as i')
    .leftJoin('agents as a', 'a.id', 'i.agent_id')
    .select(['i.type', 'i.source', 'i.severity', 'i.category', 'i.agent_id', 'i.integration_id', 'i.service', 'i.labels as own', 'a.labels'])
    .where('i.id', '=', incidentId)
    .executeTakeFirst();
  if (!row) return undefined;
  const { own, labels, ...rest } = row;
  return { ...rest, labels: { ...(labels ?? {}), ...(own ?? {}) } };
}

export async function createSilence(db: Db, s: Omit<Silence, 'deleted_at'>): Promise<void> {
  await db.insertInto('silences').values({ ...s, match: JSON.stringify(s.match) }).execute();
}

export async function listSilences(db: Db, includeEnded: boolean, at: Date): Promise<Silence[]> {
  let q = db.selectFrom('silences').selectAll().where('deleted_at', 'is', null);
  if (!includeEnded) q = q.where((eb) => eb.or([eb('ends_at', 'is', null), eb('ends_at', '>', at)]));
  return q.orderBy('id').execute();
}

/** Silences are ended, not erased (the audit trail names them). */
export async function deleteSilence(db: Db, id: string, at: Date): Promise<Silence | undefined> {
  return db.updateTable('silences').set({ deleted_at: at }).where('id', '=', id).where('deleted_at', 'is', null).returningAll().executeTakeFirst();
}
