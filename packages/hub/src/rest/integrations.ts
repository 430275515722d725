import { Type, type Static } from '@sinclair/typebox';
import { newId } from '@opspilot/protocol';
import type { Clock } from '../clock.ts';
import type { App } from '../http.ts';
import { HubError } from '../errors.ts';
import { hashToken } from '../auth/tokens.ts';
import { SIGNING_KINDS, generateIntegrationSecret } from '../intake/credentials.ts';
import type { Db } from '../storage/database.ts';
import {
  createIntegration,
  deleteIntegration,
  getIntegrationView,
  listDeliveries,
  listIntegrations,
  rotateIntegrationSecret,
  secretInUse,
  updateIntegration,
  type IntegrationView,
} from '../storage/integrations.ts';
import { SENDER_KINDS, type IntegrationKind } from '../storage/tables.ts';
import { recordEvent } from '../storage/timeline.ts';
import { IdParams, Timestamp, errorResponses, iso } from './schemas.ts';

/** Where an alert names its host, tried in order, unless the integration says otherwise. */
export const DEFAULT_HOST_LABELS = ['host', 'hostname', 'instance', 'nodename', 'server_name'];

const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.String({ maxLength: 1024 }), { maxProperties: 32 });
const HostLabels = Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 16, uniqueItems: true });
const Name = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });
const Secret = Type.String({
  minLength: 16,
  maxLength: 256,
  pattern: '^[\\x21-\\x7e]+$',
  description: "Sentry: the integration's client secret (required). Others: leave out and one is made",
});

const IntegrationBody = Type.Object(
  {
    name: Name,
    kind: Type.Union(SENDER_KINDS.map((k) => Type.Literal(k))),
    labels: Type.Optional(Labels),
    host_labels: Type.Optional(HostLabels),
    secret: Type.Optional(Secret),
    enabled: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);
const IntegrationPatch = Type.Object(
  { name: Type.Optional(Name), labels: Type.Optional(Labels), host_labels: Type.Optional(HostLabels), enabled: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);

const IntegrationView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  host_labels: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  signed: Type.Boolean({ description: 'The secret is kept to check signatures (Sentry, Grafana)' }),
  url_path: Type.String({ description: "Where the sender posts: the hub's address followed by this path" }),
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
  updated_at: Type.String({ format: 'date-time' }),
  secret_rotated_at: Timestamp,
  last_delivery_at: Timestamp,
  last_error: Type.Union([Type.String(), Type.Null()]),
  last_error_at: Timestamp,
});
const WithSecret = Type.Intersect([IntegrationView, Type.Object({ secret: Type.String({ description: 'Shown once: only its hash is kept (and the secret itself where the sender signs)' }) })]);
export type IntegrationViewT = Static<typeof IntegrationView>;
export type IntegrationBodyT = Static<typeof IntegrationBody>;

const DeliveryView = Type.Object({
  id: Type.String(),
  received_at: Type.String({ format: 'date-time' }),
  bytes: Type.Integer(),
  body: Type.String({ description: 'The first 64 KiB, secrets redacted' }),
  alerts: Type.Integer(),
  changed: Type.Integer(),
  errors: Type.Union([Type.Array(Type.Object({ alert: Type.Integer(), error: Type.String() })), Type.Null()]),
});

function show(i: IntegrationView): IntegrationViewT {
  return {
    id: i.id,
    name: i.name,
    kind: i.kind,
    labels: i.labels,
    host_labels: i.host_labels,
    enabled: i.enabled,
    signed: i.signed,
    url_path: i.kind === 'pagerduty' ? `/v2/enqueue (or /v1/intake/${i.id})` : `/v1/intake/${i.id}`,
    created_at: i.created_at.toISOString(),
    created_by: i.created_by,
    updated_at: i.updated_at.toISOString(),
    secret_rotated_at: iso(i.secret_rotated_at),
    last_delivery_at: iso(i.last_delivery_at),
    last_error: i.last_error,
    last_error_at: iso(i.last_error_at),
  };
}

/** The secret to keep for a kind: its hash always; the secret itself only where the sender signs with it. */
function secretFor(kind: IntegrationKind, given: string | undefined): { secret: string; hash: string; signing: string | null } {
  if (kind === 'sentry' && !given) throw new HubError('HUB_INVALID_INTEGRATION', "a sentry integration needs `secret`: the client secret of your Sentry integration, which Sentry signs its requests with");
  const secret = given ?? generateIntegrationSecret(kind);
  return { secret, hash: hashToken(secret), signing: SIGNING_KINDS.has(kind) ? secret : null };
}

/** Integrations (alerts from other tools): admin to change, read to see. Their secrets are shown once. */
export function integrationRoutes(app: App, { db, clock }: { db: Db; clock: Clock }): void {
  const tags = ['integrations'];
  const found = async (id: string) => {
    const i = await getIntegrationView(db, id);
    if (!i) throw new HubError('HUB_INTEGRATION_NOT_FOUND', `no integration ${id}`);
    return i;
  };
  /** The hub's own integration (heartbeat checks' incidents) is changed through its checks. */
  const changeable = async (id: string) => {
    const i = await found(id);
    if (i.kind === 'heartbeat' || i.kind === 'monitor') throw new HubError('HUB_INVALID_INTEGRATION', `this is the hub's own integration for its ${i.kind === 'heartbeat' ? 'heartbeat checks: change the checks (/v1/heartbeats)' : 'monitors: change the monitors (/v1/monitors)'} instead`);
    return i;
  };

  app.post(
    '/v1/integrations',
    { compress: false, config: { scope: 'admin' }, schema: { tags, summary: 'Add an integration; its secret is in the answer, once', body: IntegrationBody, response: { 201: WithSecret, ...errorResponses } } },
    async (req, reply) => {
      const { name, kind, labels = {}, host_labels = DEFAULT_HOST_LABELS, enabled } = req.body;
      const s = secretFor(kind, req.body.secret);
      if (req.body.secret && (await secretInUse(db, s.hash))) throw new HubError('HUB_INVALID_INTEGRATION', 'this secret belongs to another integration');
      const at = clock.now();
      const id = newId();
      const created = await db.transaction().execute(async (trx) => {
        const row = await createIntegration(trx, { id, name, kind, labels, host_labels, secret_hash: s.hash, signing_secret: s.signing, enabled, at, by: req.operator.actor });
        if (row) await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'integration_created', detail: { integration_id: id, name, kind } });
        return row;
      });
      if (!created) throw new HubError('HUB_NAME_TAKEN', `an integration named "${name}" exists`, 'name');
      return reply.code(201).send({ ...show(created), secret: s.secret });
    },
  );

  app.get('/v1/integrations', { schema: { tags, summary: 'List integrations (never their secrets)', response: { 200: Type.Object({ integrations: Type.Array(IntegrationView) }), ...errorResponses } } }, async () => ({
    integrations: (await listIntegrations(db)).map(show),
  }));

  app.get('/v1/integrations/:id', { schema: { tags, summary: 'One integration', params: IdParams, response: { 200: IntegrationView, ...errorResponses } } }, async (req) => show(await found(req.params.id)));

  app.patch(
    '/v1/integrations/:id',
    { config: { scope: 'admin' }, schema: { tags, summary: "Rename, relabel, enable or disable an integration", params: IdParams, body: IntegrationPatch, response: { 200: IntegrationView, ...errorResponses } } },
    async (req) => {
      await changeable(req.params.id);
      const at = clock.now();
      const updated = await db.transaction().execute(async (trx) => {
        const row = await updateIntegration(trx, req.params.id, req.body, at);
        if (row && row !== 'name_taken') await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'integration_updated', detail: { integration_id: row.id, ...req.body } });
        return row;
      });
      if (updated === 'name_taken') throw new HubError('HUB_NAME_TAKEN', `an integration named "${req.body.name}" exists`, 'name');
      if (!updated) throw new HubError('HUB_INTEGRATION_NOT_FOUND', `no integration ${req.params.id}`);
      return show(updated);
    },
  );

  app.post(
    '/v1/integrations/:id/rotate-secret',
    { compress: false,
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'A new secret (the old one stops working at once); shown once',
        params: IdParams,
        body: Type.Optional(Type.Object({ secret: Type.Optional(Secret) }, { additionalProperties: false })),
        response: { 200: WithSecret, ...errorResponses },
      },
    },
    async (req) => {
      const before = await changeable(req.params.id);
      const s = secretFor(before.kind, req.body?.secret);
      if (req.body?.secret && (await secretInUse(db, s.hash))) throw new HubError('HUB_INVALID_INTEGRATION', 'this secret belongs to another integration');
      const at = clock.now();
      await db.transaction().execute(async (trx) => {
        if (!(await rotateIntegrationSecret(trx, before.id, s.hash, s.signing, at))) throw new HubError('HUB_INTEGRATION_NOT_FOUND', `no integration ${req.params.id}`);
        await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'integration_secret_rotated', detail: { integration_id: before.id, name: before.name } });
      });
      return { ...show(await found(before.id)), secret: s.secret };
    },
  );

  app.delete(
    '/v1/integrations/:id',
    { config: { scope: 'admin' }, schema: { tags, summary: 'Delete an integration, its incidents and deliveries (the audit trail stays)', params: IdParams, response: { 204: Type.Null(), ...errorResponses } } },
    async (req, reply) => {
      await changeable(req.params.id);
      const at = clock.now();
      const gone = await db.transaction().execute(async (trx) => {
        const row = await deleteIntegration(trx, req.params.id);
        if (row) await recordEvent(trx, { incidentId: null, at, actor: 'user', by: req.operator.actor, kind: 'integration_deleted', detail: { integration_id: req.params.id, name: row.name } });
        return row;
      });
      if (!gone) throw new HubError('HUB_INTEGRATION_NOT_FOUND', `no integration ${req.params.id}`);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/integrations/:id/deliveries',
    {
      schema: {
        tags,
        summary: 'The last requests an integration took, newest first, with what they changed and any alert skipped',
        params: IdParams,
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 20 }) }),
        response: { 200: Type.Object({ deliveries: Type.Array(DeliveryView) }), ...errorResponses },
      },
    },
    async (req) => {
      await found(req.params.id);
      const rows = await listDeliveries(db, req.params.id, req.query.limit);
      return { deliveries: rows.map((d) => ({ id: d.id, received_at: d.received_at.toISOString(), bytes: d.bytes, body: d.body, alerts: d.alerts, changed: d.changed, errors: d.errors })) };
    },
  );
}
