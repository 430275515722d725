import { sql } from 'kysely';
import type { Analysis } from '../incidents/heuristics.ts';
import type { Db } from './database.ts';
import type { Incident } from './tables.ts';

export type QueuedIncident = Pick<
  Incident,
  'id' | 'agent_id' | 'type' | 'source' | 'message' | 'logs' | 'exit_code' | 'unit_status' | 'severity' | 'category' | 'rule' | 'count'
>;

export async function requestAnalysis(db: Db, id: string, at: Date): Promise<boolean> {
  const r = await db.updateTable('incidents').set({ analysis_status: 'pending', analysis_requested_at: at }).where('id', '=', id).executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** Take up to `n` queued incidents, oldest request first; other hubs skip what this one took. */
export async function claimAnalyses(db: Db, n: number): Promise<QueuedIncident[]> {
  const result = await sql<QueuedIncident>`
    UPDATE incidents SET analysis_status = 'running'
    WHERE id IN (
      SELECT id FROM incidents WHERE analysis_status = 'pending'
      ORDER BY analysis_requested_at LIMIT ${n} FOR UPDATE SKIP LOCKED
    )
    RETURNING id, agent_id, type, source, message, logs, exit_code, unit_status, severity, category, rule, count`.execute(db);
  return result.rows;
}

/** At start: what was running when the hub stopped goes back in the queue. */
export async function requeueRunningAnalyses(db: Db): Promise<number> {
  const r = await db.updateTable('incidents').set({ analysis_status: 'pending' }).where('analysis_status', '=', 'running').executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function storeAnalysis(db: Db, id: string, analysis: Analysis & { analyzed_at: string }): Promise<void> {
  await db.updateTable('incidents').set({ analysis: JSON.stringify(analysis), analysis_status: 'done' }).where('id', '=', id).where('analysis_status', '=', 'running').execute();
}

/** What the analysis needs to know about the host: its facts, catalogue and last metrics. */
export async function hostContext(db: Db, agentId: string) {
  const agent = await db.selectFrom('agents').select(['hostname', 'facts', 'actions']).where('id', '=', agentId).executeTakeFirst();
  const metrics = await db
    .selectFrom('metric_samples')
    .select(['ts', 'cpu_pct', 'mem_used', 'mem_total', 'swap_used', 'load1', 'load5', 'load15', 'disks'])
    .where('agent_id', '=', agentId)
    .orderBy('ts', 'desc')
    .limit(1)
    .executeTakeFirst();
  return { agent, metrics };
}
