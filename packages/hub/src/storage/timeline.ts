import { newId } from '@opspilot/protocol';
import type { Db } from './database.ts';

export const TIMELINE_ACTORS = ['agent', 'rule', 'user', 'llm', 'heuristic', 'hub'] as const;
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
] as const;
export type TimelineKind = (typeof TIMELINE_KINDS)[number];

export interface TimelineEvent {
  incidentId: string;
  at: Date;
  actor: TimelineActor;
  kind: TimelineKind;
  by?: string;
  detail?: Record<string, unknown>;
}

export async function recordEvent(db: Db, e: TimelineEvent): Promise<void> {
  await db
    .insertInto('incident_events')
    .values({ id: newId(), incident_id: e.incidentId, at: e.at, actor: e.actor, kind: e.kind, by: e.by ?? null, detail: e.detail ? JSON.stringify(e.detail) : null })
    .execute();
}

export async function incidentTimeline(db: Db, incidentId: string) {
  return db.selectFrom('incident_events').select(['at', 'actor', 'by', 'kind', 'detail']).where('incident_id', '=', incidentId).orderBy('id').execute();
}
