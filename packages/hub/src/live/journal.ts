import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../storage/database.ts';
import { eventsAfter, lastEventSeq, type StreamEvent } from '../storage/timeline.ts';

/** How long a hole in the positions is waited for (a transaction that took its position and has not committed yet). */
const GAP_WAIT_MS = 2_000;
/** Positions skipped after the wait are looked for this long (committed late: sent then, out of order). */
const LATE_MS = 60_000;
/** Read at least this often while anyone listens (changes nobody announced: a token made, a rule edited). */
const POLL_MS = 500;
const PAGE = 1000;

export type Listener = (events: readonly StreamEvent[]) => void;

/**
 * The audit trail read as it grows, once per hub, for every live stream: each change the hub
 * commits is a row of incident_events with a position (seq), and the journal hands rows to its
 * listeners in that order. A position can be taken by a transaction that commits after a later
 * one: a hole is waited for (2 s) before it is passed, and a row that fills it later is still
 * sent (out of order) for a minute. Reads happen when something is announced (`kick`), and
 * every 500 ms while anyone listens.
 */
export class LiveJournal {
  #cursor = 0;
  #started = false;
  readonly #listeners = new Set<Listener>();
  #timer: NodeJS.Timeout | null = null;
  #reading: Promise<void> | null = null;
  #again = false;
  #gapSince: number | null = null;
  /** Positions passed over, and until when they are looked for. */
  readonly #late = new Map<number, number>();
  #stopped = false;

  constructor(
    private readonly db: Db,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** The last position handed to listeners. */
  get cursor(): number {
    return this.#cursor;
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  /**
   * Listen from now on: returns the position the listener's events start after (everything up to
   * it is in the database to be read) and how to stop. The journal catches up first, so that
   * position is what was committed when the listener came.
   */
  async subscribe(listener: Listener): Promise<{ after: number; unsubscribe: () => void }> {
    if (!this.#started) {
      this.#started = true;
      this.#cursor = await lastEventSeq(this.db);
    } else {
      await this.#readNow();
    }
    // Synchronously: the cursor is what was handed to the listeners so far, and this one gets what follows.
    this.#listeners.add(listener);
    this.#schedule();
    return {
      after: this.#cursor,
      unsubscribe: () => {
        this.#listeners.delete(listener);
      },
    };
  }

  /** Something was committed: read now. */
  kick(): void {
    if (this.#listeners.size === 0 || this.#stopped) return;
    void this.#readNow();
  }

  /** A read that starts after this call (the one running may have missed what was just committed). */
  async #readNow(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      await this.#reading;
      // Its `finally` started the read asked for: wait for that one too.
      const next = this.#reading as Promise<void> | null;
      if (next) await next;
      return;
    }
    this.#reading = this.#read()
      .catch((err) => this.log.warn({ err }, 'live journal read failed; retrying'))
      .finally(() => {
        this.#reading = null;
        if (this.#again) {
          this.#again = false;
          void this.#readNow();
        }
      });
    await this.#reading;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#listeners.size === 0) return;
      this.kick();
      this.#schedule();
    }, POLL_MS);
    this.#timer.unref();
  }

  async #read(): Promise<void> {
    const out: StreamEvent[] = [];
    const now = Date.now();
    for (const [seq, until] of this.#late) if (until < now) this.#late.delete(seq);
    if (this.#late.size > 0) {
      const filled = await eventsAfter(this.db, 0, PAGE, [...this.#late.keys()]);
      for (const e of filled) this.#late.delete(e.seq);
      out.push(...filled);
    }
    // The cursor moves only when what was read is handed over, in the same turn: a listener that
    // subscribes meanwhile starts after exactly what the others were given.
    let cursor = this.#cursor;
    for (;;) {
      const rows = await eventsAfter(this.db, cursor, PAGE);
      let taken = 0;
      for (const row of rows) {
        if (row.seq !== cursor + 1) {
          this.#gapSince ??= now;
          if (now - this.#gapSince < GAP_WAIT_MS) break; // a transaction holding the position may still commit
          for (let s = cursor + 1; s < row.seq && this.#late.size < 10_000; s++) this.#late.set(s, now + LATE_MS);
        }
        this.#gapSince = null;
        cursor = row.seq;
        out.push(row);
        taken++;
      }
      if (taken < PAGE) break;
    }
    this.#cursor = cursor;
    if (out.length === 0) return;
    for (const listener of this.#listeners) {
      try {
        listener(out);
      } catch (err) {
        this.log.warn({ err }, 'a live stream listener failed');
      }
    }
  }
}
