import { sql } from 'kysely';
import type { Db } from './database.ts';
import type { Incident } from './tables.ts';
import { REOPEN_WINDOW_MS, clippedLogs, logsToStore, reopening, type AlertChange, type UpsertedIncident } from './incidents.ts';

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
  /** The incident's type, when not the integration's kind (a monitor's: http, tcp, dns, tls). */
  type?: string;
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
      ...reopening(eb, at),
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
      type: alert.type ?? integration.kind,
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

/**
 * Of these keys, those an incident already answers for: unresolved, or resolved within the
 * reopen window. An alert whose key is not among them opens a new incident.
 */
export async function knownKeys(db: Db, integrationId: string, keys: readonly string[], at: Date): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = await db
    .selectFrom('incidents')
    .select('source')
    .distinct()
    .where('integration_id', '=', integrationId)
    .where(sql<boolean>`source = ANY(${[...keys]}::text[])`)
    .where((eb) => eb.or([eb('status', '<>', 'resolved'), eb('resolved_at', '>=', new Date(at.getTime() - REOPEN_WINDOW_MS))]))
    .execute();
  return new Set(rows.map((r) => r.source));
}

export interface NewExternalIncident {
  id: string;
  agentId: string | null;
  alert: ExternalAlert;
  classification: { severity: string; category: string; rule: string };
}

/** Rows per INSERT: well under PostgreSQL's 65,535 parameters. */
const INSERT_ROWS = 500;

/**
 * New incidents for alerts whose keys no incident answers for (see knownKeys), classified, in a
 * few statements however many there are (an Alertmanager group of thousands).
 */
export async function insertExternalIncidents(db: Db, integration: { id: string; kind: string }, rows: readonly NewExternalIncident[], at: Date): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_ROWS) {
    await db
      .insertInto('incidents')
      .values(
        rows.slice(i, i + INSERT_ROWS).map(({ id, agentId, alert, classification }) => ({
          id,
          agent_id: agentId,
          integration_id: integration.id,
          type: alert.type ?? integration.kind,
          source: alert.key,
          message: alert.title,
          unit_status: alert.severity ?? null,
          context: alert.context ? JSON.stringify(alert.context) : null,
          service: alert.service ?? null,
          labels: JSON.stringify(alert.labels),
          logs: logsToStore(alert.details),
          exit_code: null,
          occurrence: alert.occurrence ?? null,
          status: 'new' as const,
          first_seen_at: at,
          last_seen_at: at,
          analysis_status: 'pending' as const,
          analysis_requested_at: at,
          ...classification,
        })),
      )
      .execute();
  }
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
 * The agent on each host the alerts name: the one agent whose hostname is the host (any case),
 * or, failing that, whose short name is the host's first label (`web-1` for `web-1.example.com`).
 * Null when no agent, or more than one, fits: a wrong link would run a fix on the wrong host.
 * One query for all of a delivery's hosts.
 */
export async function agentsOnHosts(db: Db, hosts: readonly string[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  if (hosts.length === 0) return out;
  const names = [...new Set(hosts.map((h) => h.toLowerCase()))];
  const shorts = [...new Set(names.map((n) => n.split('.')[0]!).filter(Boolean))];
  const rows = await db
    .selectFrom('agents')
    .select(['id', sql<string>`lower(hostname)`.as('name')])
    .where((eb) => eb.or([eb(sql`lower(hostname)`, '=', sql`ANY(${names}::text[])`), eb(sql`split_part(lower(hostname), '.', 1)`, '=', sql`ANY(${shorts}::text[])`)]))
    .execute();
  const only = (ids: string[]) => (ids.length === 1 ? ids[0]! : null);
  for (const host of hosts) {
    const name = host.toLowerCase();
    const exact = rows.filter((r) => r.name === name).map((r) => r.id);
    if (exact.length > 0) {
      out.set(host, only(exact));
      continue;
    }
    const short = name.split('.')[0]!;
    out.set(host, only(rows.filter((r) => r.name?.split('.')[0] === short).map((r) => r.id)));
  }
  return out;
}

/** The agent on one host (see agentsOnHosts). */
export async function agentOnHost(db: Db, host: string): Promise<string | null> {
  return (await agentsOnHosts(db, [host])).get(host) ?? null;
}
