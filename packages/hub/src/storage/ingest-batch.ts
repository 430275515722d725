import { sql } from 'kysely';
import type { AlertPayload, ExecResultPayload, HelloPayload, MetricSample, ResolvePayload } from '@opspilot/protocol';
import { newId } from '@opspilot/protocol';
import type { Db } from './database.ts';
import { completeExecRequest } from './exec-requests.ts';
import { resolveIncidentByFingerprint, upsertIncidentFromAlert } from './incidents.ts';

/** What one agent's frames since the last flush say about it, coalesced to the latest. */
export interface AgentSeen {
  at: Date;
  stats?: Record<string, number>;
  hello?: HelloPayload;
}

/** An envelope that must be stored in arrival order, and only once when it has an id. */
export type OrderedItem = { agentId: string; msgId?: string; at: Date } & (
  | { kind: 'metrics'; samples: MetricSample[] }
  | { kind: 'alert'; payload: AlertPayload }
  | { kind: 'resolve'; payload: ResolvePayload }
  | { kind: 'exec_result'; payload: ExecResultPayload }
);

export interface IngestBatch {
  seen: Map<string, AgentSeen>;
  /** Every envelope id in the batch, in order, including ids of coalesced heartbeats. */
  ids: { agentId: string; msgId: string }[];
  items: OrderedItem[];
}

export interface BatchOutcome {
  /** `agentId\0msgId` of ids stored for the first time; the other ids were duplicates. */
  freshIds: Set<string>;
  /** exec request ids whose result this batch stored. */
  completedExecs: string[];
  /** incident ids created or updated by alerts. */
  incidents: string[];
}

export const idKey = (agentId: string, msgId: string): string => `${agentId}\0${msgId}`;

/**
 * Store a batch in one transaction: one statement for the envelope ids, one for every agent's
 * last-seen time and heartbeat, one for all metric samples, then alerts, resolves and exec
 * results in the order they arrived. Bulk rows travel as one JSON document per statement
 * (jsonb_to_recordset), which costs a fraction of per-row parameters or escaped array literals.
 * Rows for an agent deleted meanwhile are skipped.
 */
export async function storeBatch(db: Db, batch: IngestBatch): Promise<BatchOutcome> {
  return db.transaction().execute(async (trx) => {
    const outcome: BatchOutcome = { freshIds: new Set(), completedExecs: [], incidents: [] };

    // A batch with no envelope ids acks nothing, so no agent drops anything from its outbox on the
    // strength of it: it need not wait for the WAL flush. Anything acked still does.
    if (batch.ids.length === 0) await sql`SET LOCAL synchronous_commit = off`.execute(trx);

    if (batch.ids.length > 0) {
      const fresh = await sql<{ agent_id: string; msg_id: string }>`
        INSERT INTO received_envelopes (agent_id, msg_id)
        SELECT v.agent_id, v.msg_id
        FROM unnest(${batch.ids.map((r) => r.agentId)}::text[], ${batch.ids.map((r) => r.msgId)}::text[]) AS v(agent_id, msg_id)
        JOIN agents a ON a.id = v.agent_id
        ON CONFLICT DO NOTHING
        RETURNING agent_id, msg_id`.execute(trx);
      for (const row of fresh.rows) outcome.freshIds.add(idKey(row.agent_id, row.msg_id));
    }

    // Every frame marks its agent seen, so this also tells which agents still exist.
    const existing = new Set<string>();
    if (batch.seen.size > 0) {
      const rows = [...batch.seen].map(([id, s]) => ({
        id,
        at: s.at.toISOString(),
        stats: s.stats ?? null,
        facts: s.hello ? helloFacts(s.hello) : null,
        actions: s.hello ? s.hello.actions : null,
      }));
      const updated = await sql<{ id: string }>`
        UPDATE agents SET
          last_seen_at = GREATEST(agents.last_seen_at, v.at),
          stats = COALESCE(v.stats, agents.stats),
          facts = COALESCE(v.facts, agents.facts),
          actions = CASE WHEN v.facts IS NULL THEN agents.actions ELSE v.actions END
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS v(id text, at timestamptz, stats jsonb, facts jsonb, actions jsonb)
        WHERE agents.id = v.id
        RETURNING agents.id`.execute(trx);
      for (const row of updated.rows) existing.add(row.id);
    }

    // The first item carrying a fresh id is stored; later copies in the same batch are duplicates.
    const unclaimed = new Set(outcome.freshIds);
    const isFresh = (item: OrderedItem) => item.msgId === undefined || unclaimed.delete(idKey(item.agentId, item.msgId));
    const fresh = new Set(batch.items.filter(isFresh));

    const samples: Record<string, unknown>[] = [];
    for (const item of batch.items) {
      if (item.kind !== 'metrics' || !fresh.has(item)) continue;
      for (const s of item.samples) {
        samples.push({
          agent_id: item.agentId,
          ts: s.ts,
          cpu_pct: s.cpu_pct,
          // Byte counts are bigint columns: a fractional value from an agent is rounded, not refused.
          mem_used: Math.round(s.mem_used),
          mem_total: Math.round(s.mem_total),
          swap_used: s.swap_used === undefined ? null : Math.round(s.swap_used),
          load1: s.load1,
          load5: s.load5,
          load15: s.load15,
          disks: s.disks,
          net: s.net,
        });
      }
    }
    if (samples.length > 0) {
      await sql`
        INSERT INTO metric_samples (agent_id, ts, cpu_pct, mem_used, mem_total, swap_used, load1, load5, load15, disks, net)
        SELECT v.agent_id, to_timestamp(v.ts), v.cpu_pct, v.mem_used, v.mem_total, v.swap_used, v.load1, v.load5, v.load15, v.disks, v.net
        FROM jsonb_to_recordset(${JSON.stringify(samples)}::jsonb) AS v(agent_id text, ts float8, cpu_pct float8,
          mem_used int8, mem_total int8, swap_used int8, load1 float8, load5 float8, load15 float8, disks jsonb, net jsonb)
        JOIN agents a ON a.id = v.agent_id`.execute(trx);
    }

    for (const item of batch.items) {
      if (item.kind === 'metrics' || !fresh.has(item)) continue;
      if (!existing.has(item.agentId)) continue;
      switch (item.kind) {
        case 'alert':
          outcome.incidents.push(await upsertIncidentFromAlert(trx, newId(), item.agentId, item.payload, item.at));
          break;
        case 'resolve': {
          const id = await resolveIncidentByFingerprint(trx, { agentId: item.agentId, ...item.payload }, item.at, 'agent');
          if (id) outcome.incidents.push(id);
          break;
        }
        case 'exec_result':
          if (await completeExecRequest(trx, item.agentId, item.payload, item.at)) {
            outcome.completedExecs.push(item.payload.request_id);
          }
          break;
      }
    }
    return outcome;
  });
}

function helloFacts(hello: HelloPayload): Record<string, unknown> {
  const facts: Record<string, unknown> = { agent_version: hello.agent_version, hostname: hello.hostname, os: hello.os, arch: hello.arch };
  if (hello.kernel !== undefined) facts.kernel = hello.kernel;
  if (hello.boot_time !== undefined) facts.boot_time = hello.boot_time;
  return facts;
}
