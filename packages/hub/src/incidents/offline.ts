import type { Db } from '../storage/database.ts';
import { silentAgents } from '../storage/incidents.ts';
import { applyAlert, applyResolve, type LifecycleOptions } from './lifecycle.ts';

/** Missed heartbeat intervals after which an agent counts as offline. */
export const MISSED_HEARTBEATS = 3;
export const OFFLINE_FINGERPRINT = { type: 'agent', source: 'offline' } as const;

/**
 * Open an "agent offline" incident for every agent not heard from for 3 heartbeat intervals that
 * has none open yet. Last-seen times are written by every hub, so this holds for agents
 * connected to another hub on the same database too. Returns the agent ids it flagged.
 */
export async function sweepOfflineAgents(db: Db, lifecycle: LifecycleOptions, heartbeatIntervalS: number, now: Date): Promise<string[]> {
  const cutoff = new Date(now.getTime() - MISSED_HEARTBEATS * heartbeatIntervalS * 1000);
  const silent = await silentAgents(db, cutoff, OFFLINE_FINGERPRINT);
  for (const agent of silent) {
    const seconds = Math.round((now.getTime() - agent.last_seen_at.getTime()) / 1000);
    const message = `agent ${agent.hostname ?? agent.id} has not been heard from for ${seconds} s (${MISSED_HEARTBEATS} heartbeat intervals)`;
    await applyAlert(db, lifecycle, agent.id, { ...OFFLINE_FINGERPRINT, message }, now, 'hub');
  }
  return silent.map((a) => a.id);
}

/** The agent is back: its offline incident, if any, is resolved. */
export async function agentReturned(db: Db, lifecycle: LifecycleOptions, agentId: string, at: Date): Promise<string | undefined> {
  return applyResolve(db, lifecycle, { agentId, ...OFFLINE_FINGERPRINT }, at, 'agent', 'the agent connected again');
}
