import { sql, type RawBuilder } from 'kysely';
import { type AlertPayload, type CheckResultsPayload, type ExecResultPayload, type HelloPayload, type MetricSample, type ResolvePayload } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { ExecRequest } from './tables.ts';

/** A message of a batch that the database refused on its own, the rest of the batch stored. */
export interface Refusal {
  agentId: string;
  msgId: string;
  reason: string;
}

/** What one agent's frames since the last batch say about it, coalesced to the latest. */
export interface AgentSeen {
  at: Date;
  stats?: Record<string, number>;
  hello?: HelloPayload;
}

/** Heartbeats, hellos and metric samples: written in one statement per batch. */
export interface BulkBatch {
  seen: Map<string, AgentSeen>;
  metrics: { agentId: string; msgId: string | undefined; samples: MetricSample[] }[];
  /** Ids of the bulk frames that had one. */
  ids: { agentId: string; msgId: string }[];
}

/** An envelope stored in arrival order, once when it has an id. */
export type EventItem = { agentId: string; msgId?: string; at: Date } & (
  | { kind: 'alert'; payload: AlertPayload }
  | { kind: 'resolve'; payload: ResolvePayload }
  | { kind: 'exec_result'; payload: ExecResultPayload }
  | { kind: 'check_results'; payload: CheckResultsPayload }
);

export interface EventBatch {
  items: EventItem[];
  ids: { agentId: string; msgId: string }[];
  /** When the hub received the batch's last frame (its clock): the ids' received_at. */
  receivedAt: Date;
}

export interface EventOutcome {
  /** exec requests whose result this batch stored. */
  completedExecs: ExecRequest[];
  /** The statement that stored them told the other hubs (exec_done). */
  announced?: boolean;
  /** incident ids created, updated or resolved. */
  incidents: string[];
  /** incident ids opened or reopened (remediation rules look at these). */
  opened: string[];
  /** monitors whose location at an agent changed state (their own state is decided after commit), */
  monitors: string[];
  /** and certificate expiries agents saw (a warning is decided after commit). */
  certificates: { monitorId: string; expiresAt: string; at: Date }[];
  /** Messages the database refused on their own; everything else in the batch was stored. */
  refused: Refusal[];
}

/**
 * Did the database refuse the data (a value it cannot store, a constraint), rather than fail to
 * answer? Then the rest of the batch can be stored without the culprit. SQLSTATE classes 22
 * (data exception), 23 (integrity) and 54 (a limit exceeded); a RangeError or TypeError is the
 * data failing to serialize on the way (JSON.stringify of something too deep).
 */
export function refusedData(err: unknown): boolean {
  if (err instanceof RangeError || err instanceof TypeError) return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

export const idKey = (agentId: string, msgId: string): string => `${agentId}\0${msgId}`;
/** The agent of an `idKey`. */
export const agentOfKey = (key: string): string => key.slice(0, key.indexOf('\0'));

/**
 * Store a bulk batch; if the database refuses it for its data, find the agents whose part it
 * refuses by halving the batch (a few statements, not one per agent), store everyone else's,
 * and for each culprit still mark it seen (so a bad hello or sample never makes even its sender
 * look offline) and name its ids in the refusals. One agent's data never costs another's.
 */
export async function storeBulkIsolated(db: Db, batch: BulkBatch): Promise<Refusal[]> {
  try {
    await storeBulk(db, batch);
    return [];
  } catch (err) {
    if (!refusedData(err)) throw err;
  }
  const agents = [...batch.seen.keys()];
  if (agents.length > 1) {
    const half = Math.ceil(agents.length / 2);
    const first = await storeBulkIsolated(db, bulkOf(batch, new Set(agents.slice(0, half))));
    return [...first, ...(await storeBulkIsolated(db, bulkOf(batch, new Set(agents.slice(half)))))];
  }
  const [agentId] = agents;
  if (agentId === undefined) return [];
  // One agent: its heartbeat and hello, then each metrics frame on its own.
  const seen = batch.seen.get(agentId)!;
  const refused: Refusal[] = [];
  const refuse = (msgId: string | undefined, what: string) =>
    msgId !== undefined && refused.push({ agentId, msgId, reason: `the hub could not store this ${what}: a value the database refuses` });
  const metricIds = new Set(batch.metrics.map((m) => m.msgId).filter((id) => id !== undefined));
  const otherIds = batch.ids.filter((r) => !metricIds.has(r.msgId));
  if (!(await storeOrRefused(db, { seen: new Map([[agentId, seen]]), metrics: [], ids: otherIds }))) {
    for (const r of otherIds) refuse(r.msgId, 'message');
    await storeOrRefused(db, { seen: new Map([[agentId, { at: seen.at }]]), metrics: [], ids: [] });
  }
  for (const m of batch.metrics) {
    const ids = m.msgId === undefined ? [] : [{ agentId, msgId: m.msgId }];
    if (!(await storeOrRefused(db, { seen: new Map([[agentId, { at: seen.at }]]), metrics: [m], ids }))) refuse(m.msgId, 'metrics message');
  }
  return refused;
}

/** false when the database refused the data; other failures are thrown. */
async function storeOrRefused(db: Db, batch: BulkBatch): Promise<boolean> {
  try {
    await storeBulk(db, batch);
    return true;
  } catch (err) {
    if (!refusedData(err)) throw err;
    return false;
  }
}

/** The part of a bulk batch that belongs to `agents`. */
function bulkOf(batch: BulkBatch, agents: Set<string>): BulkBatch {
  return {
    seen: new Map([...batch.seen].filter(([id]) => agents.has(id))),
    metrics: batch.metrics.filter((m) => agents.has(m.agentId)),
    ids: batch.ids.filter((r) => agents.has(r.agentId)),
  };
}

/**
 * Store a bulk batch in one statement, so one round trip and atomic: the envelope ids, every
 * agent's last-seen time, heartbeat and hello, and the metric samples of frames whose id is new.
 * Rows travel as one JSON document per table (json_to_recordset), a fraction of the cost of
 * per-row parameters. Rows for an agent deleted meanwhile are skipped.
 */
export async function storeBulk(db: Db, batch: BulkBatch): Promise<void> {
  await bulkStatement(batch).execute(db);
}

/**
 * The statement storeBulk runs. Each agent's samples travel inside its own row and are expanded
 * from the row that updated it, so the statement joins no two row sets of the batch: PostgreSQL
 * guesses every json_to_recordset at 100 rows, and with a fleet of thousands in `agents` it
 * planned the old join of samples to updated agents as a nested loop, every sample compared with
 * every agent (a flood's batch of 31,000 samples from 2,000 agents: 14 s). The one join left is
 * the batch's rows with `agents` by its key, which no plan makes quadratic.
 */
export function bulkStatement(batch: BulkBatch): RawBuilder<{ seen: string; samples: string }> {
  const samplesOf = new Map<string, Record<string, unknown>[]>();
  const framesSeen = new Set<string>();
  for (const frame of batch.metrics) {
    if (frame.msgId !== undefined) {
      // A frame sent twice in one batch is stored from its first copy only.
      const key = idKey(frame.agentId, frame.msgId);
      if (framesSeen.has(key)) continue;
      framesSeen.add(key);
    }
    let rows = samplesOf.get(frame.agentId);
    if (!rows) samplesOf.set(frame.agentId, (rows = []));
    for (const s of frame.samples) {
      rows.push({
        msg_id: frame.msgId ?? null,
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
  // Every frame marks its agent seen, so each agent with samples has a row here.
  const seen = [...batch.seen].map(([id, s]) => ({
    id,
    at: s.at.toISOString(),
    stats: s.stats ?? null,
    facts: s.hello ? helloFacts(s.hello) : null,
    actions: s.hello ? s.hello.actions : null,
    samples: samplesOf.get(id) ?? null,
  }));
  // An id's received_at is its agent's latest frame time in this batch (the hub's clock).
  const seenAt = new Map(seen.map((s) => [s.id, s.at]));
  const ids = batch.ids.map((r) => ({ agent_id: r.agentId, msg_id: r.msgId, at: seenAt.get(r.agentId) ?? null }));
  // Data-modifying CTEs all run, once, in the statement's single snapshot: `samples` sees which
  // ids `fresh` inserted, so a resent metrics frame is not stored twice.
  return sql<{ seen: string; samples: string }>`
    WITH fresh AS (
      INSERT INTO received_envelopes (agent_id, msg_id, received_at)
      SELECT v.agent_id, v.msg_id, COALESCE(v.at, now())
      FROM json_to_recordset(${JSON.stringify(ids)}::json) AS v(agent_id text, msg_id text, at timestamptz)
      JOIN agents a ON a.id = v.agent_id
      ON CONFLICT DO NOTHING
      RETURNING agent_id, msg_id
    ), l AS (
      -- Rows locked in id order, as every statement that writes several agents locks them: a
      -- batch here and another hub's claims of the same agents take turns instead of deadlocking.
      SELECT a.id, v.at, v.stats, v.facts, v.actions, v.samples
      FROM agents a
      JOIN json_to_recordset(${JSON.stringify(seen)}::json) AS v(id text, at timestamptz, stats json, facts json, actions json, samples json) ON v.id = a.id
      ORDER BY a.id
      FOR NO KEY UPDATE OF a
    ), seen AS (
      UPDATE agents SET
        last_seen_at = GREATEST(agents.last_seen_at, v.at),
        stats = COALESCE(v.stats::jsonb, agents.stats),
        facts = COALESCE(v.facts::jsonb, agents.facts),
        actions = CASE WHEN v.facts IS NULL THEN agents.actions ELSE v.actions::jsonb END
      FROM l v
      WHERE agents.id = v.id
      RETURNING agents.id, v.samples
    ), samples AS (
      -- Only agents the UPDATE above holds (what a foreign key would check, once per agent): it
      -- holds each row until commit, so a concurrent delete waits.
      INSERT INTO metric_samples (agent_id, ts, cpu_pct, mem_used, mem_total, swap_used, load1, load5, load15, disks, net)
      SELECT o.id, to_timestamp(s.ts), s.cpu_pct, s.mem_used, s.mem_total, s.swap_used, s.load1, s.load5, s.load15, s.disks::jsonb, s.net::jsonb
      FROM seen o
      CROSS JOIN LATERAL json_to_recordset(o.samples) AS s(msg_id text, ts float8, cpu_pct float8,
        mem_used int8, mem_total int8, swap_used int8, load1 float8, load5 float8, load15 float8, disks json, net json)
      WHERE o.samples IS NOT NULL
        AND (s.msg_id IS NULL OR EXISTS (SELECT 1 FROM fresh f WHERE f.agent_id = o.id AND f.msg_id = s.msg_id))
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM seen) AS seen, (SELECT count(*) FROM samples) AS samples`;
}

/**
 * Record envelope ids of agents that exist; returns the keys (`idKey`) of those new to the hub.
 * An id already known is a resend: its message was stored before.
 */
export async function claimEnvelopeIds(db: Db, ids: { agentId: string; msgId: string }[], receivedAt: Date): Promise<Set<string>> {
  const fresh = new Set<string>();
  if (ids.length === 0) return fresh;
  const rows = await sql<{ agent_id: string; msg_id: string }>`
    INSERT INTO received_envelopes (agent_id, msg_id, received_at)
    SELECT v.agent_id, v.msg_id, ${receivedAt.toISOString()}::timestamptz
    FROM json_to_recordset(${JSON.stringify(ids.map((r) => ({ agent_id: r.agentId, msg_id: r.msgId })))}::json) AS v(agent_id text, msg_id text)
    JOIN agents a ON a.id = v.agent_id
    ON CONFLICT DO NOTHING
    RETURNING agent_id, msg_id`.execute(db);
  for (const row of rows.rows) fresh.add(idKey(row.agent_id, row.msg_id));
  return fresh;
}

/** Which of these agents still exist. */
export async function existingAgents(db: Db, agentIds: string[]): Promise<Set<string>> {
  if (agentIds.length === 0) return new Set();
  return new Set((await db.selectFrom('agents').select('id').where('id', 'in', agentIds).execute()).map((r) => r.id));
}

/**
 * Run `fn` in a savepoint of the transaction `trx`: if the database refuses its data, it is rolled
 * back alone and the refusal returned; other failures are thrown.
 */
export async function inSavepoint<T>(trx: Db, name: string, fn: () => Promise<T>): Promise<{ value: T } | { refused: Error }> {
  const savepoint = sql.raw(name);
  await sql`SAVEPOINT ${savepoint}`.execute(trx);
  try {
    const value = await fn();
    await sql`RELEASE SAVEPOINT ${savepoint}`.execute(trx);
    return { value };
  } catch (err) {
    if (!refusedData(err)) throw err;
    await sql`ROLLBACK TO SAVEPOINT ${savepoint}`.execute(trx);
    return { refused: err as Error };
  }
}

function helloFacts(hello: HelloPayload): Record<string, unknown> {
  const facts: Record<string, unknown> = { agent_version: hello.agent_version, protocol: hello.protocol, hostname: hello.hostname, os: hello.os, arch: hello.arch };
  if (hello.kernel !== undefined) facts.kernel = hello.kernel;
  if (hello.boot_time !== undefined) facts.boot_time = hello.boot_time;
  return facts;
}
