/**
 * Many callers asking the database the same kind of question at once get one statement between
 * them. With nothing in flight, a request goes at the end of the event-loop turn that made it
 * (with whatever else that turn asked); while a statement is in flight, requests wait and go
 * together as soon as it returns. A lone request costs one round trip, as it would alone; a
 * reconnect storm (thousands of token lookups and claims a second when a hub dies) costs a
 * statement per round trip instead of one per agent, and a commit per batch instead of one per
 * agent.
 *
 * A batch holds at most `maxBatch` requests, and with `key`, one request per key (a second one
 * waits for the next batch, so a statement never meets the same row twice). When a batch's
 * statement fails, its halves are tried one after the other (and theirs, down to single
 * requests), so one request that cannot be answered, or a statement that lost a race, costs the
 * others nothing.
 */
export interface CoalescerOptions<Req> {
  maxBatch: number;
  /** Requests with the same key never share a batch. */
  key?: (req: Req) => string;
}

interface Waiting<Req, Res> {
  req: Req;
  resolve(res: Res): void;
  reject(err: unknown): void;
}

/** Asked of a coalescer that was closed: nothing is sent for it. */
export class CoalescerClosedError extends Error {
  constructor() {
    super('closed: nothing more is sent');
    this.name = 'CoalescerClosedError';
  }
}

export class Coalescer<Req, Res> {
  #queue: Waiting<Req, Res>[] = [];
  #running = false;
  #scheduled = false;
  #closed = false;
  #idle: (() => void)[] = [];
  readonly stats = { batches: 0, requests: 0, fallbacks: 0 };

  constructor(
    /** Answers a batch: one result per request, in order. */
    private readonly run: (reqs: Req[]) => Promise<Res[]>,
    private readonly options: CoalescerOptions<Req>,
  ) {}

  request(req: Req): Promise<Res> {
    if (this.#closed) return Promise.reject(new CoalescerClosedError());
    return new Promise<Res>((resolve, reject) => {
      this.#queue.push({ req, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Send what is waiting, refuse what comes after (CoalescerClosedError), and resolve once the
   * last statement has returned: for a hub that stops, before its database closes.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (!this.#running && this.#queue.length === 0) return;
    await new Promise<void>((resolve) => {
      this.#idle.push(resolve);
      this.#schedule();
    });
  }

  /** Requests waiting for a statement (not counting one in flight). */
  get waiting(): number {
    return this.#queue.length;
  }

  #schedule(): void {
    if (this.#running || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#queue.length > 0) await this.#runBatch(this.#take());
    } finally {
      this.#running = false;
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  #take(): Waiting<Req, Res>[] {
    const { maxBatch, key } = this.options;
    if (!key) return this.#queue.splice(0, maxBatch);
    const batch: Waiting<Req, Res>[] = [];
    const rest: Waiting<Req, Res>[] = [];
    const keys = new Set<string>();
    for (const w of this.#queue) {
      const k = key(w.req);
      if (batch.length < maxBatch && !keys.has(k)) {
        keys.add(k);
        batch.push(w);
      } else rest.push(w);
    }
    this.#queue = rest;
    return batch;
  }

  async #runBatch(batch: Waiting<Req, Res>[]): Promise<void> {
    this.stats.batches++;
    this.stats.requests += batch.length;
    try {
      const results = await this.run(batch.map((w) => w.req));
      if (results.length !== batch.length) throw new Error(`a batch of ${batch.length} got ${results.length} answers`);
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // Halves, one after the other, down to the one that cannot be answered: a few statements
      // more for one bad request, never a statement per request at once (which would queue
      // everything else the hub asks the database behind them).
      this.stats.fallbacks++;
      const half = Math.ceil(batch.length / 2);
      await this.#runBatch(batch.slice(0, half));
      await this.#runBatch(batch.slice(half));
    }
  }
}
