import { sql } from 'kysely';
import { newId } from '@opspilot/protocol';
import type { Db } from './database.ts';

/**
 * The audit trail (table incident_events, append-only): every change to an incident, with its
 * actor, and the system-wide events that are not about one incident (incident_id null).
 */
export const TIMELINE_ACTORS = ['agent', 'rule', 'user', 'llm', 'heuristic', 'hub', 'integration'] as const;
export type TimelineActor = (typeof TIMELINE_ACTORS)[number];
export const TIMELINE_KINDS = [
  'opened',
  'repeated',
  'reopened',
  'classified',
  'analysis_requested',
  'analyzing',
  'analyzed',
  'acknowledged',
  'resolved',
  'flapping',
  'stable',
  'ignored',
  'action_requested',
  'action_completed',
  'action_refused',
  // remediation (issue 6)
  'rule_fired',
  'rule_skipped',
  'approval_requested',
  'approved',
  'rejected',
  'verified',
  'verification_failed',
  'escalated',
  'rule_suspended',
  // system-wide
  'exec_completed',
  'autonomy_changed',
  'rule_created',
  'rule_updated',
  'rule_deleted',
  'token_created',
  'token_deleted',
  'silence_created',
  'silence_deleted',
  'silence_ended',
  'integration_created',
  'integration_updated',
  'integration_deleted',
  'integration_secret_rotated',
  'linked',
  'heartbeat_created',
  'heartbeat_updated',
  'heartbeat_deleted',
  'monitor_created',
  'monitor_updated',
  'monitor_deleted',
  // the live event stream (issue 15)
  'agent_connected',
  'agent_disconnected',
  'monitor_state',
  'exec_requested',
] as const;
export type TimelineKind = (typeof TIMELINE_KINDS)[number];

export interface TimelineEvent {
  /** The incident, or null for an event about the system, an agent or a rule. */
  incidentId: string | null;
  /** The agent; taken from the incident when not given. */
  agentId?: string | null;
  at: Date;
  actor: TimelineActor;
  kind: TimelineKind;
  by?: string;
  detail?: Record<string, unknown>;
}

export async function recordEvent(db: Db, e: TimelineEvent): Promise<void> {
  const agentId =
    e.agentId !== undefined || e.incidentId === null ? sql`${e.agentId ?? null}::text` : sql`(SELECT agent_id FROM incidents WHERE id = ${e.incidentId})`;
  await sql`
    INSERT INTO incident_events (id, incident_id, agent_id, at, actor, kind, by, detail)
    VALUES (${newId()}, ${e.incidentId}, ${agentId}, ${e.at.toISOString()}::timestamptz, ${e.actor}, ${e.kind}, ${e.by ?? null},
            ${e.detail ? JSON.stringify(e.detail) : null}::jsonb)`.execute(db);
}

/** Several events of one incident in one statement, in order (an alert's and its classification). */
export async function recordEvents(db: Db, events: TimelineEvent[]): Promise<void> {
  if (events.length === 0) return;
  if (events.length === 1) return recordEvent(db, events[0]!);
  const rows = events.map((e) => {
    const agentId =
      e.agentId !== undefined || e.incidentId === null ? sql`${e.agentId ?? null}::text` : sql`(SELECT agent_id FROM incidents WHERE id = ${e.incidentId})`;
    return sql`(${newId()}, ${e.incidentId}, ${agentId}, ${e.at.toISOString()}::timestamptz, ${e.actor}, ${e.kind}, ${e.by ?? null}, ${e.detail ? JSON.stringify(e.detail) : null}::jsonb)`;
  });
  // Rows per statement: well under PostgreSQL's 65,535 parameters.
  for (let i = 0; i < rows.length; i += 1000) {
    await sql`INSERT INTO incident_events (id, incident_id, agent_id, at, actor, kind, by, detail) VALUES ${sql.join(rows.slice(i, i + 1000))}`.execute(db);
  }
}

export async function incidentTimeline(db: Db, incidentId: string) {
  return db.selectFrom('incident_events').select(['at', 'actor', 'by', 'kind', 'detail']).where('incident_id', '=', incidentId).orderBy('id').execute();
}

/** The audit trail, oldest first, filtered; `after` pages on. */
export async function auditEvents(db: Db, f: { incidentId?: string; agentId?: string; actor?: string; after?: string; since?: Date; newestFirst?: boolean; limit: number }) {
  let q = db.selectFrom('incident_events').select(['id', 'at', 'incident_id', 'agent_id', 'actor', 'by', 'kind', 'detail']);
  if (f.incidentId) q = q.where('incident_id', '=', f.incidentId);
  if (f.agentId) q = q.where('agent_id', '=', f.agentId);
  // `actor` matches the kind of actor (rule, user…) or who exactly (token:ops, slack:U1, rule:restart-api).
  if (f.actor) q = q.where((eb) => eb.or([eb('actor', '=', f.actor!), eb('by', '=', f.actor!)]));
  if (f.after) q = q.where('id', '>', f.after);
  if (f.since) q = q.where('at', '>=', f.since);
  return q.orderBy('id', f.newestFirst ? 'desc' : 'asc').limit(f.limit).execute();
}

/** One row of the audit trail as the live stream sends it, with its incident as it is now. */
export interface StreamEvent {
  seq: number;
  at: Date;
  kind: string;
  actor: string;
  by: string | null;
  incident_id: string | null;
  agent_id: string | null;
  detail: Record<string, unknown> | null;
  incident: { id: string; status: string; severity: string | null; type: string; message: string; service: string | null; count: number } | null;
}

/** The audit trail after position `after`, in order, at most `limit` rows (the live stream's read). */
export async function eventsAfter(db: Db, after: number, limit: number, only?: readonly number[]): Promise<StreamEvent[]> {
  const rows = await sql<Omit<StreamEvent, 'incident'> & { i_status: string | null; i_severity: string | null; i_type: string | null; i_message: string | null; i_service: string | null; i_count: number | null }>`
    SELECT e.seq::float8 AS seq, e.at, e.kind, e.actor, e.by, e.incident_id, e.agent_id, e.detail,
      i.status AS i_status, i.severity AS i_severity, i.type AS i_type, left(i.message, 300) AS i_message, i.service AS i_service, i.count AS i_count
    FROM incident_events e LEFT JOIN incidents i ON i.id = e.incident_id
    WHERE ${only ? sql`e.seq = ANY(${only.map(String)}::bigint[])` : sql`e.seq > ${after}`}
    ORDER BY e.seq LIMIT ${limit}`.execute(db);
  return rows.rows.map(({ i_status, i_severity, i_type, i_message, i_service, i_count, ...e }) => ({
    ...e,
    seq: Number(e.seq),
    incident: e.incident_id && i_status !== null ? { id: e.incident_id, status: i_status, severity: i_severity, type: i_type!, message: i_message!, service: i_service, count: i_count! } : null,
  }));
}

/** The newest position of the audit trail (0 when empty). */
export async function lastEventSeq(db: Db): Promise<number> {
  const row = await sql<{ seq: number | null }>`SELECT max(seq)::float8 AS seq FROM incident_events`.execute(db);
  return Number(row.rows[0]?.seq ?? 0);
}
