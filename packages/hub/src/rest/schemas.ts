import { Type, type Static } from '@sinclair/typebox';
import { INCIDENT_STATUSES } from '../storage/tables.ts';

/** Shared TypeBox schemas: they validate requests, shape responses and generate /docs. */

export const Id = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'ULID' });
export const IdParams = Type.Object({ id: Id });
export const Timestamp = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      retry: Type.Boolean({ description: 'Whether the same request may succeed later (after Retry-After, once the agent is back…)' }),
      field: Type.Optional(Type.String({ description: 'The request field it concerns, as a dotted path (`name`, `match.labels.env`), when it is one' })),
    }),
  },
  { $id: 'ErrorResponse', description: 'Every REST error: a stable code (docs/ERRORS.md), a message, and whether a retry helps' },
);
export const errorResponses = { '4xx': Type.Ref('ErrorResponse'), '5xx': Type.Ref('ErrorResponse') } as const;

// TypeBox leaves other keys open on a patterned Record: close them, or any key would pass.
export const Labels = Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }), Type.String({ maxLength: 256 }), {
  maxProperties: 64,
  additionalProperties: false,
});

export const AgentView = Type.Object({
  id: Type.String(),
  hostname: Type.Union([Type.String(), Type.Null()]),
  labels: Type.Record(Type.String(), Type.String()),
  status: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
  created_at: Type.String({ format: 'date-time' }),
  last_seen_at: Timestamp,
  connected_at: Timestamp,
  token_rotated_at: Timestamp,
  facts: Type.Union([
    Type.Object({
      agent_version: Type.String(),
      protocol: Type.Optional(Type.Integer({ description: 'the message set the agent speaks (hello.protocol); the hub uses the lower of this and its own' })),
      hostname: Type.String(),
      os: Type.String(),
      arch: Type.String(),
      kernel: Type.Optional(Type.String()),
      boot_time: Type.Optional(Type.Number()),
    }),
    Type.Null(),
  ]),
  actions: Type.Union([Type.Array(Type.String()), Type.Null()]),
  stats: Type.Union([Type.Record(Type.String(), Type.Number()), Type.Null()]),
  autonomy: Type.Boolean({ description: 'false: no automatic action runs on this agent' }),
});
export type AgentViewT = Static<typeof AgentView>;

export const IncidentStatus = Type.Union(INCIDENT_STATUSES.map((s) => Type.Literal(s)), {
  description: 'new → analyzing → open → acknowledged → resolved; an alert within 30 minutes of resolving reopens it as new',
});

const incidentFields = {
  id: Type.String(),
  agent_id: Type.Union([Type.String(), Type.Null()], { description: "The agent whose alert it is, or the agent of the host an integration's alert names; null when none" }),
  integration_id: Type.Union([Type.String(), Type.Null()], { description: 'The integration it came from (alerts from other tools)' }),
  type: Type.String({ description: "An agent's alert type, or the integration's kind" }),
  source: Type.String({ description: "What failed, or the sender's key for an integration's alert" }),
  message: Type.String(),
  service: Type.Union([Type.String(), Type.Null()]),
  labels: Type.Record(Type.String(), Type.String()),
  exit_code: Type.Union([Type.Integer(), Type.Null()]),
  unit_status: Type.Union([Type.String(), Type.Null()]),
  status: IncidentStatus,
  count: Type.Integer(),
  first_seen_at: Type.String({ format: 'date-time' }),
  last_seen_at: Type.String({ format: 'date-time' }),
  acknowledged_at: Timestamp,
  acknowledged_by: Type.Union([Type.String(), Type.Null()]),
  resolved_at: Timestamp,
  resolved_by: Type.Union([Type.String(), Type.Null()]),
  severity: Type.Union([Type.Literal('critical'), Type.Literal('high'), Type.Literal('medium'), Type.Literal('low'), Type.Null()]),
  category: Type.Union([Type.String(), Type.Null()]),
  rule: Type.Union([Type.String(), Type.Null()], { description: 'The classification rule that matched' }),
  reopen_count: Type.Integer({ description: 'Times the fingerprint fired again within 30 minutes of resolving' }),
  reopened_at: Timestamp,
  flapping: Type.Boolean({ description: '4 or more opens, reopens and resolves within 15 minutes' }),
  flapping_since: Timestamp,
  escalated: Type.Boolean({ description: 'An automatic fix failed: severity was raised and automatic attempts wait for a person' }),
  escalated_at: Timestamp,
};
export const IncidentSummaryView = Type.Object(incidentFields);
export const AnalysisView = Type.Object({
  summary: Type.String(),
  root_cause: Type.String(),
  confidence: Type.Number({ minimum: 0, maximum: 1 }),
  suggested_action: Type.Union([
    Type.Object({ command: Type.String(), params: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()])), label: Type.String() }),
    Type.Null(),
  ]),
  rationale: Type.String(),
  risk: Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high')]),
  source: Type.Union([Type.Literal('llm'), Type.Literal('heuristic')]),
  redactions: Type.Integer({ description: 'Secrets replaced in what was sent to the model' }),
  analyzed_at: Type.String({ format: 'date-time' }),
  reused_from: Type.Optional(Type.String({ description: 'The incident whose recent analysis of the same fingerprint was reused' })),
});

export const IncidentView = Type.Object({
  ...incidentFields,
  logs: Type.Union([Type.String(), Type.Null()]),
  context: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  analysis: Type.Union([AnalysisView, Type.Null()]),
  analysis_status: Type.Union([Type.Literal('pending'), Type.Literal('running'), Type.Literal('done'), Type.Null()]),
});
export type IncidentSummaryViewT = Static<typeof IncidentSummaryView>;
export type IncidentViewT = Static<typeof IncidentView>;

export const ExecParams = Type.Record(
  Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
  Type.Union([Type.String({ maxLength: 4096 }), Type.Number(), Type.Boolean()]),
  { maxProperties: 32, additionalProperties: false },
);

export const ExecView = Type.Object({
  id: Type.String(),
  agent_id: Type.String(),
  command: Type.String(),
  params: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
  status: Type.Union(['pending', 'sent', 'succeeded', 'failed', 'timeout', 'undelivered'].map((s) => Type.Literal(s))),
  ok: Type.Union([Type.Boolean(), Type.Null()]),
  exit_code: Type.Union([Type.Integer(), Type.Null()]),
  stdout: Type.Union([Type.String(), Type.Null()]),
  stderr: Type.Union([Type.String(), Type.Null()]),
  duration_ms: Type.Union([Type.Number(), Type.Null()]),
  truncated: Type.Union([Type.Boolean(), Type.Null()]),
  error_code: Type.Union([Type.String(), Type.Null()]),
  timeout_ms: Type.Integer(),
  requested_by: Type.String(),
  origin: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  sent_at: Timestamp,
  completed_at: Timestamp,
});
export type ExecViewT = Static<typeof ExecView>;

export const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);
