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

const METRIC_ROWS_PER_INSERT = 2000; // 11 parameters a row, well under PostgreSQL's 65,535

/**
 * Store a batch in one transaction: one statement for the envelope ids, one for every agent's
 * last-seen time and heartbeat, multi-row inserts for metric samples, then alerts, resolves and
 * exec results in the order they arrived. Rows for an agent deleted meanwhile are skipped.
 */
export async function storeBatch(db: Db, batch: IngestBatch): Promise<BatchOutcome> {
  return db.transaction().execute(async (trx) => {
    const outcome: BatchOutcome = { freshIds: new Set(), completedExecs: [], incidents: [] };

    if (batch.ids.length > 0) {
      const values = sql.join(batch.ids.map((r) => sql`(${r.agentId}::text, ${r.msgId}::text)`));
      const fresh = await sql<{ agent_id: string; msg_id: string }>`
        INSERT INTO received_envelopes (agent_id, msg_id)
        SELECT v.agent_id, v.msg_id FROM (VALUES ${values}) AS v(agent_id, msg_id)
        JOIN agents a ON a.id = v.agent_id
        ON CONFLICT DO NOTHING
        RETURNING agent_id, msg_id`.execute(trx);
      for (const row of fresh.rows) outcome.freshIds.add(idKey(row.agent_id, row.msg_id));
    }

    // Every frame marks its agent seen, so this also tells which agents still exist.
    const existing = new Set<string>();
    if (batch.seen.size > 0) {
      const values = sql.join(
        [...batch.seen].map(([agentId, s]) => {
          const facts = s.hello
            ? JSON.stringify({
                agent_version: s.hello.agent_version,
                hostname: s.hello.hostname,
                os: s.hello.os,
                arch: s.hello.arch,
                ...(s.hello.kernel !== undefined ? { kernel: s.hello.kernel } : {}),
                ...(s.hello.boot_time !== undefined ? { boot_time: s.hello.boot_time } : {}),
              })
            : null;
          return sql`(${agentId}::text, ${s.at}::timestamptz, ${s.stats ? JSON.stringify(s.stats) : null}::jsonb,
            ${facts}::jsonb, ${s.hello ? JSON.stringify(s.hello.actions) : null}::jsonb)`;
        }),
      );
      const updated = await sql<{ id: string }>`
        UPDATE agents SET
          last_seen_at = GREATEST(agents.last_seen_at, v.at),
          stats = COALESCE(v.stats, agents.stats),
          facts = COALESCE(v.facts, agents.facts),
          actions = CASE WHEN v.facts IS NULL THEN agents.actions ELSE v.actions END
        FROM (VALUES ${values}) AS v(id, at, stats, facts, actions)
        WHERE agents.id = v.id
        RETURNING agents.id`.execute(trx);
      for (const row of updated.rows) existing.add(row.id);
    }

    // The first item carrying a fresh id is stored; later copies in the same batch are duplicates.
    const unclaimed = new Set(outcome.freshIds);
    const isFresh = (item: OrderedItem) => item.msgId === undefined || unclaimed.delete(idKey(item.agentId, item.msgId));
    const fresh = new Set(batch.items.filter(isFresh));
    const samples: { agentId: string; s: MetricSample }[] = [];
    for (const item of batch.items) {
      if (item.kind === 'metrics' && fresh.has(item)) for (const s of item.samples) samples.push({ agentId: item.agentId, s });
    }
    for (let i = 0; i < samples.length; i += METRIC_ROWS_PER_INSERT) {
      const values = sql.join(
        samples.slice(i, i + METRIC_ROWS_PER_INSERT).map(
          ({ agentId, s }) => sql`(${agentId}::text, to_timestamp(${s.ts}::double precision), ${s.cpu_pct}::double precision,
            ${s.mem_used}::bigint, ${s.mem_total}::bigint, ${s.swap_used ?? null}::bigint, ${s.load1}::double precision,
            ${s.load5}::double precision, ${s.load15}::double precision, ${JSON.stringify(s.disks)}::jsonb, ${JSON.stringify(s.net)}::jsonb)`,
        ),
      );
      await sql`
        INSERT INTO metric_samples (agent_id, ts, cpu_pct, mem_used, mem_total, swap_used, load1, load5, load15, disks, net)
        SELECT v.* FROM (VALUES ${values}) AS v(agent_id, ts, cpu_pct, mem_used, mem_total, swap_used, load1, load5, load15, disks, net)
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
