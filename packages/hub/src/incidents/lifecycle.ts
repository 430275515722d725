import { newId, type AlertPayload } from '@opspilot/protocol';
import type { Db } from '../storage/database.ts';
import { recordAlert, resolveIncidentByFingerprint, setClassification, updateFlapping, type AlertChange } from '../storage/incidents.ts';
import { enqueueMessage } from '../storage/notifications.ts';
import { recordEvent, type TimelineActor } from '../storage/timeline.ts';
import { classify, type ClassificationRule } from './classify.ts';

export interface LifecycleOptions {
  rules: readonly ClassificationRule[];
  /** Queue a Slack message (post or edit) for every change, in the same transaction. */
  notify: boolean;
}

/**
 * The incident lifecycle in one place: an alert opens, repeats or reopens an incident, classifies
 * it, and writes the timeline; a resolve closes it. Opens, reopens and resolves also recompute
 * the flapping mark. Every function takes the caller's transaction (or the database).
 */
export async function applyAlert(
  db: Db,
  opts: LifecycleOptions,
  agentId: string,
  alert: AlertPayload,
  at: Date,
  actor: TimelineActor,
): Promise<{ incidentId: string; change: AlertChange }> {
  const { incident, change } = await recordAlert(db, newId(), agentId, alert, at);
  // Classified on every alert: a repeat can change the answer (a unit failing 3 times in 10 minutes).
  const c = classify(opts.rules, {
    type: incident.type,
    message: incident.message,
    logs: incident.logs,
    status: incident.unit_status,
    exitCode: incident.exit_code,
    count: incident.count,
    firstSeenAt: incident.first_seen_at,
    lastSeenAt: incident.last_seen_at,
  });
  await recordEvent(db, {
    incidentId: incident.id,
    at,
    actor,
    kind: change,
    detail: change === 'repeated' ? { count: incident.count } : { message: incident.message.slice(0, 500) },
  });
  if (c.severity !== incident.severity || c.category !== incident.category || c.rule !== incident.rule) {
    await setClassification(db, incident.id, c);
    await recordEvent(db, { incidentId: incident.id, at, actor: 'rule', kind: 'classified', detail: { ...c } });
  }
  if (change !== 'repeated') await flapCheck(db, incident.id, at);
  if (opts.notify) await enqueueMessage(db, incident.id, at);
  return { incidentId: incident.id, change };
}

/** The unresolved incident of a fingerprint, if any, is resolved. */
export async function applyResolve(
  db: Db,
  opts: LifecycleOptions,
  fp: { agentId: string; type: string; source: string },
  at: Date,
  actor: TimelineActor,
  message?: string,
): Promise<string | undefined> {
  const id = await resolveIncidentByFingerprint(db, fp, at, actor);
  if (!id) return undefined;
  await recordEvent(db, { incidentId: id, at, actor, kind: 'resolved', ...(message ? { detail: { message: message.slice(0, 500) } } : {}) });
  await flapCheck(db, id, at);
  if (opts.notify) await enqueueMessage(db, id, at);
  return id;
}

/** After an open, reopen or resolve: mark or clear flapping, with its own timeline entry. */
export async function flapCheck(db: Db, incidentId: string, at: Date): Promise<void> {
  const flapping = await updateFlapping(db, incidentId, at);
  if (flapping !== undefined) await recordEvent(db, { incidentId, at, actor: 'hub', kind: flapping ? 'flapping' : 'stable' });
}
