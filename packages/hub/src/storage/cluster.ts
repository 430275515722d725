import { sql, type RawBuilder } from 'kysely';
import type pg from 'pg';
import { newId } from '@opspilot/protocol';
import type { Db } from './database.ts';

/**
 * Several hubs on one PostgreSQL: what they share, in SQL. Each hub is a `hubs` row whose lease it
 * renews (the database's clock, so hubs need not agree on time); each agent names the hub holding
 * its connection and a counter that grows with every connection. Messages between hubs go by
 * LISTEN/NOTIFY on one channel, and the hub that does the background work holds an advisory lock:
 * both on one dedicated connection (`ClusterSession`), so when a hub dies the server drops its
 * session and the lock passes at once.
 *
 * Channel and lock are derived from the schema in use, so hubs in different schemas of one
 * database (the tests do this) never meet.
 */

/** What a dead or stopped hub leaves to the others, and whether a hub still lives. */
export interface AgentRoute {
  /** The hub holding the agent's connection, if any. */
  hubId: string | null;
  /** That hub's lease is current. */
  alive: boolean;
}

export async function registerHub(db: Db, hub: { id: string; name: string; startedAt: Date; leaseMs: number }): Promise<void> {
  await sql`
    INSERT INTO hubs (id, name, started_at, lease_until)
    VALUES (${hub.id}, ${hub.name}, ${hub.startedAt.toISOString()}::timestamptz, now() + ${hub.leaseMs} * interval '1 millisecond')
    ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until`.execute(db);
}

/** Renew the lease (and say how many agents the hub holds). False when the row is gone (then register again). */
export async function renewHub(db: Db, id: string, leaseMs: number, agents: number): Promise<boolean> {
  const r = await sql`UPDATE hubs SET lease_until = now() + ${leaseMs} * interval '1 millisecond', agents = ${agents} WHERE id = ${id}`.execute(db);
  return (r.numAffectedRows ?? 0n) > 0n;
}

/** A hub stops: its row goes and its agents are free at once. */
export async function removeHub(db: Db, id: string): Promise<void> {
  await sql`WITH gone AS (DELETE FROM hubs WHERE id = ${id} RETURNING id)
    UPDATE agents SET hub_id = NULL
    WHERE id IN (SELECT id FROM agents WHERE hub_id = ${id} ORDER BY id FOR NO KEY UPDATE) AND hub_id = ${id}`.execute(db);
}

/** Hubs whose lease ran out: rows removed, their agents freed. Returns their ids. */
export async function expireHubs(db: Db): Promise<string[]> {
  const r = await sql<{ id: string }>`
    WITH dead AS (DELETE FROM hubs WHERE lease_until < now() RETURNING id),
    freed AS (
      UPDATE agents SET hub_id = NULL
      WHERE id IN (SELECT id FROM agents WHERE hub_id IN (SELECT id FROM dead) ORDER BY id FOR NO KEY UPDATE) AND hub_id IN (SELECT id FROM dead)
    )
    SELECT id FROM dead`.execute(db);
  return r.rows.map((row) => row.id);
}

export interface HubRow {
  id: string;
  name: string;
  started_at: Date;
  lease_until: Date;
  agents: number;
  alive: boolean;
}

export async function listHubs(db: Db): Promise<HubRow[]> {
  const r = await sql<HubRow>`SELECT id, name, started_at, lease_until, agents, lease_until > now() AS alive FROM hubs ORDER BY started_at, id`.execute(db);
  return r.rows;
}

/** The hubs' NOTIFY channel, and the sending hub's id: for a statement that tells the others what it wrote. */
export interface ClusterChannel {
  channel: string;
  from: string;
}

export interface AgentClaim {
  agentId: string;
  /** When its connection was accepted: its connection and last-seen times. */
  at: Date;
}

export interface ClaimResult {
  epoch: number;
  previousHub: string | null;
  offlineOpen: boolean;
}

/**
 * Agents connected to this hub: each is this hub's now, with its next connection number, and its
 * connection and last-seen times; each connection goes on the audit trail, and the hub that held
 * the agent before, if another, is told (`replaced`) when `notice` is given. One statement and one
 * commit for all (a reconnect storm brings thousands a second). Returns, per claim in order, that
 * number, the previous hub and whether an "agent offline" incident is open (to be resolved);
 * undefined for an agent that does not exist. Each agent at most once. The rows are locked in id
 * order, as every statement that writes several agents locks them (a bulk write, a hub's agents
 * freed), so two such statements over the same agents wait for each other instead of
 * deadlocking; concurrent claims of one agent take turns on its row, so numbers only grow.
 */
export async function claimAgents(
  db: Db,
  claims: readonly AgentClaim[],
  hubId: string,
  offline: { type: string; source: string },
  notice?: ClusterChannel | null,
): Promise<(ClaimResult | undefined)[]> {
  if (claims.length === 0) return [];
  const r = await claimStatement(claims, hubId, offline, notice).execute(db);
  const byId = new Map(r.rows.map((row) => [row.id, { epoch: Number(row.epoch), previousHub: row.previous_hub, offlineOpen: row.offline_open }]));
  return claims.map((c) => byId.get(c.agentId));
}

/** The statement claimAgents runs (tests read its plan). */
export function claimStatement(
  claims: readonly AgentClaim[],
  hubId: string,
  offline: { type: string; source: string },
  notice?: ClusterChannel | null,
): RawBuilder<{ id: string; epoch: string | number; previous_hub: string | null; offline_open: boolean }> {
  const req = claims.map((c) => ({ id: c.agentId, at: c.at.toISOString(), event_id: newId() }));
  const told = notice
    ? sql`, told AS (
      SELECT pg_notify(${notice.channel}, json_build_object('k', 'replaced', 'agent', id, 'epoch', epoch, 'from', ${notice.from}::text, 'to', previous_hub)::text)
      FROM claimed WHERE previous_hub IS NOT NULL AND previous_hub <> ${hubId}
    )`
    : sql``;
  return sql<{ id: string; epoch: string | number; previous_hub: string | null; offline_open: boolean }>`
    WITH req AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(req)}::json) AS v(id text, at timestamptz, event_id text)
    ), claimed AS (
      UPDATE agents a SET hub_id = ${hubId}, conn_epoch = a.conn_epoch + 1, connected_at = req.at, last_seen_at = req.at
      FROM (SELECT id, hub_id FROM agents WHERE id IN (SELECT id FROM req) ORDER BY id FOR NO KEY UPDATE) old, req
      WHERE a.id = old.id AND req.id = old.id
      RETURNING a.id, a.conn_epoch AS epoch, old.hub_id AS previous_hub, req.at, req.event_id
    ), audit AS (
      INSERT INTO incident_events (id, incident_id, agent_id, at, actor, kind)
      SELECT event_id, NULL, id, at, 'hub', 'agent_connected' FROM claimed
    )${told}
    SELECT c.id, c.epoch, c.previous_hub,
      EXISTS (SELECT 1 FROM incidents i WHERE i.agent_id = c.id AND i.type = ${offline.type} AND i.source = ${offline.source} AND i.status <> 'resolved') AS offline_open
    FROM claimed c${notice ? sql`, (SELECT count(*) FROM told) t` : sql``}`;
}

export interface AgentRelease {
  agentId: string;
  /** The closed connection's number on this hub, if its claim had returned: the agent is nobody's then, unless a newer connection took it. */
  epoch: number | null;
  /** The disconnection on the audit trail: when, and the close code. */
  closed?: { at: Date; code: number | null };
}

/**
 * Agents' connections on this hub closed: each agent is freed (unless a newer connection took it)
 * and its disconnection goes on the audit trail, for all in one statement and one commit (a hub
 * that stops, or a client network that drops, loses thousands at once). The rows are locked in
 * id order, as in every statement that writes several agents. Each agent at most once.
 */
export async function releaseAgents(db: Db, releases: readonly AgentRelease[], hubId: string): Promise<void> {
  if (releases.length === 0) return;
  await releaseStatement(releases, hubId).execute(db);
}

/** The statement releaseAgents runs (tests read its plan). */
export function releaseStatement(releases: readonly AgentRelease[], hubId: string): RawBuilder<unknown> {
  const req = releases.map((r) => ({ id: r.agentId, epoch: r.epoch, at: r.closed?.at.toISOString() ?? null, code: r.closed?.code ?? null, event_id: r.closed ? newId() : null }));
  return sql`
    WITH req AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(req)}::json) AS v(id text, epoch bigint, at timestamptz, code integer, event_id text)
    ), freed AS (
      UPDATE agents a SET hub_id = NULL
      FROM (
        SELECT m.id, m.hub_id, m.conn_epoch, r.epoch FROM agents m JOIN req r ON r.id = m.id
        WHERE r.epoch IS NOT NULL ORDER BY m.id FOR NO KEY UPDATE OF m
      ) mine
      -- Which rows are still this connection's is read from the locked rows, not filtered on
      -- agents: a filter on hub_id let the planner guess one row (its statistics from before the
      -- claims) and loop over the request for each of thousands. Rows another hub holds now are
      -- locked, not changed.
      WHERE a.id = mine.id AND mine.hub_id = ${hubId} AND mine.conn_epoch = mine.epoch
    )
    INSERT INTO incident_events (id, incident_id, agent_id, at, actor, kind, detail)
    SELECT event_id, NULL, id, at, 'hub', 'agent_disconnected', jsonb_build_object('code', code) FROM req WHERE event_id IS NOT NULL`;
}

/** Where an agent is connected, if it exists. */
export async function agentRoute(db: Db, agentId: string): Promise<AgentRoute | undefined> {
  const r = await sql<{ hub_id: string | null; alive: boolean | null }>`
    SELECT a.hub_id, h.lease_until > now() AS alive FROM agents a LEFT JOIN hubs h ON h.id = a.hub_id WHERE a.id = ${agentId}`.execute(db);
  const row = r.rows[0];
  return row ? { hubId: row.hub_id, alive: row.alive === true } : undefined;
}

/** Send one message to every hub listening (delivered when this statement commits). */
export async function notifyHubs(db: Db, channel: string, payload: string): Promise<void> {
  await sql`SELECT pg_notify(${channel}, ${payload})`.execute(db);
}

/** The channel and lock of the schema this connection works in. */
export async function clusterNames(db: Db): Promise<{ channel: string; lockKey: number }> {
  const r = await sql<{ channel: string; lock_key: number }>`
    SELECT 'opspilot_' || substr(md5(current_schema()), 1, 16) AS channel, hashtext(current_schema()) AS lock_key`.execute(db);
  return { channel: r.rows[0]!.channel, lockKey: r.rows[0]!.lock_key };
}

/** The first half of the leader lock's key: the second is the schema's. */
const LEADER_LOCK = 4242002;

/**
 * A hub's own connection for what must live and die with it: LISTEN on the channel, and the
 * leader lock. `lost` is called once if the connection fails (the server restarted, the network
 * dropped): the lock is gone with it.
 */
export class ClusterSession {
  #client: pg.Client;
  #closed = false;

  private constructor(client: pg.Client) {
    this.#client = client;
  }

  static async open(client: pg.Client, channel: string, on: { message(payload: string): void; lost(err: Error): void }): Promise<ClusterSession> {
    if (!/^opspilot_[0-9a-f]{16}$/.test(channel)) throw new Error(`bad channel name ${channel}`);
    const session = new ClusterSession(client);
    let lost = false;
    const fail = (err: Error) => {
      if (lost || session.#closed) return;
      lost = true;
      on.lost(err);
    };
    client.on('error', fail);
    client.on('end', () => fail(new Error('the cluster connection ended')));
    client.on('notification', (n) => {
      if (n.channel === channel && n.payload !== undefined) on.message(n.payload);
    });
    await client.connect();
    await client.query(`LISTEN ${channel}`);
    return session;
  }

  /** Take the leader lock if nobody holds it; true when this session holds it. */
  async tryLead(lockKey: number): Promise<boolean> {
    const r = await this.#client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LEADER_LOCK, lockKey]);
    return r.rows[0]?.ok === true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client.end().catch(() => {});
  }
}
