import type { Db } from './database.ts';

export async function insertSession(db: Db, s: { idHash: string; tokenHash: string; actor: string; at: Date; expiresAt: Date }): Promise<void> {
  await db.insertInto('sessions').values({ id_hash: s.idHash, token_hash: s.tokenHash, actor: s.actor, created_at: s.at, expires_at: s.expiresAt }).execute();
}

/** A session that has not expired, by its id's hash. */
export async function findSession(db: Db, idHash: string, now: Date): Promise<{ token_hash: string; expires_at: Date } | undefined> {
  return db.selectFrom('sessions').select(['token_hash', 'expires_at']).where('id_hash', '=', idHash).where('expires_at', '>', now).executeTakeFirst();
}

export async function deleteSession(db: Db, idHash: string): Promise<boolean> {
  const r = await db.deleteFrom('sessions').where('id_hash', '=', idHash).executeTakeFirst();
  return r.numDeletedRows > 0n;
}

/** Every session made from a token (it was deleted). */
export async function deleteSessionsOfToken(db: Db, tokenHash: string): Promise<number> {
  const r = await db.deleteFrom('sessions').where('token_hash', '=', tokenHash).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export async function deleteExpiredSessions(db: Db, now: Date, limit: number): Promise<number> {
  const r = await db
    .deleteFrom('sessions')
    .where('id_hash', 'in', (eb) => eb.selectFrom('sessions').select('id_hash').where('expires_at', '<=', now).limit(limit))
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
