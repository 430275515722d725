-- 0009: several hubs on one PostgreSQL (issue 16). Each hub is a row renewed while it lives (its
-- lease); each agent names the hub holding its connection, and a counter that grows with every
-- connection, so an older connection on another hub knows it was replaced.

CREATE TABLE hubs (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  started_at  timestamptz NOT NULL,
  lease_until timestamptz NOT NULL,
  agents      integer NOT NULL DEFAULT 0
);

ALTER TABLE agents ADD COLUMN hub_id text;
ALTER TABLE agents ADD COLUMN conn_epoch bigint NOT NULL DEFAULT 0;
CREATE INDEX agents_hub ON agents (hub_id) WHERE hub_id IS NOT NULL;
