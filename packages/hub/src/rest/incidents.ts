import { SEVERITIES } from '../incidents/classify.ts';
import { Type } from '@sinclair/typebox';
import type { Clock } from '../clock.ts';
import type { App } from '../http.ts';
import type { HubEvents } from '../events.ts';
import type { LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import { HubError } from '../errors.ts';
import { getAgent } from '../storage/agents.ts';
import { getIncident, listIncidents, type IncidentFilter, type IncidentSummary } from '../storage/incidents.ts';
import type { Incident, IncidentStatus as IncidentStatusT } from '../storage/tables.ts';
import { requestAnalysis } from '../storage/analysis.ts';
import { acknowledgeByPerson, ignoreByPerson, personActed, resolveByPerson } from '../incidents/lifecycle.ts';
import { incidentTimeline, recordEvent } from '../storage/timeline.ts';
import { Id, IdParams, IncidentStatus, IncidentSummaryView, IncidentView, errorResponses, iso, type IncidentSummaryViewT, type IncidentViewT } from './schemas.ts';

const LABEL_FILTER = '^[^=]{1,128}=.{0,1024}$';

/** `?label=k=v` (once or repeated) as an object; the schema has checked each. */
function labelFilter(q: string | string[] | undefined): Record<string, string> | undefined {
  if (q === undefined) return undefined;
  const pairs = (Array.isArray(q) ? q : [q]).map((p) => {
    const at = p.indexOf('=');
    return [p.slice(0, at), p.slice(at + 1)] as const;
  });
  return Object.fromEntries(pairs);
}

function summary(i: IncidentSummary): IncidentSummaryViewT {
  return {
    id: i.id,
    agent_id: i.agent_id,
    integration_id: i.integration_id,
    type: i.type,
    source: i.source,
    message: i.message,
    service: i.service,
    labels: i.labels ?? {},
    exit_code: i.exit_code,
    unit_status: i.unit_status,
    status: i.status,
    count: i.count,
    first_seen_at: i.first_seen_at.toISOString(),
    last_seen_at: i.last_seen_at.toISOString(),
    acknowledged_at: iso(i.acknowledged_at),
    acknowledged_by: i.acknowledged_by,
    resolved_at: iso(i.resolved_at),
    resolved_by: i.resolved_by,
    severity: i.severity as IncidentSummaryViewT['severity'],
    category: i.category,
    rule: i.rule,
    reopen_count: i.reopen_count,
    reopened_at: iso(i.reopened_at),
    flapping: i.flapping,
    flapping_since: iso(i.flapping_since),
    escalated: i.escalated,
    escalated_at: iso(i.escalated_at),
  };
}

function full(i: Incident): IncidentViewT {
  return {
    ...summary(i),
    logs: i.logs,
    context: i.context,
    analysis: i.analysis as IncidentViewT['analysis'],
    analysis_status: i.analysis_status as IncidentViewT['analysis_status'],
  };
}

const ListQuery = Type.Object({
  status: Type.Optional(IncidentStatus),
  agent_id: Type.Optional(Id),
  integration: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "An integration's id or name" })),
  service: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  severity: Type.Optional(Type.Union(SEVERITIES.map((s) => Type.Literal(s)))),
  label: Type.Optional(
    Type.Union([Type.String({ pattern: LABEL_FILTER, maxLength: 1200 }), Type.Array(Type.String({ pattern: LABEL_FILTER, maxLength: 1200 }), { maxItems: 16 })], {
      description: '`name=value`; repeat for several (all must hold)',
    }),
  ),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Text in the message or source, any case' })),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  before: Type.Optional(Id),
});
const ListResponse = Type.Object({
  incidents: Type.Array(IncidentSummaryView),
  next_before: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page' }),
});

export function incidentRoutes(app: App, { db, lifecycle, events, clock }: { db: Db; lifecycle: LifecycleOptions; events: HubEvents; clock: Clock }): void {
  const tags = ['incidents'];
  /** After a person's change (committed by the lifecycle, with its message and hold release). */
  const changed = (id: string) => events.emit('incident.changed', { incidentIds: [id], opened: [] });

  const list = async (filter: IncidentFilter) => {
    const rows = await listIncidents(db, filter);
    return { incidents: rows.map(summary), next_before: rows.length === filter.limit ? rows[rows.length - 1]!.id : null };
  };

  app.get(
    '/v1/incidents',
    { schema: { tags, summary: 'List incidents, newest first', querystring: ListQuery, response: { 200: ListResponse, ...errorResponses } } },
    async (req) =>
      list({
        limit: req.query.limit,
        status: req.query.status,
        agentId: req.query.agent_id,
        before: req.query.before,
        integration: req.query.integration,
        service: req.query.service,
        ...(req.query.severity ? { severity: req.query.severity } : {}),
        labels: labelFilter(req.query.label),
        ...(req.query.q ? { text: req.query.q } : {}),
      }),
  );

  app.get(
    '/v1/agents/:id/incidents',
    {
      schema: {
        tags,
        summary: "List an agent's incidents, newest first",
        params: IdParams,
        querystring: Type.Omit(ListQuery, ['agent_id']),
        response: { 200: ListResponse, ...errorResponses },
      },
    },
    async (req) => {
      if (!(await getAgent(db, req.params.id))) throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${req.params.id}`);
      return list({ limit: req.query.limit, status: req.query.status, agentId: req.params.id, before: req.query.before });
    },
  );

  app.get(
    '/v1/incidents/:id',
    { schema: { tags, summary: 'One incident with its logs', params: IdParams, response: { 200: IncidentView, ...errorResponses } } },
    async (req) => {
      const incident = await getIncident(db, req.params.id, { fullLogs: true });
      if (!incident) throw new HubError('HUB_INCIDENT_NOT_FOUND', `no incident ${req.params.id}`);
      return full(incident);
    },
  );

  app.get(
    '/v1/incidents/:id/timeline',
    {
      schema: {
        tags,
        summary: 'What happened to the incident, in order, and who did it',
        params: IdParams,
        response: {
          200: Type.Object({
            events: Type.Array(
              Type.Object({
                at: Type.String({ format: 'date-time' }),
                actor: Type.String({ description: 'agent, rule, user, llm, heuristic or hub' }),
                by: Type.Union([Type.String(), Type.Null()]),
                kind: Type.String(),
                detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
              }),
            ),
          }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      if (!(await getIncident(db, req.params.id))) throw new HubError('HUB_INCIDENT_NOT_FOUND', `no incident ${req.params.id}`);
      const events = await incidentTimeline(db, req.params.id);
      return { events: events.map((e) => ({ ...e, at: e.at.toISOString() })) };
    },
  );

  app.post(
    '/v1/incidents/:id/analyze',
    {
      schema: {
        tags,
        summary: 'Analyse the incident again (the model when configured, else the heuristics)',
        params: IdParams,
        response: { 202: IncidentView, ...errorResponses },
      },
    },
    async (req, reply) => {
      const at = clock.now();
      if (!(await requestAnalysis(db, req.params.id, at))) throw new HubError('HUB_INCIDENT_NOT_FOUND', `no incident ${req.params.id}`);
      await recordEvent(db, { incidentId: req.params.id, at, actor: 'user', by: req.operator.actor, kind: 'analysis_requested' });
      events.emit('analysis.requested', { incidentId: req.params.id });
      return reply.code(202).send(full((await getIncident(db, req.params.id, { fullLogs: true }))!));
    },
  );

  app.post(
    '/v1/incidents/:id/acknowledge',
    { schema: { tags, summary: 'Acknowledge an incident', params: IdParams, response: { 200: IncidentView, ...errorResponses } } },
    async (req) => {
      const at = clock.now();
      const result = await db.transaction().execute((trx) => acknowledgeByPerson(trx, lifecycle, req.params.id, req.operator.actor, at));
      if (!result) throw new HubError('HUB_INCIDENT_NOT_FOUND', `no incident ${req.params.id}`);
      if (result === 'resolved') throw new HubError('HUB_INCIDENT_RESOLVED', `incident ${req.params.id} is already resolved`);
      if (result.changed) changed(req.params.id);
      return full(result.incident);
    },
  );

  app.post(
    '/v1/incidents/:id/resolve',
    { schema: { tags, summary: 'Resolve an incident', params: IdParams, response: { 200: IncidentView, ...errorResponses } } },
    async (req) => {
      const at = clock.now();
      const result = await db.transaction().execute((trx) => resolveByPerson(trx, lifecycle, req.params.id, req.operator.actor, at));
      if (!result) throw new HubError('HUB_INCIDENT_NOT_FOUND', `no incident ${req.params.id}`);
      if (!result.changed) return full(result.incident);
      changed(req.params.id);
      return full((await getIncident(db, req.params.id, { fullLogs: true })) ?? result.incident);
    },
  );

  app.post(
    '/v1/incidents/:id/ignore',
    {
      schema: {
        tags,
        summary: 'Ignore an incident: it is marked ignored and its fingerprint muted for a while',
        description: 'Alerts with the same fingerprint are counted but notify no one and start no automatic fix until the mute ends.',
        params: IdParams,
        body: Type.Object(
          { minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 43_200, description: 'How long to mute it (default a day, at most 30 days)' })) },
          { additionalProperties: false },
        ),
        response: { 200: IncidentView, ...errorResponses },
      },
      // No body at all (a bare POST) means the defaults.
      preValidation: async (req) => {
        if (req.body === undefined || req.body === null) req.body = {};
      },
    },
    async (req) => {
      const at = clock.now();
      const minutes = req.body.minutes ?? 1440;
      const done = await db.transaction().execute(async (trx) => {
        const incident = await getIncident(trx, req.params.id);
        if (!incident) throw new HubError('HUB_INCIDENT_NOT_FOUND', `no incident ${req.params.id}`);
        if (incident.status === 'resolved') throw new HubError('HUB_INCIDENT_RESOLVED', `incident ${req.params.id} is already resolved`);
        const forText = minutes % 1440 === 0 ? `${minutes / 1440} d` : minutes % 60 === 0 ? `${minutes / 60} h` : `${minutes} min`;
        await ignoreByPerson(trx, lifecycle, incident, req.operator.actor, at, new Date(at.getTime() + minutes * 60_000), forText);
        await personActed(trx, incident.id);
        return true;
      });
      if (done) changed(req.params.id);
      return full((await getIncident(db, req.params.id, { fullLogs: true }))!);
    },
  );
}
