import { Type } from '@sinclair/typebox';
import type { App } from '../http.ts';
import type { HubConfig } from '../config.ts';
import type { ExecBroker } from '../exec/broker.ts';
import type { Db } from '../storage/database.ts';
import { HubError } from '../errors.ts';
import { getExecRequest, listExecRequests } from '../storage/exec-requests.ts';
import { getIncident } from '../storage/incidents.ts';
import type { ExecRequest } from '../storage/tables.ts';
import { ExecParams, ExecView, Id, IdParams, errorResponses, iso, type ExecViewT } from './schemas.ts';

export function execView(e: ExecRequest): ExecViewT {
  return {
    id: e.id,
    agent_id: e.agent_id,
    command: e.command,
    params: e.params,
    status: e.status,
    ok: e.ok,
    exit_code: e.exit_code,
    stdout: e.stdout,
    stderr: e.stderr,
    duration_ms: e.duration_ms,
    truncated: e.truncated,
    error_code: e.error_code,
    timeout_ms: e.timeout_ms,
    requested_by: e.requested_by,
    origin: e.origin,
    created_at: e.created_at.toISOString(),
    sent_at: iso(e.sent_at),
    completed_at: iso(e.completed_at),
  };
}

export function execRoutes(app: App, { config, db, broker }: { config: Readonly<HubConfig>; db: Db; broker: ExecBroker }): void {
  const tags = ['exec'];

  app.post(
    '/v1/admin/exec',
    {
      schema: {
        tags,
        summary: "Run an action from the agent's catalogue and wait for its result",
        description:
          'The command must be one the agent listed in its hello (an agent that sent none may be sent any). ' +
          'Parameters are typed values, never a shell string; the agent validates them. ' +
          `Waits up to timeout_ms (default ${config.execDefaultTimeoutMs}, at most ${config.execMaxTimeoutMs}).`,
        body: Type.Object(
          {
            agent_id: Type.String({ minLength: 1, maxLength: 64 }),
            command: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
            params: Type.Optional(ExecParams),
            timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: config.execMaxTimeoutMs })),
            incident_id: Type.Optional(Type.String({ ...Id, description: 'The incident this acts on: the exec goes on its timeline and its list of execs' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: ExecView, ...errorResponses },
      },
    },
    async (req) => {
      const incidentId = req.body.incident_id;
      if (incidentId !== undefined && !(await getIncident(db, incidentId))) throw new HubError('HUB_INCIDENT_NOT_FOUND', `no incident ${incidentId}`, 'incident_id');
      const result = await broker.run({
        agentId: req.body.agent_id,
        command: req.body.command,
        params: req.body.params ?? {},
        timeoutMs: req.body.timeout_ms ?? config.execDefaultTimeoutMs,
        requestedBy: req.operator.actor,
        origin: 'rest',
        ...(incidentId !== undefined ? { incidentId } : {}),
      });
      req.log.info({ execId: result.id, agentId: result.agent_id, command: result.command, status: result.status, by: req.operator.actor }, 'exec finished');
      return execView(result);
    },
  );

  app.get(
    '/v1/exec',
    {
      schema: {
        tags,
        summary: "Exec requests, newest first: an agent's (agent_id), an incident's (incident_id), or all",
        querystring: Type.Object({
          agent_id: Type.Optional(Id),
          incident_id: Type.Optional(Id),
          limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
          before: Type.Optional(Id),
        }),
        response: {
          200: Type.Object({ execs: Type.Array(ExecView), next_before: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `before` for the next page' }) }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const rows = await listExecRequests(db, { agentId: req.query.agent_id, incidentId: req.query.incident_id, limit: req.query.limit, before: req.query.before });
      return { execs: rows.map(execView), next_before: rows.length === req.query.limit ? rows[rows.length - 1]!.id : null };
    },
  );

  app.get(
    '/v1/exec/:id',
    { schema: { tags, summary: 'An exec request and its result', params: IdParams, response: { 200: ExecView, ...errorResponses } } },
    async (req) => {
      const row = await getExecRequest(db, req.params.id);
      if (!row) throw new HubError('HUB_EXEC_NOT_FOUND', `no exec request ${req.params.id}`);
      return execView(row);
    },
  );
}
