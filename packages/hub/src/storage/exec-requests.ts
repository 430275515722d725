import { sql } from 'kysely';
import { newId, type ExecResultPayload } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { ExecOrigin, ExecRequest } from './tables.ts';
import type { ClusterChannel } from './cluster.ts';

/**
 * A new exec request, and its line on the audit trail (`exec_requested`: who asked what of which
 * agent), in one statement: one round trip on the exec path. With `notice` (a NOTIFY: the request
 * passed to the hub holding the agent) in the same statement too: one commit, and the other hub
 * hears of the request only once its row is there.
 */
export async function createExecRequest(
  db: Db,
  req: { id: string; agentId: string; command: string; params: Record<string, string | number | boolean>; timeoutMs: number; requestedBy: string; origin: ExecOrigin; incidentId?: string; at: Date },
  notice?: { channel: string; payload: string },
): Promise<void> {
  const audit = sql`
    INSERT INTO incident_events (id, incident_id, agent_id, at, actor, kind, by, detail)
    SELECT ${newId()}, ${req.incidentId ?? null}, ${req.agentId}, ${req.at.toISOString()}::timestamptz, ${req.origin === 'rule' ? 'rule' : 'user'}, 'exec_requested', ${req.requestedBy},
      jsonb_build_object('exec_id', e.id, 'command', ${req.command}::text, 'params', ${JSON.stringify(req.params)}::jsonb, 'origin', ${req.origin}::text, 'timeout_ms', ${req.timeoutMs}::int)
    FROM e`;
  const e = sql`
    e AS (
      INSERT INTO exec_requests (id, agent_id, command, params, timeout_ms, requested_by, origin, incident_id)
      VALUES (${req.id}, ${req.agentId}, ${req.command}, ${JSON.stringify(req.params)}::jsonb, ${req.timeoutMs}, ${req.requestedBy}, ${req.origin}, ${req.incidentId ?? null})
      RETURNING id
    )`;
  if (!notice) {
    await sql`WITH ${e} ${audit}`.execute(db);
    return;
  }
  await sql`WITH ${e}, audit AS (${audit} RETURNING 1) SELECT pg_notify(${notice.channel}, ${notice.payload}) FROM e`.execute(db);
}

/** When it was sent; pending → sent. A result that came first keeps its status. */
export async function markExecSent(db: Db, id: string, at: Date): Promise<void> {
  await db
    .updateTable('exec_requests')
    .set({ status: sql<ExecRequest['status']>`CASE WHEN status = 'pending' THEN 'sent' ELSE status END`, sent_at: at })
    .where('id', '=', id)
    .where('sent_at', 'is', null)
    .execute();
}

export async function markExecUndelivered(db: Db, id: string, at: Date): Promise<void> {
  await db
    .updateTable('exec_requests')
    .set({ status: 'undelivered', completed_at: at })
    .where('id', '=', id)
    .where('status', 'in', ['pending', 'sent'])
    .execute();
}

/** sent → timeout when the hub stops waiting. A result arriving later still completes the row. */
export async function markExecTimedOut(db: Db, id: string): Promise<void> {
  await db.updateTable('exec_requests').set({ status: 'timeout' }).where('id', '=', id).where('status', 'in', ['pending', 'sent']).execute();
}

export interface IncomingExecResult {
  agentId: string;
  msgId: string | undefined;
  at: Date;
  result: ExecResultPayload;
  /** When this hub sent the request (its broker knows): the row's sent mark, written with the result. */
  sentAt?: Date;
}

/** Ids an `exec_done` carries: 100 ids of at most 64 characters stay under NOTIFY's 8000 bytes. */
const EXEC_DONE_IDS = 100;

/**
 * Store agents' results, each for one of the agent's own requests and once: a second result for
 * the same request, a result naming another agent's request, or a resent envelope (its id is
 * already known) changes nothing. One statement, so one round trip: the envelope ids, the
 * updates and their audit entries commit together. With `notice`, the same statement tells the
 * other hubs which requests finished (`exec_done`, a NOTIFY sent at commit): the hub that asked
 * hears of it without a second commit here. Returns the rows it completed.
 */
export async function completeExecRequests(db: Db, incoming: IncomingExecResult[], notice?: ClusterChannel): Promise<ExecRequest[]> {
  // Within one batch the first result for a request stands (an UPDATE ... FROM would pick any).
  const firstPerRequest = new Map<string, IncomingExecResult>();
  for (const r of incoming) if (!firstPerRequest.has(r.result.request_id)) firstPerRequest.set(r.result.request_id, r);
  const rows = [...firstPerRequest.values()].map(({ agentId, msgId, at, result, sentAt }) => ({
    audit_id: newId(),
    agent_id: agentId,
    msg_id: msgId ?? null,
    at: at.toISOString(),
    sent_at: sentAt?.toISOString() ?? null,
    ...result,
    error_code: result.error_code ?? null,
  }));
  const ids = incoming.filter((r) => r.msgId !== undefined).map((r) => ({ agent_id: r.agentId, msg_id: r.msgId }));
  const result = await sql<Omit<ExecRequest, 'stdout' | 'stderr'> & { stdout_head: string; stderr_head: string }>`
    WITH fresh AS (
      INSERT INTO received_envelopes (agent_id, msg_id)
      SELECT v.agent_id, v.msg_id FROM json_to_recordset(${JSON.stringify(ids)}::json) AS v(agent_id text, msg_id text)
      JOIN agents a ON a.id = v.agent_id
      ON CONFLICT DO NOTHING
      RETURNING agent_id, msg_id
    ), v AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::json) AS v(audit_id text, agent_id text, msg_id text, at timestamptz, sent_at timestamptz,
        request_id text, ok boolean, exit_code integer, stdout text, stderr text, duration_ms float8, truncated boolean, error_code text)
    ), done AS (
    UPDATE exec_requests e SET
      status = CASE WHEN v.ok THEN 'succeeded' ELSE 'failed' END,
      completed_at = v.at, sent_at = COALESCE(e.sent_at, v.sent_at), ok = v.ok, exit_code = v.exit_code, stdout = v.stdout, stderr = v.stderr,
      duration_ms = v.duration_ms, truncated = v.truncated, error_code = v.error_code
    FROM v
    WHERE e.id = v.request_id AND e.agent_id = v.agent_id AND e.status IN ('pending', 'sent', 'timeout')
      AND (v.msg_id IS NULL OR EXISTS (SELECT 1 FROM fresh f WHERE f.agent_id = v.agent_id AND f.msg_id = v.msg_id))
    -- Not the output: it is in hand already, and reading 1 MiB back cost the embedded database's
    -- thread (the hub's) tens of milliseconds.
    RETURNING e.id, e.agent_id, e.command, e.params, e.timeout_ms, e.status, e.requested_by, e.origin, e.created_at, e.sent_at,
      e.completed_at, e.ok, e.exit_code, e.duration_ms, e.truncated, e.error_code, e.incident_id,
      left(e.stdout, 2048) AS stdout_head, left(e.stderr, 2048) AS stderr_head
    ), audit AS (
      -- The audit trail gets every result in the same statement: who asked, what, how it ended.
      INSERT INTO incident_events (id, incident_id, agent_id, at, actor, kind, by, detail)
      SELECT v.audit_id, d.incident_id, d.agent_id, d.completed_at, CASE WHEN d.origin = 'rule' THEN 'rule' ELSE 'user' END, 'exec_completed', d.requested_by,
        jsonb_build_object('exec_id', d.id, 'command', d.command, 'params', d.params, 'origin', d.origin, 'status', d.status, 'exit_code', d.exit_code,
          'error_code', d.error_code, 'stdout', d.stdout_head, 'stderr', d.stderr_head)
      FROM done d JOIN v ON v.request_id = d.id
    )${
      notice
        ? sql`, told AS (
      SELECT pg_notify(${notice.channel}, json_build_object('k', 'exec_done', 'ids', json_agg(id), 'from', ${notice.from}::text)::text)
      FROM (SELECT id, (row_number() OVER () - 1) / ${EXEC_DONE_IDS} AS part FROM done) d GROUP BY part
    )
    SELECT done.* FROM done, (SELECT count(*) FROM told) t`
        : sql`
    SELECT * FROM done`
    }`.execute(db);
  return result.rows.map(({ stdout_head: _s, stderr_head: _e, ...row }) => {
    const sent = firstPerRequest.get(row.id)!.result;
    return { ...row, stdout: sent.stdout, stderr: sent.stderr };
  });
}

export async function getExecRequest(db: Db, id: string): Promise<ExecRequest | undefined> {
  return db.selectFrom('exec_requests').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Several requests in one round trip (those that exist). */
export async function getExecRequests(db: Db, ids: readonly string[]): Promise<ExecRequest[]> {
  if (ids.length === 0) return [];
  return db.selectFrom('exec_requests').selectAll().where('id', 'in', ids).execute();
}

/** Exec requests, newest first: an agent's, an incident's, or both; `before` an id for the next page. */
export async function listExecRequests(db: Db, filter: { agentId?: string; incidentId?: string; limit: number; before?: string }): Promise<ExecRequest[]> {
  let q = db.selectFrom('exec_requests').selectAll();
  if (filter.agentId) q = q.where('agent_id', '=', filter.agentId);
  if (filter.incidentId) q = q.where('incident_id', '=', filter.incidentId);
  if (filter.before) q = q.where('id', '<', filter.before);
  return q.orderBy('id', 'desc').limit(filter.limit).execute();
}
