import { sql, type ExpressionBuilder } from 'kysely';
import type { AlertPayload } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { Database, Incident, IncidentStatus } from './tables.ts';

/** An alert of a fingerprint resolved less than this long ago reopens that incident. */
export const REOPEN_WINDOW_MS = 30 * 60_000;

/** What of an incident's logs the hub's own work reads (rules, the model, Slack): the first 16 KiB and last 48 KiB. */
export const LOG_HEAD = 16 * 1024;
export const LOG_TAIL = 48 * 1024;

/**
 * An incident's logs as the hub's own work reads them (rules, the model, Slack): at most their
 * first and last parts (classify.ts's scanned slice), cut by the database. Logs may be 2 MiB;
 * carrying them whole into the hub on every repeat cost ~50 ms of the event loop each on the
 * embedded database. Only `GET /v1/incidents/:id` reads them whole.
 */
export const clippedLogs = sql<string | null>`CASE WHEN length(logs) <= ${sql.lit(LOG_HEAD + LOG_TAIL)} THEN logs ELSE left(logs, ${sql.lit(LOG_HEAD)}) || E'\n' || right(logs, ${sql.lit(LOG_TAIL)}) END`.as('logs');

/** The logs an incident keeps of one alert: its first 32 KiB and last 224 KiB. */
export const STORED_LOGS_HEAD = 32 * 1024;
export const STORED_LOGS_TAIL = 224 * 1024;

/**
 * Logs as stored: up to 256 KiB kept whole; longer ones keep their beginning and their end (where
 * a failure says why), with a line saying how much was cut. The protocol takes up to 2 MiB; writing
 * 2 MiB on every repeat stalled the embedded database (it runs on the hub's thread) ~100 ms.
 */
export function logsToStore(logs: string | undefined): string | null {
  if (logs === undefined) return null;
  if (logs.length <= STORED_LOGS_HEAD + STORED_LOGS_TAIL) return logs;
  const cut = logs.length - STORED_LOGS_HEAD - STORED_LOGS_TAIL;
  return `${logs.slice(0, STORED_LOGS_HEAD)}\n[… ${cut} characters cut by the hub …]\n${logs.slice(-STORED_LOGS_TAIL)}`;
}

const RETURNED = ['id', 'type', 'message', 'unit_status', 'exit_code', 'count', 'first_seen_at', 'last_seen_at', 'severity', 'category', 'rule'] as const;
export type UpsertedIncident = Pick<Incident, (typeof RETURNED)[number] | 'logs'>;
export type AlertChange = 'opened' | 'repeated' | 'reopened';

/**
 * Record an alert against its fingerprint (agent, type, source):
 * - while an incident of it is unresolved, a repeat bumps its count and last-seen time and keeps
 *   the latest details;
 * - when one was resolved less than 30 minutes ago, that incident is reopened (status `new`,
 *   acknowledgement cleared, queued for analysis again);
 * - otherwise a new incident, queued for analysis.
 * Callers run it in the events lane, one at a time per hub; the partial unique index keeps two
 * hubs from opening the same fingerprint twice.
 */
export async function recordAlert(db: Db, id: string, agentId: string, alert: AlertPayload, at: Date): Promise<{ incident: UpsertedIncident; change: AlertChange }> {
  const stored = logsToStore(alert.logs);
  const details = {
    message: alert.message,
    exit_code: alert.exit_code ?? null,
    unit_status: alert.status ?? null,
    context: alert.context ? JSON.stringify(alert.context) : null,
  };
  const repeated = await db
    .updateTable('incidents')
    .set((eb) => ({ ...details, count: eb('count', '+', 1), last_seen_at: at, logs: eb.fn.coalesce(eb.val(stored), 'logs') }))
    .where('agent_id', '=', agentId)
    .where('type', '=', alert.type)
    .where('source', '=', alert.source)
    .where('status', '<>', 'resolved')
    .where('integration_id', 'is', null)
    .returning([...RETURNED, clippedLogs])
    .executeTakeFirst();
  if (repeated) return { incident: repeated, change: 'repeated' };

  const reopened = await db
    .updateTable('incidents')
    .set((eb) => ({ ...details, logs: eb.fn.coalesce(eb.val(stored), 'logs'), ...reopening(eb, at) }))
    .where('id', '=', (eb) =>
      eb
        .selectFrom('incidents')
        .select('id')
        .where('agent_id', '=', agentId)
        .where('type', '=', alert.type)
        .where('source', '=', alert.source)
        .where('status', '=', 'resolved')
        .where('integration_id', 'is', null)
        .where('resolved_at', '>=', new Date(at.getTime() - REOPEN_WINDOW_MS))
        .orderBy('resolved_at', 'desc')
        .limit(1),
    )
    .returning([...RETURNED, clippedLogs])
    .executeTakeFirst();
  if (reopened) return { incident: reopened, change: 'reopened' };

  const row = await db
    .insertInto('incidents')
    .values({
      id,
      agent_id: agentId,
      type: alert.type,
      source: alert.source,
      ...details,
      logs: stored,
      status: 'new',
      first_seen_at: at,
      last_seen_at: at,
      analysis_status: 'pending',
      analysis_requested_at: at,
    })
    // Another hub opened it a moment ago: count this alert as its repeat.
    .onConflict((oc) =>
      oc
        .columns(['agent_id', 'type', 'source'])
        .where('status', '<>', 'resolved')
        .where('integration_id', 'is', null)
        .doUpdateSet((eb) => ({ count: eb('incidents.count', '+', 1), last_seen_at: eb.ref('excluded.last_seen_at') })),
    )
    .returning([...RETURNED, clippedLogs])
    .executeTakeFirstOrThrow();
  return { incident: row, change: row.count === 1 ? 'opened' : 'repeated' };
}

/** What reopening an incident sets: new again, counted, its resolution and acknowledgement cleared, queued for analysis. */
export function reopening(eb: ExpressionBuilder<Database, 'incidents'>, at: Date) {
  return {
    status: 'new' as const,
    count: eb('count', '+', 1),
    last_seen_at: at,
    reopened_at: at,
    reopen_count: eb('reopen_count', '+', 1),
    resolved_at: null,
    resolved_by: null,
    acknowledged_at: null,
    acknowledged_by: null,
    analysis_status: 'pending' as const,
    analysis_requested_at: at,
    analysis_reuse: true,
  };
}

/** Changes that count towards flapping: the fingerprint firing and clearing. */
export const FLAP_KINDS = ['opened', 'reopened', 'resolved'] as const;
export const FLAP_WINDOW_MS = 15 * 60_000;
export const FLAP_THRESHOLD = 4;

/**
 * Recompute an incident's flapping mark after a change: flapping when 4 or more opens, reopens
 * and resolves fall within the last 15 minutes, stable again when fewer do. Returns the new
 * value when it changed.
 */
export async function updateFlapping(db: Db, incidentId: string, at: Date): Promise<boolean | undefined> {
  const { n } = await db
    .selectFrom('incident_events')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('incident_id', '=', incidentId)
    .where('kind', 'in', FLAP_KINDS)
    .where('at', '>', new Date(at.getTime() - FLAP_WINDOW_MS))
    .executeTakeFirstOrThrow();
  const flapping = Number(n) >= FLAP_THRESHOLD;
  const changed = await db
    .updateTable('incidents')
    .set({ flapping, flapping_since: flapping ? at : null })
    .where('id', '=', incidentId)
    .where('flapping', '=', !flapping)
    .executeTakeFirst();
  return changed.numUpdatedRows > 0n ? flapping : undefined;
}

/** Store an incident's classification. */
export async function setClassification(db: Db, id: string, c: { severity: string; category: string; rule: string }): Promise<void> {
  await db.updateTable('incidents').set({ severity: c.severity, category: c.category, rule: c.rule }).where('id', '=', id).execute();
}

/** Agents last heard from before `cutoff` with no unresolved incident of this type and source. */
export async function silentAgents(db: Db, cutoff: Date, fp: { type: string; source: string }): Promise<{ id: string; hostname: string | null; last_seen_at: Date }[]> {
  const rows = await db
    .selectFrom('agents as a')
    .select(['a.id', 'a.hostname', 'a.last_seen_at'])
    .where('a.last_seen_at', '<', cutoff)
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('incidents as i')
            .select('i.id')
            .whereRef('i.agent_id', '=', 'a.id')
            .where('i.type', '=', fp.type)
            .where('i.source', '=', fp.source)
            .where('i.status', '<>', 'resolved'),
        ),
      ),
    )
    .execute();
  return rows.map((r) => ({ id: r.id, hostname: r.hostname, last_seen_at: r.last_seen_at! }));
}

/** Resolve the unresolved incident of a fingerprint, if there is one. */
export async function resolveIncidentByFingerprint(
  db: Db,
  fp: { agentId: string; type: string; source: string },
  at: Date,
  by: string,
): Promise<string | undefined> {
  const row = await db
    .updateTable('incidents')
    .set({ status: 'resolved', resolved_at: at, resolved_by: by })
    .where('agent_id', '=', fp.agentId)
    .where('type', '=', fp.type)
    .where('source', '=', fp.source)
    .where('status', '<>', 'resolved')
    .where('integration_id', 'is', null)
    .returning('id')
    .executeTakeFirst();
  return row?.id;
}

/** Listing columns: everything but the (possibly large) logs. */
const LIST_COLUMNS = [
  'id',
  'agent_id',
  'integration_id',
  'type',
  'source',
  'message',
  'service',
  'labels',
  'exit_code',
  'unit_status',
  'status',
  'count',
  'first_seen_at',
  'last_seen_at',
  'acknowledged_at',
  'acknowledged_by',
  'resolved_at',
  'resolved_by',
  'severity',
  'category',
  'rule',
  'reopen_count',
  'reopened_at',
  'flapping',
  'flapping_since',
  'escalated',
  'escalated_at',
] as const;
export type IncidentSummary = Pick<Incident, (typeof LIST_COLUMNS)[number]>;

export interface IncidentFilter {
  status?: IncidentStatus;
  agentId?: string;
  /** An integration's id or name. */
  integration?: string;
  service?: string;
  severity?: string;
  /** Labels the incident has, all of them. */
  labels?: Record<string, string>;
  /** Text in its message or source, any case (a plain substring: no pattern is built from it). */
  text?: string;
  limit: number;
  before?: string;
}

export async function listIncidents(db: Db, filter: IncidentFilter): Promise<IncidentSummary[]> {
  let q = db.selectFrom('incidents').select(LIST_COLUMNS);
  if (filter.status) q = q.where('status', '=', filter.status);
  if (filter.agentId) q = q.where('agent_id', '=', filter.agentId);
  if (filter.integration) {
    const named = filter.integration;
    q = q.where('integration_id', 'in', (eb) => eb.selectFrom('integrations').select('id').where((w) => w.or([w('id', '=', named), w('name', '=', named)])));
  }
  if (filter.service) q = q.where('service', '=', filter.service);
  if (filter.severity) q = q.where('severity', '=', filter.severity);
  if (filter.labels && Object.keys(filter.labels).length > 0) q = q.where(sql<boolean>`labels @> ${JSON.stringify(filter.labels)}::jsonb`);
  if (filter.text) {
    const text = filter.text.toLowerCase();
    q = q.where((w) => w.or([w(sql<number>`strpos(lower(message), ${text})`, '>', 0), w(sql<number>`strpos(lower(source), ${text})`, '>', 0)]));
  }
  if (filter.before) q = q.where('id', '<', filter.before);
  return q.orderBy('id', 'desc').limit(filter.limit).execute();
}

/** Every column but the logs. */
const ALL_BUT_LOGS = [...LIST_COLUMNS, 'occurrence', 'context', 'analysis', 'analysis_status', 'analysis_requested_at', 'analysis_reuse'] as const;

/** An incident, its logs clipped (see clippedLogs) unless `fullLogs`. */
export async function getIncident(db: Db, id: string, opts: { fullLogs?: boolean } = {}): Promise<Incident | undefined> {
  const q = db.selectFrom('incidents').where('id', '=', id);
  return opts.fullLogs ? q.selectAll().executeTakeFirst() : q.select([...ALL_BUT_LOGS, clippedLogs]).executeTakeFirst();
}

/**
 * (For the REST API: the incident is returned with its logs whole.)
 * Acknowledge an unresolved incident; acknowledging twice keeps the first acknowledgement.
 * `changed` says whether this call did it.
 */
export async function acknowledgeIncident(db: Db, id: string, by: string, at: Date): Promise<{ incident: Incident; changed: boolean } | 'resolved' | undefined> {
  const updated = await db
    .updateTable('incidents')
    .set({ status: 'acknowledged', acknowledged_at: at, acknowledged_by: by })
    .where('id', '=', id)
    .where('status', 'in', ['new', 'analyzing', 'open'])
    .returningAll()
    .executeTakeFirst();
  if (updated) return { incident: updated, changed: true };
  const current = await getIncident(db, id, { fullLogs: true });
  if (!current) return undefined;
  return current.status === 'resolved' ? 'resolved' : { incident: current, changed: false };
}

/** Resolve an incident by hand; resolving a resolved incident changes nothing. */
export async function resolveIncident(db: Db, id: string, by: string, at: Date): Promise<{ incident: Incident; changed: boolean } | undefined> {
  const updated = await db
    .updateTable('incidents')
    .set({ status: 'resolved', resolved_at: at, resolved_by: by })
    .where('id', '=', id)
    .where('status', '<>', 'resolved')
    .returningAll()
    .executeTakeFirst();
  if (updated) return { incident: updated, changed: true };
  const current = await getIncident(db, id, { fullLogs: true });
  return current ? { incident: current, changed: false } : undefined;
}

/** Mark an unresolved incident ignored (its fingerprint is muted by the caller). */
export async function markIgnored(db: Db, id: string): Promise<void> {
  await db.updateTable('incidents').set({ status: 'ignored' }).where('id', '=', id).where('status', '<>', 'resolved').execute();
}

/** Raise an incident's severity after a fix that did not work. */
export async function markEscalated(db: Db, id: string, severity: string, at: Date): Promise<void> {
  await db.updateTable('incidents').set({ severity, escalated: true, escalated_at: at }).where('id', '=', id).execute();
}
