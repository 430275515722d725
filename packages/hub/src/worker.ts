import type { FastifyBaseLogger } from 'fastify';

export interface WorkerOptions {
  /** For log lines. */
  name: string;
  /** A safety net: run this often even when nobody kicks (work a crashed hub left, timers). */
  pollMs: number;
  /** Do what is due now. Never runs twice at once: a kick during a run runs it once more after. */
  run(): Promise<void>;
  /** Before the first run (put back what a stopped hub left half-done). */
  prepare?(): Promise<void>;
}

/**
 * The one shape of the hub's database-polling workers (analyzer, Slack notifier, remediation
 * engine): start, kick when there may be work, stop and wait for what is in flight. The work
 * itself is in the database, so a kick lost in a crash is made up by the next poll or start.
 */
export class Worker {
  #running: Promise<void> | null = null;
  #again = false;
  /** Between start() and stop(): on a hub that is not the leader, never (cluster.ts). */
  #active = false;
  #timer: NodeJS.Timeout | null = null;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly opts: WorkerOptions,
    private readonly log: FastifyBaseLogger,
  ) {}

  get stopped(): boolean {
    return !this.#active;
  }

  /** Start (again, after a stop: a hub that regains the leadership). */
  async start(): Promise<void> {
    if (this.#active) return;
    await this.idle(); // what a previous stop left finishing
    this.#active = true;
    await this.opts.prepare?.();
    this.#timer = setInterval(() => this.kick(), this.opts.pollMs);
    this.#timer.unref();
    this.kick();
  }

  /** There may be work (ignored while stopped). */
  kick(): void {
    if (!this.#active) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.opts
      .run()
      .catch((err) => {
        if (this.#active) this.log.warn({ err, worker: this.opts.name }, `${this.opts.name}: a run failed; the next one tries again`);
      })
      .finally(() => {
        this.#running = null;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** Work started by a run that goes on after it (an analysis, an exec): stop() waits for it. */
  track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    void p
      .catch((err) => this.log.error({ err, worker: this.opts.name }, `${this.opts.name}: work failed; it is tried again`))
      .finally(() => this.#inFlight.delete(p));
    return p;
  }

  /** Resolves once no run and no tracked work is in flight. */
  async idle(): Promise<void> {
    while (this.#running || this.#inFlight.size > 0) await Promise.allSettled([this.#running, ...this.#inFlight]);
  }

  async stop(): Promise<void> {
    this.#active = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.idle();
  }
}
