import type { Db } from './database.ts';

const KEEP_MS = 3_600_000; // Slack refuses signatures older than 5 minutes; an hour is plenty

/**
 * Record an interaction the first time it is seen; false when it was seen before (a replay of a
 * signed request). Older records are pruned on the way.
 */
export async function firstSight(db: Db, key: string, at: Date): Promise<boolean> {
  await db.deleteFrom('slack_interactions').where('seen_at', '<', new Date(at.getTime() - KEEP_MS)).execute();
  const row = await db.insertInto('slack_interactions').values({ key, seen_at: at }).onConflict((oc) => oc.column('key').doNothing()).returning('key').executeTakeFirst();
  return row !== undefined;
}
