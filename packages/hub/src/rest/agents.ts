import { Type, type Static } from '@sinclair/typebox';
import type { Clock } from '../clock.ts';
import { CLOSE_CODES, newId } from '@opspilot/protocol';
import { AGENT_TOKEN_PREFIX, generateToken, hashToken } from '../auth/tokens.ts';
import type { App } from '../http.ts';
import type { AgentRegistry } from '../ingest/registry.ts';
import type { Db } from '../storage/database.ts';
import { HubError } from '../errors.ts';
import { createAgent, deleteAgent, getAgent, listAgents, setAgentTokenHash, type AgentRecord } from '../storage/agents.ts';
import { querySamples } from '../storage/metrics.ts';
import { AgentView, IdParams, Labels, errorResponses, iso, type AgentViewT } from './schemas.ts';

const TokenResponse = Type.Object({
  id: Type.String(),
  token: Type.String({ description: 'The agent token. Shown only in this response; stored as a SHA-256 hash.' }),
  hostname: Type.Union([Type.String(), Type.Null()]),
  labels: Type.Record(Type.String(), Type.String()),
});

export const MetricSampleView = Type.Object({
  ts: Type.Number({ description: 'Unix seconds' }),
  cpu_pct: Type.Number(),
  mem_used: Type.Number(),
  mem_total: Type.Number(),
  swap_used: Type.Union([Type.Number(), Type.Null()]),
  load1: Type.Number(),
  load5: Type.Number(),
  load15: Type.Number(),
  disks: Type.Array(Type.Object({ mount: Type.String(), used: Type.Number(), size: Type.Number() })),
  net: Type.Array(Type.Object({ iface: Type.String(), rx_bps: Type.Number(), tx_bps: Type.Number() })),
  period_s: Type.Integer({ description: '0: a sample as the agent sent it; 300: the average of a 5-minute bucket starting at ts (older samples are downsampled)' }),
});

const TimeParam = Type.String({
  pattern: '^(\\d{1,12}|\\d{4}-\\d{2}-\\d{2}T[0-9:.]+(Z|[+-]\\d{2}:?\\d{2}))$',
  description: 'Unix seconds or an ISO 8601 date-time',
});

export function parseTime(value: string | undefined, fallback: Date, name: string): Date {
  if (value === undefined) return fallback;
  const date = /^\d+$/.test(value) ? new Date(Number(value) * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) throw new HubError('HUB_BAD_REQUEST', `${name} is not a valid time`);
  return date;
}

export function agentRoutes(app: App, { db, registry, clock }: { db: Db; registry: AgentRegistry; clock: Clock }): void {
  const tags = ['agents'];

  const view = (a: AgentRecord): AgentViewT => {
    const conn = registry.get(a.id);
    const live = conn?.lastSeenMs ? new Date(conn.lastSeenMs) : null;
    const stored = a.last_seen_at;
    const lastSeen = live && (!stored || live > stored) ? live : stored;
    return {
      id: a.id,
      hostname: a.hostname ?? a.facts?.hostname ?? null,
      labels: a.labels,
      status: conn?.isOpen ? 'online' : 'offline',
      created_at: a.created_at.toISOString(),
      last_seen_at: iso(lastSeen),
      connected_at: iso(conn?.connectedAt ?? a.connected_at),
      token_rotated_at: iso(a.token_rotated_at),
      facts: a.facts,
      actions: conn?.actions ?? a.actions,
      stats: a.stats,
      autonomy: a.autonomy,
    };
  };

  app.post(
    '/v1/agents',
    { compress: false,
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Enrol an agent and get its token (shown once)',
        description: 'Needs the admin scope.',
        body: Type.Object(
          { hostname: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })), labels: Type.Optional(Labels) },
          { additionalProperties: false },
        ),
        response: { 201: TokenResponse, ...errorResponses },
      },
      // `curl -X POST /v1/agents` with no body at all enrols an agent with no hostname or labels.
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req, reply) => {
      const token = generateToken(AGENT_TOKEN_PREFIX);
      const agent = await createAgent(db, {
        id: newId(),
        hostname: req.body?.hostname ?? null,
        labels: req.body?.labels ?? {},
        tokenHash: hashToken(token),
      });
      req.log.info({ agentId: agent.id, by: req.operator.actor }, 'agent enrolled');
      return reply.code(201).send({ id: agent.id, token, hostname: agent.hostname, labels: agent.labels });
    },
  );

  app.get(
    '/v1/agents',
    {
      schema: {
        tags,
        summary: 'List agents',
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }) }),
        response: { 200: Type.Object({ agents: Type.Array(AgentView) }), ...errorResponses },
      },
    },
    async (req) => ({ agents: (await listAgents(db, req.query.limit)).map(view) }),
  );

  app.get(
    '/v1/agents/:id',
    { schema: { tags, summary: 'One agent, with its facts, catalogue and latest heartbeat', params: IdParams, response: { 200: AgentView, ...errorResponses } } },
    async (req) => {
      const agent = await getAgent(db, req.params.id);
      if (!agent) throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${req.params.id}`);
      return view(agent);
    },
  );

  app.delete(
    '/v1/agents/:id',
    { config: { scope: 'admin' }, schema: { tags, summary: 'Delete an agent, its incidents and metrics; its token stops working', params: IdParams, response: { 204: Type.Null(), ...errorResponses } } },
    async (req, reply) => {
      if (!(await deleteAgent(db, req.params.id))) throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${req.params.id}`);
      registry.get(req.params.id)?.close(CLOSE_CODES.unauthenticated, 'agent deleted');
      req.log.info({ agentId: req.params.id, by: req.operator.actor }, 'agent deleted');
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/agents/:id/token',
    { compress: false, config: { scope: 'admin' }, schema: { tags, summary: 'Rotate an agent token: the old one stops working at once', params: IdParams, response: { 200: TokenResponse, ...errorResponses } } },
    async (req) => {
      const token = generateToken(AGENT_TOKEN_PREFIX);
      if (!(await setAgentTokenHash(db, req.params.id, hashToken(token), clock.now()))) {
        throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${req.params.id}`);
      }
      registry.get(req.params.id)?.close(CLOSE_CODES.unauthenticated, 'token rotated');
      req.log.info({ agentId: req.params.id, by: req.operator.actor }, 'agent token rotated');
      const agent = (await getAgent(db, req.params.id))!;
      return { id: agent.id, token, hostname: agent.hostname, labels: agent.labels };
    },
  );

  app.get(
    '/v1/agents/:id/metrics',
    {
      schema: {
        tags,
        summary: 'Metric samples of an agent in a time range (default: the last hour)',
        params: IdParams,
        querystring: Type.Object({
          since: Type.Optional(TimeParam),
          until: Type.Optional(TimeParam),
          limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
        }),
        response: { 200: Type.Object({ samples: Type.Array(MetricSampleView) }), ...errorResponses },
      },
    },
    async (req) => {
      if (!(await getAgent(db, req.params.id))) throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${req.params.id}`);
      const now = clock.now();
      const until = parseTime(req.query.until, now, 'until');
      const since = parseTime(req.query.since, new Date(until.getTime() - 3600_000), 'since');
      const rows = await querySamples(db, req.params.id, { since, until, limit: req.query.limit });
      return {
        samples: rows.map((r) => ({
          ts: r.ts.getTime() / 1000,
          cpu_pct: r.cpu_pct,
          mem_used: r.mem_used,
          mem_total: r.mem_total,
          swap_used: r.swap_used,
          load1: r.load1,
          load5: r.load5,
          load15: r.load15,
          disks: r.disks,
          net: r.net,
          period_s: r.period_s,
        })),
      };
    },
  );
}

export type MetricSampleViewT = Static<typeof MetricSampleView>;
