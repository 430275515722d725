import { newId } from '@opspilot/protocol';
import type { Db } from '../storage/database.ts';
import { resolveIncidentByFingerprint, setClassification, silentAgents, upsertIncidentFromAlert } from '../storage/incidents.ts';
import { classify, type ClassificationRule } from './classify.ts';
import { recordEvent } from '../storage/timeline.ts';

/** Missed heartbeat intervals after which an agent counts as offline. */
export const MISSED_HEARTBEATS = 3;
export const OFFLINE_FINGERPRINT = { type: 'agent', source: 'offline' } as const;

/**
 * Open an "agent offline" incident for every agent not heard from for 3 heartbeat intervals that
 * has none open yet. Last-seen times are written by every hub, so this holds for agents
 * connected to another hub on the same database too. Returns the agent ids it flagged.
 */
export async function sweepOfflineAgents(db: Db, rules: readonly ClassificationRule[], heartbeatIntervalS: number, now: Date): Promise<string[]> {
  const cutoff = new Date(now.getTime() - MISSED_HEARTBEATS * heartbeatIntervalS * 1000);
  const silent = await silentAgents(db, cutoff, OFFLINE_FINGERPRINT);
  for (const agent of silent) {
    const seconds = Math.round((now.getTime() - agent.last_seen_at.getTime()) / 1000);
    const incident = await upsertIncidentFromAlert(
      db,
      newId(),
      agent.id,
      { ...OFFLINE_FINGERPRINT, message: `agent ${agent.hostname ?? agent.id} has not been heard from for ${seconds} s (${MISSED_HEARTBEATS} heartbeat intervals)` },
      now,
    );
    const c = classify(rules, { type: incident.type, message: incident.message, logs: null, status: null, count: incident.count, firstSeenAt: incident.first_seen_at, lastSeenAt: incident.last_seen_at });
    await setClassification(db, incident.id, c);
    await recordEvent(db, { incidentId: incident.id, at: now, actor: 'hub', kind: 'opened', detail: { message: incident.message } });
    await recordEvent(db, { incidentId: incident.id, at: now, actor: 'rule', kind: 'classified', detail: { ...c } });
  }
  return silent.map((a) => a.id);
}

/** The agent is back: its offline incident, if any, is resolved. */
export async function agentReturned(db: Db, agentId: string, at: Date): Promise<string | undefined> {
  const id = await resolveIncidentByFingerprint(db, { agentId, ...OFFLINE_FINGERPRINT }, at, 'agent');
  if (id) await recordEvent(db, { incidentId: id, at, actor: 'agent', kind: 'resolved', detail: { message: 'the agent connected again' } });
  return id;
}
