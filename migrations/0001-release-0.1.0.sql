-- 0001: the schema of OpsPilot 0.1.0, the last release before versioned migrations, verbatim.
-- That release applied this file at every start; every statement is idempotent, so it also brings
-- a database of any earlier build up to 0.1.0 before 0002 runs. A database 0.1.0 made has no
-- schema_migrations table: migrate.ts reads that as version 0. (migrate.test.ts builds such a
-- database with this file and upgrades it.)
--
-- What follows is the 0.1.0 file's text:
-- OpsPilot hub schema. Applied at every hub start; every statement is idempotent.
-- The same file serves PostgreSQL and PGlite. Ids are ULIDs (text, sortable by creation time).

CREATE TABLE IF NOT EXISTS agents (
  id               text PRIMARY KEY,
  hostname         text,
  labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
  token_hash       text NOT NULL UNIQUE,          -- SHA-256 hex of the agent token; the token is never stored
  created_at       timestamptz NOT NULL DEFAULT now(),
  token_rotated_at timestamptz,
  last_seen_at     timestamptz,                   -- last frame received (coalesced writes)
  connected_at     timestamptz,
  facts            jsonb,                         -- from hello: agent_version, hostname, os, arch, kernel, boot_time
  actions          jsonb,                         -- exec catalogue from hello; NULL until a hello arrives
  stats            jsonb                          -- latest heartbeat payload
);

CREATE TABLE IF NOT EXISTS admin_tokens (
  id           text PRIMARY KEY,
  name         text NOT NULL,
  token_hash   text NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Envelope ids already stored, per agent: a resent envelope is acked again but stored once.
CREATE TABLE IF NOT EXISTS received_envelopes (
  agent_id     text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  msg_id       text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, msg_id)
);
CREATE INDEX IF NOT EXISTS received_envelopes_received_at ON received_envelopes (received_at);

-- No foreign key: checking one per row was 40% of the insert cost. The bulk insert holds each
-- agent's row once instead (it updates last_seen_at in the same statement) and deleteAgent
-- removes the agent's samples itself: the same guarantee, no sample outlives its agent.
CREATE TABLE IF NOT EXISTS metric_samples (
  agent_id   text NOT NULL,
  ts         timestamptz NOT NULL,
  cpu_pct    double precision NOT NULL,
  mem_used   bigint NOT NULL,
  mem_total  bigint NOT NULL,
  swap_used  bigint,
  load1      double precision NOT NULL,
  load5      double precision NOT NULL,
  load15     double precision NOT NULL,
  disks      jsonb NOT NULL DEFAULT '[]'::jsonb,
  net        jsonb NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX IF NOT EXISTS metric_samples_agent_ts ON metric_samples (agent_id, ts);
-- 0: a sample as the agent sent it; 300: the average of a 5-minute bucket (see OPSPILOT_METRICS_RAW_HOURS).
ALTER TABLE metric_samples ADD COLUMN IF NOT EXISTS period_s integer NOT NULL DEFAULT 0;
-- Retention finds the oldest samples of each kind without walking every agent's rows.
CREATE INDEX IF NOT EXISTS metric_samples_raw_ts ON metric_samples (ts) WHERE period_s = 0;
CREATE INDEX IF NOT EXISTS metric_samples_rollup_ts ON metric_samples (ts) WHERE period_s > 0;

CREATE TABLE IF NOT EXISTS incidents (
  id               text PRIMARY KEY,
  agent_id         text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  type             text NOT NULL,
  source           text NOT NULL,
  message          text NOT NULL,
  logs             text,
  exit_code        integer,
  unit_status      text,                          -- the alert's `status` (for example systemd's "failed")
  context          jsonb,
  status           text NOT NULL DEFAULT 'open',
  count            integer NOT NULL DEFAULT 1,
  first_seen_at    timestamptz NOT NULL,
  last_seen_at     timestamptz NOT NULL,
  acknowledged_at  timestamptz,
  acknowledged_by  text,
  resolved_at      timestamptz,
  resolved_by      text
);
-- One unresolved incident per fingerprint (agent, type, source): a repeat bumps its count.
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open_fingerprint ON incidents (agent_id, type, source) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS incidents_last_seen ON incidents (last_seen_at DESC);
CREATE INDEX IF NOT EXISTS incidents_agent_last_seen ON incidents (agent_id, last_seen_at DESC);

-- Every exec asked of an agent, by whom, and its result. No foreign key: the audit trail outlives
-- a deleted agent.
CREATE TABLE IF NOT EXISTS exec_requests (
  id            text PRIMARY KEY,
  agent_id      text NOT NULL,
  command       text NOT NULL,
  params        jsonb NOT NULL DEFAULT '{}'::jsonb,
  timeout_ms    integer NOT NULL,
  status        text NOT NULL DEFAULT 'pending',  -- pending, sent, succeeded, failed, timeout, undelivered
  requested_by  text NOT NULL,
  origin        text NOT NULL DEFAULT 'rest',     -- rest, slack, rule
  created_at    timestamptz NOT NULL DEFAULT now(),
  sent_at       timestamptz,
  completed_at  timestamptz,
  ok            boolean,
  exit_code     integer,
  stdout        text,
  stderr        text,
  duration_ms   double precision,
  truncated     boolean,
  error_code    text
);
CREATE INDEX IF NOT EXISTS exec_requests_agent_created ON exec_requests (agent_id, created_at DESC);

-- Classification (incidents/classify.ts): the first matching rule's severity, category and name.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS severity text;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS category text;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS rule text;
CREATE INDEX IF NOT EXISTS incidents_severity ON incidents (severity) WHERE status <> 'resolved';

-- Analysis (incidents/analyzer.ts). The queue is the incidents whose analysis_status is pending;
-- a restart puts back what was running, so nothing queued is lost.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS analysis jsonb;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS analysis_status text;            -- pending, running, done
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS analysis_requested_at timestamptz;
CREATE INDEX IF NOT EXISTS incidents_analysis_queue ON incidents (analysis_requested_at) WHERE analysis_status IN ('pending', 'running');

-- What happened to each incident, and who did it (GET /v1/incidents/:id/timeline).
CREATE TABLE IF NOT EXISTS incident_events (
  id           text PRIMARY KEY,                  -- ULID: time order
  incident_id  text NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  at           timestamptz NOT NULL,
  actor        text NOT NULL,                     -- agent, rule, user, llm, heuristic, hub
  by           text,                              -- who, when the actor is a user (token:<name>)
  kind         text NOT NULL,                     -- storage/timeline.ts TIMELINE_KINDS
  detail       jsonb
);
CREATE INDEX IF NOT EXISTS incident_events_incident ON incident_events (incident_id, id);

-- Lifecycle (storage/incidents.ts): new → analyzing → open → acknowledged → resolved. An alert of a
-- fingerprint resolved less than 30 minutes ago reopens that incident instead of opening another;
-- four or more opens, reopens and resolves within 15 minutes mark it flapping.
ALTER TABLE incidents ALTER COLUMN status SET DEFAULT 'new';
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS reopen_count integer NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS reopened_at timestamptz;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS flapping boolean NOT NULL DEFAULT false;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS flapping_since timestamptz;
-- false when an operator asked for a fresh analysis: a recent one of the same fingerprint is not reused.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS analysis_reuse boolean NOT NULL DEFAULT true;
CREATE INDEX IF NOT EXISTS incidents_fingerprint_resolved ON incidents (agent_id, type, source, resolved_at DESC) WHERE status = 'resolved';

-- Exec requests name the incident they act on, when there is one (Slack buttons, rules).
ALTER TABLE exec_requests ADD COLUMN IF NOT EXISTS incident_id text;
CREATE INDEX IF NOT EXISTS exec_requests_incident ON exec_requests (incident_id) WHERE incident_id IS NOT NULL;

-- Slack (slack/): one message per incident, posted once and then edited.
CREATE TABLE IF NOT EXISTS slack_messages (
  incident_id  text PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
  channel      text NOT NULL,
  ts           text,                              -- null in post-only (webhook) mode: it cannot be edited
  posted_at    timestamptz NOT NULL
);

-- What is still to be said in Slack, so a restart or an outage of Slack loses nothing. `message`
-- posts or edits the incident's message (one pending per incident: later changes bump `version`
-- and the worker renders the incident as it is then); `thread` is a reply under it.
CREATE TABLE IF NOT EXISTS notifications (
  id               text PRIMARY KEY,              -- ULID: order
  incident_id      text NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  kind             text NOT NULL,                 -- message, thread, approval
  body             text,                          -- thread: the reply (mrkdwn, escaped); approval: the attempt id; message: 'silenced' once a silence held it
  version          integer NOT NULL DEFAULT 1,
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  locked_until     timestamptz,
  done_at          timestamptz,
  error            text
);
CREATE UNIQUE INDEX IF NOT EXISTS notifications_pending_message ON notifications (incident_id) WHERE kind = 'message' AND done_at IS NULL;
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (next_attempt_at) WHERE done_at IS NULL;

-- Fingerprints muted from Slack (the Ignore button): incidents are still recorded, not posted.
CREATE TABLE IF NOT EXISTS fingerprint_mutes (
  agent_id    text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  type        text NOT NULL,
  source      text NOT NULL,
  until       timestamptz NOT NULL,
  muted_by    text NOT NULL,
  muted_at    timestamptz NOT NULL,
  PRIMARY KEY (agent_id, type, source)
);

-- Scoped API tokens (auth/operators.ts): read ⊂ exec ⊂ admin. Only the hash is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
  id            text PRIMARY KEY,
  name          text NOT NULL UNIQUE,
  scopes        jsonb NOT NULL,
  token_hash    text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  created_by    text NOT NULL,
  last_used_at  timestamptz
);

-- Settings that must survive restarts and be the same on every hub (the autonomy kill switch).
CREATE TABLE IF NOT EXISTS system_settings (
  key         text PRIMARY KEY,
  value       jsonb NOT NULL,
  updated_at  timestamptz NOT NULL,
  updated_by  text NOT NULL
);
ALTER TABLE agents ADD COLUMN IF NOT EXISTS autonomy boolean NOT NULL DEFAULT true;

-- The audit trail is incident_events: every change to an incident, and system-wide events
-- (kill switch, rules, tokens, silences, execs without an incident) with incident_id null. It
-- is append-only: it outlives deleted agents and incidents, and a trigger refuses edits.
ALTER TABLE incident_events DROP CONSTRAINT IF EXISTS incident_events_incident_id_fkey;
ALTER TABLE incident_events ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE incident_events ADD COLUMN IF NOT EXISTS agent_id text;
CREATE INDEX IF NOT EXISTS incident_events_agent ON incident_events (agent_id, id) WHERE agent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS incident_events_actor ON incident_events (actor, id);
CREATE OR REPLACE FUNCTION opspilot_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Tests move time by ageing rows; they say so for their own transaction.
  IF current_setting('opspilot.audit_edits', true) = 'allow' THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS incident_events_append_only ON incident_events;
CREATE TRIGGER incident_events_append_only BEFORE UPDATE OR DELETE ON incident_events
  FOR EACH ROW EXECUTE FUNCTION opspilot_append_only();

-- Remediation (remediation/): rules that act on incidents by themselves, within limits.
CREATE TABLE IF NOT EXISTS remediation_rules (
  id                text PRIMARY KEY,
  name              text NOT NULL UNIQUE,
  match             jsonb NOT NULL,                -- {type?, source? (glob), severity?, category?, agent_id?, labels?}
  action            jsonb NOT NULL,                -- {command, params} ("{{source}}" whole-value templates)
  mode              text NOT NULL,                 -- auto, approve
  cooldown_s        integer NOT NULL,
  max_per_hour      integer NOT NULL,
  verify_s          integer NOT NULL,
  enabled           boolean NOT NULL DEFAULT true,
  suspended_at      timestamptz,                   -- the circuit breaker opened: 3 failures in an hour
  suspended_reason  text,
  created_at        timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL,
  created_by        text NOT NULL
);

-- Each time a rule acted (or asked to): what, on which incident, and how it ended.
CREATE TABLE IF NOT EXISTS remediation_attempts (
  id           text PRIMARY KEY,
  rule_id      text NOT NULL,
  rule_name    text NOT NULL,
  incident_id  text NOT NULL,
  agent_id     text NOT NULL,
  type         text NOT NULL,
  source       text NOT NULL,
  command      text NOT NULL,
  params       jsonb NOT NULL,
  status       text NOT NULL,                      -- awaiting_approval, running, verifying, verified, failed, rejected
  exec_id      text,
  decided_by   text,                               -- approve mode: who approved or rejected
  created_at   timestamptz NOT NULL,
  started_at   timestamptz,
  verify_by    timestamptz,
  finished_at  timestamptz,
  outcome      text
);
CREATE INDEX IF NOT EXISTS remediation_attempts_rule ON remediation_attempts (rule_id, created_at DESC);
CREATE INDEX IF NOT EXISTS remediation_attempts_fingerprint ON remediation_attempts (agent_id, type, source, created_at DESC);
CREATE INDEX IF NOT EXISTS remediation_attempts_verifying ON remediation_attempts (verify_by) WHERE status = 'verifying';

-- A fingerprint whose automatic fix failed: no further automatic attempts until a person acts
-- (acknowledges or resolves one of its incidents).
CREATE TABLE IF NOT EXISTS autonomy_holds (
  agent_id     text NOT NULL,
  type         text NOT NULL,
  source       text NOT NULL,
  incident_id  text NOT NULL,
  since        timestamptz NOT NULL,
  reason       text NOT NULL,
  PRIMARY KEY (agent_id, type, source)
);
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS escalated boolean NOT NULL DEFAULT false;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS escalated_at timestamptz;

-- Silences and maintenance windows: one-off (starts_at..ends_at) or recurring (a cron expression
-- and a duration, between starts_at and ends_at). No notification, no automatic action; the
-- incidents are still recorded, and those still open are notified when the silence ends.
CREATE TABLE IF NOT EXISTS silences (
  id           text PRIMARY KEY,
  match        jsonb NOT NULL,
  starts_at    timestamptz NOT NULL,
  ends_at      timestamptz NOT NULL,
  cron         text,
  duration_s   integer,
  reason       text NOT NULL,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL,
  deleted_at   timestamptz
);

-- Slack interactions already acted on (trigger id, action time, action id): a signed click
-- replayed within Slack's 5-minute window runs nothing. Kept for an hour.
CREATE TABLE IF NOT EXISTS slack_interactions (
  key      text PRIMARY KEY,
  seen_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS slack_interactions_seen_at ON slack_interactions (seen_at);
