import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import { CHECK_KINDS } from '@opspilot/protocol';
import { MONITOR_STATES, type MonitorState } from '@opspilot/checks';

/**
 * Table interfaces mirroring schema.sql. JSON columns are read as values and written as JSON
 * text (see `json()` in database.ts), which both pg and PGlite pass through unchanged.
 */
type Json<T> = ColumnType<T, string, string>;
type JsonNullable<T> = ColumnType<T | null, string | null, string | null>;
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type TimestampNullable = ColumnType<Date | null, Date | string | null, Date | string | null>;

export interface AgentFacts {
  agent_version: string;
  /** The message set the agent speaks (hello.protocol); absent for hellos stored before 0.2. */
  protocol?: number;
  hostname: string;
  os: string;
  arch: string;
  kernel?: string;
  boot_time?: number;
}

export interface AgentsTable {
  id: string;
  hostname: string | null;
  labels: Json<Record<string, string>>;
  token_hash: string;
  created_at: ColumnType<Date, Date | string | undefined, never>;
  token_rotated_at: TimestampNullable;
  last_seen_at: TimestampNullable;
  connected_at: TimestampNullable;
  facts: JsonNullable<AgentFacts>;
  actions: JsonNullable<string[]>;
  stats: JsonNullable<Record<string, number>>;
  autonomy: ColumnType<boolean, boolean | undefined, boolean>;
  hub_id: string | null;
  conn_epoch: ColumnType<number, number | undefined, number>;
}

export interface HubsTable {
  id: string;
  name: string;
  started_at: Date;
  lease_until: Date;
  agents: ColumnType<number, number | undefined, number>;
}

export interface SessionsTable {
  id_hash: string;
  token_hash: string;
  actor: string;
  created_at: Timestamp;
  expires_at: Timestamp;
}

export interface AdminTokensTable {
  id: string;
  name: string;
  token_hash: string;
  created_at: ColumnType<Date, Date | string | undefined, never>;
}

export interface ReceivedEnvelopesTable {
  agent_id: string;
  msg_id: string;
  received_at: Generated<Date>;
}

export interface MetricSamplesTable {
  agent_id: string;
  ts: Timestamp;
  cpu_pct: number;
  mem_used: number;
  mem_total: number;
  swap_used: number | null;
  load1: number;
  load5: number;
  load15: number;
  disks: Json<{ mount: string; used: number; size: number }[]>;
  net: Json<{ iface: string; rx_bps: number; tx_bps: number }[]>;
  /** 0: as sent; otherwise the average of a bucket this many seconds long. */
  period_s: Generated<number>;
}

/** The lifecycle, in order: see schema.sql. */
export const INCIDENT_STATUSES = ['new', 'analyzing', 'open', 'acknowledged', 'ignored', 'resolved'] as const;
export type IncidentStatus = (typeof INCIDENT_STATUSES)[number];

/** Where an incident's analysis is: queued, being written, stored. */
export const ANALYSIS_STATUSES = ['pending', 'running', 'done'] as const;
export type AnalysisStatus = (typeof ANALYSIS_STATUSES)[number];

/** Senders of alerts from other tools (intake/). */
export const INTEGRATION_KINDS = ['alertmanager', 'grafana', 'sentry', 'pagerduty', 'error_report', 'generic', 'heartbeat', 'monitor'] as const;
export type IntegrationKind = (typeof INTEGRATION_KINDS)[number];
/** The hub's own integrations, for its heartbeat checks' and monitors' incidents. */
export const HUB_OWN_KINDS = ['heartbeat', 'monitor'] as const satisfies readonly IntegrationKind[];
/** The kinds a person adds. */
export const SENDER_KINDS = INTEGRATION_KINDS.filter((k): k is Exclude<IntegrationKind, (typeof HUB_OWN_KINDS)[number]> => !(HUB_OWN_KINDS as readonly string[]).includes(k));

// The kinds the protocol carries to agents, the states the checks package decides.
export const MONITOR_KINDS = CHECK_KINDS;
export type MonitorKind = (typeof MONITOR_KINDS)[number];
export { MONITOR_STATES, type MonitorState };

/**
 * Where a monitor runs: the hub ("hub", or `hub: true`), the agents named, and the agents whose
 * labels include all of `labels`. Each is a location with its own state.
 */
export type RunOn = 'hub' | { hub?: boolean; agents?: string[]; labels?: Record<string, string> };

export interface MonitorsTable {
  id: string;
  name: string;
  kind: MonitorKind;
  target: string;
  interval_s: number;
  timeout_ms: number;
  run_on: Json<RunOn>;
  quorum: number | null;
  conditions: Json<string[]>;
  options: Json<Record<string, unknown>>;
  failure_threshold: number;
  success_threshold: number;
  cert_warn_days: number;
  labels: Json<Record<string, string>>;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  status: MonitorState;
  status_since: TimestampNullable;
  next_run_at: TimestampNullable;
  created_at: Timestamp;
  created_by: string;
  updated_at: Timestamp;
}

export interface MonitorLocationsTable {
  monitor_id: string;
  location: string;
  state: MonitorState;
  failures: number;
  successes: number;
  last_result_at: TimestampNullable;
  last_ok: boolean | null;
  last_status: number | null;
  last_response_ms: number | null;
  last_error: string | null;
}

export interface MonitorResultsTable {
  id: string;
  monitor_id: string;
  location: string;
  at: Timestamp;
  ok: boolean;
  status: number | null;
  response_ms: number | null;
  error: string | null;
  cert_expires_at: TimestampNullable;
  /** 0 as checked; 3600 for an hour downsampled (see schema.sql). */
  period_s: ColumnType<number, number | undefined, number>;
  checks: ColumnType<number, number | undefined, number>;
  ok_checks: ColumnType<number | null, number | null | undefined, number | null>;
  max_response_ms: ColumnType<number | null, number | null | undefined, number | null>;
}

/** A heartbeat check's states, as Healthchecks.io names them (late is its "grace"). */
export const HEARTBEAT_STATUSES = ['new', 'up', 'started', 'late', 'down', 'paused'] as const;
export type HeartbeatStatus = (typeof HEARTBEAT_STATUSES)[number];
export const PING_KINDS = ['success', 'start', 'fail', 'log'] as const;
export type PingKind = (typeof PING_KINDS)[number];

export interface HeartbeatChecksTable {
  id: string;
  ping_key: string;
  name: string;
  period_s: number | null;
  cron: string | null;
  tz: string;
  grace_s: number;
  service: string | null;
  host: string | null;
  labels: Json<Record<string, string>>;
  status: HeartbeatStatus;
  last_ping_at: TimestampNullable;
  last_success_at: TimestampNullable;
  started_at: TimestampNullable;
  started_rid: string | null;
  due_at: TimestampNullable;
  down_at: TimestampNullable;
  created_at: Timestamp;
  created_by: string;
  updated_at: Timestamp;
}

export interface HeartbeatPingsTable {
  id: string;
  check_id: string;
  at: Timestamp;
  kind: PingKind;
  exit_status: number | null;
  rid: string | null;
  duration_ms: number | null;
  body: string | null;
  body_bytes: number;
}

export interface IntegrationsTable {
  id: string;
  name: string;
  kind: IntegrationKind;
  labels: Json<Record<string, string>>;
  host_labels: Json<string[]>;
  secret_hash: string;
  signing_secret: string | null;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: Timestamp;
  created_by: string;
  updated_at: Timestamp;
  secret_rotated_at: TimestampNullable;
  last_delivery_at: TimestampNullable;
  last_error: string | null;
  last_error_at: TimestampNullable;
}

export interface IntegrationDeliveriesTable {
  id: string;
  integration_id: string;
  key: string;
  received_at: Timestamp;
  bytes: number;
  body: string;
  alerts: number;
  changed: number;
  errors: JsonNullable<{ alert: number; error: string }[]>;
}

export interface IncidentsTable {
  id: string;
  /** The agent whose alert it is, or the agent of the host an integration's alert names (if any). */
  agent_id: string | null;
  integration_id: ColumnType<string | null, string | null | undefined, string | null>;
  type: string;
  source: string;
  message: string;
  service: ColumnType<string | null, string | null | undefined, string | null>;
  labels: ColumnType<Record<string, string>, string | undefined, string>;
  occurrence: ColumnType<string | null, string | null | undefined, string | null>;
  logs: string | null;
  exit_code: number | null;
  unit_status: string | null;
  context: JsonNullable<Record<string, unknown>>;
  status: ColumnType<IncidentStatus, IncidentStatus | undefined, IncidentStatus>;
  count: ColumnType<number, number | undefined, number>;
  first_seen_at: Timestamp;
  last_seen_at: Timestamp;
  acknowledged_at: TimestampNullable;
  acknowledged_by: string | null;
  resolved_at: TimestampNullable;
  resolved_by: string | null;
  severity: string | null;
  category: string | null;
  rule: string | null;
  analysis: JsonNullable<Record<string, unknown>>;
  analysis_status: AnalysisStatus | null;
  analysis_requested_at: TimestampNullable;
  analysis_reuse: ColumnType<boolean, boolean | undefined, boolean>;
  reopen_count: ColumnType<number, number | undefined, number>;
  reopened_at: TimestampNullable;
  flapping: ColumnType<boolean, boolean | undefined, boolean>;
  flapping_since: TimestampNullable;
  escalated: ColumnType<boolean, boolean | undefined, boolean>;
  escalated_at: TimestampNullable;
}

export const EXEC_STATUSES = ['pending', 'sent', 'succeeded', 'failed', 'timeout', 'undelivered'] as const;
export type ExecStatus = (typeof EXEC_STATUSES)[number];
export const EXEC_ORIGINS = ['rest', 'slack', 'rule'] as const;
export type ExecOrigin = (typeof EXEC_ORIGINS)[number];

export interface ExecRequestsTable {
  id: string;
  agent_id: string;
  command: string;
  params: Json<Record<string, string | number | boolean>>;
  timeout_ms: number;
  status: ColumnType<ExecStatus, ExecStatus | undefined, ExecStatus>;
  requested_by: string;
  origin: ColumnType<ExecOrigin, ExecOrigin | undefined, ExecOrigin>;
  created_at: ColumnType<Date, Date | string | undefined, never>;
  sent_at: TimestampNullable;
  completed_at: TimestampNullable;
  ok: boolean | null;
  exit_code: number | null;
  stdout: string | null;
  stderr: string | null;
  duration_ms: number | null;
  truncated: boolean | null;
  error_code: string | null;
  incident_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface IncidentEventsTable {
  id: string;
  incident_id: string | null;
  agent_id: ColumnType<string | null, string | null | undefined, never>;
  at: Timestamp;
  actor: string;
  by: string | null;
  kind: string;
  detail: JsonNullable<Record<string, unknown>>;
  /** The live stream's position (an identity column: never written). */
  seq: ColumnType<string | number, never, never>;
}

export const NOTIFICATION_KINDS = ['message', 'thread', 'approval'] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];
export const RULE_MODES = ['auto', 'approve'] as const;
export type RuleMode = (typeof RULE_MODES)[number];

export interface SlackMessagesTable {
  incident_id: string;
  channel: string;
  ts: string | null;
  posted_at: Timestamp;
}

/** An incident opened or reopened, waiting for the remediation rules to be consulted. */
export interface RemediationQueueTable {
  incident_id: string;
  queued_at: Date;
}

export interface NotificationsTable {
  id: string;
  incident_id: string;
  kind: NotificationKind;
  body: string | null;
  version: ColumnType<number, number | undefined, number>;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Timestamp;
  locked_until: TimestampNullable;
  done_at: TimestampNullable;
  error: string | null;
}

export interface FingerprintMutesTable {
  agent_id: string | null;
  integration_id: ColumnType<string | null, string | null | undefined, string | null>;
  type: string;
  source: string;
  until: Timestamp;
  muted_by: string;
  muted_at: Timestamp;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  scopes: Json<('read' | 'exec' | 'admin')[]>;
  token_hash: string;
  created_at: ColumnType<Date, Date | string | undefined, never>;
  created_by: string;
  last_used_at: TimestampNullable;
}

export interface SystemSettingsTable {
  key: string;
  value: Json<unknown>;
  updated_at: Timestamp;
  updated_by: string;
}

/** What a rule or a silence is matched against. */
/** What rules and silences match an incident by: its fingerprint, classification, host and labels. */
export interface MatchSubject {
  type: string;
  source: string;
  severity: string | null;
  category: string | null;
  /** The agent's, or the agent of the host an integration's alert names; null when there is none. */
  agent_id: string | null;
  integration_id: string | null;
  service: string | null;
  /** The agent's labels, with an integration alert's own labels over them. */
  labels: Record<string, string>;
}

export type MatchSpec = {
  type?: string;
  source?: string;
  severity?: string;
  category?: string;
  agent_id?: string;
  integration_id?: string;
  service?: string;
  labels?: Record<string, string>;
};

export interface RemediationRulesTable {
  id: string;
  name: string;
  match: Json<MatchSpec>;
  action: Json<{ command: string; params: Record<string, string | number | boolean> }>;
  mode: RuleMode;
  cooldown_s: number;
  max_per_hour: number;
  verify_s: number;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  suspended_at: TimestampNullable;
  suspended_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  created_by: string;
}

export const ATTEMPT_STATUSES = ['awaiting_approval', 'running', 'verifying', 'verified', 'failed', 'rejected'] as const;
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number];

export interface RemediationAttemptsTable {
  id: string;
  rule_id: string;
  rule_name: string;
  incident_id: string;
  agent_id: string;
  type: string;
  source: string;
  command: string;
  params: Json<Record<string, string | number | boolean>>;
  status: AttemptStatus;
  exec_id: string | null;
  decided_by: string | null;
  created_at: Timestamp;
  started_at: TimestampNullable;
  verify_by: TimestampNullable;
  finished_at: TimestampNullable;
  outcome: string | null;
}

export interface AutonomyHoldsTable {
  agent_id: string;
  type: string;
  source: string;
  incident_id: string;
  since: Timestamp;
  reason: string;
}

export interface SilencesTable {
  id: string;
  match: Json<MatchSpec>;
  starts_at: Timestamp;
  ends_at: TimestampNullable;
  cron: string | null;
  duration_s: number | null;
  reason: string;
  created_by: string;
  created_at: Timestamp;
  deleted_at: TimestampNullable;
}

export interface SlackInteractionsTable {
  key: string;
  seen_at: Timestamp;
}

export interface Database {
  agents: AgentsTable;
  hubs: HubsTable;
  admin_tokens: AdminTokensTable;
  received_envelopes: ReceivedEnvelopesTable;
  metric_samples: MetricSamplesTable;
  incidents: IncidentsTable;
  exec_requests: ExecRequestsTable;
  incident_events: IncidentEventsTable;
  sessions: SessionsTable;
  slack_messages: SlackMessagesTable;
  remediation_queue: RemediationQueueTable;
  notifications: NotificationsTable;
  fingerprint_mutes: FingerprintMutesTable;
  integrations: IntegrationsTable;
  integration_deliveries: IntegrationDeliveriesTable;
  heartbeat_checks: HeartbeatChecksTable;
  heartbeat_pings: HeartbeatPingsTable;
  monitors: MonitorsTable;
  monitor_locations: MonitorLocationsTable;
  monitor_results: MonitorResultsTable;
  api_tokens: ApiTokensTable;
  system_settings: SystemSettingsTable;
  remediation_rules: RemediationRulesTable;
  remediation_attempts: RemediationAttemptsTable;
  autonomy_holds: AutonomyHoldsTable;
  silences: SilencesTable;
  slack_interactions: SlackInteractionsTable;
}

export type RemediationRule = Selectable<RemediationRulesTable>;
export type RemediationAttempt = Selectable<RemediationAttemptsTable>;
export type Silence = Selectable<SilencesTable>;

export type Agent = Selectable<AgentsTable>;
export type NewAgent = Insertable<AgentsTable>;
export type AgentUpdate = Updateable<AgentsTable>;
export type Incident = Selectable<IncidentsTable>;
export type MetricSampleRow = Selectable<MetricSamplesTable>;
export type ExecRequest = Selectable<ExecRequestsTable>;

/** The analysis stored on an incident (incidents.analysis). */
export const RISKS = ['low', 'medium', 'high'] as const;
export type Risk = (typeof RISKS)[number];

export interface SuggestedAction {
  command: string;
  params: Record<string, string | number | boolean>;
  label: string;
}

/** What an analysis says, whether a model or the heuristics wrote it. */
export interface Analysis {
  summary: string;
  root_cause: string;
  confidence: number;
  suggested_action: SuggestedAction | null;
  rationale: string;
  risk: Risk;
  source: 'heuristic' | 'llm';
  redactions: number;
}

/** What a token may do; each scope includes the ones before it. */
export const SCOPES = ['read', 'exec', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];
