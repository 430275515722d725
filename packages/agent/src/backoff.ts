/**
 * Reconnect delays: exponential from `baseMs`, capped at `capMs`, with full jitter (a uniform
 * draw between 0 and the current ceiling), reset after a connection has lasted `resetAfterMs`.
 * Full jitter spreads agents out, so a hub restart does not bring every agent back in the same
 * second. Clock and randomness are injectable for tests.
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** A connection that stayed up this long resets the attempts. */
  resetAfterMs: number;
  random?: () => number;
  now?: () => number;
}

export class Backoff {
  #attempt = 0;
  #connectedAt: number | null = null;
  readonly #random: () => number;
  readonly #now: () => number;

  constructor(private readonly opts: BackoffOptions) {
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * The delay before the next attempt, drawn between 0 and the ceiling; `atLeastMs` raises the
   * ceiling for this draw (after a hub restart, to spread a whole fleet's first reconnect).
   */
  next(atLeastMs = 0): number {
    if (this.#connectedAt !== null) {
      if (this.#now() - this.#connectedAt >= this.opts.resetAfterMs) this.#attempt = 0;
      this.#connectedAt = null;
    }
    const ceiling = Math.max(atLeastMs, Math.min(this.opts.capMs, this.opts.baseMs * 2 ** Math.min(this.#attempt, 30)));
    this.#attempt++;
    return Math.floor(this.#random() * ceiling);
  }

  /** A connection opened: if it lasts `resetAfterMs`, the next delay starts from the base again. */
  connected(): void {
    this.#connectedAt = this.#now();
  }

  get attempts(): number {
    return this.#attempt;
  }
}
