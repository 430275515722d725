import type { ServerResponse } from 'node:http';
import websocket from '@fastify/websocket';
import { CLOSE_CODES } from '@opspilot/protocol';
import type { Clock } from '../clock.ts';
import { bearerToken, hashToken, hashesEqual } from '../auth/tokens.ts';
import type { App } from '../http.ts';
import type { HubConfig } from '../config.ts';
import type { HubEvents } from '../events.ts';
import type { LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import type { AgentRegistry } from './registry.ts';
import type { IngestWriter } from './writer.ts';
import { HubError } from '../errors.ts';
import { findAgentIdsByTokenHashes } from '../storage/agents.ts';
import { claimAgents, releaseAgents, type AgentClaim, type AgentRelease, type ClaimResult } from '../storage/cluster.ts';
import { Coalescer, CoalescerClosedError } from './coalesce.ts';
import type { Cluster } from '../cluster.ts';
import { OFFLINE_FINGERPRINT, agentReturned } from '../incidents/offline.ts';
import { AgentConnection, type AuthenticatedAgent, type ConnectionContext } from './connection.ts';
import { ReadBudget } from './read-budget.ts';
import { PingWheel } from './ping-wheel.ts';

const FRAMES_PER_TURN = 1000; // ~30 ms of decoding, then others get the event loop
const RESUMES_PER_TURN = 16;
/** Token lookups, claims, and releases, that share one statement at most. */
const COALESCE_MAX = 500;
/** A stopping hub waits this long at most for its agents' sockets to close (a peer that never answers the close handshake is cut off after 2 s). */
const CLOSE_WAIT_MS = 2500;

declare module 'fastify' {
  interface FastifyRequest {
    agentAuth: AuthenticatedAgent | null;
    /** The upgrade's raw response, until the connection lets go of it. */
    upgradeResponse: ServerResponse | null;
  }
}

/** Pings go out in slices this often, spread over the ping interval. */
const PING_TICK_MS = 25;

/**
 * `GET /v1/stream`: the agents' WebSocket. A bearer token is checked before the upgrade (a bad
 * one gets HTTP 401 and no socket); without a header the first frame must carry the token.
 */
export interface StreamDeps {
  config: Readonly<HubConfig>;
  clock: Clock;
  db: Db;
  registry: AgentRegistry;
  writer: IngestWriter;
  lifecycle: LifecycleOptions;
  events: HubEvents;
  /** This hub among the others on the database: an agent's newer connection on another hub closes the one here. */
  cluster: Pick<Cluster, 'hubId' | 'channel' | 'on'>;
  /** An agent said hello (its message set is known). */
  onHello?(conn: AgentConnection): void;
  /** Filled with the connections' coalesced statements by kind, for `/metrics`. */
  coalesced?: Map<CoalescedKind, CoalescerView>;
}

/** What the agents' connections ask the database many at a time (see ingest/coalesce.ts). */
export type CoalescedKind = 'token_lookup' | 'claim' | 'release';
export type CoalescerView = Pick<Coalescer<unknown, unknown>, 'stats' | 'waiting'>;

/**
 * The agents' surface as a Fastify plugin that owns its lifetime: the WebSocket server (no
 * per-message deflate: payloads carry their own gzip), the route, the pinger; on close it tells
 * every agent the hub is restarting (1012) so they come back with backoff, and stops pinging.
 */
export async function streamPlugin(scope: App, deps: StreamDeps): Promise<void> {
  await scope.register(websocket, {
    options: { maxPayload: deps.config.maxFrameBytes, perMessageDeflate: false },
    preClose(done) {
      for (const conn of deps.registry.connections()) conn.close(CLOSE_CODES.restarting, 'hub restarting');
      for (const client of scope.websocketServer.clients) client.close(CLOSE_CODES.restarting, 'hub restarting');
      done();
    },
  });
  streamRoute(scope, deps);
}

function streamRoute(app: App, { config, clock, db, registry, writer, lifecycle, events, cluster, onHello, coalesced }: StreamDeps): void {
  // Another hub took one of this hub's agents: the connection here, if older, is closed as replaced.
  cluster.on('replaced', (msg) => {
    const conn = registry.get(msg.agent);
    if (conn && conn.connectionNumber !== null && conn.connectionNumber < msg.epoch) conn.close(CLOSE_CODES.replaced, 'replaced by a newer connection');
  });

  // When a hub dies, its agents come to the others thousands a second: their token lookups go
  // to the database together, and so do their claims (one commit for many, not one each).
  const lookups = new Coalescer((hashes: string[]) => findAgentIdsByTokenHashes(db, hashes), { maxBatch: COALESCE_MAX });
  const claims = new Coalescer(
    (batch: AgentClaim[]) => claimAgents(db, batch, cluster.hubId, OFFLINE_FINGERPRINT, cluster.channel),
    { maxBatch: COALESCE_MAX, key: (c: AgentClaim) => c.agentId },
  );

  // Closed connections: each agent freed (unless a newer connection took it) and its
  // disconnection audited, many in one statement (a stopping hub closes thousands at once).
  const releases = new Coalescer((batch: AgentRelease[]) => releaseAgents(db, batch, cluster.hubId).then(() => batch.map(() => undefined)), {
    maxBatch: COALESCE_MAX,
    key: (r: AgentRelease) => r.agentId,
  });
  coalesced?.set('token_lookup', lookups);
  coalesced?.set('claim', claims);
  coalesced?.set('release', releases);
  const release = (r: AgentRelease) =>
    releases.request(r).catch((err) => {
      // Closed: the hub stopped, and its agents were freed with it.
      if (!(err instanceof CoalescerClosedError)) app.log.warn({ err, agentId: r.agentId }, 'could not record the disconnection');
    });
  // Authenticated connections not yet closed: a stopping hub waits for them before its last releases.
  let authenticated = 0;
  let allClosed: (() => void) | null = null;

  async function authenticate(token: string): Promise<AuthenticatedAgent | undefined> {
    const hash = hashToken(token);
    const row = await lookups.request(hash);
    return row && hashesEqual(row.token_hash, hash) ? { agentId: row.id, tokenHash: row.token_hash } : undefined;
  }

  // Header-less connections that have not authenticated yet: they cost a socket and a timer each
  // for up to authTimeoutMs, before anyone knows who they are. Bounded.
  const unauthenticated = new Set<AgentConnection>();
  const pingWheel = new PingWheel<AgentConnection>(config.pingIntervalMs, Math.min(PING_TICK_MS, config.pingIntervalMs));

  const ctx: ConnectionContext = {
    clock,
    limits: { maxFrameBytes: config.maxFrameBytes, maxPayloadBytes: config.maxPayloadBytes },
    authTimeoutMs: config.authTimeoutMs,
    badFramesPerMinute: config.badFramesPerMinute,
    alertsPerMinute: config.alertsPerMinute,
    bulkPerMinute: config.bulkPerMinute,
    metricSamplesPerMinute: config.metricSamplesPerMinute,
    heartbeatIntervalS: config.heartbeatIntervalS,
    writer,
    readBudget: new ReadBudget(FRAMES_PER_TURN, RESUMES_PER_TURN),
    log: app.log,
    authenticate,
    ...(onHello ? { onHello } : {}),
    onAuthenticated(conn) {
      unauthenticated.delete(conn);
      authenticated++;
      const agentId = conn.agentId!;
      registry.register(agentId, conn)?.close(CLOSE_CODES.replaced, 'replaced by a newer connection');
      pingWheel.add(conn);
      app.log.info({ agentId }, 'agent connected');
      // The agent is this hub's now (numbered, so the newest connection wins on every hub), its
      // connection on the audit trail, and its offline incident, if one is open, resolved.
      // The hub that held it before, if another, is told in the same statement (`replaced`).
      claims.request({ agentId, at: conn.connectedAt! }).then(
        (claim: ClaimResult | undefined) => {
          if (!claim) return;
          conn.connectionNumber = claim.epoch;
          if (!conn.isOpen) void release({ agentId, epoch: claim.epoch });
          if (!claim.offlineOpen) return;
          agentReturned(db, lifecycle, agentId, conn.connectedAt!).then(
            (resolved) => resolved && events.emit('incident.changed', { incidentIds: [resolved], opened: [] }),
            (err) => app.log.warn({ err, agentId }, 'could not resolve the offline incident'),
          );
        },
        (err) => app.log.warn({ err, agentId }, 'could not record connection'),
      );
    },
    onClosed(conn) {
      unauthenticated.delete(conn);
      if (conn.agentId === null) return;
      registry.unregister(conn.agentId, conn);
      pingWheel.delete(conn);
      app.log.info({ agentId: conn.agentId, code: conn.closeCode }, 'agent disconnected');
      const agentId = conn.agentId;
      // Without a number yet, the claim frees it when it returns.
      void release({ agentId, epoch: conn.connectionNumber, closed: { at: clock.now(), code: conn.closeCode } });
      if (--authenticated === 0) allClosed?.();
    },
  };

  app.decorateRequest('agentAuth', null);
  app.decorateRequest('upgradeResponse', null);

  app.get(
    '/v1/stream',
    {
      websocket: true,
      schema: { hide: true },
      preValidation: async (req, reply) => {
        req.upgradeResponse = reply.raw;
        const header = req.headers.authorization;
        if (header === undefined) {
          // Compatible path: the first frame carries the token.
          if (unauthenticated.size >= config.maxUnauthenticated) throw new HubError('HUB_UNAVAILABLE', 'too many connections waiting to authenticate; try again later');
          return;
        }
        const token = bearerToken(header);
        const agent = token === undefined ? undefined : await authenticate(token);
        if (!agent) throw new HubError('HUB_UNAUTHORIZED', 'invalid agent token');
        req.agentAuth = agent;
      },
    },
    (socket, req) => {
      // @fastify/websocket keeps the upgrade's request and reply for the connection's whole life:
      // its error listener closes over them, and the raw response stays assigned to the TCP
      // socket (which holds the raw request too): ~2 KB an agent, 20 MB at 10,000. The connection
      // needs neither. Its socket errors end in 'close', which the connection handles.
      socket.removeAllListeners('error');
      socket.on('error', (err) => app.log.debug({ err }, 'agent socket error'));
      const tcp = req.raw.socket;
      if (req.upgradeResponse && tcp) req.upgradeResponse.detachSocket(tcp);
      req.upgradeResponse = null;
      const conn = new AgentConnection(socket, ctx, req.agentAuth ?? undefined);
      if (!req.agentAuth && conn.agentId === null) unauthenticated.add(conn);
    },
  );

  // Ping every connection once an interval; one that let two pings pass without a pong or a
  // frame is gone. A connection the hub itself paused is not judged: its pongs are waiting
  // unread. The pings are spread evenly over the interval, a few every tick (the wheel): pinging
  // 10,000 sockets in one loop held the event loop for hundreds of milliseconds, and a tick every
  // 250 ms still wrote ~280 pings at once at 16,700 agents (15-60 ms during which every exec and
  // ack waited); every 25 ms it is ~28.
  const pinger = setInterval(
    () =>
      pingWheel.due(performance.now(), (conn) => {
        if (!conn.isOpen || conn.paused) return;
        // Message set 3: an agent heard from since the last round is alive; only quiet ones are
        // pinged (a heartbeat every 10 s against a ping every 15 s: most agents, most rounds).
        const heard = conn.heardSincePing;
        conn.heardSincePing = false;
        if (heard && conn.protocol >= 3) return;
        if (conn.missedPongs >= 2) {
          conn.close(CLOSE_CODES.timeout, 'no pong');
          return;
        }
        conn.missedPongs++;
        conn.socket.ping();
      }),
    pingWheel.tickMs,
  );
  app.addHook('onClose', async () => {
    clearInterval(pinger);
    // preClose told every agent to go (1012): their disconnections are audited before the
    // database closes, in a few statements, once their sockets have closed.
    if (authenticated > 0) {
      await new Promise<void>((resolve) => {
        allClosed = resolve;
        setTimeout(resolve, CLOSE_WAIT_MS).unref();
      });
    }
    await releases.close();
  });
}
