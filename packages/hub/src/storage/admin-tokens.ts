import type { Db } from './database.ts';

export async function listAdminTokenHashes(db: Db): Promise<{ name: string; token_hash: string }[]> {
  return db.selectFrom('admin_tokens').select(['name', 'token_hash']).execute();
}

export async function insertAdminToken(db: Db, token: { id: string; name: string; tokenHash: string }): Promise<void> {
  await db.insertInto('admin_tokens').values({ id: token.id, name: token.name, token_hash: token.tokenHash }).execute();
}
