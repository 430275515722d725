import type { AlertPayload } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { Incident, IncidentStatus } from './tables.ts';

/**
 * Record an alert: a new incident for its fingerprint (agent, type, source), or, while one is
 * unresolved, a repeat that bumps its count and last-seen time and keeps the latest details.
 */
export async function upsertIncidentFromAlert(db: Db, id: string, agentId: string, alert: AlertPayload, at: Date): Promise<UpsertedIncident> {
  const row = await db
    .insertInto('incidents')
    .values({
      id,
      agent_id: agentId,
      type: alert.type,
      source: alert.source,
      message: alert.message,
      logs: alert.logs ?? null,
      exit_code: alert.exit_code ?? null,
      unit_status: alert.status ?? null,
      context: alert.context ? JSON.stringify(alert.context) : null,
      first_seen_at: at,
      last_seen_at: at,
      // A new incident joins the analysis queue; a repeat of an open one does not.
      analysis_status: 'pending',
      analysis_requested_at: at,
    })
    .onConflict((oc) =>
      oc
        .columns(['agent_id', 'type', 'source'])
        .where('status', '<>', 'resolved')
        .doUpdateSet((eb) => ({
          count: eb('incidents.count', '+', 1),
          last_seen_at: eb.ref('excluded.last_seen_at'),
          message: eb.ref('excluded.message'),
          logs: eb.fn.coalesce('excluded.logs', 'incidents.logs'),
          exit_code: eb.ref('excluded.exit_code'),
          unit_status: eb.ref('excluded.unit_status'),
          context: eb.ref('excluded.context'),
        })),
    )
    .returning(['id', 'type', 'message', 'logs', 'unit_status', 'count', 'first_seen_at', 'last_seen_at', 'severity', 'category', 'rule'])
    .executeTakeFirstOrThrow();
  return row;
}

export type UpsertedIncident = Pick<
  Incident,
  'id' | 'type' | 'message' | 'logs' | 'unit_status' | 'count' | 'first_seen_at' | 'last_seen_at' | 'severity' | 'category' | 'rule'
>;

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
    .returning('id')
    .executeTakeFirst();
  return row?.id;
}

/** Listing columns: everything but the (possibly large) logs. */
const LIST_COLUMNS = [
  'id',
  'agent_id',
  'type',
  'source',
  'message',
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
] as const;
export type IncidentSummary = Pick<Incident, (typeof LIST_COLUMNS)[number]>;

export async function listIncidents(
  db: Db,
  filter: { status?: IncidentStatus; agentId?: string; limit: number; before?: string },
): Promise<IncidentSummary[]> {
  let q = db.selectFrom('incidents').select(LIST_COLUMNS);
  if (filter.status) q = q.where('status', '=', filter.status);
  if (filter.agentId) q = q.where('agent_id', '=', filter.agentId);
  if (filter.before) q = q.where('id', '<', filter.before);
  return q.orderBy('id', 'desc').limit(filter.limit).execute();
}

export async function getIncident(db: Db, id: string): Promise<Incident | undefined> {
  return db.selectFrom('incidents').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Acknowledge an unresolved incident; acknowledging twice keeps the first acknowledgement.
 * `changed` says whether this call did it.
 */
export async function acknowledgeIncident(db: Db, id: string, by: string, at: Date): Promise<{ incident: Incident; changed: boolean } | 'resolved' | undefined> {
  const updated = await db
    .updateTable('incidents')
    .set({ status: 'acknowledged', acknowledged_at: at, acknowledged_by: by })
    .where('id', '=', id)
    .where('status', '=', 'open')
    .returningAll()
    .executeTakeFirst();
  if (updated) return { incident: updated, changed: true };
  const current = await getIncident(db, id);
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
  const current = await getIncident(db, id);
  return current ? { incident: current, changed: false } : undefined;
}
