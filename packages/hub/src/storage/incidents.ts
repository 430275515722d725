import { sql, type ExpressionBuilder } from 'kysely';
import { newId, type AlertPayload } from '@opspilot/protocol';
import type { Db } from './database.ts';
import { pendingMessage } from './pending-message.ts';
import { statementShape } from './shape.ts';
import type { Database, Incident, IncidentStatus } from './tables.ts';

/** A classification as stored on an incident (incidents/classify.ts makes them). */
export interface ClassificationFields {
  severity: string;
  category: string;
  rule: string;
}

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

/** How an alert is recorded: the envelope it came in, and what goes on its timeline with it. */
export interface AlertRecording {
  /** The classification a new incident of this alert gets (classify.ts, with the facts of its first alert). */
  fresh: ClassificationFields;
  /** The agent's envelope id: claimed by the same statement; a copy seen before records nothing. */
  claim?: { msgId: string; receivedAt: Date };
  /** Who raised it, for its timeline entry (written by the same statement). */
  actor: string;
  /** Queue the incident's Slack message (post or edit) in the same statement. */
  notify?: boolean;
}

/**
 * Record an alert against its fingerprint (agent, type, source):
 * - while an incident of it is unresolved, a repeat bumps its count and last-seen time and keeps
 *   the latest details;
 * - when one was resolved less than 30 minutes ago, that incident is reopened (status `new`,
 *   acknowledgement cleared, queued for analysis again);
 * - otherwise a new incident, classified as `fresh` says, queued for analysis.
 * One statement, one round trip: the envelope id claimed, the incident written, and its timeline
 * entries (the change; for a new incident, its classification). Undefined when nothing was
 * recorded: the envelope id was seen before, or the agent no longer exists.
 * Callers run it in the events lane, one at a time per hub; the partial unique index keeps two
 * hubs from opening the same fingerprint twice.
 */
export async function recordAlert(
  db: Db,
  id: string,
  agentId: string,
  alert: AlertPayload,
  at: Date,
  how: AlertRecording,
): Promise<{ incident: UpsertedIncident; change: AlertChange } | undefined> {
  const { claim } = how;
  const atText = at.toISOString();
  const values: AlertValues = {
    id,
    agentId,
    type: alert.type,
    source: alert.source,
    message: alert.message,
    exitCode: alert.exit_code ?? null,
    unitStatus: alert.status ?? null,
    context: alert.context ? JSON.stringify(alert.context) : null,
    logs: logsToStore(alert.logs),
    at,
    atText,
    reopenSince: new Date(at.getTime() - REOPEN_WINDOW_MS),
    // The timeline's ids, in order (ids sort by time): the change, then a new incident's classification.
    changeEventId: newId(),
    classifiedEventId: newId(),
    actor: how.actor,
    severity: how.fresh.severity,
    category: how.fresh.category,
    rule: how.fresh.rule,
    fresh: JSON.stringify(how.fresh),
    openedDetail: JSON.stringify({ message: alert.message.slice(0, 500) }),
    msgId: claim?.msgId ?? null,
    receivedAt: claim?.receivedAt.toISOString() ?? null,
    // Only the notifying shape has a slot for it: no id made for nothing on every alert.
    notificationId: how.notify ? newId() : '',
  };
  const result = await db.executeQuery(alertQuery(db, values, { claimed: claim !== undefined, notify: how.notify === true }));
  const row = result.rows[0];
  if (!row) return undefined;
  const { change, ...incident } = row;
  return { incident: incident as UpsertedIncident, change };
}

/** An alert's values, bound to recordAlert's statement (built once per shape: storage/shape.ts). */
export interface AlertValues extends Record<string, unknown> {
  id: string;
  agentId: string;
  type: string;
  source: string;
  message: string;
  exitCode: number | null;
  unitStatus: string | null;
  context: string | null;
  logs: string | null;
  at: Date;
  atText: string;
  reopenSince: Date;
  changeEventId: string;
  classifiedEventId: string;
  actor: string;
  severity: string;
  category: string;
  rule: string;
  fresh: string;
  openedDetail: string;
  /** The envelope id to claim, in the claimed shape. */
  msgId: string | null;
  receivedAt: string | null;
  /** The Slack message's queue entry, in the notifying shape (unused when one is already queued). */
  notificationId: string;
}

/** Which of recordAlert's statements: with an envelope id to claim; queueing the Slack message. */
export interface AlertShape {
  claimed: boolean;
  notify: boolean;
}

/**
 * recordAlert's statement for `v`, built with Kysely (tests compare it with the bound shapes).
 * `claimed`: the envelope id is claimed first; without, the statement only checks the agent exists.
 * `notify`: the incident's Slack message is queued too (or, already queued, its version bumped).
 */
export function alertStatement(db: Db, v: AlertValues, { claimed, notify }: AlertShape) {
  const details = { message: v.message, exit_code: v.exitCode, unit_status: v.unitStatus, context: v.context };
  const fingerprint = (eb: ExpressionBuilder<Database, 'incidents'>) =>
    eb.and([eb('agent_id', '=', v.agentId), eb('type', '=', v.type), eb('source', '=', v.source), eb('integration_id', 'is', null)]);
  const statement = db
    // The envelope id, once; without one, that the agent exists. Everything below runs only if this returned a row.
    .with('claim', (q) =>
      claimed
        ? q
            .insertInto('received_envelopes')
            .columns(['agent_id', 'msg_id', 'received_at'])
            .expression(
              q
                .selectFrom('agents')
                .select((eb) => ['agents.id', eb.val(v.msgId!).as('msg_id'), sql<Date>`${v.receivedAt}::timestamptz`.as('received_at')])
                .where('agents.id', '=', v.agentId),
            )
            .onConflict((oc) => oc.doNothing())
            .returning('agent_id')
        : q.selectFrom('agents').select('agents.id as agent_id').where('agents.id', '=', v.agentId),
    )
    // Each step runs only when the one before changed nothing.
    .with('repeated', (q) =>
      q
        .updateTable('incidents')
        .set((eb) => ({ ...details, count: eb('count', '+', 1), last_seen_at: v.at, logs: eb.fn.coalesce(eb.val(v.logs), 'logs') }))
        .where((eb) => fingerprint(eb))
        .where('status', '<>', 'resolved')
        .where((eb) => eb.exists(eb.selectFrom('claim').select('claim.agent_id')))
        .returning([...RETURNED, clippedLogs]),
    )
    .with('reopened', (q) =>
      q
        .updateTable('incidents')
        .set((eb) => ({ ...details, logs: eb.fn.coalesce(eb.val(v.logs), 'logs'), ...reopening(eb, v.at) }))
        .where('id', '=', (eb) =>
          eb
            .selectFrom('incidents')
            .select('id')
            .where((eb) => fingerprint(eb))
            .where('status', '=', 'resolved')
            .where('resolved_at', '>=', v.reopenSince)
            .orderBy('resolved_at', 'desc')
            .limit(1),
        )
        .where((eb) => eb.exists(eb.selectFrom('claim').select('claim.agent_id')))
        .where((eb) => eb.not(eb.exists(eb.selectFrom('repeated').select('repeated.id'))))
        .returning([...RETURNED, clippedLogs]),
    )
    .with('opened', (q) =>
      q
        .insertInto('incidents')
        .columns(['id', 'agent_id', 'type', 'source', 'message', 'exit_code', 'unit_status', 'context', 'logs', 'status', 'first_seen_at', 'last_seen_at', 'analysis_status', 'analysis_requested_at', 'severity', 'category', 'rule'])
        .expression(
          q
            .selectNoFrom((eb) => [
              eb.val(v.id).as('id'),
              eb.val(v.agentId).as('agent_id'),
              eb.val(v.type).as('type'),
              eb.val(v.source).as('source'),
              eb.val(v.message).as('message'),
              sql<number | null>`${v.exitCode}::integer`.as('exit_code'),
              sql<string | null>`${v.unitStatus}::text`.as('unit_status'),
              sql<string | null>`${v.context}::jsonb`.as('context'),
              sql<string | null>`${v.logs}::text`.as('logs'),
              sql.lit('new').as('status'),
              sql<Date>`${v.atText}::timestamptz`.as('first_seen_at'),
              sql<Date>`${v.atText}::timestamptz`.as('last_seen_at'),
              sql.lit('pending').as('analysis_status'),
              sql<Date>`${v.atText}::timestamptz`.as('analysis_requested_at'),
              eb.val(v.severity).as('severity'),
              eb.val(v.category).as('category'),
              eb.val(v.rule).as('rule'),
            ])
            .where((eb) => eb.exists(eb.selectFrom('claim').select('claim.agent_id')))
            .where((eb) => eb.not(eb.exists(eb.selectFrom('repeated').select('repeated.id'))))
            .where((eb) => eb.not(eb.exists(eb.selectFrom('reopened').select('reopened.id')))),
        )
        // Another hub opened it a moment ago: count this alert as its repeat.
        .onConflict((oc) =>
          oc
            .columns(['agent_id', 'type', 'source'])
            // Literals, not parameters: a prepared statement's generic plan cannot match the partial index to a parameter.
            .where(sql<boolean>`status <> 'resolved'`)
            .where('integration_id', 'is', null)
            .doUpdateSet((eb) => ({ count: eb('incidents.count', '+', 1), last_seen_at: eb.ref('excluded.last_seen_at') })),
        )
        .returning([...RETURNED, clippedLogs]),
    )
    .with('up', (q) =>
      q
        .selectFrom('repeated')
        .selectAll()
        .select(sql<AlertChange>`'repeated'`.as('change'))
        .unionAll((q) => q.selectFrom('reopened').selectAll().select(sql<AlertChange>`'reopened'`.as('change')))
        .unionAll((q) => q.selectFrom('opened').selectAll().select(sql<AlertChange>`CASE WHEN opened.count = 1 THEN 'opened' ELSE 'repeated' END`.as('change'))),
    )
    .with('timeline', (q) =>
      q
        .insertInto('incident_events')
        .columns(['id', 'incident_id', 'agent_id', 'at', 'actor', 'kind', 'detail'])
        .expression(
          q
            .selectFrom('up')
            .select((eb) => [
              eb.val(v.changeEventId).as('id'),
              'up.id as incident_id',
              eb.val(v.agentId).as('agent_id'),
              sql<Date>`${v.atText}::timestamptz`.as('at'),
              eb.val(v.actor).as('actor'),
              sql<string>`up.change`.as('kind'),
              sql<Record<string, unknown>>`CASE WHEN up.change = 'repeated' THEN jsonb_build_object('count', up.count) ELSE ${v.openedDetail}::jsonb END`.as('detail'),
            ])
            .unionAll(
              q
                .selectFrom('up')
                .select((eb) => [
                  eb.val(v.classifiedEventId).as('id'),
                  'up.id as incident_id',
                  eb.val(v.agentId).as('agent_id'),
                  sql<Date>`${v.atText}::timestamptz`.as('at'),
                  sql.lit('rule').as('actor'),
                  sql.lit('classified').as('kind'),
                  sql<Record<string, unknown>>`${v.fresh}::jsonb`.as('detail'),
                ])
                .where('up.change', '=', 'opened'),
            ),
        ),
    )
    // Opened or reopened: the remediation rules are to be consulted on it (the leader works the queue).
    .with('queued', (q) =>
      q
        .insertInto('remediation_queue')
        .columns(['incident_id', 'queued_at'])
        .expression(q.selectFrom('up').select(['up.id as incident_id', sql<Date>`${v.atText}::timestamptz`.as('queued_at')]).where('up.change', '<>', 'repeated'))
        .onConflict((oc) => oc.column('incident_id').doUpdateSet((eb) => ({ queued_at: eb.ref('excluded.queued_at') }))),
    );
  // Slack: the incident's message posted or edited, as enqueueMessage (notifications.ts) does.
  // Nothing reads this step's output, so the statement's type is the same with it or without.
  const notified = notify
    ? (statement.with('notified', (q) =>
        q
          .insertInto('notifications')
          .columns(['id', 'incident_id', 'kind', 'next_attempt_at'])
          .expression(q.selectFrom('up').select((eb) => [eb.val(v.notificationId).as('id'), 'up.id as incident_id', sql.lit('message').as('kind'), sql<Date>`${v.atText}::timestamptz`.as('next_attempt_at')]))
          .onConflict(pendingMessage),
      ) as unknown as typeof statement)
    : statement;
  return notified.selectFrom('up').selectAll();
}

// Built once each, then bound: building this statement was ~1 ms of the hub's thread per alert.
const alertShapes = [false, true].map((claimed) => [false, true].map((notify) => statementShape((db: Db, v: AlertValues) => alertStatement(db, v, { claimed, notify }))));

/** recordAlert's statement, compiled: its shape's text with `v` bound. */
export function alertQuery(db: Db, v: AlertValues, shape: AlertShape) {
  return alertShapes[Number(shape.claimed)]![Number(shape.notify)]!(db, v);
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

/**
 * Store an incident's classification; with `seenCount`, only while the incident still has that
 * count (no alert came since the one it was computed from). Whether it was stored.
 */
export async function setClassification(db: Db, id: string, c: ClassificationFields, seenCount?: number): Promise<boolean> {
  let q = db.updateTable('incidents').set({ severity: c.severity, category: c.category, rule: c.rule }).where('id', '=', id);
  if (seenCount !== undefined) q = q.where('count', '=', seenCount);
  const r = await q.executeTakeFirst();
  return r.numUpdatedRows > 0n;
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
