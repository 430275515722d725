-- 0008: dashboard sign-ins (issue 15): an API token exchanged for a session held in an HttpOnly
-- cookie. Only the session id's hash is kept; a session acts with its token's scope while the
-- token exists.

CREATE TABLE sessions (
  id_hash     text PRIMARY KEY,
  token_hash  text NOT NULL,
  actor       text NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_hash);
CREATE INDEX sessions_expires ON sessions (expires_at);
