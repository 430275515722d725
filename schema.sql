-- OpsPilot hub schema: the current shape of the database, one CREATE TABLE per table.
--
-- A new database is made from this file; an existing one is brought to the same shape by the
-- ordered files in migrations/ (packages/hub/src/storage/migrate.ts applies them at start, under
-- a lock, and records each in schema_migrations). A change to the schema is an edit here AND a
-- new migration; migrate.test.ts proves that a database of the last release, migrated, equals one
-- made from this file. The value lists in CHECK constraints are the `as const` arrays of
-- packages/hub/src (storage/tables.ts, storage/timeline.ts, incidents/classify.ts); a test
-- compares them.
--
-- The same file serves PostgreSQL and PGlite. Ids are ULIDs (text, sortable by creation time).

-- Hosts running the agent. The token is never stored, only its SHA-256.
CREATE TABLE agents (
  id               text PRIMARY KEY,
  hostname         text,
  labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
  token_hash       text NOT NULL UNIQUE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  token_rotated_at timestamptz,
  last_seen_at     timestamptz,                   -- last frame received (coalesced writes)
  connected_at     timestamptz,
  facts            jsonb,                         -- from hello: agent_version, hostname, os, arch, kernel, boot_time
  actions          jsonb,                         -- exec catalogue from hello; NULL until a hello arrives
  stats            jsonb,                         -- latest heartbeat payload
  autonomy         boolean NOT NULL DEFAULT true, -- remediation rules may act on this agent
  hub_id           text,                          -- the hub holding its connection (hubs.id), NULL when none
  conn_epoch       bigint NOT NULL DEFAULT 0      -- grows with each connection: the newest one wins across hubs
);
CREATE INDEX agents_hub ON agents (hub_id) WHERE hub_id IS NOT NULL;

-- Hubs on this database (several on one PostgreSQL): each renews its lease while it lives.
CREATE TABLE hubs (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  started_at  timestamptz NOT NULL,
  lease_until timestamptz NOT NULL,
  agents      integer NOT NULL DEFAULT 0
);

CREATE TABLE admin_tokens (
  id           text PRIMARY KEY,
  name         text NOT NULL,
  token_hash   text NOT NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Scoped API tokens (auth/): read ⊂ exec ⊂ admin. Only the hash is kept.
CREATE TABLE api_tokens (
  id            text PRIMARY KEY,
  name          text NOT NULL UNIQUE,
  scopes        jsonb NOT NULL,
  token_hash    text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  created_by    text NOT NULL,
  last_used_at  timestamptz
);

-- Dashboard sign-ins: an API token exchanged for a session held in an HttpOnly cookie. Only the
-- session id's hash is kept; a session acts with its token's scope while the token exists.
CREATE TABLE sessions (
  id_hash     text PRIMARY KEY,
  token_hash  text NOT NULL,
  actor       text NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_hash);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Envelope ids already stored, per agent: a resent envelope is acked again but stored once.
CREATE TABLE received_envelopes (
  agent_id     text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  msg_id       text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, msg_id)
);
CREATE INDEX received_envelopes_received_at ON received_envelopes (received_at);

-- Host metrics. No foreign key: checking one per row was 40% of the insert cost. The bulk insert
-- holds each agent's row once instead (it updates last_seen_at in the same statement) and
-- deleteAgent removes the agent's samples itself: no sample outlives its agent.
CREATE TABLE metric_samples (
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
  net        jsonb NOT NULL DEFAULT '[]'::jsonb,
  -- 0: a sample as the agent sent it; 300: the average of a 5-minute bucket (OPSPILOT_METRICS_RAW_HOURS).
  period_s   integer NOT NULL DEFAULT 0 CHECK (period_s >= 0)
);
CREATE INDEX metric_samples_agent_ts ON metric_samples (agent_id, ts);
-- Retention finds the oldest samples of each kind without walking every agent's rows.
CREATE INDEX metric_samples_raw_ts ON metric_samples (ts) WHERE period_s = 0;
CREATE INDEX metric_samples_rollup_ts ON metric_samples (ts) WHERE period_s > 0;

-- Incidents: one per failure fingerprint (agent, type, source) while unresolved. The lifecycle
-- (incidents/lifecycle.ts, the one writer through storage/incidents.ts): new → analyzing → open →
-- acknowledged → resolved, or ignored. An alert of a fingerprint resolved less than 30 minutes
-- ago reopens that incident; four or more opens, reopens and resolves within 15 minutes mark it
-- flapping.
-- Senders of alerts from other tools (intake/): each has its own URL and secret. The secret is
-- stored as its SHA-256 (it authenticates as a bearer, a basic-auth password or a routing key);
-- only where the sender signs with it (Sentry, Grafana) is it kept as well, in signing_secret,
-- and it is never shown again after it is made. host_labels: where an alert names its host.
CREATE TABLE integrations (
  id                 text PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  kind               text NOT NULL CHECK (kind IN ('alertmanager', 'grafana', 'sentry', 'pagerduty', 'error_report', 'generic', 'heartbeat', 'monitor')),
  labels             jsonb NOT NULL DEFAULT '{}',  -- added to every incident it opens
  host_labels        jsonb NOT NULL,               -- label names tried in order: ["host", "hostname", "instance", …]
  secret_hash        text NOT NULL UNIQUE,
  signing_secret     text,
  enabled            boolean NOT NULL DEFAULT true,
  created_at         timestamptz NOT NULL,
  created_by         text NOT NULL,
  updated_at         timestamptz NOT NULL,
  secret_rotated_at  timestamptz,
  last_delivery_at   timestamptz,
  last_error         text,                         -- the last request refused after it authenticated
  last_error_at      timestamptz
);

-- Each request an integration took, once: key is the sender's delivery id (Sentry's Request-ID)
-- or the SHA-256 of the body, so the same delivery resent changes nothing. body: the first 64 KiB,
-- secrets redacted. Kept as long as received envelope ids.
CREATE TABLE integration_deliveries (
  id              text PRIMARY KEY,                -- ULID: time order
  integration_id  text NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
  key             text NOT NULL,
  received_at     timestamptz NOT NULL,
  bytes           integer NOT NULL CHECK (bytes >= 0),
  body            text NOT NULL,
  alerts          integer NOT NULL CHECK (alerts >= 0),
  changed         integer NOT NULL CHECK (changed >= 0),  -- incidents opened, repeated, reopened or resolved
  errors          jsonb,                           -- alerts in it that were skipped, and why
  CONSTRAINT integration_deliveries_once UNIQUE (integration_id, key)
);
CREATE INDEX integration_deliveries_recent ON integration_deliveries (integration_id, id DESC);
CREATE INDEX integration_deliveries_received ON integration_deliveries (received_at);

CREATE TABLE incidents (
  id                     text PRIMARY KEY,
  -- An agent's alert, or an integration's (then linked to the agent of the host it names, if any).
  agent_id               text REFERENCES agents(id) ON DELETE CASCADE,
  integration_id         text REFERENCES integrations(id) ON DELETE CASCADE,
  type                   text NOT NULL,           -- an agent's alert type, or the integration's kind
  source                 text NOT NULL,           -- what failed, or the sender's key (Alertmanager fingerprint, dedup_key…)
  message                text NOT NULL,
  service                text,                    -- from the sender's labels or payload
  labels                 jsonb NOT NULL DEFAULT '{}',
  occurrence             text,                    -- the sender's start of this firing (Alertmanager startsAt)
  logs                   text,
  exit_code              integer,
  unit_status            text,                    -- the alert's `status` (for example systemd's "failed")
  context                jsonb,
  status                 text NOT NULL DEFAULT 'new'
                           CHECK (status IN ('new', 'analyzing', 'open', 'acknowledged', 'ignored', 'resolved')),
  count                  integer NOT NULL DEFAULT 1 CHECK (count >= 1),
  first_seen_at          timestamptz NOT NULL,
  last_seen_at           timestamptz NOT NULL,
  acknowledged_at        timestamptz,
  acknowledged_by        text,
  resolved_at            timestamptz,
  resolved_by            text,
  -- Classification (incidents/classify.ts): the first matching rule's severity, category and name.
  severity               text CHECK (severity IN ('critical', 'high', 'medium', 'low')),
  category               text,
  rule                   text,
  -- Analysis (incidents/analyzer.ts). The queue is the incidents whose analysis_status is pending;
  -- a restart puts back what was running, so nothing queued is lost.
  analysis               jsonb,
  analysis_status        text CHECK (analysis_status IN ('pending', 'running', 'done')),
  analysis_requested_at  timestamptz,
  -- false when an operator asked for a fresh analysis: a recent one of the same fingerprint is not reused.
  analysis_reuse         boolean NOT NULL DEFAULT true,
  reopen_count           integer NOT NULL DEFAULT 0 CHECK (reopen_count >= 0),
  reopened_at            timestamptz,
  flapping               boolean NOT NULL DEFAULT false,
  flapping_since         timestamptz,
  -- An automatic fix failed and a person was called.
  escalated              boolean NOT NULL DEFAULT false,
  escalated_at           timestamptz,
  CONSTRAINT incidents_subject_check CHECK (agent_id IS NOT NULL OR integration_id IS NOT NULL)
);
-- One unresolved incident per fingerprint: (agent, type, source), or (integration, sender's key).
CREATE UNIQUE INDEX incidents_open_fingerprint ON incidents (agent_id, type, source) WHERE status <> 'resolved' AND integration_id IS NULL;
CREATE UNIQUE INDEX incidents_open_external ON incidents (integration_id, source) WHERE status <> 'resolved' AND integration_id IS NOT NULL;
CREATE INDEX incidents_last_seen ON incidents (last_seen_at DESC);
CREATE INDEX incidents_agent_last_seen ON incidents (agent_id, last_seen_at DESC);
CREATE INDEX incidents_severity ON incidents (severity) WHERE status <> 'resolved';
CREATE INDEX incidents_analysis_queue ON incidents (analysis_requested_at) WHERE analysis_status IN ('pending', 'running');
CREATE INDEX incidents_fingerprint_resolved ON incidents (agent_id, type, source, resolved_at DESC) WHERE status = 'resolved' AND integration_id IS NULL;
CREATE INDEX incidents_external_resolved ON incidents (integration_id, source, resolved_at DESC) WHERE status = 'resolved' AND integration_id IS NOT NULL;
CREATE INDEX incidents_labels ON incidents USING gin (labels jsonb_path_ops);

-- Every exec asked of an agent, by whom, and its result. No foreign key: the audit trail outlives
-- a deleted agent.
CREATE TABLE exec_requests (
  id            text PRIMARY KEY,
  agent_id      text NOT NULL,
  command       text NOT NULL,
  params        jsonb NOT NULL DEFAULT '{}'::jsonb,
  timeout_ms    integer NOT NULL CHECK (timeout_ms > 0),
  status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sent', 'succeeded', 'failed', 'timeout', 'undelivered')),
  requested_by  text NOT NULL,
  origin        text NOT NULL DEFAULT 'rest' CHECK (origin IN ('rest', 'slack', 'rule')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  sent_at       timestamptz,
  completed_at  timestamptz,
  ok            boolean,
  exit_code     integer,
  stdout        text,
  stderr        text,
  duration_ms   double precision,
  truncated     boolean,
  error_code    text,
  incident_id   text                              -- the incident it acts on, when there is one (Slack buttons, rules)
);
CREATE INDEX exec_requests_agent_created ON exec_requests (agent_id, created_at DESC);
CREATE INDEX exec_requests_incident ON exec_requests (incident_id) WHERE incident_id IS NOT NULL;

-- The audit trail: every change to an incident, with its actor, and the system-wide events (kill
-- switch, rules, tokens, silences, execs without an incident) with incident_id null. It is
-- append-only: no foreign key (it outlives deleted agents and incidents), and a trigger refuses
-- edits.
CREATE TABLE incident_events (
  id           text PRIMARY KEY,                  -- ULID: time order
  incident_id  text,
  agent_id     text,
  at           timestamptz NOT NULL,
  actor        text NOT NULL CHECK (actor IN ('agent', 'rule', 'user', 'llm', 'heuristic', 'hub', 'integration')),
  by           text,                              -- who, when the actor is a user (token:<name>)
  kind         text NOT NULL CHECK (kind IN (
                 'opened', 'repeated', 'reopened', 'classified', 'analysis_requested', 'analyzing', 'analyzed',
                 'acknowledged', 'resolved', 'flapping', 'stable', 'ignored', 'action_requested',
                 'action_completed', 'action_refused', 'rule_fired', 'rule_skipped', 'approval_requested',
                 'approved', 'rejected', 'verified', 'verification_failed', 'escalated', 'rule_suspended',
                 'exec_completed', 'autonomy_changed', 'rule_created', 'rule_updated', 'rule_deleted',
                 'token_created', 'token_deleted', 'silence_created', 'silence_deleted', 'silence_ended',
                 'integration_created', 'integration_updated', 'integration_deleted', 'integration_secret_rotated', 'linked',
                 'heartbeat_created', 'heartbeat_updated', 'heartbeat_deleted', 'monitor_created', 'monitor_updated', 'monitor_deleted',
                 'agent_connected', 'agent_disconnected', 'monitor_state', 'exec_requested')),
  detail       jsonb,
  -- The live event stream's position (GET /v1/events: the SSE id a client resumes from).
  seq          bigint GENERATED ALWAYS AS IDENTITY
);
CREATE UNIQUE INDEX incident_events_seq ON incident_events (seq);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);
CREATE INDEX incident_events_agent ON incident_events (agent_id, id) WHERE agent_id IS NOT NULL;
CREATE INDEX incident_events_actor ON incident_events (actor, id);
CREATE FUNCTION opspilot_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Tests move time by ageing rows; they say so for their own transaction.
  IF current_setting('opspilot.audit_edits', true) = 'allow' THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER incident_events_append_only BEFORE UPDATE OR DELETE ON incident_events
  FOR EACH ROW EXECUTE FUNCTION opspilot_append_only();

-- Slack (slack/): one message per incident, posted once and then edited.
CREATE TABLE slack_messages (
  incident_id  text PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
  channel      text NOT NULL,
  ts           text,                              -- null in post-only (webhook) mode: it cannot be edited
  posted_at    timestamptz NOT NULL
);

-- What is still to be said in Slack, so a restart or an outage of Slack loses nothing. `message`
-- posts or edits the incident's message (one pending per incident: later changes bump `version`
-- and the worker renders the incident as it is then); `thread` is a reply under it; `approval`
-- asks a person to approve a remediation attempt.
CREATE TABLE notifications (
  id               text PRIMARY KEY,              -- ULID: order
  incident_id      text NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
  kind             text NOT NULL CHECK (kind IN ('message', 'thread', 'approval')),
  body             text,                          -- thread: the reply (mrkdwn, escaped); approval: the attempt id; message: 'silenced' once a silence held it
  version          integer NOT NULL DEFAULT 1,
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL,
  locked_until     timestamptz,
  done_at          timestamptz,
  error            text
);
CREATE UNIQUE INDEX notifications_pending_message ON notifications (incident_id) WHERE kind = 'message' AND done_at IS NULL;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE done_at IS NULL;

-- Fingerprints muted from Slack (the Ignore button): incidents are still recorded, not posted.
CREATE TABLE fingerprint_mutes (
  agent_id        text REFERENCES agents(id) ON DELETE CASCADE,
  integration_id  text REFERENCES integrations(id) ON DELETE CASCADE,
  type            text NOT NULL,
  source          text NOT NULL,
  until           timestamptz NOT NULL,
  muted_by        text NOT NULL,
  muted_at        timestamptz NOT NULL,
  CONSTRAINT fingerprint_mutes_subject_check CHECK ((agent_id IS NULL) <> (integration_id IS NULL))
);
CREATE UNIQUE INDEX fingerprint_mutes_agent ON fingerprint_mutes (agent_id, type, source) WHERE agent_id IS NOT NULL;
CREATE UNIQUE INDEX fingerprint_mutes_external ON fingerprint_mutes (integration_id, source) WHERE integration_id IS NOT NULL;

-- Slack interactions already acted on (trigger id, action time, action id): a signed click
-- replayed within Slack's 5-minute window runs nothing. Kept for an hour.
CREATE TABLE slack_interactions (
  key      text PRIMARY KEY,
  seen_at  timestamptz NOT NULL
);
CREATE INDEX slack_interactions_seen_at ON slack_interactions (seen_at);

-- Settings that must survive restarts and be the same on every hub (the autonomy kill switch).
CREATE TABLE system_settings (
  key         text PRIMARY KEY,
  value       jsonb NOT NULL,
  updated_at  timestamptz NOT NULL,
  updated_by  text NOT NULL
);

-- Remediation (remediation/): rules that act on incidents by themselves, within limits.
CREATE TABLE remediation_rules (
  id                text PRIMARY KEY,
  name              text NOT NULL UNIQUE,
  match             jsonb NOT NULL,                -- {type?, source? (glob), severity?, category?, agent_id?, labels?}
  action            jsonb NOT NULL,                -- {command, params} ("{{source}}" whole-value templates)
  mode              text NOT NULL CHECK (mode IN ('auto', 'approve')),
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

-- Incidents opened or reopened whose remediation rules the leader has not consulted yet: written
-- in the transaction that opens or reopens one, deleted once the rules decided.
CREATE TABLE remediation_queue (
  incident_id  text PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
  queued_at    timestamptz NOT NULL
);
CREATE INDEX remediation_queue_order ON remediation_queue (queued_at, incident_id);

-- Each time a rule acted (or asked to): what, on which incident, and how it ended.
CREATE TABLE remediation_attempts (
  id           text PRIMARY KEY,
  rule_id      text NOT NULL,
  rule_name    text NOT NULL,
  incident_id  text NOT NULL,
  agent_id     text NOT NULL,
  type         text NOT NULL,
  source       text NOT NULL,
  command      text NOT NULL,
  params       jsonb NOT NULL,
  status       text NOT NULL CHECK (status IN ('awaiting_approval', 'running', 'verifying', 'verified', 'failed', 'rejected')),
  exec_id      text,
  decided_by   text,                               -- approve mode: who approved or rejected
  created_at   timestamptz NOT NULL,
  started_at   timestamptz,
  verify_by    timestamptz,
  finished_at  timestamptz,
  outcome      text
);
CREATE INDEX remediation_attempts_rule ON remediation_attempts (rule_id, created_at DESC);
CREATE INDEX remediation_attempts_fingerprint ON remediation_attempts (agent_id, type, source, created_at DESC);
CREATE INDEX remediation_attempts_verifying ON remediation_attempts (verify_by) WHERE status = 'verifying';

-- A fingerprint whose automatic fix failed: no further automatic attempts until a person acts
-- (acknowledges or resolves one of its incidents).
CREATE TABLE autonomy_holds (
  agent_id     text NOT NULL,
  type         text NOT NULL,
  source       text NOT NULL,
  incident_id  text NOT NULL,
  since        timestamptz NOT NULL,
  reason       text NOT NULL,
  PRIMARY KEY (agent_id, type, source)
);

-- Silences and maintenance windows: one-off (starts_at..ends_at) or recurring (a cron expression
-- opening a window of duration_s, from starts_at, until ends_at or for good). No notification, no
-- automatic action; the incidents are still recorded, and those still open are notified when the
-- silence ends.
CREATE TABLE silences (
  id           text PRIMARY KEY,
  match        jsonb NOT NULL,
  starts_at    timestamptz NOT NULL,
  ends_at      timestamptz,
  cron         text,
  duration_s   integer,
  reason       text NOT NULL,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL,
  deleted_at   timestamptz,
  CONSTRAINT silences_recurring_check CHECK ((cron IS NULL) = (duration_s IS NULL)),
  CONSTRAINT silences_end_check CHECK (ends_at IS NOT NULL OR cron IS NOT NULL),
  CONSTRAINT silences_window_check CHECK (ends_at IS NULL OR ends_at > starts_at)
);

-- Heartbeat checks for cron jobs and timers (heartbeats/): each expects a success ping on a
-- schedule (every period_s, or on a cron expression in time zone tz) and is down when none came
-- within grace_s after it was due (or after a run started). due_at and down_at are when it next
-- turns late and down: the hub evaluates them from the database, so restarts lose nothing.
-- Their incidents belong to the hub's own integration of kind 'heartbeat', keyed by check id.
CREATE TABLE heartbeat_checks (
  id               text PRIMARY KEY,
  ping_key         text NOT NULL UNIQUE,            -- the UUID in /ping/<ping_key>: whoever has it can ping
  name             text NOT NULL UNIQUE,
  period_s         integer CHECK (period_s BETWEEN 60 AND 31536000),
  cron             text,
  tz               text NOT NULL DEFAULT 'UTC',
  grace_s          integer NOT NULL CHECK (grace_s BETWEEN 60 AND 31536000),
  service          text,
  host             text,                            -- links its incidents to the agent on this host
  labels           jsonb NOT NULL DEFAULT '{}',
  status           text NOT NULL CHECK (status IN ('new', 'up', 'started', 'late', 'down', 'paused')),
  last_ping_at     timestamptz,
  last_success_at  timestamptz,
  started_at       timestamptz,                     -- a run said /start and has not ended
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

-- Each ping: success, start, fail (or an exit status), or log; a POST's body is the run's output
-- (the first 100 KB). Kept as long as received envelope ids.
CREATE TABLE heartbeat_pings (
  id           text PRIMARY KEY,                    -- ULID: time order
  check_id     text NOT NULL REFERENCES heartbeat_checks(id) ON DELETE CASCADE,
  at           timestamptz NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('success', 'start', 'fail', 'log')),
  exit_status  integer CHECK (exit_status BETWEEN 0 AND 255),
  rid          text,
  duration_ms  integer,                             -- from its run's start, when there was one
  body         text,
  body_bytes   integer NOT NULL DEFAULT 0
);
CREATE INDEX heartbeat_pings_check ON heartbeat_pings (check_id, id DESC);
CREATE INDEX heartbeat_pings_at ON heartbeat_pings (at);

-- Uptime monitors (monitors/): an HTTP, TCP, DNS or TLS check (packages/checks) run every
-- interval_s from where run_on says ("hub" for now), judged by its conditions (Gatus-style text,
-- parsed when saved). A location is down after failure_threshold failures in a row and up after
-- success_threshold successes; the monitor is down when quorum locations are (default: a
-- majority), unknown while none has a state. next_run_at is when the hub runs it next. Their
-- incidents belong to the hub's own integration of kind 'monitor', keyed by monitor id.
CREATE TABLE monitors (
  id                 text PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  kind               text NOT NULL CHECK (kind IN ('http', 'tcp', 'dns', 'tls')),
  target             text NOT NULL,                 -- http(s): a URL; tcp, tls: host:port; dns: a name
  interval_s         integer NOT NULL CHECK (interval_s BETWEEN 10 AND 86400),
  timeout_ms         integer NOT NULL CHECK (timeout_ms BETWEEN 100 AND 60000),
  run_on             jsonb NOT NULL,                -- "hub"
  quorum             integer CHECK (quorum >= 1),
  conditions         jsonb NOT NULL DEFAULT '[]',
  options            jsonb NOT NULL DEFAULT '{}',   -- {http?, dns?, tls?}: as packages/checks' CheckSpec
  failure_threshold  integer NOT NULL CHECK (failure_threshold BETWEEN 1 AND 100),
  success_threshold  integer NOT NULL CHECK (success_threshold BETWEEN 1 AND 100),
  cert_warn_days     integer NOT NULL CHECK (cert_warn_days BETWEEN 0 AND 365),  -- a certificate this close to expiry opens a low incident
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

-- Where a monitor runs from ('hub', or an agent's id) and that location's state.
CREATE TABLE monitor_locations (
  monitor_id        text NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
  location          text NOT NULL,
  state             text NOT NULL CHECK (state IN ('up', 'down', 'unknown')),
  failures          integer NOT NULL DEFAULT 0,     -- in a row
  successes         integer NOT NULL DEFAULT 0,     -- in a row
  last_result_at    timestamptz,
  last_ok           boolean,
  last_status       integer,
  last_response_ms  real,
  last_error        text,
  PRIMARY KEY (monitor_id, location)
);

-- Every check result. Kept for OPSPILOT_METRICS_RETENTION_DAYS.
CREATE TABLE monitor_results (
  id               text PRIMARY KEY,                -- ULID: time order
  monitor_id       text NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
  location         text NOT NULL,
  at               timestamptz NOT NULL,
  ok               boolean NOT NULL,
  status           integer,
  response_ms      real,
  error            text,
  cert_expires_at  timestamptz,
  -- 0 for a result as checked; 3600 for an hour of one location's results downsampled into one
  -- row (retention), which counts its checks and the ok ones (ok: all were), the mean response
  -- time in response_ms and the slowest in max_response_ms.
  period_s         integer NOT NULL DEFAULT 0,
  checks           integer NOT NULL DEFAULT 1,
  ok_checks        integer,
  max_response_ms  real
);
CREATE INDEX monitor_results_monitor ON monitor_results (monitor_id, at);
CREATE INDEX monitor_results_at ON monitor_results (at);
