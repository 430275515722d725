import type { Db } from './database.ts';
import type { Incident } from './tables.ts';
import { REOPEN_WINDOW_MS, clippedLogs, logsToStore, type AlertChange, type UpsertedIncident } from './incidents.ts';

/**
 * An alert from another tool, as every intake format is read into (intake/formats/): the
 * sender's key for it (Alertmanager's fingerprint, a dedup_key, a Sentry issue id), firing or
 * resolved, and what it says. Bounded by the reader.
 */
export interface ExternalAlert {
  key: string;
  /** Firing opens or repeats; resolved resolves; acknowledged (Events v2) acknowledges. */
  status: 'firing' | 'resolved' | 'acknowledged';
  title: string;
  /** The longer text (a description, a stack trace): kept as the incident's logs. */
  details?: string;
  /** The sender's own severity, mapped to OpsPilot's; used when no rule classifies it. */
  severity?: 'critical' | 'high' | 'medium' | 'low';
  service?: string;
  /** The host the alert names, if any (from the integration's host labels or a host field). */
  host?: string;
  labels: Record<string, string>;
  /** When this firing began, as the sender says (Alertmanager startsAt): the same firing resent is not a repeat. */
  occurrence?: string;
  /** Anything else worth keeping (annotations, links, the sender's URL). */
  context?: Record<string, unknown>;
  /** Open an incident only once this many of this key came within the window (an SDK's errors); then each repeats it. */
  threshold?: { count: number; withinMs: number };
}

export type ExternalChange = AlertChange | 'unchanged';

const RETURNED = ['id', 'type', 'message', 'unit_status', 'exit_code', 'count', 'first_seen_at', 'last_seen_at', 'severity', 'category', 'rule', 'agent_id', 'labels', 'service'] as const;

/**
 * Record an integration's firing alert against its fingerprint (integration, sender's key):
 * - while an incident of it is unresolved, the same firing (same `occurrence`) refreshes it
 *   without counting; another firing counts as a repeat;
 * - one resolved less than 30 minutes ago is reopened;
 * - otherwise a new incident, queued for analysis.
 * `agentId` links it to the agent of the host it names (kept once linked). Run in the delivery's
 * transaction; the partial unique index keeps two hubs from opening the same fingerprint twice.
 */
export async function recordExternalAlert(
  db: Db,
  id: string,
  integration: { id: string; kind: string },
  agentId: string | null,
  alert: ExternalAlert,
  at: Date,
): Promise<{ incident: UpsertedIncident & Pick<Incident, 'agent_id' | 'labels' | 'service'>; change: ExternalChange; linked: boolean }> {
  const details = {
    message: alert.title,
    unit_status: alert.severity ?? null,
    context: alert.context ? JSON.stringify(alert.context) : null,
    service: alert.service ?? null,
    labels: JSON.stringify(alert.labels),
  };
  const stored = logsToStore(alert.details);
  const open = await db
    .selectFrom('incidents')
    .select(['id', 'occurrence', 'agent_id'])
    .where('integration_id', '=', integration.id)
    .where('source', '=', alert.key)
    .where('status', '<>', 'resolved')
    .forUpdate()
    .executeTakeFirst();
  if (open) {
    const same = alert.occurrence !== undefined && open.occurrence === alert.occurrence;
    const incident = await db
      .updateTable('incidents')
      .set((eb) => ({
        ...details,
        logs: eb.fn.coalesce(eb.val(stored), 'logs'),
        last_seen_at: at,
        occurrence: alert.occurrence ?? null,
        ...(same ? {} : { count: eb('count', '+', 1) }),
        ...(open.agent_id === null && agentId ? { agent_id: agentId } : {}),
      }))
      .where('id', '=', open.id)
      .returning([...RETURNED, clippedLogs])
      .executeTakeFirstOrThrow();
    return { incident, change: same ? 'unchanged' : 'repeated', linked: open.agent_id === null && agentId !== null };
  }

  const reopened = await db
    .updateTable('incidents')
    .set((eb) => ({
      ...details,
      logs: eb.fn.coalesce(eb.val(stored), 'logs'),
      occurrence: alert.occurrence ?? null,
      status: 'new',
      count: eb('count', '+', 1),
      last_seen_at: at,
      reopened_at: at,
      reopen_count: eb('reopen_count', '+', 1),
      resolved_at: null,
      resolved_by: null,
      acknowledged_at: null,
      acknowledged_by: null,
      analysis_status: 'pending',
      analysis_requested_at: at,
      analysis_reuse: true,
      ...(agentId ? { agent_id: agentId } : {}),
    }))
    .where('id', '=', (eb) =>
      eb
        .selectFrom('incidents')
        .select('id')
        .where('integration_id', '=', integration.id)
        .where('source', '=', alert.key)
        .where('status', '=', 'resolved')
        .where('resolved_at', '>=', new Date(at.getTime() - REOPEN_WINDOW_MS))
        .orderBy('resolved_at', 'desc')
        .limit(1),
    )
    .returning([...RETURNED, clippedLogs])
    .executeTakeFirst();
  if (reopened) return { incident: reopened, change: 'reopened', linked: false };

  const incident = await db
    .insertInto('incidents')
    .values({
      id,
      agent_id: agentId,
      integration_id: integration.id,
      type: integration.kind,
      source: alert.key,
      ...details,
      logs: stored,
      exit_code: null,
      occurrence: alert.occurrence ?? null,
      status: 'new',
      first_seen_at: at,
      last_seen_at: at,
      analysis_status: 'pending',
      analysis_requested_at: at,
    })
    .returning([...RETURNED, clippedLogs])
    .executeTakeFirstOrThrow();
  return { incident, change: 'opened', linked: false };
}

/** The unresolved incident of an integration's key, if there is one. */
export async function openExternal(db: Db, integrationId: string, key: string): Promise<string | undefined> {
  const row = await db.selectFrom('incidents').select('id').where('integration_id', '=', integrationId).where('source', '=', key).where('status', '<>', 'resolved').executeTakeFirst();
  return row?.id;
}

/** Resolve the unresolved incident of an integration's key, if there is one. */
export async function resolveExternal(db: Db, integrationId: string, key: string, at: Date, by: string): Promise<string | undefined> {
  const row = await db
    .updateTable('incidents')
    .set({ status: 'resolved', resolved_at: at, resolved_by: by })
    .where('integration_id', '=', integrationId)
    .where('source', '=', key)
    .where('status', '<>', 'resolved')
    .returning('id')
    .executeTakeFirst();
  return row?.id;
}

/**
 * The agent on the host an alert names: the one agent whose hostname is `host` (any case), or,
 * failing that, whose short name is the host's first label (`web-1` for `web-1.example.com`).
 * None when no agent, or more than one, fits: a wrong link would run a fix on the wrong host.
 */
export async function agentOnHost(db: Db, host: string): Promise<string | null> {
  const name = host.toLowerCase();
  const exact = await db.selectFrom('agents').select('id').where((eb) => eb(eb.fn('lower', ['hostname']), '=', name)).limit(2).execute();
  if (exact.length === 1) return exact[0]!.id;
  if (exact.length > 1) return null;
  const short = name.split('.')[0]!;
  if (!short) return null;
  const rows = await db
    .selectFrom('agents')
    .select('id')
    .where((eb) => eb(eb.fn('split_part', [eb.fn('lower', ['hostname']), eb.val('.'), eb.val(1)]), '=', short))
    .limit(2)
    .execute();
  return rows.length === 1 ? rows[0]!.id : null;
}
