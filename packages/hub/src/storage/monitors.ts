import { sql, type Selectable } from 'kysely';
import { monitorState, nextLocationState } from '@opspilot/checks';
import { newId, type CheckResultPayload } from '@opspilot/protocol';
import type { Db } from './database.ts';
import type { MonitorLocationsTable, MonitorResultsTable, MonitorState, MonitorsTable, RunOn } from './tables.ts';

export type Monitor = Selectable<MonitorsTable>;
export type MonitorLocation = Selectable<MonitorLocationsTable>;
export type MonitorResult = Selectable<MonitorResultsTable>;

export type MonitorInput = Pick<
  Monitor,
  'name' | 'kind' | 'target' | 'interval_s' | 'timeout_ms' | 'run_on' | 'quorum' | 'conditions' | 'options' | 'failure_threshold' | 'success_threshold' | 'cert_warn_days' | 'labels' | 'enabled'
>;

const json = (i: Partial<MonitorInput>) => ({
  ...i,
  ...(i.run_on !== undefined ? { run_on: JSON.stringify(i.run_on) } : {}),
  ...(i.conditions !== undefined ? { conditions: JSON.stringify(i.conditions) } : {}),
  ...(i.options !== undefined ? { options: JSON.stringify(i.options) } : {}),
  ...(i.labels !== undefined ? { labels: JSON.stringify(i.labels) } : {}),
});

export async function createMonitor(db: Db, m: MonitorInput & { id: string; at: Date; by: string; next_run_at: Date | null }): Promise<Monitor | undefined> {
  const { at, by, ...rest } = m;
  return db
    .insertInto('monitors')
    .values({ ...json(rest), id: m.id, status: 'unknown', next_run_at: m.next_run_at, created_at: at, created_by: by, updated_at: at } as never)
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export async function listMonitors(db: Db): Promise<Monitor[]> {
  return db.selectFrom('monitors').selectAll().orderBy('name').execute();
}

export async function getMonitor(db: Db, id: string): Promise<Monitor | undefined> {
  return db.selectFrom('monitors').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function monitorNameTaken(db: Db, name: string, except: string): Promise<boolean> {
  return (await db.selectFrom('monitors').select('id').where('name', '=', name).where('id', '<>', except).executeTakeFirst()) !== undefined;
}

export async function updateMonitor(db: Db, id: string, patch: Partial<MonitorInput> & { updated_at: Date; next_run_at?: Date | null }): Promise<Monitor | undefined> {
  return db
    .updateTable('monitors')
    .set(json(patch) as never)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteMonitor(db: Db, id: string): Promise<Monitor | undefined> {
  return db.deleteFrom('monitors').where('id', '=', id).returningAll().executeTakeFirst();
}

/**
 * Monitors the hub runs whose time has come, each moved to its next run: taken by one hub
 * (another skips the locked rows). The next run is an interval after this one, give or take 5 %.
 */
export async function claimDueMonitors(db: Db, now: Date, limit: number): Promise<Monitor[]> {
  const due = await db
    .selectFrom('monitors')
    .select('id')
    .where('enabled', '=', true)
    .where('next_run_at', '<=', now)
    .where(sql<boolean>`(run_on = '"hub"'::jsonb OR run_on @> '{"hub": true}'::jsonb)`)
    .orderBy('next_run_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  if (due.length === 0) return [];
  return db
    .updateTable('monitors')
    // ±5 % (60 s ± 3 s): monitors made together drift apart instead of running in one burst each interval.
    .set({ next_run_at: sql`${now.toISOString()}::timestamptz + make_interval(secs => interval_s * (0.95 + random() * 0.1))` })
    .where(
      'id',
      'in',
      due.map((d) => d.id),
    )
    .returningAll()
    .execute();
}

/** A result as the checks package gives it, and where and when it was taken. */
export type NewResult = Pick<MonitorResult, 'id' | 'monitor_id' | 'location' | 'at' | 'ok' | 'status' | 'response_ms' | 'error' | 'cert_expires_at'>;

export async function recordResult(db: Db, r: NewResult): Promise<void> {
  await db.insertInto('monitor_results').values(r).execute();
}

/** The location of the hub's own checks; an agent's location is its id. */
export const HUB_LOCATION = 'hub';

/** Does the hub run this monitor? */
export const runsOnHub = (r: RunOn): boolean => r === 'hub' || r.hub === true;

/** Does this agent run this monitor: named, or with every one of its labels? */
export function runsOnAgent(r: RunOn, agent: { id: string; labels: Record<string, string> }): boolean {
  if (r === 'hub') return false;
  if (r.agents?.includes(agent.id)) return true;
  const want = Object.entries(r.labels ?? {});
  return want.length > 0 && want.every(([k, v]) => Object.hasOwn(agent.labels, k) && agent.labels[k] === v);
}

/** Enabled monitors that agents run (to match against agents). */
export async function agentRunMonitors(db: Db): Promise<Monitor[]> {
  return db
    .selectFrom('monitors')
    .selectAll()
    .where('enabled', '=', true)
    .where(sql<boolean>`(run_on -> 'agents' IS NOT NULL OR run_on -> 'labels' IS NOT NULL)`)
    .orderBy('name')
    .execute();
}

/** The agents a monitor runs on (named and existing, or matching its labels), with a name to show. */
export async function monitorAgents(db: Db, r: RunOn): Promise<{ id: string; name: string }[]> {
  if (r === 'hub' || (!r.agents?.length && !r.labels)) return [];
  const rows = await db
    .selectFrom('agents')
    .select(['id', 'hostname', sql<string | null>`facts ->> 'hostname'`.as('reported')])
    .where((eb) => {
      const either = [];
      if (r.agents?.length) either.push(eb('id', 'in', r.agents));
      if (r.labels && Object.keys(r.labels).length > 0) either.push(sql<boolean>`labels @> ${JSON.stringify(r.labels)}::jsonb`);
      return eb.or(either);
    })
    .orderBy('id')
    .execute();
  return rows.map((a) => ({ id: a.id, name: a.hostname ?? a.reported ?? a.id }));
}

/** Results older than this at the hub are stored but move no state: they are history, not news. */
const FUTURE_SLACK_MS = 60_000;

/**
 * Store an agent's check results and move its location of each monitor: results of monitors it
 * does not run (deleted, disabled, moved elsewhere) are dropped, a time ahead of the hub's clock
 * is taken as the hub's, and a location's state moves only on results newer than its last.
 * Returns what the caller decides on once this commits.
 */
export async function storeCheckResults(db: Db, agentId: string, results: readonly CheckResultPayload[], receivedAt: Date): Promise<StoredCheckResults> {
  const none: StoredCheckResults = { changed: [], certificates: [] };
  if (results.length === 0) return none;
  const agent = await db.selectFrom('agents').select(['id', 'labels']).where('id', '=', agentId).executeTakeFirst();
  if (!agent) return none;
  const ids = [...new Set(results.map((r) => r.monitor_id))];
  const monitors = new Map(
    (await db.selectFrom('monitors').selectAll().where('id', 'in', ids).where('enabled', '=', true).execute())
      .filter((m) => runsOnAgent(m.run_on, agent))
      .map((m) => [m.id, m]),
  );
  const latest = receivedAt.getTime() + FUTURE_SLACK_MS;
  const rows: NewResult[] = [];
  for (const r of results) {
    if (!monitors.has(r.monitor_id)) continue;
    const at = Math.min(Math.round(r.at * 1000), latest);
    rows.push({
      id: newId(),
      monitor_id: r.monitor_id,
      location: agentId,
      at: new Date(at),
      ok: r.ok,
      status: r.status ?? null,
      response_ms: r.response_ms,
      error: r.ok ? null : (r.error ?? r.failures?.join('; ') ?? 'failed').slice(0, 1000),
      cert_expires_at: r.cert_expires_at === undefined ? null : new Date(r.cert_expires_at * 1000),
    });
  }
  if (rows.length === 0) return none;
  for (let i = 0; i < rows.length; i += 1000) await db.insertInto('monitor_results').values(rows.slice(i, i + 1000)).execute();
  const changed: string[] = [];
  const certificates: StoredCheckResults['certificates'] = [];
  for (const [id, m] of monitors) {
    const mine = rows.filter((r) => r.monitor_id === id).sort((a, b) => a.at.getTime() - b.at.getTime());
    if (mine.length === 0) continue;
    const cert = mine.findLast((r) => r.cert_expires_at !== null);
    if (cert && m.cert_warn_days > 0) certificates.push({ monitorId: id, expiresAt: cert.cert_expires_at!.toISOString(), at: cert.at });
    let l = await lockLocation(db, id, agentId);
    const before = l.state;
    for (const r of mine) {
      if (l.last_result_at && r.at <= l.last_result_at) continue; // resent or out of order: history only
      l = { ...l, ...nextLocationState(l, r.ok, m), last_result_at: r.at, last_ok: r.ok, last_status: r.status, last_response_ms: r.response_ms, last_error: r.error };
    }
    await setLocation(db, l);
    // Only a location's state can change the monitor's: the rest is history.
    if (l.state !== before) changed.push(id);
  }
  return { changed, certificates };
}

export interface StoredCheckResults {
  /** Monitors whose location changed state: the caller decides their own state once committed. */
  changed: string[];
  /** The latest certificate expiry each monitor's results saw (with a warning configured). */
  certificates: { monitorId: string; expiresAt: string; at: Date }[];
}

/**
 * Agent locations whose word is no longer current become unknown (their counts start again): the
 * agent has been silent past `offlineAfterMs` (the offline deadline), or no result has come for
 * three intervals (at least a minute) plus the timeout. Returns the monitors touched.
 */
export async function expireQuietLocations(db: Db, now: Date, offlineAfterMs: number): Promise<string[]> {
  const result = await sql<{ monitor_id: string }>`
    UPDATE monitor_locations l SET state = 'unknown', failures = 0, successes = 0
    FROM monitors m
    WHERE m.id = l.monitor_id AND l.location <> ${HUB_LOCATION} AND l.state <> 'unknown'
      AND (l.last_result_at IS NULL
        OR l.last_result_at < ${now.toISOString()}::timestamptz - make_interval(secs => greatest(3 * m.interval_s, m.interval_s + 60) + m.timeout_ms / 1000.0)
        OR NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = l.location AND a.last_seen_at >= ${new Date(now.getTime() - offlineAfterMs).toISOString()}::timestamptz))
    RETURNING l.monitor_id`.execute(db);
  return [...new Set(result.rows.map((r) => r.monitor_id))];
}

/** The monitor row, locked against other decisions about it (results may still be stored meanwhile). */
export async function lockMonitor(db: Db, id: string): Promise<Monitor | undefined> {
  return db.selectFrom('monitors').selectAll().where('id', '=', id).forNoKeyUpdate().executeTakeFirst();
}

/** Forget the locations a monitor no longer runs from. */
export async function dropLocationsExcept(db: Db, monitorId: string, keep: readonly string[]): Promise<void> {
  let q = db.deleteFrom('monitor_locations').where('monitor_id', '=', monitorId);
  if (keep.length > 0) q = q.where('location', 'not in', keep);
  await q.execute();
}

/** A location's row, locked for the result's transaction (made when first seen). */
export async function lockLocation(db: Db, monitorId: string, location: string): Promise<MonitorLocation> {
  await db
    .insertInto('monitor_locations')
    .values({ monitor_id: monitorId, location, state: 'unknown', failures: 0, successes: 0 })
    .onConflict((oc) => oc.columns(['monitor_id', 'location']).doNothing())
    .execute();
  return db.selectFrom('monitor_locations').selectAll().where('monitor_id', '=', monitorId).where('location', '=', location).forUpdate().executeTakeFirstOrThrow();
}

export async function setLocation(db: Db, l: MonitorLocation): Promise<void> {
  const { monitor_id, location, ...rest } = l;
  await db.updateTable('monitor_locations').set(rest).where('monitor_id', '=', monitor_id).where('location', '=', location).execute();
}

export async function locationsOf(db: Db, monitorId: string): Promise<MonitorLocation[]> {
  return db.selectFrom('monitor_locations').selectAll().where('monitor_id', '=', monitorId).orderBy('location').execute();
}

export async function setMonitorStatus(db: Db, id: string, status: MonitorState, at: Date): Promise<void> {
  await db.updateTable('monitors').set({ status, status_since: at }).where('id', '=', id).where('status', '<>', status).execute();
}

export async function listResults(db: Db, monitorId: string, since: Date, until: Date, limit: number): Promise<MonitorResult[]> {
  return db
    .selectFrom('monitor_results')
    .selectAll()
    .where('monitor_id', '=', monitorId)
    .where('at', '>=', since)
    .where('at', '<', until)
    .orderBy('at', 'desc')
    .limit(limit)
    .execute();
}

/**
 * Share of checks that were ok since `since`, and response-time percentiles (ms), computed by the
 * database. A downsampled hour counts all its checks for uptime and its mean for the percentiles.
 */
export async function monitorStats(db: Db, monitorId: string, since: Date): Promise<{ results: number; uptime_pct: number | null; p50_ms: number | null; p95_ms: number | null; p99_ms: number | null }> {
  const row = await sql<{ n: string | number; ok: string | number; p50: number | null; p95: number | null; p99: number | null }>`
    SELECT coalesce(sum(checks), 0) AS n, coalesce(sum(coalesce(ok_checks, ok::int)), 0) AS ok,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY response_ms) AS p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY response_ms) AS p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY response_ms) AS p99
    FROM monitor_results WHERE monitor_id = ${monitorId} AND at >= ${since.toISOString()}::timestamptz`.execute(db);
  const r = row.rows[0]!;
  const n = Number(r.n);
  const round = (v: number | null) => (v === null ? null : Math.round(Number(v) * 10) / 10);
  return { results: n, uptime_pct: n === 0 ? null : Math.round((Number(r.ok) / n) * 100_000) / 1000, p50_ms: round(r.p50), p95_ms: round(r.p95), p99_ms: round(r.p99) };
}

/** These agents' labels (the ones that exist). */
export async function agentLabels(db: Db, agentIds: readonly string[]): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>();
  for (let i = 0; i < agentIds.length; i += 5000) {
    const ids = agentIds.slice(i, i + 5000);
    for (const a of await db.selectFrom('agents').select(['id', 'labels']).where('id', 'in', ids).execute()) out.set(a.id, a.labels);
  }
  return out;
}

/**
 * Monitors run by agents whose stored state is not what their locations' states say now, or
 * that keep a location they no longer run from: three queries for all of them, judged here.
 */
export async function monitorsToReconsider(db: Db): Promise<string[]> {
  const monitors = await agentRunMonitors(db);
  if (monitors.length === 0) return [];
  const states = new Map<string, Map<string, MonitorState>>();
  for (const l of await db.selectFrom('monitor_locations').select(['monitor_id', 'location', 'state']).where('monitor_id', 'in', monitors.map((m) => m.id)).execute()) {
    if (!states.has(l.monitor_id)) states.set(l.monitor_id, new Map());
    states.get(l.monitor_id)!.set(l.location, l.state);
  }
  // Every agent when a monitor picks agents by label; else only the ones named.
  const byLabels = monitors.some((m) => m.run_on !== 'hub' && m.run_on.labels);
  const named = [...new Set(monitors.flatMap((m) => (m.run_on === 'hub' ? [] : (m.run_on.agents ?? []))))];
  const agents = byLabels ? await db.selectFrom('agents').select(['id', 'labels']).execute() : [...(await agentLabels(db, named))].map(([id, labels]) => ({ id, labels }));
  return monitors
    .filter((m) => {
      const where = [...(runsOnHub(m.run_on) ? [HUB_LOCATION] : []), ...agents.filter((a) => runsOnAgent(m.run_on, a)).map((a) => a.id)];
      const seen = states.get(m.id) ?? new Map<string, MonitorState>();
      return monitorState(where.map((w) => seen.get(w) ?? 'unknown'), m.quorum) !== m.status || [...seen.keys()].some((k) => !where.includes(k));
    })
    .map((m) => m.id);
}
