-- 0002: from the schema of OpsPilot 0.1.0 to the first versioned schema.
--  * CHECK constraints on every column whose values are a fixed list or a bound, as schema.sql
--    declares them (an existing row that breaks one stops the migration and names the constraint:
--    nothing is changed).
--  * A recurring silence may run for good: silences.ends_at becomes optional.

ALTER TABLE metric_samples ADD CONSTRAINT metric_samples_period_s_check CHECK (period_s >= 0);

ALTER TABLE incidents
  ADD CONSTRAINT incidents_status_check CHECK (status IN ('new', 'analyzing', 'open', 'acknowledged', 'ignored', 'resolved')),
  ADD CONSTRAINT incidents_count_check CHECK (count >= 1),
  ADD CONSTRAINT incidents_severity_check CHECK (severity IN ('critical', 'high', 'medium', 'low')),
  ADD CONSTRAINT incidents_analysis_status_check CHECK (analysis_status IN ('pending', 'running', 'done')),
  ADD CONSTRAINT incidents_reopen_count_check CHECK (reopen_count >= 0);

ALTER TABLE exec_requests
  ADD CONSTRAINT exec_requests_timeout_ms_check CHECK (timeout_ms > 0),
  ADD CONSTRAINT exec_requests_status_check CHECK (status IN ('pending', 'sent', 'succeeded', 'failed', 'timeout', 'undelivered')),
  ADD CONSTRAINT exec_requests_origin_check CHECK (origin IN ('rest', 'slack', 'rule'));

ALTER TABLE incident_events
  ADD CONSTRAINT incident_events_actor_check CHECK (actor IN ('agent', 'rule', 'user', 'llm', 'heuristic', 'hub')),
  ADD CONSTRAINT incident_events_kind_check CHECK (kind IN (
    'opened', 'repeated', 'reopened', 'classified', 'analysis_requested', 'analyzing', 'analyzed',
    'acknowledged', 'resolved', 'flapping', 'stable', 'ignored', 'action_requested',
    'action_completed', 'action_refused', 'rule_fired', 'rule_skipped', 'approval_requested',
    'approved', 'rejected', 'verified', 'verification_failed', 'escalated', 'rule_suspended',
    'exec_completed', 'autonomy_changed', 'rule_created', 'rule_updated', 'rule_deleted',
    'token_created', 'token_deleted', 'silence_created', 'silence_deleted', 'silence_ended'));

ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN ('message', 'thread', 'approval'));
ALTER TABLE remediation_rules ADD CONSTRAINT remediation_rules_mode_check CHECK (mode IN ('auto', 'approve'));
ALTER TABLE remediation_attempts
  ADD CONSTRAINT remediation_attempts_status_check CHECK (status IN ('awaiting_approval', 'running', 'verifying', 'verified', 'failed', 'rejected'));

ALTER TABLE silences ALTER COLUMN ends_at DROP NOT NULL;
ALTER TABLE silences
  ADD CONSTRAINT silences_recurring_check CHECK ((cron IS NULL) = (duration_s IS NULL)),
  ADD CONSTRAINT silences_end_check CHECK (ends_at IS NOT NULL OR cron IS NOT NULL),
  ADD CONSTRAINT silences_window_check CHECK (ends_at IS NULL OR ends_at > starts_at);
