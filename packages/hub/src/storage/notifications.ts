import { sql } from 'kysely';
import { newId } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { Incident } from './tables.ts';
import { pendingMessage } from './pending-message.ts';
import { getIncident } from './incidents.ts';

/**
 * The Slack outbox. A `message` notification asks for the incident's message to be posted, or
 * edited to show the incident as it is now; while one is pending, later changes only bump its
 * version, so a burst of repeats costs one edit. A `thread` notification is a reply under it.
 */
export async function enqueueMessage(db: Db, incidentId: string, at: Date): Promise<void> {
  await db
    .insertInto('notifications')
    .values({ id: newId(), incident_id: incidentId, kind: 'message', next_attempt_at: at })
    .onConflict(pendingMessage)
    .execute();
}

export async function enqueueThread(db: Db, incidentId: string, body: string, at: Date): Promise<void> {
  await db.insertInto('notifications').values({ id: newId(), incident_id: incidentId, kind: 'thread', body, next_attempt_at: at }).execute();
}

/** An Approve / Reject question for a remediation attempt, in the incident's thread. */
export async function enqueueApproval(db: Db, incidentId: string, attemptId: string, at: Date): Promise<void> {
  await db.insertInto('notifications').values({ id: newId(), incident_id: incidentId, kind: 'approval', body: attemptId, next_attempt_at: at }).execute();
}

export interface DueNotification {
  id: string;
  incident_id: string;
  kind: 'message' | 'thread' | 'approval';
  body: string | null;
  version: number;
  attempts: number;
}

/**
 * Lease up to `n` due notifications, oldest first, for `leaseMs` (another hub, or this one after
 * a crash, takes them again once the lease runs out).
 */
export async function claimDue(db: Db, n: number, now: Date, leaseMs: number): Promise<DueNotification[]> {
  const result = await sql<DueNotification>`
    UPDATE notifications SET locked_until = ${new Date(now.getTime() + leaseMs).toISOString()}::timestamptz
    WHERE id IN (
      SELECT id FROM notifications
      WHERE done_at IS NULL AND next_attempt_at <= ${now.toISOString()}::timestamptz
        AND (locked_until IS NULL OR locked_until < ${now.toISOString()}::timestamptz)
      ORDER BY id LIMIT ${n} FOR UPDATE SKIP LOCKED
    )
    RETURNING id, incident_id, kind, body, version, attempts`.execute(db);
  return result.rows.sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** Done, unless the incident changed again while it was being sent (then it goes round again). */
export async function completeNotification(db: Db, n: DueNotification, at: Date): Promise<void> {
  const r = await db
    .updateTable('notifications')
    .set({ done_at: at, locked_until: null, error: null })
    .where('id', '=', n.id)
    .where('version', '=', n.version)
    .executeTakeFirst();
  if (r.numUpdatedRows === 0n) await db.updateTable('notifications').set({ locked_until: null, next_attempt_at: at }).where('id', '=', n.id).execute();
}

/** Try again at `next` (a rate limit, Slack unreachable). `counts` is false for a rate limit. */
export async function retryNotification(db: Db, id: string, next: Date, error: string, counts: boolean): Promise<void> {
  await db
    .updateTable('notifications')
    .set((eb) => ({ next_attempt_at: next, locked_until: null, error: error.slice(0, 500), attempts: counts ? eb('attempts', '+', 1) : eb.ref('attempts') }))
    .where('id', '=', id)
    .execute();
}

/** Held back (by a silence) until `until`; `mark` says why, for when it comes due. */
export async function deferNotification(db: Db, id: string, until: Date, mark: string): Promise<void> {
  await db.updateTable('notifications').set({ next_attempt_at: until, locked_until: null, body: mark }).where('id', '=', id).where('kind', '=', 'message').execute();
}

/** A silence ended early: what it held is due now. */
export async function releaseDeferred(db: Db, at: Date): Promise<void> {
  await db.updateTable('notifications').set({ next_attempt_at: at }).where('done_at', 'is', null).where('body', '=', 'silenced').where('next_attempt_at', '>', at).execute();
}

export async function releaseLeases(db: Db, ids: string[]): Promise<void> {
  if (ids.length > 0) await db.updateTable('notifications').set({ locked_until: null }).where('id', 'in', ids).execute();
}

/** Given up on (Slack refused it for good); kept with its error. */
export async function failNotification(db: Db, id: string, at: Date, error: string): Promise<void> {
  await db.updateTable('notifications').set({ done_at: at, locked_until: null, error: `failed: ${error.slice(0, 490)}` }).where('id', '=', id).execute();
}

/**
 * At start: whatever was backing off is tried now (a restart is often the fix: a new token, Slack
 * reachable again). Rows another hub holds a live lease on are left to it.
 */
export async function retryPendingNow(db: Db, now: Date): Promise<number> {
  const r = await db
    .updateTable('notifications')
    .set({ next_attempt_at: now })
    .where('done_at', 'is', null)
    .where('next_attempt_at', '>', now)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function pendingNotifications(db: Db): Promise<number> {
  const { n } = await db
    .selectFrom('notifications')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('done_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(n);
}

export async function getSlackMessage(db: Db, incidentId: string) {
  return db.selectFrom('slack_messages').selectAll().where('incident_id', '=', incidentId).executeTakeFirst();
}

export async function saveSlackMessage(db: Db, incidentId: string, channel: string, ts: string | null, at: Date): Promise<void> {
  await db.insertInto('slack_messages').values({ incident_id: incidentId, channel, ts, posted_at: at }).onConflict((oc) => oc.column('incident_id').doNothing()).execute();
}

/** Mute a fingerprint until `until` (a later mute replaces an earlier one). */
/** An incident's fingerprint: (agent, type, source), or (integration, sender's key) for an integration's alert. */
export type Fingerprint = { agent_id: string | null; integration_id: string | null; type: string; source: string };

/** Mute a fingerprint until `until` (Slack's Ignore): its incidents are recorded, not posted. */
export async function muteFingerprint(db: Db, fp: Fingerprint, until: Date, by: string, at: Date): Promise<void> {
  const update = { until, muted_by: by, muted_at: at };
  if (fp.integration_id !== null) {
    await db
      .insertInto('fingerprint_mutes')
      .values({ agent_id: null, integration_id: fp.integration_id, type: fp.type, source: fp.source, ...update })
      .onConflict((oc) => oc.columns(['integration_id', 'source']).where('integration_id', 'is not', null).doUpdateSet(update))
      .execute();
    return;
  }
  await db
    .insertInto('fingerprint_mutes')
    .values({ agent_id: fp.agent_id, type: fp.type, source: fp.source, ...update })
    .onConflict((oc) => oc.columns(['agent_id', 'type', 'source']).where('agent_id', 'is not', null).doUpdateSet(update))
    .execute();
}

export async function isMuted(db: Db, fp: Fingerprint, at: Date): Promise<boolean> {
  let q = db.selectFrom('fingerprint_mutes').select('until').where('source', '=', fp.source).where('until', '>', at);
  q = fp.integration_id !== null ? q.where('integration_id', '=', fp.integration_id) : q.where('agent_id', '=', fp.agent_id!).where('type', '=', fp.type);
  return (await q.executeTakeFirst()) !== undefined;
}

/** Everything the message shows: the incident, its host, and the latest actions on it. */
export async function messageData(db: Db, incidentId: string): Promise<MessageData | undefined> {
  const incident = await getIncident(db, incidentId);
  if (!incident) return undefined;
  const agent = incident.agent_id ? await db.selectFrom('agents').select(['hostname', 'actions']).where('id', '=', incident.agent_id).executeTakeFirst() : undefined;
  const integration = incident.integration_id ? await db.selectFrom('integrations').select('name').where('id', '=', incident.integration_id).executeTakeFirst() : undefined;
  const actions = await db
    .selectFrom('incident_events')
    .select(['at', 'by', 'kind', 'detail'])
    .where('incident_id', '=', incidentId)
    .where('kind', 'in', ['action_requested', 'action_completed', 'ignored'])
    .orderBy('id', 'desc')
    .limit(3)
    .execute();
  return { incident, hostname: agent?.hostname ?? null, integration: integration?.name ?? null, catalogue: agent?.actions ?? null, actions: actions.reverse() };
}

export interface MessageData {
  incident: Incident;
  hostname: string | null;
  /** The integration an alert came from (its name), for alerts from other tools. */
  integration: string | null;
  catalogue: string[] | null;
  actions: { at: Date; by: string | null; kind: string; detail: Record<string, unknown> | null }[];
}
