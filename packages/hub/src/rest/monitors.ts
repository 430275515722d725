import { Type, type Static } from '@sinclair/typebox';
import { HTTP_METHODS, newId } from '@opspilot/protocol';
import { ConditionError, DNS_RECORD_TYPES, hostPort, parseConditions } from '@opspilot/checks';
import type { Clock } from '../clock.ts';
import type { App } from '../http.ts';
import { HubError } from '../errors.ts';
import type { Db } from '../storage/database.ts';
import {
  HUB_LOCATION,
  agentLabels,
  createMonitor,
  deleteMonitor,
  getMonitor,
  listMonitors,
  listResults,
  locationsOf,
  monitorAgents,
  monitorNameTaken,
  monitorStats,
  runsOnHub,
  updateMonitor,
  type Monitor,
  type MonitorInput,
} from '../storage/monitors.ts';
import type { RunOn } from '../storage/tables.ts';
import { MONITOR_KINDS } from '../storage/tables.ts';
import { recordEvent } from '../storage/timeline.ts';
import type { HubEvents } from '../events.ts';
import { resolveByPerson, type LifecycleOptions } from '../incidents/lifecycle.ts';
import { openExternal } from '../storage/external-alerts.ts';
import { hubIntegration } from '../storage/integrations.ts';
import { IdParams, Timestamp, errorResponses, iso } from './schemas.ts';

const Name = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });
const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 1024 }), { maxProperties: 32 });
const HttpOptions = Type.Object(
  {
    method: Type.Optional(Type.Union(HTTP_METHODS.map((m) => Type.Literal(m)))),
    headers: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]{1,128}$' }), Type.String({ maxLength: 4096, pattern: '^[^\\r\\n]*$' }), { maxProperties: 32 })),
    body: Type.Optional(Type.String({ maxLength: 65_536 })),
    follow_redirects: Type.Optional(Type.Boolean()),
    accept_status: Type.Optional(Type.Array(Type.Tuple([Type.Integer({ minimum: 100, maximum: 599 }), Type.Integer({ minimum: 100, maximum: 599 })]), { minItems: 1, maxItems: 16 })),
    body_contains: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    verify_tls: Type.Optional(Type.Boolean({ description: 'default true' })),
  },
  { additionalProperties: false },
);
const fields = {
  name: Name,
  kind: Type.Union(MONITOR_KINDS.map((k) => Type.Literal(k))),
  target: Type.String({ minLength: 1, maxLength: 2048, description: 'http: a URL; tcp, tls: host:port; dns: a name' }),
  interval_s: Type.Integer({ minimum: 10, maximum: 86_400, default: 60 }),
  timeout_ms: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  run_on: Type.Union(
    [
      Type.Literal('hub'),
      Type.Object(
        {
          hub: Type.Optional(Type.Boolean({ description: 'the hub checks too' })),
          agents: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), { minItems: 1, maxItems: 100, uniqueItems: true, description: 'these agents check' })),
          labels: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 1024 }), { minProperties: 1, maxProperties: 32, description: 'agents whose labels include all of these check' })),
        },
        { additionalProperties: false, minProperties: 1 },
      ),
    ],
    { default: 'hub', description: 'where the check runs from: "hub", or {hub?, agents?, labels?}; each hub or agent is a location with its own state, and the monitor is down when a quorum of them is' },
  ),
  quorum: Type.Union([Type.Integer({ minimum: 1, maximum: 1000 }), Type.Null()], { default: null, description: 'locations that must be down for the monitor to be; default a majority' }),
  conditions: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 20, default: [], description: 'Gatus-style: "[STATUS] == 200", "[RESPONSE_TIME] < 300", "[BODY].status == \\"ok\\"", "[CERTIFICATE_EXPIRATION] > 14d", "[CONNECTED] == true"; all must hold' }),
  http: Type.Optional(HttpOptions),
  dns: Type.Optional(Type.Object({ record_type: Type.Optional(Type.Union(DNS_RECORD_TYPES.map((r) => Type.Literal(r)))), expected: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })), resolver: Type.Optional(Type.String({ pattern: '^[0-9A-Fa-f.:\\[\\]]{2,60}$' })) }, { additionalProperties: false })),
  tls: Type.Optional(Type.Object({ verify: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
  failure_threshold: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
  success_threshold: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
  cert_warn_days: Type.Integer({ minimum: 0, maximum: 365, default: 14, description: 'a certificate this close to expiry opens a low-severity incident; 0: never' }),
  labels: Type.Optional(Labels),
  enabled: Type.Boolean({ default: true }),
};
export const MonitorBody = Type.Object(fields, { additionalProperties: false });
// Every field optional, without the defaults (a PATCH changes only what it names).
const MonitorPatch = Type.Partial(
  Type.Object(
    Object.fromEntries(
      Object.entries(fields).map(([k, v]) => {
        const { default: _, ...rest } = v as typeof v & { default?: unknown };
        return [k, rest];
      }),
    ) as typeof fields,
    { additionalProperties: false },
  ),
  { additionalProperties: false, minProperties: 1 },
);

const LocationView = Type.Object({
  location: Type.String({ description: '"hub", or the id of the agent' }),
  name: Type.String({ description: '"hub", or the agent\'s hostname' }),
  state: Type.String(),
  failures: Type.Integer(),
  successes: Type.Integer(),
  last_result_at: Timestamp,
  last_ok: Type.Union([Type.Boolean(), Type.Null()]),
  last_status: Type.Union([Type.Integer(), Type.Null()]),
  last_response_ms: Type.Union([Type.Number(), Type.Null()]),
  last_error: Type.Union([Type.String(), Type.Null()]),
});
const Stats = Type.Object({
  results: Type.Integer(),
  uptime_pct: Type.Union([Type.Number(), Type.Null()]),
  p50_ms: Type.Union([Type.Number(), Type.Null()]),
  p95_ms: Type.Union([Type.Number(), Type.Null()]),
  p99_ms: Type.Union([Type.Number(), Type.Null()]),
});
export const MonitorView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  target: Type.String(),
  interval_s: Type.Integer(),
  timeout_ms: Type.Integer(),
  run_on: Type.Unknown(),
  quorum: Type.Union([Type.Integer(), Type.Null()]),
  conditions: Type.Array(Type.String()),
  http: Type.Optional(Type.Unknown()),
  dns: Type.Optional(Type.Unknown()),
  tls: Type.Optional(Type.Unknown()),
  failure_threshold: Type.Integer(),
  success_threshold: Type.Integer(),
  cert_warn_days: Type.Integer(),
  labels: Type.Record(Type.String(), Type.String()),
  enabled: Type.Boolean(),
  status: Type.String({ description: 'up, down or unknown' }),
  status_since: Timestamp,
  next_run_at: Timestamp,
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
  locations: Type.Optional(Type.Array(LocationView)),
  uptime: Type.Optional(Type.Object({ '24h': Stats, '7d': Stats, '30d': Stats }, { description: 'share of ok results and response-time percentiles' })),
});
const ResultView = Type.Object({
  id: Type.String(),
  location: Type.String(),
  at: Type.String({ format: 'date-time' }),
  ok: Type.Boolean(),
  status: Type.Union([Type.Integer(), Type.Null()]),
  response_ms: Type.Union([Type.Number(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  cert_expires_at: Timestamp,
  period_s: Type.Integer({ description: '0 for a check; 3600 for an hour of checks downsampled into one row' }),
  checks: Type.Integer({ description: 'checks this row counts (1, or the hour\'s)' }),
  ok_checks: Type.Integer({ description: 'of which ok' }),
  max_response_ms: Type.Union([Type.Number(), Type.Null()], { description: 'the slowest (a downsampled hour; response_ms is its mean)' }),
});

function show(m: Monitor) {
  const o = m.options as { http?: unknown; dns?: unknown; tls?: unknown };
  return {
    id: m.id,
    name: m.name,
    kind: m.kind,
    target: m.target,
    interval_s: m.interval_s,
    timeout_ms: m.timeout_ms,
    run_on: m.run_on,
    quorum: m.quorum,
    conditions: m.conditions,
    ...(o.http ? { http: o.http } : {}),
    ...(o.dns ? { dns: o.dns } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    failure_threshold: m.failure_threshold,
    success_threshold: m.success_threshold,
    cert_warn_days: m.cert_warn_days,
    labels: m.labels,
    enabled: m.enabled,
    status: m.status,
    status_since: iso(m.status_since),
    next_run_at: iso(m.next_run_at),
    created_at: m.created_at.toISOString(),
    created_by: m.created_by,
  };
}

type Body = Static<typeof MonitorBody>;

/** Why a monitor cannot run, or null: its target for its kind, its options for its kind, its conditions. */
function problem(m: Pick<Body, 'kind' | 'target' | 'conditions' | 'http' | 'dns' | 'tls' | 'run_on'>): string | null {
  if (m.kind === 'http') {
    let url: URL;
    try {
      url = new URL(m.target);
    } catch {
      return `target: "${m.target.slice(0, 100)}" is not a URL`;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'target: an http monitor checks an http:// or https:// URL';
    if (url.username || url.password) return 'target: credentials in the URL would be stored and shown; use http.headers';
  } else if (m.kind === 'dns') {
    const labels = m.target.replace(/\.$/, '').split('.');
    if (m.target.length > 253 || !labels.every((l) => /^[A-Za-z0-9_-]{1,63}$/.test(l) && !l.startsWith('-') && !l.endsWith('-'))) return `target: "${m.target.slice(0, 100)}" is not a DNS name`;
  } else {
    try {
      hostPort(m.target);
    } catch (err) {
      return `target: ${(err as Error).message}`;
    }
  }
  if (m.run_on !== 'hub' && !m.run_on.hub && !m.run_on.agents && !m.run_on.labels) return 'run_on: name where the check runs: hub: true, agents or labels';
  const wrong = (['http', 'dns', 'tls'] as const).find((k) => m[k] !== undefined && k !== m.kind);
  if (wrong) return `${wrong}: options for another kind of monitor than ${m.kind}`;
  try {
    parseConditions(m.conditions);
  } catch (err) {
    if (err instanceof ConditionError) return `conditions: ${err.message}`;
    throw err;
  }
  return null;
}

function input(b: Body): MonitorInput {
  return {
    name: b.name,
    kind: b.kind,
    target: b.target,
    interval_s: b.interval_s,
    timeout_ms: b.timeout_ms,
    run_on: normalRunOn(b.run_on),
    quorum: b.quorum,
    conditions: b.conditions,
    options: { ...(b.http ? { http: b.http } : {}), ...(b.dns ? { dns: b.dns } : {}), ...(b.tls ? { tls: b.tls } : {}) },
    failure_threshold: b.failure_threshold,
    success_threshold: b.success_threshold,
    cert_warn_days: b.cert_warn_days,
    labels: b.labels ?? {},
    enabled: b.enabled,
  };
}

/** `{hub: true}` alone is "hub"; `hub: false` is left out. */
function normalRunOn(r: RunOn): RunOn {
  if (r === 'hub') return r;
  const { hub, ...agents } = r;
  if (!agents.agents && !agents.labels) return 'hub';
  return hub ? { hub: true, ...agents } : agents;
}

/** Agents a monitor names that are not enrolled: a monitor for them would never run. */
async function unknownAgents(db: Db, r: RunOn): Promise<string | null> {
  if (r === 'hub' || !r.agents) return null;
  const known = await agentLabels(db, r.agents);
  const missing = r.agents.filter((id) => !known.has(id));
  return missing.length ? `run_on.agents: no agent ${missing.slice(0, 5).join(', ')}` : null;
}

/** Uptime monitors: admin to change, read to see. */
export function monitorRoutes(
  app: App,
  { db, clock, kick, decide, lifecycle, events }: { db: Db; clock: Clock; kick: () => void; decide: (ids: string[]) => Promise<void>; lifecycle: LifecycleOptions; events: HubEvents },
): void {
  const tags = ['monitors'];
  const found = async (id: string) => {
    const m = await getMonitor(db, id);
    if (!m) throw new HubError('HUB_MONITOR_NOT_FOUND', `no monitor ${id}`);
    return m;
  };

  app.post('/v1/monitors', { config: { scope: 'admin' }, schema: { tags, summary: 'Add a monitor; its first check runs at once', body: MonitorBody, response: { 201: MonitorView, ...errorResponses } } }, async (req, reply) => {
    const why = problem(req.body) ?? (await unknownAgents(db, req.body.run_on));
    if (why) throw new HubError('HUB_INVALID_MONITOR', why);
    const at = clock.now();
    const id = newId();
    const created = await db.transaction().execute(async (trx) => {
      const fields = input(req.body);
      const row = await createMonitor(trx, { ...fields, id, at, by: req.operator.actor, next_run_at: runsOnHub(fields.run_on) ? at : null });
      if (row) await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'monitor_created', detail: { monitor_id: id, name: row.name, kind: row.kind, target: row.target } });
      return row;
    });
    if (!created) throw new HubError('HUB_NAME_TAKEN', `a monitor named "${req.body.name}" exists`, 'name');
    kick();
    events.emit('monitors.changed', {});
    return reply.code(201).send(show(created));
  });

  app.get('/v1/monitors', { schema: { tags, summary: 'List monitors with their state', response: { 200: Type.Object({ monitors: Type.Array(MonitorView) }), ...errorResponses } } }, async () => ({
    monitors: (await listMonitors(db)).map(show),
  }));

  app.get(
    '/v1/monitors/:id',
    { schema: { tags, summary: "One monitor: its state per location, uptime over 24 h, 7 d and 30 d, and response-time percentiles", params: IdParams, response: { 200: MonitorView, ...errorResponses } } },
    async (req) => {
      const m = await found(req.params.id);
      const now = clock.now().getTime();
      const since = (days: number) => new Date(now - days * 86_400_000);
      const [rows, agents, d1, d7, d30] = await Promise.all([locationsOf(db, m.id), monitorAgents(db, m.run_on), monitorStats(db, m.id, since(1)), monitorStats(db, m.id, since(7)), monitorStats(db, m.id, since(30))]);
      // Every place it runs from, a place with no result yet as unknown.
      const where = [...(runsOnHub(m.run_on) ? [{ id: HUB_LOCATION, name: HUB_LOCATION }] : []), ...agents];
      const byLocation = new Map(rows.map((l) => [l.location, l]));
      return {
        ...show(m),
        locations: where.map(({ id, name }) => {
          const l = byLocation.get(id);
          return { location: id, name, state: l?.state ?? 'unknown', failures: l?.failures ?? 0, successes: l?.successes ?? 0, last_result_at: iso(l?.last_result_at ?? null), last_ok: l?.last_ok ?? null, last_status: l?.last_status ?? null, last_response_ms: l?.last_response_ms ?? null, last_error: l?.last_error ?? null };
        }),
        uptime: { '24h': d1, '7d': d7, '30d': d30 },
      };
    },
  );

  app.get(
    '/v1/monitors/:id/results',
    {
      schema: {
        tags,
        summary: "A monitor's check results, newest first",
        params: IdParams,
        querystring: Type.Object({
          since: Type.Optional(Type.String({ format: 'date-time' })),
          until: Type.Optional(Type.String({ format: 'date-time' })),
          limit: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
        }),
        response: { 200: Type.Object({ results: Type.Array(ResultView) }), ...errorResponses },
      },
    },
    async (req) => {
      await found(req.params.id);
      const until = req.query.until ? new Date(req.query.until) : new Date(clock.now().getTime() + 1);
      const since = req.query.since ? new Date(req.query.since) : new Date(until.getTime() - 86_400_000);
      const rows = await listResults(db, req.params.id, since, until, req.query.limit);
      return {
        results: rows.map(({ monitor_id: _, ...r }) => ({ ...r, at: r.at.toISOString(), cert_expires_at: iso(r.cert_expires_at), ok_checks: r.ok_checks ?? (r.ok ? 1 : 0), max_response_ms: r.max_response_ms ?? r.response_ms })),
      };
    },
  );

  app.patch('/v1/monitors/:id', { config: { scope: 'admin' }, schema: { tags, summary: 'Change a monitor (its next check runs at once)', params: IdParams, body: MonitorPatch, response: { 200: MonitorView, ...errorResponses } } }, async (req) => {
    const before = await found(req.params.id);
    const merged = { ...show(before), ...req.body } as Body;
    // Options of the old kind do not carry over to a new one.
    if (req.body.kind && req.body.kind !== before.kind) for (const k of ['http', 'dns', 'tls'] as const) if (k !== req.body.kind && !(k in req.body)) delete merged[k];
    const why = problem(merged) ?? (req.body.run_on ? await unknownAgents(db, req.body.run_on) : null);
    if (why) throw new HubError('HUB_INVALID_MONITOR', why);
    if (req.body.name && (await monitorNameTaken(db, req.body.name, before.id))) throw new HubError('HUB_NAME_TAKEN', `a monitor named "${req.body.name}" exists`, 'name');
    const at = clock.now();
    const updated = await db.transaction().execute(async (trx) => {
      const fields = input(merged);
      const row = await updateMonitor(trx, before.id, { ...fields, updated_at: at, next_run_at: runsOnHub(fields.run_on) ? at : null });
      await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'monitor_updated', detail: { monitor_id: before.id, changed: Object.keys(req.body) } });
      return row!;
    });
    kick();
    events.emit('monitors.changed', {});
    // Where it runs, its quorum or thresholds may have changed: its state is decided again now.
    await decide([updated.id]);
    return show((await getMonitor(db, updated.id)) ?? updated);
  });

  app.delete('/v1/monitors/:id', { config: { scope: 'admin' }, schema: { tags, summary: 'Delete a monitor and its results; its open incidents are resolved', params: IdParams, response: { 204: Type.Null(), ...errorResponses } } }, async (req, reply) => {
    const at = clock.now();
    const resolved = await db.transaction().execute(async (trx) => {
      const row = await deleteMonitor(trx, req.params.id);
      if (!row) throw new HubError('HUB_MONITOR_NOT_FOUND', `no monitor ${req.params.id}`);
      await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'monitor_deleted', detail: { monitor_id: row.id, name: row.name } });
      const integration = await hubIntegration(trx, 'monitor', at);
      const ids: string[] = [];
      for (const key of [row.id, `cert:${row.id}`]) {
        const open = await openExternal(trx, integration.id, key);
        if (open && (await resolveByPerson(trx, lifecycle, open, req.operator.actor, at))) ids.push(open);
      }
      return ids;
    });
    if (resolved.length) events.emit('incident.changed', { incidentIds: resolved, opened: [] });
    events.emit('monitors.changed', {});
    return reply.code(204).send(null);
  });
}

export type MonitorViewT = Static<typeof MonitorView>;
export type MonitorBodyT = Static<typeof MonitorBody>;
