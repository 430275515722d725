-- 0004: heartbeat checks for cron jobs and timers (issue 13).
--  * heartbeat_checks: a schedule (a period, or a cron expression in a time zone) and a grace
--    time; pinged at /ping/<ping_key>; its state and when it is next due are kept, so the
--    evaluation survives restarts. heartbeat_pings: each ping, with its run's output (bounded).
--  * Their incidents belong to the hub's own integration of kind 'heartbeat', keyed by check.

ALTER TABLE integrations DROP CONSTRAINT integrations_kind_check;
ALTER TABLE integrations ADD CONSTRAINT integrations_kind_check CHECK (kind IN ('alertmanager', 'grafana', 'sentry', 'pagerduty', 'error_report', 'generic', 'heartbeat'));

ALTER TABLE incident_events DROP CONSTRAINT incident_events_kind_check;
ALTER TABLE incident_events ADD CONSTRAINT incident_events_kind_check CHECK (kind IN (
  'opened', 'repeated', 'reopened', 'classified', 'analysis_requested', 'analyzing', 'analyzed',
  'acknowledged', 'resolved', 'flapping', 'stable', 'ignored', 'action_requested',
  'action_completed', 'action_refused', 'rule_fired', 'rule_skipped', 'approval_requested',
  'approved', 'rejected', 'verified', 'verification_failed', 'escalated', 'rule_suspended',
  'exec_completed', 'autonomy_changed', 'rule_created', 'rule_updated', 'rule_deleted',
  'token_created', 'token_deleted', 'silence_created', 'silence_deleted', 'silence_ended',
  'integration_created', 'integration_updated', 'integration_deleted', 'integration_secret_rotated', 'linked',
  'heartbeat_created', 'heartbeat_updated', 'heartbeat_deleted'));

CREATE TABLE heartbeat_checks (
  id               text PRIMARY KEY,
  ping_key         text NOT NULL UNIQUE,
  name             text NOT NULL UNIQUE,
  period_s         integer CHECK (period_s BETWEEN 60 AND 31536000),
  cron             text,
  tz               text NOT NULL DEFAULT 'UTC',
  grace_s          integer NOT NULL CHECK (grace_s BETWEEN 60 AND 31536000),
  service          text,
  host             text,
  labels           jsonb NOT NULL DEFAULT '{}',
  status           text NOT NULL CHECK (status IN ('new', 'up', 'started', 'late', 'down', 'paused')),
  last_ping_at     timestamptz,
  last_success_at  timestamptz,
  started_at       timestamptz,
  started_rid      text,
  due_at           timestamptz,
  down_at          timestamptz,
  created_at       timestamptz NOT NULL,
  created_by       text NOT NULL,
  updated_at       timestamptz NOT NULL,
  CONSTRAINT heartbeat_checks_schedule_check CHECK ((period_s IS NULL) <> (cron IS NULL))
);
CREATE INDEX heartbeat_checks_down ON heartbeat_checks (down_at) WHERE status IN ('up', 'started', 'late');
CREATE INDEX heartbeat_checks_due ON heartbeat_checks (due_at) WHERE status IN ('up', 'started');

CREATE TABLE heartbeat_pings (
  id           text PRIMARY KEY,
  check_id     text NOT NULL REFERENCES heartbeat_checks(id) ON DELETE CASCADE,
  at           timestamptz NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('success', 'start', 'fail', 'log')),
  exit_status  integer CHECK (exit_status BETWEEN 0 AND 255),
  rid          text,
  duration_ms  integer,
  body         text,
  body_bytes   integer NOT NULL DEFAULT 0
);
CREATE INDEX heartbeat_pings_check ON heartbeat_pings (check_id, id DESC);
CREATE INDEX heartbeat_pings_at ON heartbeat_pings (at);
