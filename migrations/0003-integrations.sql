-- 0003: alerts from other tools (issue 13).
--  * integrations: a sender (Alertmanager, Grafana, Sentry, PagerDuty-style events, error reports,
--    generic JSON) with its own URL and secret; integration_deliveries: each request taken, once.
--  * An incident belongs to an agent or to an integration (then optionally linked to the agent of
--    the host it names): incidents.agent_id becomes optional, with the sender's labels, service
--    and firing start kept. An external incident's fingerprint is (integration, sender's key).
--  * Mutes (Slack's Ignore) work for either.

CREATE TABLE integrations (
  id                 text PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  kind               text NOT NULL CHECK (kind IN ('alertmanager', 'grafana', 'sentry', 'pagerduty', 'error_report', 'generic')),
  labels             jsonb NOT NULL DEFAULT '{}',
  host_labels        jsonb NOT NULL,
  secret_hash        text NOT NULL UNIQUE,
  signing_secret     text,
  enabled            boolean NOT NULL DEFAULT true,
  created_at         timestamptz NOT NULL,
  created_by         text NOT NULL,
  updated_at         timestamptz NOT NULL,
  secret_rotated_at  timestamptz,
  last_delivery_at   timestamptz,
  last_error         text,
  last_error_at      timestamptz
);

CREATE TABLE integration_deliveries (
  id              text PRIMARY KEY,
  integration_id  text NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  key             text NOT NULL,
  received_at     timestamptz NOT NULL,
  bytes           integer NOT NULL CHECK (bytes >= 0),
  body            text NOT NULL,
  alerts          integer NOT NULL CHECK (alerts >= 0),
  changed         integer NOT NULL CHECK (changed >= 0),
  errors          jsonb,
  CONSTRAINT integration_deliveries_once UNIQUE (integration_id, key)
);
CREATE INDEX integration_deliveries_recent ON integration_deliveries (integration_id, id DESC);
CREATE INDEX integration_deliveries_received ON integration_deliveries (received_at);

ALTER TABLE incidents ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE incidents
  ADD COLUMN integration_id text REFERENCES integrations(id) ON DELETE CASCADE,
  ADD COLUMN service text,
  ADD COLUMN labels jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN occurrence text,
  ADD CONSTRAINT incidents_subject_check CHECK (agent_id IS NOT NULL OR integration_id IS NOT NULL);
DROP INDEX incidents_open_fingerprint;
DROP INDEX incidents_fingerprint_resolved;
CREATE UNIQUE INDEX incidents_open_fingerprint ON incidents (agent_id, type, source) WHERE status <> 'resolved' AND integration_id IS NULL;
CREATE INDEX incidents_fingerprint_resolved ON incidents (agent_id, type, source, resolved_at DESC) WHERE status = 'resolved' AND integration_id IS NULL;
CREATE UNIQUE INDEX incidents_open_external ON incidents (integration_id, source) WHERE status <> 'resolved' AND integration_id IS NOT NULL;
CREATE INDEX incidents_external_resolved ON incidents (integration_id, source, resolved_at DESC) WHERE status = 'resolved' AND integration_id IS NOT NULL;
CREATE INDEX incidents_labels ON incidents USING gin (labels jsonb_path_ops);

ALTER TABLE incident_events DROP CONSTRAINT incident_events_actor_check;
ALTER TABLE incident_events ADD CONSTRAINT incident_events_actor_check CHECK (actor IN ('agent', 'rule', 'user', 'llm', 'heuristic', 'hub', 'integration'));
ALTER TABLE incident_events DROP CONSTRAINT incident_events_kind_check;
ALTER TABLE incident_events ADD CONSTRAINT incident_events_kind_check CHECK (kind IN (
  'opened', 'repeated', 'reopened', 'classified', 'analysis_requested', 'analyzing', 'analyzed',
  'acknowledged', 'resolved', 'flapping', 'stable', 'ignored', 'action_requested',
  'action_completed', 'action_refused', 'rule_fired', 'rule_skipped', 'approval_requested',
  'approved', 'rejected', 'verified', 'verification_failed', 'escalated', 'rule_suspended',
  'exec_completed', 'autonomy_changed', 'rule_created', 'rule_updated', 'rule_deleted',
  'token_created', 'token_deleted', 'silence_created', 'silence_deleted', 'silence_ended',
  'integration_created', 'integration_updated', 'integration_deleted', 'integration_secret_rotated', 'linked'));

ALTER TABLE fingerprint_mutes DROP CONSTRAINT fingerprint_mutes_pkey;
ALTER TABLE fingerprint_mutes ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE fingerprint_mutes
  ADD COLUMN integration_id text REFERENCES integrations(id) ON DELETE CASCADE,
  ADD CONSTRAINT fingerprint_mutes_subject_check CHECK ((agent_id IS NULL) <> (integration_id IS NULL));
CREATE UNIQUE INDEX fingerprint_mutes_agent ON fingerprint_mutes (agent_id, type, source) WHERE agent_id IS NOT NULL;
CREATE UNIQUE INDEX fingerprint_mutes_external ON fingerprint_mutes (integration_id, source) WHERE integration_id IS NOT NULL;
