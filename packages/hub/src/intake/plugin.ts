import rateLimit from '@fastify/rate-limit';
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyRequest } from 'fastify';
import type { Clock } from '../clock.ts';
import type { HubConfig } from '../config.ts';
import { HubError, errorBody } from '../errors.ts';
import type { HubEvents } from '../events.ts';
import type { App } from '../http.ts';
import { hashToken } from '../auth/tokens.ts';
import type { LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Redactor } from '../incidents/redact.ts';
import type { Db } from '../storage/database.ts';
import { getIntegration, integrationBySecretHash, noteIntegrationError, type Integration } from '../storage/integrations.ts';
import { readAlertmanager } from './alertmanager.ts';
import { fresh, hmacMatches, presentedSecret, secretMatches } from './credentials.ts';
import { deliveryKey, takeDelivery, type DeliveryOutcome } from './deliver.ts';
import { readErrorReport } from './error-report.ts';
import { readGeneric } from './generic.ts';
import { IntakeFormatError, type ReadAlerts } from './normalize.ts';
import { readPagerDuty, routingKeyOf } from './pagerduty.ts';
import { readSentry } from './sentry.ts';

export interface IntakeDeps {
  config: Readonly<HubConfig>;
  db: Db;
  lifecycle: LifecycleOptions;
  redactor: Redactor;
  events: HubEvents;
  clock: Clock;
}

const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const UNAUTHORIZED = 'unknown integration or wrong credentials (Authorization: Bearer <secret>, or basic auth with the secret as password)';
const GRAFANA_SIGNATURE = 'x-grafana-alerting-signature';
const GRAFANA_TIMESTAMP = 'x-grafana-alerting-timestamp';

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
};

/**
 * Alerts from other tools: `POST /v1/intake/:id` for each integration (Alertmanager, Grafana,
 * generic JSON, Events v2 with its routing key) and `POST /v2/enqueue` for Events API v2 senders
 * that only know PagerDuty's address. Each request is authenticated as its sender can do it, by
 * its Authorization header before the body is read, or (where the sender signs) over the raw
 * bytes before they are parsed; then it is read, taken in one transaction and answered. A bad
 * request costs only its sender: it gets a 4xx with a stable code and nothing is kept.
 */
export async function intakePlugin(app: App, deps: IntakeDeps): Promise<void> {
  const { config, db } = deps;
  const verified = new WeakMap<FastifyRequest, Integration>();

  // A sender retries on 5xx: whatever failed that is not the request's fault (the database is
  // away, a bug) answers 503 with nothing kept, so the delivery comes again.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof HubError) return reply.code(err.statusCode).send(err.body());
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(errorBody('HUB_PAYLOAD_TOO_LARGE', err.message));
    if (err.validation || (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)) return reply.code(err.statusCode ?? 400).send(errorBody('HUB_BAD_REQUEST', err.message));
    req.log.error({ err }, 'intake: the request could not be taken');
    return reply.code(503).send(errorBody('HUB_UNAVAILABLE', 'the request could not be taken; nothing of it was kept: send it again'));
  });

  // The raw bytes, so a signature is checked over exactly what was signed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.intakeMaxBytes }, (_req, body, done) => done(null, body));

  // Per integration, after authentication: one noisy sender cannot starve the others.
  await app.register(rateLimit, {
    max: config.intakeRateLimit,
    timeWindow: 60_000,
    hook: 'preHandler',
    keyGenerator: (req) => `intake:${verified.get(req)?.id ?? req.ip}`,
    errorResponseBuilder: (_req, ctx) => new HubError('HUB_RATE_LIMITED', `more than ${ctx.max} requests a minute from this integration; retry in ${ctx.after}`),
  });

  /** The integration of `/v1/intake/:id`, authenticated by header where the sender does not sign. */
  const byHeader = async (req: FastifyRequest<{ Params: { id: string } }>) => {
    const id = req.params.id;
    const integration = ID.test(id) ? await getIntegration(db, id) : undefined;
    if (!integration) throw new HubError('HUB_INTAKE_UNAUTHORIZED', UNAUTHORIZED);
    if (signsBody(integration, req)) {
      verified.set(req, integration); // checked over the body in the handler, before it is parsed
      return;
    }
    if (!secretMatches(presentedSecret(req.headers.authorization), integration.secret_hash)) throw new HubError('HUB_INTAKE_UNAUTHORIZED', UNAUTHORIZED);
    verified.set(req, integration);
  };

  const signsBody = (i: Integration, req: FastifyRequest) =>
    i.kind === 'sentry' || (i.kind === 'grafana' && header(req, GRAFANA_SIGNATURE) !== undefined) || (i.kind === 'pagerduty' && !req.headers.authorization);

  const handle = async (req: FastifyRequest, integration: Integration, raw: Buffer) => {
    const now = deps.clock.now();
    if (integration.kind === 'sentry') {
      // Sentry signs the raw body with the integration's client secret (not its timestamp header):
      // a replay is caught by its Request-ID, kept as the delivery's key.
      if (!integration.signing_secret || !hmacMatches(integration.signing_secret, raw, header(req, 'sentry-hook-signature'))) {
        throw new HubError('HUB_INTAKE_BAD_SIGNATURE', "Sentry-Hook-Signature does not match the body signed with the integration's client secret");
      }
    }
    if (integration.kind === 'grafana' && header(req, GRAFANA_SIGNATURE) !== undefined) {
      const ts = header(req, GRAFANA_TIMESTAMP);
      if (ts !== undefined && !fresh(ts, now.getTime())) throw new HubError('HUB_INTAKE_STALE_REQUEST', `${GRAFANA_TIMESTAMP} is missing, malformed or more than 5 minutes from the hub's time`);
      const signed = ts !== undefined ? Buffer.concat([Buffer.from(`${ts}:`), raw]) : raw;
      if (!integration.signing_secret || !hmacMatches(integration.signing_secret, signed, header(req, GRAFANA_SIGNATURE))) {
        throw new HubError('HUB_INTAKE_BAD_SIGNATURE', `${GRAFANA_SIGNATURE} does not match the body signed with the integration's secret`);
      }
    }
    if (!integration.enabled) throw new HubError('HUB_INTAKE_DISABLED', `integration ${integration.name} is disabled`);

    let body: unknown;
    let read: ReadAlerts & { dedupKey?: string };
    try {
      body = parseJson(raw);
      if (integration.kind === 'pagerduty' && verified.get(req) === integration && !req.headers.authorization) {
        // Events v2 in the body: the routing key is the credential.
        const key = routingKeyOf(body);
        if (!key || !secretMatches(key, integration.secret_hash)) throw new HubError('HUB_INTAKE_UNAUTHORIZED', 'the routing_key is not this integration\'s');
      }
      const opts = { labels: integration.labels, hostLabels: integration.host_labels };
      read = integration.kind === 'sentry' ? readSentry(body, opts, header(req, 'sentry-hook-resource')) : reader(integration)(body, opts);
    } catch (err) {
      if (!(err instanceof IntakeFormatError)) throw err;
      await noteIntegrationError(db, integration.id, err.message, now).catch(() => undefined);
      throw new HubError('HUB_INTAKE_MALFORMED', `${integration.kind}: ${err.message}`);
    }
    // A failure here answers 503 (the error handler above): the transaction kept nothing.
    const outcome = await takeDelivery(deps, integration, raw, deliveryKey(integration.kind, raw, header(req, 'request-id'), read), read, now);
    if (outcome.incidentIds.length > 0) deps.events.emit('incident.changed', { incidentIds: outcome.incidentIds, opened: outcome.opened });
    return { outcome, dedupKey: read.dedupKey };
  };

  const Answer = Type.Object({
    status: Type.Literal('ok'),
    delivery_id: Type.String(),
    duplicate: Type.Boolean({ description: 'The same delivery was taken before: nothing changed' }),
    alerts: Type.Integer(),
    changed: Type.Integer({ description: 'Incidents opened, repeated, reopened, acknowledged or resolved' }),
    held: Type.Integer({ description: 'Error reports counted towards their threshold (3 of a kind within 5 minutes), no incident yet' }),
    incident_ids: Type.Array(Type.String(), { description: 'The incidents it changed' }),
    errors: Type.Array(Type.Object({ alert: Type.Integer(), error: Type.String() }), { description: 'Alerts skipped, and why' }),
  });
  const EventsAnswer = Type.Object({ status: Type.Literal('success'), message: Type.String(), dedup_key: Type.String() });

  app.route({
    method: ['POST', 'PUT'],
    url: '/v1/intake/:id',
    schema: {
      tags: ['intake'],
      summary: "An integration's alerts (Alertmanager, Grafana, generic JSON, Events v2): authenticated as the sender can",
      security: [],
      params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
      response: { 200: Answer, 202: EventsAnswer },
    },
    onRequest: byHeader,
    handler: async (req, reply) => {
      const integration = verified.get(req)!;
      const { outcome, dedupKey } = await handle(req, integration, rawBody(req.body));
      if (integration.kind === 'pagerduty') return reply.code(202).send({ status: 'success', message: 'Event processed', dedup_key: dedupKey ?? '' });
      return reply.code(200).send(answer(outcome));
    },
  });

  // The paths the error-reporting SDKs of the systems OpsPilot replaces post to, for an
  // error_report integration named by its secret.
  for (const [url, created] of [
    ['/api/webhooks/error-report', false],
    ['/api/autonomous/error', true],
  ] as const) {
    app.post(
      url,
      {
        schema: { tags: ['intake'], summary: `Error reports to an error_report integration, by its secret (the ${created ? 'monitoring agent' : 'SDK'}'s path)`, security: [], response: { 200: Answer, 201: Answer } },
        onRequest: async (req) => {
          verified.set(req, await bySecret(db, req.headers.authorization, 'error_report'));
        },
      },
      async (req, reply) => {
        const { outcome } = await handle(req, verified.get(req)!, rawBody(req.body));
        return reply.code(created && outcome.opened.length > 0 ? 201 : 200).send(answer(outcome));
      },
    );
  }

  app.post(
    '/v2/enqueue',
    {
      schema: {
        tags: ['intake'],
        summary: 'PagerDuty Events API v2: the event names its integration by routing_key',
        security: [],
        response: { 202: EventsAnswer },
      },
    },
    async (req, reply) => {
      const raw = rawBody(req.body);
      let key: string | undefined;
      try {
        key = routingKeyOf(parseJson(raw));
      } catch (err) {
        if (!(err instanceof IntakeFormatError)) throw err;
        throw new HubError('HUB_INTAKE_MALFORMED', `events v2: ${err.message}`);
      }
      // Found by the key's hash: the key itself is never compared, so no timing tells it.
      const integration = key ? await integrationBySecretHash(db, hashToken(key)) : undefined;
      if (!integration || integration.kind !== 'pagerduty') throw new HubError('HUB_INTAKE_UNAUTHORIZED', 'unknown routing_key');
      verified.set(req, integration);
      const { dedupKey } = await handle(req, integration, raw);
      return reply.code(202).send({ status: 'success', message: 'Event processed', dedup_key: dedupKey ?? '' });
    },
  );
}

/** The integration whose secret a bearer header presents (the seeds' paths name no integration). */
async function bySecret(db: Db, authorization: string | undefined, kind: Integration['kind']): Promise<Integration> {
  const secret = presentedSecret(authorization);
  // Found by the secret's hash: the secret itself is never compared, so no timing tells it.
  const integration = secret ? await integrationBySecretHash(db, hashToken(secret)) : undefined;
  if (!integration || integration.kind !== kind) throw new HubError('HUB_INTAKE_UNAUTHORIZED', `no ${kind} integration has this secret (Authorization: Bearer <secret>)`);
  return integration;
}

function answer(o: DeliveryOutcome) {
  return { status: 'ok' as const, delivery_id: o.deliveryId, duplicate: o.duplicate, alerts: o.alerts, changed: o.changed, held: o.held, incident_ids: o.incidentIds, errors: o.errors };
}

function rawBody(body: unknown): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.alloc(0);
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) throw new IntakeFormatError('the body is empty');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new IntakeFormatError('the body is not JSON');
  }
}

function reader(i: Integration): (body: unknown, opts: { labels: Record<string, string>; hostLabels: readonly string[] }) => ReadAlerts & { dedupKey?: string } {
  switch (i.kind) {
    case 'alertmanager':
    case 'grafana':
      return readAlertmanager;
    case 'pagerduty':
      return readPagerDuty;
    case 'generic':
      return readGeneric;
    case 'error_report':
      return readErrorReport;
    default:
      return () => {
        throw new IntakeFormatError(`${i.kind} integrations are not taken yet`);
      };
  }
}
