-- 0010: incidents waiting for the remediation rules (issue 16). Written in the transaction that
-- opens or reopens an incident, so a hub that dies before the rules were consulted loses nothing:
-- the leader works the queue, and a new leader finds what the old one left.

CREATE TABLE remediation_queue (
  incident_id  text PRIMARY KEY REFERENCES incidents(id) ON DELETE CASCADE,
  queued_at    timestamptz NOT NULL
);
CREATE INDEX remediation_queue_order ON remediation_queue (queued_at, incident_id);
