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
  kind             text NOT NULL,                 -- message, thread
  body             text,                          -- thread: the reply (mrkdwn, already escaped)
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
