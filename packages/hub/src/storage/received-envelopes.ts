import type { Db } from './database.ts';

/**
 * Forget envelope ids received before `before`. Dedupe only has to outlast an agent's outbox
 * replay, so ids are kept for a retention window rather than for ever. Returns how many went.
 */
export async function pruneReceivedEnvelopes(db: Db, before: Date): Promise<number> {
  const result = await db.deleteFrom('received_envelopes').where('received_at', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}
