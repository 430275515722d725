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
export async function auditEvents(db: Db, f: { incidentId?: string; agentId?: string; actor?: string; after?: string; limit: number }) {
  let q = db.selectFrom('incident_events').select(['id', 'at', 'incident_id', 'agent_id', 'actor', 'by', 'kind', 'detail']);
  if (f.incidentId) q = q.where('incident_id', '=', f.incidentId);
  if (f.agentId) q = q.where('agent_id', '=', f.agentId);
  // `actor` matches the kind of actor (rule, user…) or who exactly (token:ops, slack:U1, rule:restart-api).
  if (f.actor) q = q.where((eb) => eb.or([eb('actor', '=', f.actor!), eb('by', '=', f.actor!)]));
  if (f.after) q = q.where('id', '>', f.after);
  return q.orderBy('id').limit(f.limit).execute();
}
