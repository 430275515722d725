import { Type, type Static } from '@sinclair/typebox';
import type { Clock } from '../clock.ts';
import { newId } from '@opspilot/protocol';
import type { App } from '../http.ts';
import type { HubEvents } from '../events.ts';
import type { RemediationEngine } from '../remediation/engine.ts';
import type { Db } from '../storage/database.ts';
import { HubError } from '../errors.ts';
import { actionProblem } from '../remediation/params.ts';
import { releaseDeferred } from '../storage/notifications.ts';
import { createRule, deleteRule, getRule, listRules, updateRule, type RuleInput } from '../storage/rules.ts';
import { checkCron, createSilence, deleteSilence, firstOpening, listSilences } from '../storage/silences.ts';
import type { RemediationRule, Silence } from '../storage/tables.ts';
import { recordEvent } from '../storage/timeline.ts';
import { ExecParams, IdParams, Timestamp, errorResponses, iso } from './schemas.ts';

const Match = Type.Object(
  {
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'glob: * and ?' })),
    severity: Type.Optional(Type.Union(['critical', 'high', 'medium', 'low'].map((s) => Type.Literal(s)))),
    category: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    agent_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    integration_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'alerts from this integration' })),
    service: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'glob: * and ?' })),
    labels: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 256 }), { maxProperties: 32 })),
  },
  { additionalProperties: false },
);

export const RuleBody = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
    match: Match,
    action: Type.Object({ command: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }), params: Type.Optional(ExecParams) }, { additionalProperties: false }),
    mode: Type.Union([Type.Literal('auto'), Type.Literal('approve')]),
    cooldown_s: Type.Integer({ minimum: 0, maximum: 7 * 86_400, default: 600 }),
    max_per_hour: Type.Integer({ minimum: 1, maximum: 1000, default: 3 }),
    verify_s: Type.Integer({ minimum: 5, maximum: 86_400, default: 120 }),
    enabled: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);

export const RuleView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  match: Type.Record(Type.String(), Type.Unknown()),
  action: Type.Object({ command: Type.String(), params: Type.Record(Type.String(), Type.Unknown()) }),
  mode: Type.String(),
  cooldown_s: Type.Integer(),
  max_per_hour: Type.Integer(),
  verify_s: Type.Integer(),
  enabled: Type.Boolean(),
  suspended_at: Timestamp,
  suspended_reason: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
});

export const SilenceBody = Type.Object(
  {
    match: Match,
    starts_at: Type.Optional(Type.String({ format: 'date-time', description: 'default now' })),
    ends_at: Type.Optional(Type.String({ format: 'date-time', description: 'required for a one-off silence; a recurring one without it runs until deleted' })),
    cron: Type.Optional(Type.String({ minLength: 9, maxLength: 100, description: 'recurring: a cron expression (UTC) opening a window of duration_s' })),
    duration_s: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 86_400 })),
    reason: Type.String({ minLength: 1, maxLength: 500 }),
  },
  { additionalProperties: false },
);

export const SilenceView = Type.Object({
  id: Type.String(),
  match: Type.Record(Type.String(), Type.Unknown()),
  starts_at: Type.String({ format: 'date-time' }),
  ends_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  cron: Type.Union([Type.String(), Type.Null()]),
  next_window_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'recurring: when its next window opens (null if never again)' })),
  duration_s: Type.Union([Type.Integer(), Type.Null()]),
  reason: Type.String(),
  created_by: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
});

const ruleView = (r: RemediationRule) => ({
  ...r,
  suspended_at: iso(r.suspended_at),
  created_at: r.created_at.toISOString(),
  updated_at: r.updated_at.toISOString(),
});
const silenceView = ({ deleted_at: _d, ...s }: Silence, now: Date) => ({
  ...s,
  starts_at: s.starts_at.toISOString(),
  ends_at: s.ends_at?.toISOString() ?? null,
  created_at: s.created_at.toISOString(),
  ...(s.cron ? { next_window_at: firstOpening(s.cron, s.starts_at > now ? s.starts_at : now, s.ends_at)?.toISOString() ?? null } : {}),
});

function ruleInput(body: Static<typeof RuleBody>): RuleInput {
  const params = body.action.params ?? {};
  const problem = actionProblem(body.action.command, params);
  if (problem) throw new HubError('HUB_INVALID_RULE', problem, 'action');
  return { ...body, match: body.match, action: { command: body.action.command, params } };
}

/** Remediation rules (admin), approve mode's answers (exec) and silences (exec). */
export function remediationRoutes(app: App, { db, engine, events, clock }: { db: Db; engine: RemediationEngine; events: HubEvents; clock: Clock }): void {
  const tags = ['remediation'];

  app.post(
    '/v1/rules',
    { config: { scope: 'admin' }, schema: { tags, summary: 'Create a remediation rule', body: RuleBody, response: { 201: RuleView, ...errorResponses } } },
    async (req, reply) => {
      const input = ruleInput(req.body);
      const at = clock.now();
      const rule = await db.transaction().execute(async (trx) => {
        const r = await createRule(trx, newId(), input, req.operator.actor, at);
        if (r) await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'rule_created', detail: { rule_id: r.id, rule: r.name, ...input } });
        return r;
      });
      if (!rule) throw new HubError('HUB_NAME_TAKEN', `a rule named "${input.name}" exists`, 'name');
      return reply.code(201).send(ruleView(rule));
    },
  );

  app.get(
    '/v1/rules',
    { schema: { tags, summary: 'Remediation rules', response: { 200: Type.Object({ rules: Type.Array(RuleView) }), ...errorResponses } } },
    async () => ({ rules: (await listRules(db)).map(ruleView) }),
  );

  app.get('/v1/rules/:id', { schema: { tags, summary: 'One rule', params: IdParams, response: { 200: RuleView, ...errorResponses } } }, async (req) => {
    const rule = await getRule(db, req.params.id);
    if (!rule) throw new HubError('HUB_RULE_NOT_FOUND', `no rule ${req.params.id}`);
    return ruleView(rule);
  });

  app.put(
    '/v1/rules/:id',
    {
      config: { scope: 'admin' },
      schema: { tags, summary: 'Replace a rule; saving it also closes its circuit breaker', params: IdParams, body: RuleBody, response: { 200: RuleView, ...errorResponses } },
    },
    async (req) => {
      const input = ruleInput(req.body);
      const at = clock.now();
      const rule = await db.transaction().execute(async (trx) => {
        const r = await updateRule(trx, req.params.id, input, at);
        if (r && r !== 'name_taken') await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'rule_updated', detail: { rule_id: r.id, rule: r.name, ...input } });
        return r;
      });
      if (rule === 'name_taken') throw new HubError('HUB_NAME_TAKEN', `a rule named "${input.name}" exists`, 'name');
      if (!rule) throw new HubError('HUB_RULE_NOT_FOUND', `no rule ${req.params.id}`);
      return ruleView(rule);
    },
  );

  app.delete(
    '/v1/rules/:id',
    { config: { scope: 'admin' }, schema: { tags, summary: 'Delete a rule', params: IdParams, response: { 204: Type.Null(), ...errorResponses } } },
    async (req, reply) => {
      const at = clock.now();
      const gone = await db.transaction().execute(async (trx) => {
        const r = await deleteRule(trx, req.params.id);
        if (r) await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'rule_deleted', detail: { rule_id: r.id, rule: r.name } });
        return r;
      });
      if (!gone) throw new HubError('HUB_RULE_NOT_FOUND', `no rule ${req.params.id}`);
      return reply.code(204).send(null);
    },
  );

  for (const decision of ['approve', 'reject'] as const) {
    app.post(
      `/v1/remediation/attempts/:id/${decision}`,
      {
        schema: {
          tags,
          summary: decision === 'approve' ? "Approve an approve-mode rule's action: it runs now" : "Reject an approve-mode rule's action",
          params: IdParams,
          response: { 200: Type.Object({ id: Type.String(), status: Type.String() }), 409: Type.Ref('ErrorResponse'), ...errorResponses },
        },
      },
      async (req) => {
        const r = decision === 'approve' ? await engine.approve(req.params.id, req.operator.actor) : await engine.reject(req.params.id, req.operator.actor);
        if (r === 'not_waiting') throw new HubError('HUB_NOT_WAITING', `attempt ${req.params.id} is not waiting for an answer`);
        if (r === 'blocked') throw new HubError('HUB_NOT_WAITING', `attempt ${req.params.id} may no longer run; it was rejected`);
        return { id: r.id, status: r.status };
      },
    );
  }

  app.post(
    '/v1/silences',
    {
      schema: {
        tags: ['silences'],
        summary: 'Silence matching incidents: no notification, no automatic action (incidents are still recorded)',
        body: SilenceBody,
        response: { 201: SilenceView, ...errorResponses },
      },
    },
    async (req, reply) => {
      const now = clock.now();
      const startsAt = req.body.starts_at ? new Date(req.body.starts_at) : now;
      if ((req.body.cron === undefined) !== (req.body.duration_s === undefined)) throw new HubError('HUB_BAD_REQUEST', 'a recurring silence needs both cron and duration_s');
      if (req.body.ends_at === undefined && req.body.cron === undefined) throw new HubError('HUB_BAD_REQUEST', 'a one-off silence needs ends_at');
      const endsAt = req.body.ends_at === undefined ? null : new Date(req.body.ends_at);
      if (endsAt && !(endsAt > startsAt)) throw new HubError('HUB_BAD_REQUEST', 'ends_at must be after starts_at');
      if (req.body.cron !== undefined) {
        try {
          checkCron(req.body.cron);
        } catch (err) {
          throw new HubError('HUB_BAD_REQUEST', `cron: ${(err as Error).message}`);
        }
        // A window opens at each occurrence: one that has none before ends_at would never silence anything.
        if (!firstOpening(req.body.cron, startsAt, endsAt)) {
          throw new HubError('HUB_BAD_REQUEST', `cron: "${req.body.cron}" (UTC) has no occurrence between starts_at and ends_at, so the silence would never open; move ends_at later or leave it out`);
        }
      }
      const silence: Omit<Silence, 'deleted_at'> = {
        id: newId(),
        match: req.body.match,
        starts_at: startsAt,
        ends_at: endsAt,
        cron: req.body.cron ?? null,
        duration_s: req.body.duration_s ?? null,
        reason: req.body.reason,
        created_by: req.operator.actor,
        created_at: now,
      };
      await db.transaction().execute(async (trx) => {
        await createSilence(trx, silence);
        await recordEvent(trx, { incidentId: null, at: now, actor: 'user', by: req.operator.actor, kind: 'silence_created', detail: { silence_id: silence.id, ...req.body } });
      });
      return reply.code(201).send(silenceView({ ...silence, deleted_at: null }, now));
    },
  );

  app.get(
    '/v1/silences',
    {
      schema: {
        tags: ['silences'],
        summary: 'Silences not yet over (all=true: ended ones too)',
        querystring: Type.Object({ all: Type.Boolean({ default: false }) }),
        response: { 200: Type.Object({ silences: Type.Array(SilenceView) }), ...errorResponses },
      },
    },
    async (req) => ({ silences: (await listSilences(db, req.query.all, clock.now())).map((s) => silenceView(s, clock.now())) }),
  );

  app.delete(
    '/v1/silences/:id',
    { schema: { tags: ['silences'], summary: 'End a silence now: what it held back is notified', params: IdParams, response: { 204: Type.Null(), ...errorResponses } } },
    async (req, reply) => {
      const at = clock.now();
      const gone = await db.transaction().execute(async (trx) => {
        const s = await deleteSilence(trx, req.params.id, at);
        if (s) {
          await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'silence_deleted', detail: { silence_id: s.id, reason: s.reason } });
          await releaseDeferred(trx, at);
        }
        return s;
      });
      if (!gone) throw new HubError('HUB_SILENCE_NOT_FOUND', `no silence ${req.params.id}`);
      events.emit('notification.queued', {});
      return reply.code(204).send(null);
    },
  );
}

export type RuleBodyT = Static<typeof RuleBody>;
export type RuleViewT = Static<typeof RuleView>;
export type SilenceBodyT = Static<typeof SilenceBody>;
export type SilenceViewT = Static<typeof SilenceView>;
