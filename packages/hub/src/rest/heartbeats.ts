import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { newId } from '@opspilot/protocol';
import type { Clock } from '../clock.ts';
import type { App } from '../http.ts';
import { HubError } from '../errors.ts';
import { allows } from '../auth/scopes.ts';
import type { HubEvents } from '../events.ts';
import { scheduleProblem } from '../heartbeats/schedule.ts';
import { resolveByPerson, type LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import { openExternal } from '../storage/external-alerts.ts';
import { createCheck, deleteCheck, getCheck, heartbeatIntegration, listChecks, listPings, nameTaken, setCheck, type CheckInput, type HeartbeatCheck } from '../storage/heartbeats.ts';
import { recordEvent } from '../storage/timeline.ts';
import { IdParams, Timestamp, errorResponses, iso } from './schemas.ts';

const Name = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });
const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 1024 }), { maxProperties: 32 });
const fields = {
  period_s: Type.Integer({ minimum: 60, maximum: 31_536_000, description: 'expect a success this often (or give cron)' }),
  cron: Type.String({ minLength: 9, maxLength: 100, description: 'expect a success at these times (or give period_s)' }),
  tz: Type.String({ minLength: 1, maxLength: 64, description: "the cron expression's time zone (IANA), default UTC" }),
  grace_s: Type.Integer({ minimum: 60, maximum: 31_536_000, description: 'how late a ping may be (or how long a started run may take) before the check is down; default 1 h' }),
  service: Type.String({ minLength: 1, maxLength: 256 }),
  host: Type.String({ minLength: 1, maxLength: 253, description: 'the host the job runs on: its incidents are linked to the agent there' }),
  labels: Labels,
};
const CheckBody = Type.Object(
  {
    name: Name,
    period_s: Type.Optional(fields.period_s),
    cron: Type.Optional(fields.cron),
    tz: Type.Optional(fields.tz),
    grace_s: Type.Optional(fields.grace_s),
    service: Type.Optional(fields.service),
    host: Type.Optional(fields.host),
    labels: Type.Optional(fields.labels),
  },
  { additionalProperties: false },
);
const CheckPatch = Type.Object(
  {
    name: Type.Optional(Name),
    period_s: Type.Optional(Type.Union([fields.period_s, Type.Null()])),
    cron: Type.Optional(Type.Union([fields.cron, Type.Null()])),
    tz: Type.Optional(fields.tz),
    grace_s: Type.Optional(fields.grace_s),
    service: Type.Optional(Type.Union([fields.service, Type.Null()])),
    host: Type.Optional(Type.Union([fields.host, Type.Null()])),
    labels: Type.Optional(fields.labels),
    paused: Type.Optional(Type.Boolean({ description: 'true: no alerts until resumed (or the next ping); false: resume, as new' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export const CheckView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  ping_path: Type.Union([Type.String(), Type.Null()], { description: "`/ping/<uuid>` (the hub's address before it): whoever has it can ping. Shown to admin tokens" }),
  period_s: Type.Union([Type.Integer(), Type.Null()]),
  cron: Type.Union([Type.String(), Type.Null()]),
  tz: Type.String(),
  grace_s: Type.Integer(),
  service: Type.Union([Type.String(), Type.Null()]),
  host: Type.Union([Type.String(), Type.Null()]),
  labels: Type.Record(Type.String(), Type.String()),
  status: Type.String({ description: 'new, up, started, late, down or paused' }),
  last_ping_at: Timestamp,
  last_success_at: Timestamp,
  started_at: Timestamp,
  due_at: Timestamp,
  down_at: Timestamp,
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
});
const PingView = Type.Object({
  id: Type.String(),
  at: Type.String({ format: 'date-time' }),
  kind: Type.String(),
  exit_status: Type.Union([Type.Integer(), Type.Null()]),
  rid: Type.Union([Type.String(), Type.Null()]),
  duration_ms: Type.Union([Type.Integer(), Type.Null()]),
  body: Type.Union([Type.String(), Type.Null()], { description: "The run's output: the first 100 KB, secrets redacted" }),
  body_bytes: Type.Integer(),
});

function show(c: HeartbeatCheck, withKey: boolean) {
  return {
    id: c.id,
    name: c.name,
    ping_path: withKey ? `/ping/${c.ping_key}` : null,
    period_s: c.period_s,
    cron: c.cron,
    tz: c.tz,
    grace_s: c.grace_s,
    service: c.service,
    host: c.host,
    labels: c.labels,
    status: c.status,
    last_ping_at: iso(c.last_ping_at),
    last_success_at: iso(c.last_success_at),
    started_at: iso(c.started_at),
    due_at: iso(c.due_at),
    down_at: iso(c.down_at),
    created_at: c.created_at.toISOString(),
    created_by: c.created_by,
  };
}

/** Heartbeat checks for cron jobs and timers: admin to change, read to see (their ping URLs: admin). */
export function heartbeatRoutes(app: App, { db, clock, lifecycle, events, kick }: { db: Db; clock: Clock; lifecycle: LifecycleOptions; events: HubEvents; kick: () => void }): void {
  const tags = ['heartbeats'];
  const found = async (id: string) => {
    const c = await getCheck(db, id);
    if (!c) throw new HubError('HUB_HEARTBEAT_NOT_FOUND', `no heartbeat check ${id}`);
    return c;
  };
  const admin = (req: { operator: { scope: Parameters<typeof allows>[0] } }) => allows(req.operator.scope, 'admin');

  app.post(
    '/v1/heartbeats',
    { compress: false, config: { scope: 'admin' }, schema: { tags, summary: 'Add a heartbeat check; ping its ping_path when the job succeeds', body: CheckBody, response: { 201: CheckView, ...errorResponses } } },
    async (req, reply) => {
      const b = req.body;
      const input: CheckInput = {
        name: b.name,
        period_s: b.period_s ?? null,
        cron: b.cron ?? null,
        tz: b.tz ?? 'UTC',
        grace_s: b.grace_s ?? 3600,
        service: b.service ?? null,
        host: b.host ?? null,
        labels: b.labels ?? {},
      };
      const problem = scheduleProblem(input);
      if (problem) throw new HubError('HUB_INVALID_HEARTBEAT', problem);
      const at = clock.now();
      const id = newId();
      const created = await db.transaction().execute(async (trx) => {
        const row = await createCheck(trx, { ...input, id, ping_key: randomUUID(), at, by: req.operator.actor });
        if (row) await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'heartbeat_created', detail: { check_id: id, name: input.name } });
        return row;
      });
      if (!created) throw new HubError('HUB_NAME_TAKEN', `a heartbeat check named "${input.name}" exists`, 'name');
      return reply.code(201).send(show(created, true));
    },
  );

  app.get('/v1/heartbeats', { compress: false, schema: { tags, summary: 'List heartbeat checks with their state', response: { 200: Type.Object({ heartbeats: Type.Array(CheckView) }), ...errorResponses } } }, async (req) => ({
    heartbeats: (await listChecks(db)).map((c) => show(c, admin(req))),
  }));

  app.get('/v1/heartbeats/:id', { compress: false, schema: { tags, summary: 'One heartbeat check', params: IdParams, response: { 200: CheckView, ...errorResponses } } }, async (req) => show(await found(req.params.id), admin(req)));

  app.get(
    '/v1/heartbeats/:id/pings',
    {
      schema: {
        tags,
        summary: "A check's last pings, newest first, with each run's output",
        params: IdParams,
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 20 }) }),
        response: { 200: Type.Object({ pings: Type.Array(PingView) }), ...errorResponses },
      },
    },
    async (req) => {
      await found(req.params.id);
      const pings = await listPings(db, req.params.id, req.query.limit);
      return { pings: pings.map((p) => ({ ...p, at: p.at.toISOString() })) };
    },
  );

  app.patch(
    '/v1/heartbeats/:id',
    { config: { scope: 'admin' }, schema: { tags, summary: 'Change, pause or resume a heartbeat check', params: IdParams, body: CheckPatch, response: { 200: CheckView, ...errorResponses } } },
    async (req) => {
      const before = await found(req.params.id);
      const { paused, ...settings } = req.body;
      const schedule = { period_s: before.period_s, cron: before.cron, tz: before.tz, ...settings };
      // Giving one kind of schedule replaces the other.
      if (settings.period_s != null) schedule.cron = null;
      if (settings.cron != null) schedule.period_s = null;
      const problem = scheduleProblem({ period_s: schedule.period_s ?? null, cron: schedule.cron ?? null, tz: schedule.tz });
      if (problem) throw new HubError('HUB_INVALID_HEARTBEAT', problem);
      if (settings.name && (await nameTaken(db, settings.name, before.id))) throw new HubError('HUB_NAME_TAKEN', `a heartbeat check named "${settings.name}" exists`, 'name');
      const at = clock.now();
      const state =
        paused === true
          ? { status: 'paused' as const, due_at: null, down_at: null, started_at: null, started_rid: null }
          : paused === false && before.status === 'paused'
            ? { status: 'new' as const }
            : {};
      const updated = await db.transaction().execute(async (trx) => {
        const row = await setCheck(trx, before.id, { ...settings, period_s: schedule.period_s ?? null, cron: schedule.cron ?? null, ...state, updated_at: at });
        await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'heartbeat_updated', detail: { check_id: before.id, ...req.body } });
        return row!;
      });
      kick();
      return show(updated, true);
    },
  );

  app.delete(
    '/v1/heartbeats/:id',
    { config: { scope: 'admin' }, schema: { tags, summary: 'Delete a heartbeat check; its open incident is resolved', params: IdParams, response: { 204: Type.Null(), ...errorResponses } } },
    async (req, reply) => {
      const at = clock.now();
      const resolved = await db.transaction().execute(async (trx) => {
        const row = await deleteCheck(trx, req.params.id);
        if (!row) throw new HubError('HUB_HEARTBEAT_NOT_FOUND', `no heartbeat check ${req.params.id}`);
        await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'heartbeat_deleted', detail: { check_id: row.id, name: row.name } });
        const integration = await heartbeatIntegration(trx, at);
        const open = await openExternal(trx, integration.id, row.id);
        if (open) await resolveByPerson(trx, lifecycle, open, req.operator.actor, at);
        return open;
      });
      if (resolved) events.emit('incident.changed', { incidentIds: [resolved], opened: [] });
      return reply.code(204).send(null);
    },
  );
}

export type CheckViewT = Static<typeof CheckView>;
