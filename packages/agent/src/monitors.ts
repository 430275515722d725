import path from 'node:path';
import { runCheck, type CheckResult, type CheckSpec, type Guard } from '@opspilot/checks';
import { monitorsPayload, SchemaViolation, type CheckResultPayload, type MonitorDefinition, type MonitorsPayload } from '@opspilot/protocol';
import type { AgentClock, Timer } from './clock.ts';
import type { Logger } from './client.ts';
import { readJsonState, writeFileDurably } from './state-file.ts';

export interface MonitorSchedulerOptions {
  clock: AgentClock;
  /** Hand results to the hub (the client's durable outbox: none is lost across reconnects). */
  send(results: CheckResultPayload[]): void;
  /** Whether the hub is connected now: results wait longer, in fewer messages, while it is not. */
  connected(): boolean;
  /** Where the set is kept, so checks go on across a restart while the hub is away. */
  stateDir: string;
  maxConcurrent: number;
  guard: Guard;
  log: Logger;
  /** A number in [0, 1) for jitter (tests pass their own). */
  random?: () => number;
  /** The probe (tests may count runs; the real one by default). */
  run?: (spec: CheckSpec, opts: { guard: Guard }) => Promise<CheckResult>;
}

/** Results are sent this long after the first of a batch while connected, */
const FLUSH_CONNECTED_MS = 2_000;
/** and while not, so an outage of hours is tens of outbox entries, not thousands. */
const FLUSH_OFFLINE_MS = 60_000;
/** A batch is sent at once at this size (the message's limit is 1,000). */
const FLUSH_AT = 500;
/** A new monitor's first check: within this long, spread so a set of many does not run at once. */
const FIRST_RUN_SPREAD_MS = 10_000;

interface Scheduled {
  def: MonitorDefinition;
  /** The definition as JSON: an unchanged monitor in a new set keeps its schedule. */
  json: string;
  timer: Timer | null;
  running: boolean;
  queued: boolean;
}

/**
 * Runs the checks the hub sends (protocol 2) on this host, each on its own schedule: the first
 * within 10 s, then every interval ± 5 %, never two runs of one monitor at once, at most
 * `maxConcurrent` checks together. A new set replaces the old; a monitor whose definition did
 * not change keeps its schedule. Results are batched into `check_results` messages through the
 * durable outbox. The probes are the hub's own (packages/checks), guarded against link-local and
 * metadata addresses unless the agent's config allows them: a monitor makes the agent send
 * nothing but its check.
 */
export class MonitorScheduler {
  readonly #monitors = new Map<string, Scheduled>();
  #version: string | null = null;
  #active = 0;
  readonly #waiting: string[] = [];
  #buffer: CheckResultPayload[] = [];
  #flushTimer: Timer | null = null;
  #stopped = false;
  readonly #file: string;
  readonly #random: () => number;
  readonly #run: (spec: CheckSpec, opts: { guard: Guard }) => Promise<CheckResult>;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(private readonly opts: MonitorSchedulerOptions) {
    this.#file = path.join(opts.stateDir, 'monitors.json');
    this.#random = opts.random ?? Math.random;
    this.#run = opts.run ?? ((spec, o) => runCheck(spec, o));
  }

  /** The set's version, and how many monitors it has. */
  get version(): string | null {
    return this.#version;
  }
  get size(): number {
    return this.#monitors.size;
  }

  /** The set kept from the last run, if any (a bad or missing file is no set). */
  restore(): void {
    const saved = readJsonState(this.#file);
    if (saved === null) return;
    try {
      this.#apply(monitorsPayload(saved, ''), false);
    } catch (err) {
      if (!(err instanceof SchemaViolation)) throw err;
      this.opts.log.warn('the saved monitor set is not valid: ignored until the hub sends one', { error: err.message });
    }
  }

  /** A set from the hub: replaces the one running. */
  set(payload: MonitorsPayload): void {
    if (payload.version === this.#version) return;
    this.#apply(payload, true);
  }

  #apply(payload: MonitorsPayload, save: boolean): void {
    if (this.#stopped) return;
    const next = new Map(payload.monitors.map((d) => [d.id, d]));
    for (const [id, s] of this.#monitors) {
      if (next.has(id) && JSON.stringify(next.get(id)) === s.json) continue;
      s.timer?.cancel();
      this.#monitors.delete(id);
    }
    for (const def of next.values()) {
      if (this.#monitors.has(def.id)) continue;
      const s: Scheduled = { def, json: JSON.stringify(def), timer: null, running: false, queued: false };
      this.#monitors.set(def.id, s);
      this.#schedule(s, this.#random() * Math.min(FIRST_RUN_SPREAD_MS, def.interval_s * 1000));
    }
    this.#version = payload.version;
    this.opts.log.info('monitors to run', { version: payload.version, monitors: payload.monitors.length });
    if (save) {
      try {
        writeFileDurably(this.#file, JSON.stringify(payload));
      } catch (err) {
        this.opts.log.warn('could not keep the monitor set in the state directory', { error: (err as Error).message });
      }
    }
  }

  #schedule(s: Scheduled, delayMs: number): void {
    s.timer = this.opts.clock.after(delayMs, () => {
      s.timer = null;
      if (this.#monitors.get(s.def.id) !== s || this.#stopped) return;
      // The next run is due an interval after this one was, whatever this one takes.
      this.#schedule(s, s.def.interval_s * 1000 * (0.95 + 0.1 * this.#random()));
      if (s.running || s.queued) return; // the last run still goes (a long timeout): this one is skipped
      if (this.#active >= this.opts.maxConcurrent) {
        s.queued = true;
        this.#waiting.push(s.def.id);
        return;
      }
      this.#start(s);
    });
  }

  #start(s: Scheduled): void {
    s.running = true;
    this.#active++;
    const startedAt = this.opts.clock.now();
    const { id: _, interval_s: __, ...spec } = s.def;
    const run = this.#run(spec as CheckSpec, { guard: this.opts.guard })
      .then((result) => this.#take(s.def.id, startedAt, result))
      .catch((err: Error) => this.opts.log.error('a check failed unexpectedly', { monitor_id: s.def.id, error: err.message }))
      .finally(() => {
        s.running = false;
        this.#active--;
        this.#inFlight.delete(run);
        this.#next();
      });
    this.#inFlight.add(run);
  }

  #next(): void {
    while (this.#active < this.opts.maxConcurrent && this.#waiting.length > 0) {
      const s = this.#monitors.get(this.#waiting.shift()!);
      if (!s) continue;
      s.queued = false;
      this.#start(s);
    }
  }

  #take(monitorId: string, startedAt: number, r: CheckResult): void {
    if (this.#stopped || !this.#monitors.has(monitorId)) return; // removed while it ran
    const result: CheckResultPayload = { monitor_id: monitorId, at: startedAt / 1000, ok: r.ok, response_ms: Math.max(0, Math.min(r.response_ms, 3_600_000)) };
    if (r.status !== undefined) result.status = r.status;
    if (r.error !== undefined) result.error = r.error.slice(0, 1000);
    if (r.failures?.length) result.failures = r.failures.slice(0, 20).map((f) => f.slice(0, 1000));
    if (r.cert_expires_at !== undefined) {
      const at = Date.parse(r.cert_expires_at) / 1000;
      if (Number.isFinite(at) && at >= 0) result.cert_expires_at = at;
    }
    this.#buffer.push(result);
    if (this.#buffer.length >= FLUSH_AT) this.flush();
    else this.#flushTimer ??= this.opts.clock.after(this.opts.connected() ? FLUSH_CONNECTED_MS : FLUSH_OFFLINE_MS, () => this.flush());
  }

  /** Send what is buffered now (also when the hub comes back, and at stop). */
  flush(): void {
    this.#flushTimer?.cancel();
    this.#flushTimer = null;
    while (this.#buffer.length > 0) this.opts.send(this.#buffer.splice(0, 1000));
  }

  /** Resolves when no check is running (tests). */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  /** Stop scheduling; results of checks still running are dropped, those buffered are sent. */
  stop(): void {
    this.#stopped = true;
    for (const s of this.#monitors.values()) s.timer?.cancel();
    this.flush();
  }
}
