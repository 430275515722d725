import { Type } from '@sinclair/typebox';
import type { App } from '../http.ts';
import type { HubConfig } from '../config.ts';
import type { ExecBroker } from '../exec/broker.ts';
import type { Db } from '../storage/database.ts';
import { HubError } from '../errors.ts';
import { getExecRequest } from '../storage/exec-requests.ts';
import type { ExecRequest } from '../storage/tables.ts';
import { ExecParams, ExecView, IdParams, errorResponses, iso, type ExecViewT } from './schemas.ts';

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
          },
          { additionalProperties: false },
        ),
        response: { 200: ExecView, ...errorResponses },
      },
    },
    async (req) => {
      const result = await broker.run({
        agentId: req.body.agent_id,
        command: req.body.command,
        params: req.body.params ?? {},
        timeoutMs: req.body.timeout_ms ?? config.execDefaultTimeoutMs,
        requestedBy: req.operator.actor,
        origin: 'rest',
      });
      req.log.info({ execId: result.id, agentId: result.agent_id, command: result.command, status: result.status, by: req.operator.actor }, 'exec finished');
      return execView(result);
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
