import { newId, type AlertPayload } from '@opspilot/protocol';
import type { Db } from '../storage/database.ts';
import { acknowledgeIncident, logsToStore, type AlertChange, markEscalated, markIgnored, recordAlert, resolveIncident, resolveIncidentByFingerprint, setClassification, updateFlapping } from '../storage/incidents.ts';
import {
  insertExternalIncidents,
  knownKeys,
  openExternal,
  recordExternalAlert,
  resolveExternal,
  type ExternalAlert,
  type ExternalChange,
  type NewExternalIncident,
} from '../storage/external-alerts.ts';
import { enqueueMessage, muteFingerprint } from '../storage/notifications.ts';
import { queueRemediation, releaseHold } from '../storage/rules.ts';
import type { Incident } from '../storage/tables.ts';
import { recordEvent, recordEvents, type TimelineActor, type TimelineEvent } from '../storage/timeline.ts';
import { classify, type Classification, type ClassificationRule, type IncidentFacts } from './classify.ts';

export interface LifecycleOptions {
  rules: readonly ClassificationRule[];
  /** Queue a Slack message (post or edit) for every change, in the same transaction. */
  notify: boolean;
}

/**
 * The incident lifecycle in one place, the one writer of an incident's state: an alert opens,
 * repeats or reopens an incident and classifies it; a resolve closes it; a person acknowledges,
 * resolves or ignores it; a failed automatic fix escalates it. Each change writes its timeline
 * entry and queues the Slack message (when notifying) with it; opens, reopens and resolves also
 * recompute the flapping mark, and a person's acknowledge or resolve lifts a remediation hold. Every function takes the caller's transaction (or the database).
 */
export async function applyAlert(
  db: Db,
  opts: LifecycleOptions,
  agentId: string,
  alert: AlertPayload,
  at: Date,
  actor: TimelineActor,
  /** The agent's envelope id: claimed with the alert; a copy seen before records nothing (undefined). */
  claim?: { msgId: string; receivedAt: Date },
): Promise<{ incidentId: string; change: AlertChange } | undefined> {
  // What a new incident of this alert is classified as goes in with it, with its timeline entries,
  // its place in the remediation queue and its Slack message: one statement (a lone alert's one
  // round trip: the events lane runs it outside a transaction).
  const fresh = classify(opts.rules, {
    type: alert.type,
    message: alert.message,
    logs: logsToStore(alert.logs),
    status: alert.status ?? null,
    exitCode: alert.exit_code ?? null,
    count: 1,
    firstSeenAt: at,
    lastSeenAt: at,
  });
  const recorded = await recordAlert(db, newId(), agentId, alert, at, { fresh, actor, notify: opts.notify, ...(claim ? { claim } : {}) });
  if (!recorded) return undefined;
  const { incident, change } = recorded;
  const follow = followUp(opts, incident, change);
  if (follow.reclassify || follow.flapCheck) {
    // Called outside a transaction (a lone alert: its statement committed on its own, one round
    // trip), what is left commits together, after it, and the Slack message (queued by the
    // statement, perhaps already posted) is edited again to show it. Both are recomputed at the
    // incident's next change, should the hub stop between the two commits.
    if (db.isTransaction) await afterAlert(db, incident, at, follow);
    else
      await db.transaction().execute(async (trx) => {
        await afterAlert(trx, incident, at, follow);
        if (opts.notify) await enqueueMessage(trx, incident.id, at);
      });
  }
  return { incidentId: incident.id, change };
}

type ClassifiedIncident = Pick<Incident, 'type' | 'message' | 'logs' | 'unit_status' | 'exit_code' | 'count' | 'first_seen_at' | 'last_seen_at' | 'severity' | 'category' | 'rule'>;

/**
 * The incident classified again as it is after an alert (a repeat can change the answer: a unit
 * failing 3 times in 10 minutes); null when that is what it has.
 */
function reclassified(opts: LifecycleOptions, incident: ClassifiedIncident, extra: Pick<IncidentFacts, 'labels' | 'senderSeverity'> = {}): Classification | null {
  const c = classify(opts.rules, {
    type: incident.type,
    message: incident.message,
    logs: incident.logs,
    status: incident.unit_status,
    exitCode: incident.exit_code,
    count: incident.count,
    firstSeenAt: incident.first_seen_at,
    lastSeenAt: incident.last_seen_at,
    ...extra,
  });
  return c.severity !== incident.severity || c.category !== incident.category || c.rule !== incident.rule ? c : null;
}

/** What an agent's alert still needs after its statement: a new classification, a flapping check (a reopen). */
function followUp(opts: LifecycleOptions, incident: ClassifiedIncident, change: AlertChange): { reclassify: Classification | null; flapCheck: boolean } {
  // A new incident has one change in its window: it cannot be flapping yet.
  return { reclassify: reclassified(opts, incident), flapCheck: change === 'reopened' };
}

/**
 * An agent's alert's follow-up (followUp): the new classification with its timeline entry; the
 * flapping mark. After a lone alert's statement another alert of the incident may have come in
 * between (at another hub): the classification is written only if the count is still the one it
 * was computed from, and otherwise left to that later alert, which saw the newer count.
 */
async function afterAlert(db: Db, incident: Pick<Incident, 'id' | 'count'>, at: Date, follow: ReturnType<typeof followUp>): Promise<void> {
  if (follow.reclassify && (await setClassification(db, incident.id, follow.reclassify, incident.count))) {
    await recordEvent(db, { incidentId: incident.id, at, actor: 'rule', kind: 'classified', detail: { ...follow.reclassify } });
  }
  if (follow.flapCheck) await flapCheck(db, incident.id, at);
}

/**
 * An integration's alert (intake/): firing opens, repeats or reopens the incident of its
 * fingerprint (integration, sender's key), linked to `agentId` when the alert names a host an
 * agent runs on; the same firing resent changes nothing. Classified with its labels, the
 * sender's severity used when no rule matches; timeline, flapping and Slack as for an agent's.
 */
export async function applyExternalAlert(
  db: Db,
  opts: LifecycleOptions,
  integration: { id: string; kind: string; name: string },
  agentId: string | null,
  alert: ExternalAlert,
  at: Date,
  /** What it came in (`{delivery_id}`, `{ping_id}`): on the timeline entry, so the audit trail leads to it. */
  cause: Record<string, unknown> = {},
): Promise<{ incidentId: string; change: ExternalChange }> {
  const { incident, change, linked } = await recordExternalAlert(db, newId(), integration, agentId, alert, at);
  if (linked) await recordEvent(db, { incidentId: incident.id, at, actor: 'integration', by: `integration:${integration.name}`, kind: 'linked', detail: { agent_id: incident.agent_id, host: alert.host ?? null } });
  if (change === 'unchanged') return { incidentId: incident.id, change };
  await afterExternalAlert(db, opts, incident, change, at, { labels: incident.labels, senderSeverity: alert.severity ?? null }, `integration:${integration.name}`, cause);
  return { incidentId: incident.id, change };
}

/**
 * A delivery's firing alerts, in order, as applyExternalAlert would take them one by one, with
 * the new incidents among them (keys no incident answers for) opened together: a group of
 * thousands costs a few statements, not thousands.
 */
export async function applyExternalAlerts(
  db: Db,
  opts: LifecycleOptions,
  integration: { id: string; kind: string; name: string },
  items: readonly { alert: ExternalAlert; agentId: string | null }[],
  at: Date,
  cause: Record<string, unknown> = {},
): Promise<{ incidentId: string; change: ExternalChange }[]> {
  const known = await knownKeys(db, integration.id, [...new Set(items.map((i) => i.alert.key))], at);
  const fresh: NewExternalIncident[] = [];
  const results: ({ incidentId: string; change: ExternalChange } | null)[] = items.map(() => null);
  items.forEach(({ alert, agentId }, i) => {
    if (known.has(alert.key)) return;
    known.add(alert.key); // the same key again in this delivery repeats it (below)
    const classification = classify(opts.rules, {
      type: alert.type ?? integration.kind,
      message: alert.title,
      logs: alert.details ?? null,
      status: alert.severity ?? null,
      exitCode: null,
      count: 1,
      firstSeenAt: at,
      lastSeenAt: at,
      labels: alert.labels,
      senderSeverity: alert.severity ?? null,
    });
    const id = newId();
    fresh.push({ id, agentId, alert, classification });
    results[i] = { incidentId: id, change: 'opened' };
  });
  await insertExternalIncidents(db, integration, fresh, at);
  const by = `integration:${integration.name}`;
  await recordEvents(
    db,
    fresh.flatMap(({ id, agentId, alert, classification }) => [
      { incidentId: id, agentId, at, actor: 'integration' as const, by, kind: 'opened' as const, detail: { message: alert.title.slice(0, 500), ...cause } },
      { incidentId: id, agentId, at, actor: 'rule' as const, kind: 'classified' as const, detail: { ...classification } },
    ]),
  );
  await queueRemediation(db, fresh.map((f) => f.id), at);
  if (opts.notify) for (const f of fresh) await enqueueMessage(db, f.id, at);
  for (const [i, { alert, agentId }] of items.entries()) {
    results[i] ??= await applyExternalAlert(db, opts, integration, agentId, alert, at, cause);
  }
  return results as { incidentId: string; change: ExternalChange }[];
}

/** An integration says an alert is resolved: its unresolved incident, if any, is resolved. */
export async function applyExternalResolve(
  db: Db,
  opts: LifecycleOptions,
  integration: { id: string; name: string },
  key: string,
  at: Date,
  cause: Record<string, unknown> = {},
): Promise<string | undefined> {
  const by = `integration:${integration.name}`;
  const id = await resolveExternal(db, integration.id, key, at, by);
  if (!id) return undefined;
  await recordEvent(db, { incidentId: id, at, actor: 'integration', by, kind: 'resolved', ...(Object.keys(cause).length ? { detail: cause } : {}) });
  await flapCheck(db, id, at);
  if (opts.notify) await enqueueMessage(db, id, at);
  return id;
}

/** An integration says someone acknowledged an alert (Events v2 `acknowledge`). */
export async function applyExternalAcknowledge(
  db: Db,
  opts: Pick<LifecycleOptions, 'notify'>,
  integration: { id: string; name: string },
  key: string,
  at: Date,
  cause: Record<string, unknown> = {},
): Promise<string | undefined> {
  const id = await openExternal(db, integration.id, key);
  if (!id) return undefined;
  const by = `integration:${integration.name}`;
  const result = await acknowledgeIncident(db, id, by, at);
  if (!result || result === 'resolved' || !result.changed) return undefined;
  await recordEvent(db, { incidentId: id, at, actor: 'integration', by, kind: 'acknowledged', ...(Object.keys(cause).length ? { detail: cause } : {}) });
  if (opts.notify) await enqueueMessage(db, id, at);
  return id;
}

/** What follows an integration's recorded alert: its timeline entry, classification, remediation, flapping and Slack. */
async function afterExternalAlert(
  db: Db,
  opts: LifecycleOptions,
  incident: ClassifiedIncident & Pick<Incident, 'id'>,
  change: 'opened' | 'repeated' | 'reopened',
  at: Date,
  extra: Pick<IncidentFacts, 'labels' | 'senderSeverity'>,
  by: string,
  detail: Record<string, unknown>,
): Promise<void> {
  const c = reclassified(opts, incident, extra);
  const events: TimelineEvent[] = [
    {
      incidentId: incident.id,
      at,
      actor: 'integration',
      by,
      kind: change,
      detail: { ...(change === 'repeated' ? { count: incident.count } : { message: incident.message.slice(0, 500) }), ...detail },
    },
  ];
  if (c) {
    await setClassification(db, incident.id, c);
    events.push({ incidentId: incident.id, at, actor: 'rule', kind: 'classified', detail: { ...c } });
  }
  await recordEvents(db, events);
  // Opened or reopened: queued for the remediation rules.
  if (change !== 'repeated') await queueRemediation(db, [incident.id], at);
  // A new incident has one change in its window: it cannot be flapping yet.
  if (change === 'reopened') await flapCheck(db, incident.id, at);
  if (opts.notify) await enqueueMessage(db, incident.id, at);
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

/** A rule's fix was verified: the incident is resolved, whoever raised it (an agent or an integration). */
export async function resolveByRule(db: Db, opts: Pick<LifecycleOptions, 'notify'>, id: string, at: Date, message: string): Promise<boolean> {
  const result = await resolveIncident(db, id, 'rule', at);
  if (!result?.changed) return false;
  await recordEvent(db, { incidentId: id, at, actor: 'rule', kind: 'resolved', detail: { message: message.slice(0, 500) } });
  await flapCheck(db, id, at);
  if (opts.notify) await enqueueMessage(db, id, at);
  return true;
}

/** After an open, reopen or resolve: mark or clear flapping, with its own timeline entry. */
export async function flapCheck(db: Db, incidentId: string, at: Date): Promise<void> {
  const flapping = await updateFlapping(db, incidentId, at);
  if (flapping !== undefined) await recordEvent(db, { incidentId, at, actor: 'hub', kind: flapping ? 'flapping' : 'stable' });
}

/**
 * A person acknowledged it. `changed` says whether this call did (a second acknowledgement keeps
 * the first); 'resolved' if it is already resolved; undefined if there is no such incident.
 */
export async function acknowledgeByPerson(db: Db, opts: Pick<LifecycleOptions, 'notify'>, id: string, by: string, at: Date): Promise<{ incident: Incident; changed: boolean } | 'resolved' | undefined> {
  const result = await acknowledgeIncident(db, id, by, at);
  if (result && result !== 'resolved' && result.changed) {
    await recordEvent(db, { incidentId: id, at, actor: 'user', by, kind: 'acknowledged' });
    if (opts.notify) await enqueueMessage(db, id, at);
    await personActed(db, id);
  }
  return result;
}

/** A person resolved it; resolving a resolved incident changes nothing. */
export async function resolveByPerson(db: Db, opts: Pick<LifecycleOptions, 'notify'>, id: string, by: string, at: Date): Promise<{ incident: Incident; changed: boolean } | undefined> {
  const result = await resolveIncident(db, id, by, at);
  if (result?.changed) {
    await recordEvent(db, { incidentId: id, at, actor: 'user', by, kind: 'resolved' });
    await flapCheck(db, id, at);
    if (opts.notify) await enqueueMessage(db, id, at);
    await personActed(db, id);
  }
  return result;
}

/**
 * A person acted on it (acknowledged, resolved, ran an action that changes the host): automatic
 * attempts held on its fingerprint after a failed fix may resume. True if a hold was released.
 */
export async function personActed(db: Db, incidentId: string): Promise<boolean> {
  return releaseHold(db, incidentId);
}

/** A person ignored it: its fingerprint is muted until `until`, and it is marked ignored. */
export async function ignoreByPerson(db: Db, opts: Pick<LifecycleOptions, 'notify'>, incident: Incident, by: string, at: Date, until: Date, forText: string): Promise<void> {
  await muteFingerprint(db, incident, until, by, at);
  await markIgnored(db, incident.id);
  await recordEvent(db, { incidentId: incident.id, at, actor: 'user', by, kind: 'ignored', detail: { until: until.toISOString(), for: forText } });
  if (opts.notify) await enqueueMessage(db, incident.id, at);
}

/** An automatic fix did not work: its severity goes up (the caller holds further attempts and audits why). */
export async function escalate(db: Db, opts: Pick<LifecycleOptions, 'notify'>, incidentId: string, severity: string, at: Date): Promise<void> {
  await markEscalated(db, incidentId, severity, at);
  if (opts.notify) await enqueueMessage(db, incidentId, at);
}
