import { sql } from 'kysely';
import type { Db } from './database.ts';
import type { Agent } from './tables.ts';

/** Columns safe to return: everything but the token hash. */
const PUBLIC_COLUMNS = [
  'id',
  'hostname',
  'labels',
  'created_at',
  'token_rotated_at',
  'last_seen_at',
  'connected_at',
  'facts',
  'actions',
  'stats',
  'autonomy',
] as const;
export type AgentRecord = Omit<Agent, 'token_hash' | 'hub_id' | 'conn_epoch'>;

export async function createAgent(
  db: Db,
  agent: { id: string; hostname: string | null; labels: Record<string, string>; tokenHash: string },
): Promise<AgentRecord> {
  return db
    .insertInto('agents')
    .values({ id: agent.id, hostname: agent.hostname, labels: JSON.stringify(agent.labels), token_hash: agent.tokenHash })
    .returning(PUBLIC_COLUMNS)
    .executeTakeFirstOrThrow();
}

export async function listAgents(db: Db, limit: number): Promise<AgentRecord[]> {
  return db.selectFrom('agents').select(PUBLIC_COLUMNS).orderBy('id').limit(limit).execute();
}

export async function getAgent(db: Db, id: string): Promise<AgentRecord | undefined> {
  return db.selectFrom('agents').select(PUBLIC_COLUMNS).where('id', '=', id).executeTakeFirst();
}

/** The agents holding these tokens, found by the tokens' hashes, in one statement: one answer per hash, in order. */
export async function findAgentIdsByTokenHashes(db: Db, tokenHashes: readonly string[]): Promise<({ id: string; token_hash: string } | undefined)[]> {
  if (tokenHashes.length === 0) return [];
  const r = await sql<{ id: string; token_hash: string }>`
    SELECT id, token_hash FROM agents WHERE token_hash IN (SELECT json_array_elements_text(${JSON.stringify(tokenHashes)}::json))`.execute(db);
  const byHash = new Map(r.rows.map((row) => [row.token_hash, row]));
  return tokenHashes.map((h) => byHash.get(h));
}

/**
 * Delete an agent with its incidents (cascade) and metric samples. Deleting the agent row waits
 * for any bulk insert holding it (storeBulk updates it in the same statement), so the sample
 * delete that follows sees every sample that insert wrote.
 */
export async function deleteAgent(db: Db, id: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const result = await trx.deleteFrom('agents').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) return false;
    await trx.deleteFrom('metric_samples').where('agent_id', '=', id).execute();
    return true;
  });
}

export async function setAgentTokenHash(db: Db, id: string, tokenHash: string, at: Date): Promise<boolean> {
  const result = await db
    .updateTable('agents')
    .set({ token_hash: tokenHash, token_rotated_at: at })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Per-agent autonomy: false stops every automatic action on this agent. */
export async function setAgentAutonomy(db: Db, id: string, enabled: boolean): Promise<boolean> {
  const r = await db.updateTable('agents').set({ autonomy: enabled }).where('id', '=', id).executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** An agent's hostname, or its id when it has none (or is gone). */
export async function agentHostname(db: Db, agentId: string): Promise<string> {
  const row = await db.selectFrom('agents').select('hostname').where('id', '=', agentId).executeTakeFirst();
  return row?.hostname ?? agentId;
}
