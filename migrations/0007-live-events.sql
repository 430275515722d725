-- 0007: the live event stream (issue 15). The audit trail is the journal the stream reads: each
-- row gets a position (seq) a client resumes from, and agents' connections, monitors' state
-- changes and exec requests are recorded too.

ALTER TABLE incident_events ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX incident_events_seq ON incident_events (seq);

ALTER TABLE incident_events DROP CONSTRAINT incident_events_kind_check;
ALTER TABLE incident_events ADD CONSTRAINT incident_events_kind_check CHECK (kind IN (
  'opened', 'repeated', 'reopened', 'classified', 'analysis_requested', 'analyzing', 'analyzed',
  'acknowledged', 'resolved', 'flapping', 'stable', 'ignored', 'action_requested',
  'action_completed', 'action_refused', 'rule_fired', 'rule_skipped', 'approval_requested',
  'approved', 'rejected', 'verified', 'verification_failed', 'escalated', 'rule_suspended',
  'exec_completed', 'autonomy_changed', 'rule_created', 'rule_updated', 'rule_deleted',
  'token_created', 'token_deleted', 'silence_created', 'silence_deleted', 'silence_ended',
  'integration_created', 'integration_updated', 'integration_deleted', 'integration_secret_rotated', 'linked',
  'heartbeat_created', 'heartbeat_updated', 'heartbeat_deleted', 'monitor_created', 'monitor_updated', 'monitor_deleted',
  'agent_connected', 'agent_disconnected', 'monitor_state', 'exec_requested'));
