import type { Db } from './database.ts';

/** The autonomy kill switch: on unless someone turned it off. Shared by every hub. */
export async function getAutonomy(db: Db): Promise<{ enabled: boolean; updated_at: Date | null; updated_by: string | null }> {
  const row = await db.selectFrom('system_settings').select(['value', 'updated_at', 'updated_by']).where('key', '=', 'autonomy').executeTakeFirst();
  if (!row) return { enabled: true, updated_at: null, updated_by: null };
  return { enabled: (row.value as { enabled?: unknown }).enabled !== false, updated_at: row.updated_at, updated_by: row.updated_by };
}

export async function setAutonomy(db: Db, enabled: boolean, by: string, at: Date): Promise<void> {
  await db
    .insertInto('system_settings')
    .values({ key: 'autonomy', value: JSON.stringify({ enabled }), updated_at: at, updated_by: by })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: JSON.stringify({ enabled }), updated_at: at, updated_by: by }))
    .execute();
}
