import os from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type pg from 'pg';
import { ID_PATTERN, newId, type ExecParams } from '@opspilot/protocol';
import { HUB_EVENT_NAMES, type HubEventMap, type HubEventName, type HubEvents } from './events.ts';
import type { Db } from './storage/database.ts';
import { ClusterSession, clusterNames, expireHubs, notifyHubs, registerHub, removeHub, renewHub } from './storage/cluster.ts';
import type { ClusterChannel } from './storage/cluster.ts';

/** An exec asked at one hub for an agent connected to another. */
export interface ForwardedExec {
  id: string;
  agent: string;
  command: string;
  params: ExecParams;
  timeout_ms: number;
}

/** What hubs say to each other (PostgreSQL NOTIFY, one channel; `to` names one hub, else all hear it). */
export type ClusterMessage =
  | { k: 'event'; name: HubEventName; data: unknown }
  | ({ k: 'exec' } & ForwardedExec)
  | { k: 'exec_sent'; id: string }
  | { k: 'exec_refused'; id: string; code: 'HUB_AGENT_OFFLINE' | 'HUB_EXEC_NOT_IN_CATALOGUE' | 'HUB_EXEC_NOT_DELIVERED'; message: string }
  | { k: 'exec_done'; ids: string[] }
  | { k: 'replaced'; agent: string; epoch: number };
type Kind = ClusterMessage['k'];
type Handler<K extends Kind> = (msg: Extract<ClusterMessage, { k: K }>, from: string) => void;

/** What the leader runs and stops (the background work: exactly one hub does it). */
export interface Leadership {
  gained(): Promise<void>;
  lost(): Promise<void>;
}

export interface ClusterOptions {
  /** How long a hub's row stands without renewal (renewed every third of it). */
  leaseMs: number;
  /** How often a hub that is not the leader asks for the lock, and a lost connection is retried. */
  retryMs: number;
  /** Shown in GET /v1/hubs and the logs (default: host name and process id). */
  name?: string;
  /** The number of agents this hub holds, written with each renewal. */
  agents(): number;
}

/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more. */
export const MAX_MESSAGE_BYTES = 7900;

/**
 * This hub among the others on one database. It registers itself with a lease; listens for the
 * others' messages (execs for agents it holds, results for execs it forwarded, connections it
 * must close, events); and holds the leader lock when it can: the leader runs the background
 * work, so that work is done once. On the embedded database there is one hub: it leads, and
 * nobody else is told anything.
 */
export class Cluster {
  readonly hubId = newId();
  readonly name: string;
  #leader = false;
  #session: ClusterSession | null = null;
  #names: { channel: string; lockKey: number } | null = null;
  #leadership: Leadership | null = null;
  #timer: NodeJS.Timeout | null = null;
  #ticking = false;
  #renewedAt = 0;
  /** When the database last answered this hub's upkeep (for /readyz without a query of its own). */
  #answeredAt = 0;
  #stopped = false;
  #change: Promise<void> = Promise.resolve();
  readonly #handlers = new Map<Kind, Handler<Kind>>();

  constructor(
    private readonly db: Db,
    private readonly dedicatedClient: (() => pg.Client) | null,
    private readonly opts: ClusterOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.name = opts.name ?? `${os.hostname()}:${process.pid}`;
  }

  /** Several hubs may share the database (PostgreSQL). */
  get shared(): boolean {
    return this.dedicatedClient !== null;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** The database answered this hub's own upkeep (every 5 s) within `ms`. */
  databaseAnsweredWithin(ms: number): boolean {
    return Date.now() - this.#answeredAt < ms;
  }

  on<K extends Kind>(k: K, handler: Handler<K>): void {
    this.#handlers.set(k, handler as unknown as Handler<Kind>);
  }

  /** Register, listen, and lead if nobody does (then `leadership.gained` has run when this resolves). */
  async start(leadership: Leadership): Promise<void> {
    this.#leadership = leadership;
    await registerHub(this.db, { id: this.hubId, name: this.name, startedAt: new Date(), leaseMs: this.opts.leaseMs });
    this.#renewedAt = this.#answeredAt = Date.now();
    if (this.shared) {
      this.#names = await clusterNames(this.db);
      await this.#connect();
    } else {
      await this.#gain();
    }
    this.#timer = setInterval(() => void this.#tick(), this.opts.retryMs);
    this.#timer.unref();
  }

  /** Stop: give up the lead (after `leadership.lost` ran), leave the table, free the agents. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#leader) await this.#lose('the hub is stopping');
    await this.#change;
    await removeHub(this.db, this.hubId).catch((err) => this.log.warn({ err }, 'could not remove this hub from the hubs table; its lease runs out'));
    await this.#session?.close();
    this.#session = null;
  }

  /** Tell one hub (`to`) or all the others something. */
  async send(to: string | undefined, msg: ClusterMessage): Promise<void> {
    const notice = this.encode(to, msg);
    if (notice) await notifyHubs(this.db, notice.channel, notice.payload);
  }

  /**
   * A message as the NOTIFY that carries it, for a statement that writes what the message is
   * about to send it too (one commit, and the others hear of the rows only once they are
   * there). Null while this hub talks to no other (the embedded database, or not started).
   */
  encode(to: string | undefined, msg: ClusterMessage): { channel: string; payload: string } | null {
    if (!this.#names) return null;
    const payload = JSON.stringify({ ...msg, from: this.hubId, ...(to ? { to } : {}) });
    if (Buffer.byteLength(payload) > MAX_MESSAGE_BYTES) throw new Error(`a cluster message of ${Buffer.byteLength(payload)} bytes is over ${MAX_MESSAGE_BYTES}`);
    return { channel: this.#names.channel, payload };
  }

  /**
   * Where a statement tells the others what it wrote (a stored result's `exec_done`, a claimed
   * agent's `replaced`), or null when there are none to tell.
   */
  get channel(): ClusterChannel | null {
    return this.#names ? { channel: this.#names.channel, from: this.hubId } : null;
  }

  /**
   * Every event published here is told to the other hubs too (their parts act on it as on their
   * own), in pieces that fit a message. Execs' results go as their ids (`exec_done`): the hub
   * waiting for one reads its row.
   */
  relay(events: HubEvents): void {
    if (!this.shared) return;
    events.relay = (name, event) => {
      let parts: ClusterMessage[];
      if (name === 'exec.finished') {
        // Usually told already, by the statement that stored the results (channel).
        const finished = event as HubEventMap['exec.finished'];
        parts = finished.announced ? [] : split({ ids: finished.execs.map((e) => e.id) }).map((p) => ({ k: 'exec_done' as const, ids: p.ids as string[] }));
      } else {
        parts = split(event as Record<string, unknown>).map((data) => ({ k: 'event' as const, name, data }));
      }
      for (const part of parts) this.send(undefined, part).catch((err) => this.log.warn({ err, event: name }, 'could not tell the other hubs of an event'));
    };
    this.on('event', (msg) => {
      const data = msg.data as Record<string, unknown>;
      if (msg.name === 'monitor.results') {
        const certificates = (data.certificates as { monitorId: string; expiresAt: string; at: string }[]).map((c) => ({ ...c, at: new Date(c.at) }));
        events.deliver('monitor.results', { ...(data as HubEventMap['monitor.results']), certificates });
        return;
      }
      events.deliver(msg.name, data as never);
    });
  }

  #receive(payload: string): void {
    let msg: (ClusterMessage & { from?: unknown; to?: unknown }) | undefined;
    try {
      msg = JSON.parse(payload) as ClusterMessage & { from?: unknown; to?: unknown };
    } catch {
      this.log.warn('a cluster message that is not JSON was ignored');
      return;
    }
    if (typeof msg !== 'object' || msg === null || typeof msg.from !== 'string' || msg.from === this.hubId) return;
    if (msg.to !== undefined && msg.to !== this.hubId) return;
    const handler = this.#handlers.get(msg.k);
    if (!handler) return;
    if (!wellFormed(msg)) {
      this.log.warn({ kind: msg.k, from: msg.from }, 'a malformed cluster message was ignored');
      return;
    }
    try {
      handler(msg, msg.from);
    } catch (err) {
      this.log.error({ err, kind: msg.k }, 'a cluster message handler failed');
    }
  }

  async #connect(): Promise<void> {
    const names = this.#names!;
    this.#session = await ClusterSession.open(this.dedicatedClient!(), names.channel, {
      message: (payload) => this.#receive(payload),
      lost: (err) => {
        this.#session = null;
        this.log.error({ err }, 'lost the connection to the other hubs; retrying');
        if (this.#leader) void this.#lose('the connection holding the leader lock was lost');
      },
    });
    if (await this.#session.tryLead(names.lockKey)) await this.#gain();
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return;
    this.#ticking = true;
    try {
      if (Date.now() - this.#renewedAt >= this.opts.leaseMs / 3) {
        const agents = this.opts.agents();
        if (!(await renewHub(this.db, this.hubId, this.opts.leaseMs, agents))) {
          await registerHub(this.db, { id: this.hubId, name: this.name, startedAt: new Date(), leaseMs: this.opts.leaseMs });
        }
        this.#renewedAt = this.#answeredAt = Date.now();
        if (this.#leader) {
          const dead = await expireHubs(this.db);
          if (dead.length > 0) this.log.warn({ hubs: dead }, 'hubs whose lease ran out were removed; their agents are free');
        }
      }
      if (!this.shared) return;
      if (!this.#session) await this.#connect();
      else if (!this.#leader && (await this.#session.tryLead(this.#names!.lockKey))) await this.#gain();
    } catch (err) {
      this.log.warn({ err }, 'cluster upkeep failed; retrying');
    } finally {
      this.#ticking = false;
    }
  }

  async #gain(): Promise<void> {
    if (this.#stopped) return;
    this.#leader = true;
    if (this.shared) this.log.info({ hub: this.hubId }, 'this hub leads: it runs the background work');
    this.#change = this.#change.then(() => this.#leadership!.gained()).catch((err) => this.log.error({ err }, 'could not start the background work'));
    await this.#change;
  }

  async #lose(why: string): Promise<void> {
    this.#leader = false;
    if (this.shared && !this.#stopped) this.log.warn({ hub: this.hubId, why }, 'this hub no longer leads: background work stopped');
    this.#change = this.#change.then(() => this.#leadership!.lost()).catch((err) => this.log.error({ err }, 'could not stop the background work'));
    await this.#change;
  }
}

/** An event's fields cut so each piece's JSON fits a message: every array is spread over the pieces. */
export function split(data: Record<string, unknown>): Record<string, unknown>[] {
  const size = Buffer.byteLength(JSON.stringify(data));
  if (size <= MAX_MESSAGE_BYTES - 600) return [data];
  const pieces = Math.ceil(size / (MAX_MESSAGE_BYTES - 600)) * 2;
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < pieces; i++) {
    const piece: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(data)) {
      if (!Array.isArray(value)) piece[key] = value;
      else {
        const per = Math.ceil(value.length / pieces);
        piece[key] = value.slice(i * per, (i + 1) * per);
      }
    }
    out.push(piece);
  }
  return out.filter((p) => Object.values(p).some((v) => Array.isArray(v) && v.length > 0));
}

const REFUSALS = new Set(['HUB_AGENT_OFFLINE', 'HUB_EXEC_NOT_IN_CATALOGUE', 'HUB_EXEC_NOT_DELIVERED']);
const isId = (v: unknown): v is string => typeof v === 'string' && ID_PATTERN.test(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The shape of each kind, checked before a handler sees it: the channel is open to anyone who
 * can connect to the database, and a bad message must cost nothing but a log line.
 */
function wellFormed(msg: ClusterMessage): boolean {
  const m = msg as unknown as Record<string, unknown>;
  switch (msg.k) {
    case 'event':
      return (HUB_EVENT_NAMES as readonly unknown[]).includes(m.name) && isObject(m.data) && Object.values(m.data).every((v) => !Array.isArray(v) || v.every((x) => typeof x === 'string' || isObject(x)))
        && (m.name !== 'monitor.results' || (Array.isArray(m.data.monitorIds) && Array.isArray(m.data.certificates) && m.data.certificates.every((c) => isObject(c) && typeof c.at === 'string' && typeof c.monitorId === 'string' && typeof c.expiresAt === 'string')))
        && (m.name !== 'incident.changed' || (Array.isArray(m.data.incidentIds) && Array.isArray(m.data.opened)));
    case 'exec':
      return isId(m.id) && isId(m.agent) && typeof m.command === 'string' && isObject(m.params) && Number.isSafeInteger(m.timeout_ms) && (m.timeout_ms as number) > 0;
    case 'exec_sent':
      return isId(m.id);
    case 'exec_refused':
      return isId(m.id) && REFUSALS.has(m.code as string) && typeof m.message === 'string';
    case 'exec_done':
      return Array.isArray(m.ids) && m.ids.every(isId);
    case 'replaced':
      return isId(m.agent) && Number.isSafeInteger(m.epoch);
    default:
      return false;
  }
}
