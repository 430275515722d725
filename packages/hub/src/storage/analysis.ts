import { sql } from 'kysely';
import type { Analysis } from './tables.ts';
import type { Db } from './database.ts';
import type { Incident } from './tables.ts';
import { clippedLogs } from './incidents.ts';

export type QueuedIncident = Pick<
  Incident,
  'id' | 'agent_id' | 'integration_id' | 'service' | 'labels' | 'type' | 'source' | 'message' | 'logs' | 'exit_code' | 'unit_status' | 'severity' | 'category' | 'rule' | 'count' | 'analysis_reuse'
>;

/** Queue an incident for a fresh analysis (an operator asked: a recent one is not reused). */
export async function requestAnalysis(db: Db, id: string, at: Date): Promise<boolean> {
  const r = await db
    .updateTable('incidents')
    .set({ analysis_status: 'pending', analysis_requested_at: at, analysis_reuse: false })
    .where('id', '=', id)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/**
 * Take up to `n` queued incidents, oldest request first; other hubs skip what this one took. A
 * `new` (or reopened) incident moves to `analyzing`; an acknowledged one keeps its status.
 */
export async function claimAnalyses(db: Db, n: number): Promise<QueuedIncident[]> {
  const result = await sql<QueuedIncident>`
    UPDATE incidents SET analysis_status = 'running',
      status = CASE WHEN status IN ('new', 'open') THEN 'analyzing' ELSE status END
    WHERE id IN (
      SELECT id FROM incidents WHERE analysis_status = 'pending'
      ORDER BY analysis_requested_at LIMIT ${n} FOR UPDATE SKIP LOCKED
    )
    RETURNING id, agent_id, integration_id, service, labels, type, source, message, ${clippedLogs}, exit_code, unit_status, severity, category, rule, count, analysis_reuse`.execute(db);
  return result.rows;
}

/** At start: what was running when the hub stopped goes back in the queue. */
export async function requeueRunningAnalyses(db: Db): Promise<number> {
  const r = await db.updateTable('incidents').set({ analysis_status: 'pending' }).where('analysis_status', '=', 'running').executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export type StoredAnalysis = Analysis & { analyzed_at: string; reused_from?: string };

/** Store the analysis; an incident still `analyzing` becomes `open`. */
export async function storeAnalysis(db: Db, id: string, analysis: StoredAnalysis): Promise<boolean> {
  const r = await db
    .updateTable('incidents')
    .set((eb) => ({
      analysis: JSON.stringify(analysis),
      analysis_status: 'done',
      analysis_reuse: true,
      status: eb.case().when('status', '=', 'analyzing').then('open' as const).else(eb.ref('status')).end(),
    }))
    .where('id', '=', id)
    .where('analysis_status', '=', 'running')
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/**
 * A model's analysis of the same fingerprint made since `since`, to reuse instead of asking the
 * model again (a reopened incident, a service failing the same way every few minutes). Only the
 * model's answers are reused: the heuristics cost nothing, and a fallback should not stop the
 * model from being tried again.
 */
export async function recentAnalysis(
  db: Db,
  fp: { id: string; agent_id: string | null; integration_id: string | null; type: string; source: string },
  since: Date,
): Promise<{ id: string; analysis: StoredAnalysis } | undefined> {
  let q = db.selectFrom('incidents').select(['id', 'analysis']).where('source', '=', fp.source);
  q = fp.integration_id !== null ? q.where('integration_id', '=', fp.integration_id) : q.where('agent_id', '=', fp.agent_id).where('type', '=', fp.type).where('integration_id', 'is', null);
  const row = await q
    // Its own earlier analysis counts too: a reopened incident keeps it while queued again.
    .where('analysis', 'is not', null)
    .where(sql<boolean>`analysis->>'source' = 'llm'`)
    .where(sql<boolean>`(analysis->>'analyzed_at')::timestamptz >= ${since.toISOString()}::timestamptz`)
    .orderBy(sql`(analysis->>'analyzed_at')::timestamptz`, 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!row?.analysis) return undefined;
  const { reused_from: _ignored, ...analysis } = row.analysis as unknown as StoredAnalysis;
  return { id: row.id, analysis: analysis as StoredAnalysis };
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
