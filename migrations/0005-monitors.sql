-- 0005: uptime monitors (issue 14): HTTP, TCP, DNS and TLS checks run on a schedule, each
-- location's state kept with its consecutive failures and successes, and every result stored.
-- Their incidents belong to the hub's own integration of kind 'monitor', keyed by monitor.

ALTER TABLE integrations DROP CONSTRAINT integrations_kind_check;
ALTER TABLE integrations ADD CONSTRAINT integrations_kind_check CHECK (kind IN ('alertmanager', 'grafana', 'sentry', 'pagerduty', 'error_report', 'generic', 'heartbeat', 'monitor'));

ALTER TABLE incident_events DROP CONSTRAINT incident_events_kind_check;
ALTER TABLE incident_events ADD CONSTRAINT incident_events_kind_check CHECK (kind IN (
  'opened', 'repeated', 'reopened', 'classified', 'analysis_requested', 'analyzing', 'analyzed',
  'acknowledged', 'resolved', 'flapping', 'stable', 'ignored', 'action_requested',
  'action_completed', 'action_refused', 'rule_fired', 'rule_skipped', 'approval_requested',
  'approved', 'rejected', 'verified', 'verification_failed', 'escalated', 'rule_suspended',
  'exec_completed', 'autonomy_changed', 'rule_created', 'rule_updated', 'rule_deleted',
  'token_created', 'token_deleted', 'silence_created', 'silence_deleted', 'silence_ended',
  'integration_created', 'integration_updated', 'integration_deleted', 'integration_secret_rotated', 'linked',
  'heartbeat_created', 'heartbeat_updated', 'heartbeat_deleted', 'monitor_created', 'monitor_updated', 'monitor_deleted'));

CREATE TABLE monitors (
  id                 text PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  kind               text NOT NULL CHECK (kind IN ('http', 'tcp', 'dns', 'tls')),
  target             text NOT NULL,
  interval_s         integer NOT NULL CHECK (interval_s BETWEEN 10 AND 86400),
  timeout_ms         integer NOT NULL CHECK (timeout_ms BETWEEN 100 AND 60000),
  run_on             jsonb NOT NULL,
  quorum             integer CHECK (quorum >= 1),
  conditions         jsonb NOT NULL DEFAULT '[]',
  options            jsonb NOT NULL DEFAULT '{}',
  failure_threshold  integer NOT NULL CHECK (failure_threshold BETWEEN 1 AND 100),
  success_threshold  integer NOT NULL CHECK (success_threshold BETWEEN 1 AND 100),
  cert_warn_days     integer NOT NULL CHECK (cert_warn_days BETWEEN 0 AND 365),
  labels             jsonb NOT NULL DEFAULT '{}',
  enabled            boolean NOT NULL DEFAULT true,
  status             text NOT NULL CHECK (status IN ('up', 'down', 'unknown')),
  status_since       timestamptz,
  next_run_at        timestamptz,
  created_at         timestamptz NOT NULL,
  created_by         text NOT NULL,
  updated_at         timestamptz NOT NULL
);
CREATE INDEX monitors_due ON monitors (next_run_at) WHERE enabled;

CREATE TABLE monitor_locations (
  monitor_id        text NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
  location          text NOT NULL,
  state             text NOT NULL CHECK (state IN ('up', 'down', 'unknown')),
  failures          integer NOT NULL DEFAULT 0,
  successes         integer NOT NULL DEFAULT 0,
  last_result_at    timestamptz,
  last_ok           boolean,
  last_status       integer,
  last_response_ms  real,
  last_error        text,
  PRIMARY KEY (monitor_id, location)
);

CREATE TABLE monitor_results (
  id               text PRIMARY KEY,
  monitor_id       text NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
  location         text NOT NULL,
  at               timestamptz NOT NULL,
  ok               boolean NOT NULL,
  status           integer,
  response_ms      real,
  error            text,
  cert_expires_at  timestamptz
);
CREATE INDEX monitor_results_monitor ON monitor_results (monitor_id, at);
CREATE INDEX monitor_results_at ON monitor_results (at);
