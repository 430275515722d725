import Fastify, { type FastifyError } from 'fastify';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import rateLimit from '@fastify/rate-limit';
import compress from '@fastify/compress';
import zlib from 'node:zlib';
import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import path from 'node:path';
import { AdminAuth, allows, type Operator, type Scope } from './auth/admin.ts';
import { bearerToken } from './auth/tokens.ts';
import { SESSION_COOKIE, Sessions, csrfMatches } from './auth/sessions.ts';
import { sessionRoutes } from './rest/sessions.ts';
import { dashboardPlugin } from './dashboard.ts';
import { resolveConfig, type HubConfig } from './config.ts';
import type { App, Hub } from './context.ts';
import { errorBody, HubError, StartupError, validationField } from './errors.ts';
import { ExecBroker } from './exec/broker.ts';
import { Cluster } from './cluster.ts';
import { HUB_EVENT_NAMES, HubEvents } from './events.ts';
import { systemClock, type Clock } from './clock.ts';
import { loadRules } from './incidents/classify.ts';
import { MISSED_HEARTBEATS, sweepOfflineAgents } from './incidents/offline.ts';
import { Analyzer } from './incidents/analyzer.ts';
import { createLlmClient } from './incidents/llm.ts';
import { createRedactor, loadRedactions } from './incidents/redact.ts';
import { loggableError, unstorableText } from './rest/text-guard.ts';
import { AgentRegistry } from './ingest/registry.ts';
import { setupSlack, slackMode, slackPlugin } from './slack/index.ts';
import { intakePlugin } from './intake/plugin.ts';
import { integrationRoutes } from './rest/integrations.ts';
import { heartbeatRoutes } from './rest/heartbeats.ts';
import { HeartbeatMonitor } from './heartbeats/monitor.ts';
import { pingPlugin } from './heartbeats/ping-route.ts';
import { MonitorRunner } from './monitors/runner.ts';
import { MonitorAssignments } from './monitors/assign.ts';
import { LiveJournal } from './live/journal.ts';
import { eventRoutes } from './live/events-route.ts';
import { monitorRoutes } from './rest/monitors.ts';
import { RemediationEngine } from './remediation/engine.ts';
import { enqueueApproval } from './storage/notifications.ts';
import { streamPlugin, type CoalescedKind, type CoalescerView } from './ingest/stream-route.ts';
import { IngestWriter } from './ingest/writer.ts';
import { agentRoutes } from './rest/agents.ts';
import { execRoutes } from './rest/exec.ts';
import { hubRoutes, systemRoutes } from './rest/system.ts';
import { remediationRoutes } from './rest/remediation.ts';
import { incidentRoutes } from './rest/incidents.ts';
import { ErrorResponse } from './rest/schemas.ts';
import { metricsPlugin } from './observability/metrics.ts';
import { healthPlugin } from './observability/health.ts';
import { openDatabase, type HubDatabase } from './storage/database.ts';
import { migrate } from './storage/migrate.ts';
import { Retention } from './retention.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The token scope a /v1 route needs (default: read for GET, exec otherwise). */
    scope?: Scope;
    /** Needs no token (signing in). */
    public?: boolean;
  }
  interface FastifyRequest {
    operator: Operator;
    /** The session cookie's id, when the request was made with one (the dashboard). */
    sessionId: string | null;
  }
  interface FastifyInstance {
    hub: Hub;
  }
}

export interface BuildAppOptions {
  /** Config overrides; validated and merged over the defaults. */
  config?: Partial<HubConfig>;
  /** An open database to use (tests share one per file); otherwise one is opened from config and closed with the app. */
  database?: HubDatabase;
  /** Where log lines go (default standard output); false for none. Secrets are always redacted. */
  logStream?: NodeJS.WritableStream | false;
  /** Where a generated admin token is shown, once. Default: standard output. */
  showAdminToken?: (token: string) => void;
  /** What time it is (default the system's): tests move time with their own. */
  clock?: Clock;
}

const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'token',
  '*.token',
  'adminToken',
  'databaseUrl',
  'llmApiKey',
  '*.llmApiKey',
  'slackBotToken',
  'slackSigningSecret',
  'slackWebhookUrl',
  '*.slackBotToken',
  '*.slackSigningSecret',
  '*.slackWebhookUrl',
];

/** Build the hub without listening: the caller listens (main.ts) or injects (tests). */
export async function buildApp(options: BuildAppOptions = {}): Promise<App> {
  const config = resolveConfig(options.config);
  const rules = loadRules(config.rulesFile);
  const redactor = createRedactor(loadRedactions(config.redactionsFile));
  const ownsDatabase = options.database === undefined;
  const setting = config.databaseUrl ? 'DATABASE_URL' : 'OPSPILOT_DATA_DIR';
  const database =
    options.database ??
    (await openDatabase({ databaseUrl: config.databaseUrl ?? undefined, pgliteDir: path.join(config.dataDir, 'pglite') }).catch((err: Error) => {
      throw new StartupError(setting, `cannot open the database: ${err.message}`);
    }));

  try {
    const schema = await migrate(database).catch((err: Error) => {
      throw ownsDatabase ? new StartupError(setting, `cannot prepare the database: ${err.message}`) : err;
    });
    const adminAuth = await AdminAuth.load(database.db, config.adminToken, options.showAdminToken ?? printAdminToken);
    const sessions = new Sessions(database.db, adminAuth, options.clock ?? systemClock);
    const app = Fastify({
      logger:
        options.logStream === false
          ? false
          : {
              level: config.logLevel,
              redact: { paths: REDACT, censor: '[redacted]' },
              serializers: { err: loggableError },
              ...(options.logStream ? { stream: options.logStream } : {}),
            },
      bodyLimit: 1024 * 1024, // 1 MiB
      forceCloseConnections: true,
      // A connection must send a whole request (or its WebSocket upgrade) in time: one that opens
      // and says nothing is closed after requestHeadersTimeoutMs (checked every second), so idle
      // sockets cannot hold the connection cap. After an upgrade these no longer apply.
      requestTimeout: 30_000,
      http: { headersTimeout: config.requestHeadersTimeoutMs, connectionsCheckingInterval: 1000 },
    }).withTypeProvider<TypeBoxTypeProvider>();
    // Past this many TCP connections, new ones are closed at once: memory and file descriptors
    // stay bounded whatever opens them.
    app.server.maxConnections = config.maxConnections;
    if (schema.applied.length > 0 && schema.from !== null) app.log.info({ from: schema.from, to: schema.to, applied: schema.applied }, 'database schema upgraded');
    let lastDropLog = 0;
    app.server.on('drop', () => {
      if (Date.now() - lastDropLog < 10_000) return;
      lastDropLog = Date.now();
      app.log.warn({ maxConnections: config.maxConnections }, 'connection limit reached: new connections are closed');
    });

    // The hub's parts, each built once, in dependency order: nothing is filled in later.
    const { db } = database;
    const clock = options.clock ?? systemClock;
    const events = new HubEvents(app.log);
    const mode = slackMode(config);
    const lifecycle = { rules, notify: mode !== null };
    const registry = new AgentRegistry();
    // This hub among the others on the database (PostgreSQL); on the embedded one, alone.
    const cluster = new Cluster(db, database.dedicatedClient, { leaseMs: HUB_LEASE_MS, retryMs: 1000, ...(config.hubName ? { name: config.hubName } : {}), agents: () => registry.size }, app.log);
    const broker = new ExecBroker(db, registry, clock, cluster);
    const analyzer = new Analyzer(
      db,
      {
        llm: config.llmApiKey
          ? {
              client: await createLlmClient({ baseURL: config.llmBaseUrl, apiKey: config.llmApiKey, model: config.llmModel, timeoutMs: config.llmTimeoutMs, maxRetries: config.llmMaxRetries }),
              model: config.llmModel,
            }
          : null,
        concurrency: config.analysisConcurrency,
        redactor,
        reuseMs: config.analysisReuseS * 1000,
        pollMs: 2000,
        notify: lifecycle.notify,
        events,
        clock,
        liveCatalogue: (agentId) => registry.get(agentId)?.actions,
      },
      app.log,
    );
    const writer = new IngestWriter(db, { flushIntervalMs: config.flushIntervalMs, bulkIntervalMs: config.bulkIntervalMs, maxBatchItems: config.maxBatchItems, lifecycle }, app.log, {
      execSentAt: (id) => broker.sentAt(id),
      execDone: () => cluster.channel,
      onEventsStored: (outcome) => {
        if (outcome.completedExecs.length > 0) events.emit('exec.finished', { execs: outcome.completedExecs, announced: outcome.announced === true });
        if (outcome.incidents.length > 0) events.emit('incident.changed', { incidentIds: outcome.incidents, opened: outcome.opened });
        if (outcome.monitors.length + outcome.certificates.length > 0) events.emit('monitor.results', { monitorIds: outcome.monitors, certificates: outcome.certificates });
      },
    });
    // Old envelope ids and metric samples: forgotten, expired or downsampled, in bounded steps.
    const retention = new Retention(db, config, app.log, clock);
    const remediation = new RemediationEngine(
      db,
      broker,
      registry,
      {
        lifecycle,
        execTimeoutMs: Math.min(config.execMaxTimeoutMs, Math.max(config.execDefaultTimeoutMs, 30_000)),
        sweepMs: 2000,
        offlineAfterMs: MISSED_HEARTBEATS * config.heartbeatIntervalS * 1000,
        events,
        clock,
        // Approve mode asks in Slack, which only the app mode can (its buttons answer).
        askApproval: async (trx, attempt) => {
          if (mode !== 'app') return false;
          await enqueueApproval(trx, attempt.incident_id, attempt.id, clock.now());
          return true;
        },
      },
      app.log,
    );
    // Heartbeat checks: overdue ones turn late and down by the times stored with them.
    const heartbeats = new HeartbeatMonitor(db, { clock, lifecycle, events, redactor, pollMs: 10_000 }, app.log);
    // Uptime monitors the hub runs: each at its next_run_at (looked for every second); agents'
    // locations turn unknown once their agent counts as offline.
    const monitors = new MonitorRunner(
      db,
      { clock, lifecycle, events, pollMs: 1000, allowInternal: config.monitorAllowInternal, offlineAfterMs: MISSED_HEARTBEATS * config.heartbeatIntervalS * 1000 },
      app.log,
    );
    const assignments = new MonitorAssignments(db, registry, app.log);
    // The audit trail read as it grows, for the live event streams.
    const journal = new LiveJournal(db, app.log);
    // Query strings and path parameters arrive as text and are coerced to their schema's types;
    // bodies are JSON and are taken as sent (Fastify's default would turn ["a"] into "a").
    const ajvOptions = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false } as const;
    // date-time, uri and the other formats the schemas use are checked, not ignored.
    const bodyAjv = addFormats.default(new Ajv({ ...ajvOptions, coerceTypes: false }));
    const textAjv = addFormats.default(new Ajv({ ...ajvOptions, coerceTypes: true }));
    app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));
    app.addSchema(ErrorResponse);
    await app.register(swagger, {
      openapi: {
        info: { title: 'OpsPilot hub', version: '0.1.0', description: 'Agents, incidents and exec. Every /v1 route needs `Authorization: Bearer <token>`: the admin token, or a scoped API token (read ⊂ exec ⊂ admin).' },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
    // Text no store can keep (NUL, lone surrogates) is a bad request, wherever it is.
    app.addHook('preValidation', async (req) => {
      const bad = unstorableText(req.params, 'params') ?? unstorableText(req.query, 'query') ?? unstorableText(req.body, 'body');
      if (bad) throw new HubError('HUB_BAD_REQUEST', bad);
    });
    app.setErrorHandler((err: FastifyError, req, reply) => {
      if (err instanceof HubError) return reply.code(err.statusCode).send(err.body());
      if (err.validation) return reply.code(400).send(errorBody('HUB_BAD_REQUEST', err.message, validationField(err.validation)));
      if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(errorBody('HUB_PAYLOAD_TOO_LARGE', err.message));
      if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
        return reply.code(err.statusCode).send(errorBody('HUB_BAD_REQUEST', err.message));
      }
      req.log.error({ err }, 'request failed');
      return reply.code(500).send(errorBody('HUB_INTERNAL', `internal error (request ${req.id})`));
    });
    app.setNotFoundHandler((req, reply) =>
      reply.code(404).send(errorBody('HUB_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)),
    );

    const slack = await setupSlack({ config, db, clock, broker, redactor, log: app.log, remediation });

    // Every 30 s: agents silent for 3 heartbeat intervals get an "agent offline" incident.
    const sweepOffline = async (now = clock.now()) => {
      const flagged = await sweepOfflineAgents(db, lifecycle, config.heartbeatIntervalS, now);
      if (flagged.length > 0) {
        app.log.warn({ agents: flagged }, 'agents offline');
        events.emit('incident.changed', { incidentIds: flagged, opened: [] });
      }
      return flagged;
    };

    // Who acts on what (events.ts has the table of who publishes each).
    events.on('exec.finished', (e) => broker.completed(e.execs));
    events.on('incident.changed', (e) => {
      analyzer.kick();
      slack?.kick();
      if (e.opened.length > 0) remediation.kick();
    });
    events.on('analysis.requested', () => analyzer.kick());
    events.on('analysis.stored', () => slack?.kick());
    events.on('notification.queued', () => slack?.kick());
    events.on('monitor.results', (e) => {
      if (cluster.isLeader) monitors.decide(e.monitorIds, e.certificates);
    });
    events.on('monitors.changed', () => assignments.refresh());
    // Whatever was announced was committed with its audit row: the live streams read it now.
    for (const name of HUB_EVENT_NAMES) events.on(name, () => journal.kick());
    // Other hubs: what is published here is told to them, and theirs arrive here; execs for
    // agents held here are sent on, and answers to those passed elsewhere come back.
    cluster.relay(events);
    cluster.on('exec', (msg, from) => broker.deliverForwarded(from, msg));
    cluster.on('exec_sent', (msg) => broker.forwardAnswered(msg));
    cluster.on('exec_refused', (msg) => broker.forwardAnswered(msg));
    cluster.on('exec_done', (msg) => void broker.completedElsewhere(msg.ids).catch((err) => app.log.warn({ err }, 'could not read results stored by another hub')));

    const hub: Hub = { config, clock, database, cluster, events, registry, writer, broker, adminAuth, sessions, analyzer, lifecycle, retention, slack, remediation, heartbeats, monitors, assignments, journal, sweepOffline };
    app.decorate('hub', hub);

    // Background work (analysis, Slack, remediation, heartbeat checks, monitors, the offline
    // sweep, retention) runs on one hub: the leader (cluster.ts). It starts once the routes are
    // ready, and stops if the lead is lost. Fastify runs onClose hooks in reverse order of
    // registration: this one, added before the HTTP surfaces, runs after theirs (a Slack click
    // still working can write), and closes the database last.
    let stopSweeper: (() => Promise<void>) | null = null;
    const background = {
      gained: async () => {
        retention.start();
        await analyzer.start();
        await remediation.start();
        await heartbeats.start();
        await monitors.start();
        await slack?.notifier.start();
        stopSweeper = clock.every('*/30 * * * * *', 'opspilot-offline-sweep', () => sweepOffline().then(() => undefined, (err) => app.log.warn({ err }, 'offline sweep failed')));
      },
      lost: async () => {
        await stopSweeper?.();
        stopSweeper = null;
        await retention.stop();
        await analyzer.stop();
        await remediation.stop();
        await heartbeats.stop();
        await monitors.stop();
        await slack?.notifier.stop();
      },
    };
    app.addHook('onReady', async () => {
      await cluster.start(background).catch((err: Error) => {
        throw new StartupError(setting, `cannot join the other hubs on the database: ${err.message}`);
      });
    });

    app.addHook('onClose', async () => {
      await writer.close();
      await cluster.stop(); // the background work first, if this hub led; then its agents are free
      journal.stop();
      if (ownsDatabase) await database.close();
    });
    // The HTTP surfaces, after the error handler they share; each owns its start and shutdown.
    // Execs waiting on agents are answered "shutting down" first, so no surface waits on one.
    app.addHook('preClose', async () => broker.shutdown());
    await app.register(healthPlugin, { db, registry, cluster });
    await app.register(dashboardPlugin, { dir: config.dashboardDir });
    if (slack) await app.register(slackPlugin, { slack });
    const coalesced = new Map<CoalescedKind, CoalescerView>();
    await app.register(streamPlugin, { config, clock, db, registry, writer, lifecycle, events, cluster, coalesced, onHello: (conn) => assignments.hello(conn) });
    await app.register(metricsPlugin, { writer, registry, broker, coalesced, authenticate: async (header) => (await adminAuth.verify(bearerToken(header))) !== undefined });

    await app.register(cookie);
    await app.register(async (v1: App) => {
      v1.decorateRequest('operator', null as unknown as Operator);
      v1.decorateRequest('sessionId', null);
      v1.addHook('onRequest', async (req) => {
        // A bearer token, or the dashboard's session cookie (then every change carries its CSRF token).
        let operator: Operator | undefined;
        const sid = req.cookies[SESSION_COOKIE];
        if (req.headers.authorization !== undefined) {
          operator = await adminAuth.verify(bearerToken(req.headers.authorization));
        } else if (sid !== undefined) {
          operator = await sessions.verify(sid);
          if (operator) {
            req.sessionId = sid;
            if (req.method !== 'GET' && req.method !== 'HEAD' && !req.routeOptions.config.public && !csrfMatches(sid, req.headers['x-csrf-token'])) {
              throw new HubError('HUB_CSRF', 'a change made with a session needs its X-CSRF-Token header');
            }
          }
        }
        if (req.routeOptions.config.public) return;
        if (!operator) throw new HubError('HUB_UNAUTHORIZED', 'missing or invalid token (Authorization: Bearer <token>, or a session cookie)');
        // Reading needs `read`; anything else `exec`, unless the route asks for `admin`.
        const needed: Scope = req.routeOptions.config.scope ?? (req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'exec');
        if (!allows(operator.scope, needed)) throw new HubError('HUB_FORBIDDEN', `this needs the ${needed} scope; ${operator.actor} has ${operator.scope}`);
        req.operator = operator;
      });
      // Per token (after authentication: one busy script cannot starve the others).
      await v1.register(rateLimit, {
        max: config.apiRateLimit,
        timeWindow: 60_000,
        hook: 'preParsing',
        keyGenerator: (req) => req.operator?.actor ?? req.ip,
        errorResponseBuilder: (_req, ctx) => new HubError('HUB_RATE_LIMITED', `more than ${ctx.max} requests a minute; retry in ${ctx.after}`),
      });
      // Answers over 1 KiB compressed (brotli at quality 4: fast enough for every answer, a list of a
      // thousand incidents goes from ~600 KB to ~40 KB). Requests are never decompressed (no
      // expanding bodies past the size limit), the event stream is not buffered (text/event-stream
      // is excluded and the route writes to the socket itself), and answers that carry a secret
      // (a new token, a session's CSRF token) are far under the threshold.
      await v1.register(compress, {
        global: true,
        globalDecompression: false,
        encodings: ['br', 'gzip'],
        threshold: 1024,
        brotliOptions: { params: { [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT, [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } },
      });
      sessionRoutes(v1, { sessions });
      agentRoutes(v1, { db, registry, clock });
      incidentRoutes(v1, { db, lifecycle, events, clock });
      execRoutes(v1, { config, db, broker });
      systemRoutes(v1, { db, adminAuth, clock });
      hubRoutes(v1, { db, self: () => ({ id: cluster.hubId, leader: cluster.isLeader }) });
      remediationRoutes(v1, { db, engine: remediation, events, clock });
      integrationRoutes(v1, { db, clock });
      heartbeatRoutes(v1, { db, clock, lifecycle, events, kick: heartbeats.kick });
      monitorRoutes(v1, { db, clock, lifecycle, events, kick: monitors.kick, decide: (ids) => monitors.decide(ids) });
      eventRoutes(v1, {
        db,
        journal,
        opts: { perToken: config.eventStreamsPerToken, maxReplay: config.eventStreamMaxReplay, maxBufferedBytes: config.eventStreamMaxBufferedBytes, keepAliveMs: config.eventStreamKeepAliveMs },
      });
    });
    // Alerts from other tools: authenticated per integration, not by API token.
    await app.register(intakePlugin, { config, db, lifecycle, redactor, events, clock });
    await app.register(pingPlugin, { monitor: heartbeats, maxBytes: config.intakeMaxBytes });

    return app as unknown as App;
  } catch (err) {
    if (ownsDatabase) await database.close().catch(() => {});
    throw err;
  }
}

/** A hub's row stands this long without renewal (renewed every 5 s). */
const HUB_LEASE_MS = 15_000;

function printAdminToken(token: string): void {
  process.stdout.write(
    [
      '',
      '  OpsPilot admin token (shown once; only its hash is stored):',
      '',
      `    ${token}`,
      '',
      '  Use it as: Authorization: Bearer <token>. Set OPSPILOT_ADMIN_TOKEN to choose your own.',
      '',
      '',
    ].join('\n'),
  );
}
