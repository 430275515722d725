import { deleteSessionsOfToken } from '../storage/sessions.ts';
import { Type, type Static } from '@sinclair/typebox';
import type { Clock } from '../clock.ts';
import { newId } from '@opspilot/protocol';
import { SCOPES, type Scope } from '../auth/admin.ts';
import { ADMIN_TOKEN_PREFIX, generateToken, hashToken } from '../auth/tokens.ts';
import type { App } from '../http.ts';
import type { AdminAuth } from '../auth/admin.ts';
import type { Db } from '../storage/database.ts';
import { HubError } from '../errors.ts';
import { setAgentAutonomy } from '../storage/agents.ts';
import { createApiToken, deleteApiToken, listApiTokens } from '../storage/api-tokens.ts';
import { getAutonomy, setAutonomy } from '../storage/settings.ts';
import { auditEvents, recordEvent } from '../storage/timeline.ts';
import { listHubs } from '../storage/cluster.ts';
import { Id, IdParams, Timestamp, errorResponses, iso } from './schemas.ts';

const Autonomy = Type.Object({
  enabled: Type.Boolean({ description: 'false: nothing runs automatically anywhere' }),
  updated_at: Timestamp,
  updated_by: Type.Union([Type.String(), Type.Null()]),
});
export const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
  last_used_at: Timestamp,
});
export const AuditEvent = Type.Object({
  id: Type.String(),
  at: Type.String({ format: 'date-time' }),
  incident_id: Type.Union([Type.String(), Type.Null()]),
  agent_id: Type.Union([Type.String(), Type.Null()]),
  actor: Type.String(),
  by: Type.Union([Type.String(), Type.Null()]),
  kind: Type.String(),
  detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
});

/** The kill switch, per-agent autonomy, scoped API tokens and the audit trail. */
export function systemRoutes(app: App, { db, adminAuth, clock }: { db: Db; adminAuth: AdminAuth; clock: Clock }): void {

  app.get(
    '/v1/system/autonomy',
    { schema: { tags: ['autonomy'], summary: 'Whether automatic actions may run', response: { 200: Autonomy, ...errorResponses } } },
    async () => {
      const a = await getAutonomy(db);
      return { ...a, updated_at: iso(a.updated_at) };
    },
  );

  app.put(
    '/v1/system/autonomy',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['autonomy'],
        summary: 'The kill switch: turn every automatic action on or off (kept across restarts, audited)',
        body: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: Autonomy, ...errorResponses },
      },
    },
    async (req) => {
      const at = clock.now();
      const before = await getAutonomy(db);
      await db.transaction().execute(async (trx) => {
        await setAutonomy(trx, req.body.enabled, req.operator.actor, at);
        await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'autonomy_changed', detail: { enabled: req.body.enabled, was: before.enabled } });
      });
      req.log.warn({ enabled: req.body.enabled, by: req.operator.actor }, 'autonomy switched');
      return { enabled: req.body.enabled, updated_at: at.toISOString(), updated_by: req.operator.actor };
    },
  );

  app.put(
    '/v1/agents/:id/autonomy',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['autonomy'],
        summary: "One agent's autonomy: false stops automatic actions on it",
        params: IdParams,
        body: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: Type.Object({ agent_id: Type.String(), autonomy: Type.Boolean() }), ...errorResponses },
      },
    },
    async (req) => {
      const at = clock.now();
      const found = await db.transaction().execute(async (trx) => {
        if (!(await setAgentAutonomy(trx, req.params.id, req.body.enabled))) return false;
        await recordEvent(trx, { incidentId: null, agentId: req.params.id, at, actor: 'user', by: req.operator.actor, kind: 'autonomy_changed', detail: { enabled: req.body.enabled } });
        return true;
      });
      if (!found) throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${req.params.id}`);
      return { agent_id: req.params.id, autonomy: req.body.enabled };
    },
  );

  app.post(
    '/v1/tokens',
    { compress: false,
      config: { scope: 'admin' },
      schema: {
        tags: ['tokens'],
        summary: 'Create a scoped API token (shown once; only its hash is kept)',
        description: '`read` sees; `exec` also runs actions, acknowledges and resolves; `admin` also manages agents, rules, tokens and the kill switch.',
        body: Type.Object(
          {
            name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
            scopes: Type.Array(Type.Union(SCOPES.map((s) => Type.Literal(s))), { minItems: 1, maxItems: 3, uniqueItems: true }),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ id: Type.String(), name: Type.String(), scopes: Type.Array(Type.String()), token: Type.String() }), ...errorResponses },
      },
    },
    async (req, reply) => {
      // "admin" is how the admin token appears in the audit trail and the rate limiter: a
      // scoped token of that name would pass for it.
      if (req.body.name.toLowerCase() === 'admin') throw new HubError('HUB_NAME_TAKEN', 'the name "admin" is reserved for the admin token', 'name');
      const token = generateToken(ADMIN_TOKEN_PREFIX);
      const id = newId();
      const at = clock.now();
      const scopes = req.body.scopes as Scope[];
      const created = await db.transaction().execute(async (trx) => {
        if (!(await createApiToken(trx, { id, name: req.body.name, scopes, tokenHash: hashToken(token), createdBy: req.operator.actor }))) return false;
        await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'token_created', detail: { token_id: id, name: req.body.name, scopes } });
        return true;
      });
      if (!created) throw new HubError('HUB_NAME_TAKEN', `a token named "${req.body.name}" exists`, 'name');
      return reply.code(201).send({ id, name: req.body.name, scopes, token });
    },
  );

  app.get(
    '/v1/tokens',
    { config: { scope: 'admin' }, schema: { tags: ['tokens'], summary: 'API tokens (never their values)', response: { 200: Type.Object({ tokens: Type.Array(TokenView) }), ...errorResponses } } },
    async () => ({
      tokens: (await listApiTokens(db)).map((t) => ({ ...t, created_at: t.created_at.toISOString(), last_used_at: iso(t.last_used_at) })),
    }),
  );

  app.delete(
    '/v1/tokens/:id',
    { config: { scope: 'admin' }, schema: { tags: ['tokens'], summary: 'Delete an API token: it stops working', params: IdParams, response: { 204: Type.Null(), ...errorResponses } } },
    async (req, reply) => {
      const at = clock.now();
      const gone = await db.transaction().execute(async (trx) => {
        const row = await deleteApiToken(trx, req.params.id);
        // Its dashboard sessions end with it.
        if (row) await deleteSessionsOfToken(trx, row.token_hash);
        if (row) await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'token_deleted', detail: { token_id: req.params.id, name: row.name } });
        return row;
      });
      if (!gone) throw new HubError('HUB_TOKEN_NOT_FOUND', `no token ${req.params.id}`);
      adminAuth.forget(gone.token_hash);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'The audit trail, oldest first: alerts, classification, analysis, decisions, execs and their results, verification',
        querystring: Type.Object({
          incident_id: Type.Optional(Id),
          agent_id: Type.Optional(Id),
          actor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'agent, rule, user, llm, heuristic, hub, or who: token:<name>, slack:<user>, rule:<name>' })),
          after: Type.Optional(Id),
          since: Type.Optional(Type.String({ format: 'date-time', description: 'only events at or after this time' })),
          order: Type.Union([Type.Literal('asc'), Type.Literal('desc')], { default: 'asc', description: 'desc: the newest `limit` events, newest first (no next page)' }),
          limit: Type.Integer({ minimum: 1, maximum: 1000, default: 500 }),
        }),
        response: { 200: Type.Object({ events: Type.Array(AuditEvent), next_after: Type.Union([Type.String(), Type.Null()]) }), ...errorResponses },
      },
    },
    async (req) => {
      const rows = await auditEvents(db, {
        incidentId: req.query.incident_id,
        agentId: req.query.agent_id,
        actor: req.query.actor,
        after: req.query.after,
        ...(req.query.since ? { since: new Date(req.query.since) } : {}),
        newestFirst: req.query.order === 'desc',
        limit: req.query.limit,
      });
      return {
        events: rows.map((r) => ({ ...r, at: r.at.toISOString() })),
        next_after: req.query.order === 'asc' && rows.length === req.query.limit ? rows[rows.length - 1]!.id : null,
      };
    },
  );
}

/** The hubs on this database (several share one PostgreSQL): who holds how many agents, who leads. */
export function hubRoutes(app: App, { db, self }: { db: Db; self: () => { id: string; leader: boolean } }): void {
  app.get(
    '/v1/hubs',
    {
      schema: {
        tags: ['system'],
        summary: 'The hubs on this database, with their leases and the agents each holds',
        response: { 200: Type.Object({ hubs: Type.Array(HubView) }), ...errorResponses },
      },
    },
    async () => {
      const me = self();
      const rows = await listHubs(db);
      return {
        hubs: rows.map((h) => ({
          id: h.id,
          name: h.name,
          started_at: h.started_at.toISOString(),
          lease_until: h.lease_until.toISOString(),
          alive: h.alive,
          agents: h.agents,
          this_hub: h.id === me.id,
          ...(h.id === me.id ? { leader: me.leader } : {}),
        })),
      };
    },
  );
}

export const HubView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  started_at: Type.String({ format: 'date-time' }),
  lease_until: Type.String({ format: 'date-time', description: 'renewed every 5 s while the hub runs' }),
  alive: Type.Boolean({ description: 'the lease is current' }),
  agents: Type.Integer({ description: 'agents connected to it, as of its last renewal' }),
  this_hub: Type.Boolean({ description: 'the hub that answered' }),
  leader: Type.Optional(Type.Boolean({ description: 'on the hub that answered: it runs the background work' })),
});

export type HubViewT = Static<typeof HubView>;
export type TokenViewT = Static<typeof TokenView>;
export type AuditEventT = Static<typeof AuditEvent>;
