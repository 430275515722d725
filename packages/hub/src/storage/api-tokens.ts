import type { Scope } from './tables.ts';
import type { Db } from './database.ts';

export async function findApiToken(db: Db, tokenHash: string): Promise<{ id: string; name: string; scopes: Scope[] } | undefined> {
  return db.selectFrom('api_tokens').select(['id', 'name', 'scopes']).where('token_hash', '=', tokenHash).executeTakeFirst();
}

/** last_used_at, at most once a minute per token. */
export async function touchApiToken(db: Db, id: string, at: Date): Promise<void> {
  await db
    .updateTable('api_tokens')
    .set({ last_used_at: at })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', new Date(at.getTime() - 60_000))]))
    .execute();
}

export async function createApiToken(db: Db, t: { id: string; name: string; scopes: Scope[]; tokenHash: string; createdBy: string }): Promise<boolean> {
  const r = await db
    .insertInto('api_tokens')
    .values({ id: t.id, name: t.name, scopes: JSON.stringify(t.scopes), token_hash: t.tokenHash, created_by: t.createdBy })
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

export async function listApiTokens(db: Db) {
  return db.selectFrom('api_tokens').select(['id', 'name', 'scopes', 'created_at', 'created_by', 'last_used_at']).orderBy('id').execute();
}

export async function deleteApiToken(db: Db, id: string): Promise<{ name: string; token_hash: string } | undefined> {
  return db.deleteFrom('api_tokens').where('id', '=', id).returning(['name', 'token_hash']).executeTakeFirst();
}
