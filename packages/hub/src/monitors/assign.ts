import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { DEFAULT_LIMITS, type MonitorDefinition, type MonitorsPayload } from '@opspilot/protocol';
import type { AgentConnection } from '../ingest/connection.ts';
import type { AgentRegistry } from '../ingest/registry.ts';
import type { Db } from '../storage/database.ts';
import { agentLabels, agentRunMonitors, runsOnAgent, type Monitor } from '../storage/monitors.ts';

/** The monitors agents run are read again at most this often (changes made here refresh at once). */
const CACHE_MS = 30_000;
/** A set's payload is kept under the protocol's payload limit, with room to spare. */
const MAX_PAYLOAD_BYTES = DEFAULT_LIMITS.maxPayloadBytes / 2;

/** A monitor as an agent runs it: what to check and how often, nothing of its incidents or labels. */
export function definitionOf(m: Monitor): MonitorDefinition {
  const o = m.options as Pick<MonitorDefinition, 'http' | 'dns' | 'tls'>;
  return {
    id: m.id,
    kind: m.kind,
    target: m.target,
    interval_s: m.interval_s,
    timeout_ms: m.timeout_ms,
    ...(m.conditions.length > 0 ? { conditions: m.conditions } : {}),
    ...(o.http ? { http: o.http } : {}),
    ...(o.dns ? { dns: o.dns } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
  };
}

/**
 * The set of checks one agent runs, named by a hash of its content (the same set has the same
 * version on every hub) and bounded: past 500 monitors, or half the payload limit, the rest are
 * left out and `dropped` says how many.
 */
export function monitorSet(monitors: readonly Monitor[]): { payload: MonitorsPayload; dropped: number } {
  const defs: MonitorDefinition[] = [];
  let bytes = 0;
  for (const m of monitors) {
    const def = definitionOf(m);
    const size = Buffer.byteLength(JSON.stringify(def));
    if (defs.length >= 500 || bytes + size > MAX_PAYLOAD_BYTES) break;
    defs.push(def);
    bytes += size;
  }
  const version = createHash('sha256').update(JSON.stringify(defs)).digest('base64url').slice(0, 22);
  return { payload: { version, monitors: defs }, dropped: monitors.length - defs.length };
}

/**
 * Sends each agent that speaks protocol 2 the monitors it runs: after its hello, and again to
 * every connected agent when monitors change (only where its set did). Agents of protocol 1 are
 * never sent one; the monitors they would run stay unknown at their location.
 */
export class MonitorAssignments {
  #cache: { at: number; monitors: Promise<Monitor[]> } | null = null;
  #refreshing: Promise<void> | null = null;
  #again = false;

  constructor(
    private readonly db: Db,
    private readonly registry: AgentRegistry,
    private readonly log: FastifyBaseLogger,
  ) {}

  #monitors(): Promise<Monitor[]> {
    if (!this.#cache || Date.now() - this.#cache.at > CACHE_MS) {
      const monitors = agentRunMonitors(this.db);
      this.#cache = { at: Date.now(), monitors };
      monitors.catch(() => (this.#cache = null));
    }
    return this.#cache.monitors;
  }

  /** The agent said hello: send its set if it speaks protocol 2. */
  hello(conn: AgentConnection): void {
    if (conn.protocol < 2 || conn.agentId === null) return;
    conn.monitorsVersion = null; // a new hello may be a restarted agent: it gets its set again
    void this.#sendTo([conn]).catch((err) => this.log.warn({ err, agentId: conn.agentId }, 'could not send an agent its monitors'));
  }

  /** Monitors changed: every connected agent that speaks 2 gets its set if it changed. */
  refresh(): Promise<void> {
    this.#cache = null;
    if (this.#refreshing) {
      this.#again = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      do {
        this.#again = false;
        await this.#sendTo([...this.registry.connections()].filter((c) => c.protocol >= 2 && c.isOpen)).catch((err) => this.log.warn({ err }, 'could not send agents their monitors'));
      } while (this.#again);
    })().finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  async #sendTo(conns: AgentConnection[]): Promise<void> {
    if (conns.length === 0) return;
    const monitors = await this.#monitors();
    // With no monitors run by agents, every agent's set is the empty one: no labels to read (a
    // hello per reconnect, thousands a second when a hub is lost).
    const labels = monitors.length > 0 ? await agentLabels(this.db, conns.map((c) => c.agentId!)) : null;
    for (const conn of conns) {
      const agentLabels = labels ? labels.get(conn.agentId!) : {};
      if (!agentLabels || !conn.isOpen) continue;
      const { payload, dropped } = monitorSet(monitors.filter((m) => runsOnAgent(m.run_on, { id: conn.agentId!, labels: agentLabels })));
      if (payload.version === conn.monitorsVersion) continue;
      if (dropped > 0) this.log.warn({ agentId: conn.agentId, sent: payload.monitors.length, dropped }, 'an agent has more monitors than one message carries: some are left out');
      conn.monitorsVersion = payload.version;
      conn.send('monitors', payload);
    }
  }
}
