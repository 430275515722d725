import type { FastifyBaseLogger } from 'fastify';
import type { Refusal } from '../storage/ingest-batch.ts';

export type { Refusal };

/** Who to ack once an id is stored. */
export interface AckTarget {
  readonly agentId: string | null;
  ack(ids: string[]): void;
  /** The database refused this one message for what it is: resending will not help. */
  refuse(id: string, reason: string): void;
  /** Called when a batch could not be stored: the agent should reconnect and resend. */
  storeFailed(): void;
}


export interface QueueOptions {
  /** Rows that seal a batch at once when nothing is being written. */
  maxRows: number;
  /**
   * With nothing being written, a batch waits this long after its first frame for company, and
   * writes start at most this often unless a batch is full; 0: it is written at the end of the
   * event-loop turn that brought it, so a lone alert commits in one round trip, while batches
   * still grow behind a write in flight.
   */
  flushIntervalMs: number;
  /** Pause readers while this many rows wait. */
  overloadRows: number;
}

interface Pending<B> {
  data: B;
  acks: Map<AckTarget, string[]>;
  rows: number;
  frames: number;
}

const MAX_ATTEMPTS = 3;
/** Paused readers resumed per event-loop turn. */
const RESUME_PER_TURN = 32;

/**
 * Resume readers a few per event-loop turn. Each resumed socket delivers up to 64 KiB at once;
 * resuming thousands together makes one turn of seconds, during which no database reply, REST
 * request or exec result is handled.
 */
function resumeGradually(resumes: (() => void)[]): void {
  for (const resume of resumes.splice(0, RESUME_PER_TURN)) resume();
  if (resumes.length > 0) setImmediate(() => resumeGradually(resumes));
}

/**
 * Group commit for one kind of write. Frames fill the current batch. With nothing being written,
 * it is written at the end of the event-loop turn (or `flushIntervalMs` after its first frame,
 * when that is set), or at once when it holds `maxRows` rows;
 * while a write is in flight it keeps filling and is written as soon as that one commits (with
 * `flushIntervalMs`: no sooner than that after the last write began), so the busier the hub, the
 * more each statement carries. Writes go one at a time, in order, and ids are
 * acked only after commit. Past `overloadRows` waiting, readers are asked to pause. A batch that
 * fails three times is dropped unacked and its agents are asked to reconnect, which makes them
 * resend what they keep in their outboxes.
 */
export class BatchQueue<B> {
  #current: Pending<B>;
  readonly #sealed: Pending<B>[] = [];
  #queuedRows = 0;
  /** Cancels the pending write of the current batch, when one is armed. */
  #timer: (() => void) | null = null;
  #draining: Promise<void> | null = null;
  #lastWriteAt = -Infinity;
  readonly #drained = new Set<() => void>();
  readonly stats = { batches: 0, frames: 0, failedBatches: 0 };
  /** Increments at every committed write: lets readers count what they sent since. */
  epoch = 0;

  constructor(
    private readonly name: string,
    private readonly empty: () => B,
    /** Writes a batch; may name messages the database refused on their own (the rest stored). */
    private readonly store: (batch: B) => Promise<Refusal[] | void>,
    private readonly opts: QueueOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.#current = this.#fresh();
  }

  /** The batch being filled: add to it, then call `added`. */
  get current(): B {
    return this.#current.data;
  }

  added(rows: number, frames: number, ack?: { target: AckTarget; id: string }): void {
    const batch = this.#current;
    batch.rows += rows;
    batch.frames += frames;
    this.#queuedRows += rows;
    if (ack) {
      const list = batch.acks.get(ack.target);
      if (list) list.push(ack.id);
      else batch.acks.set(ack.target, [ack.id]);
    }
    if (this.#draining) return; // written when the write in flight commits
    if (batch.rows >= this.opts.maxRows) this.#seal();
    else this.#arm(this.opts.flushIntervalMs);
  }

  /** Write the current batch in `delayMs` (0: at the end of this event-loop turn, so every frame read in it joins). */
  #arm(delayMs: number): void {
    if (this.#timer) return;
    const fire = () => {
      this.#timer = null;
      if (!this.#draining) this.#seal();
    };
    if (delayMs === 0) {
      const immediate = setImmediate(fire);
      this.#timer = () => clearImmediate(immediate);
    } else {
      const timeout = setTimeout(fire, delayMs);
      this.#timer = () => clearTimeout(timeout);
    }
  }

  get overloaded(): boolean {
    return this.#queuedRows >= this.opts.overloadRows;
  }

  /** Call `resume` once the backlog is under the overload mark again. */
  whenDrained(resume: () => void): void {
    this.#drained.add(resume);
  }

  /** Write everything waiting, and what arrives meanwhile. */
  async flush(): Promise<void> {
    for (;;) {
      this.#seal();
      if (!this.#draining) return;
      await this.#draining;
    }
  }

  #fresh(): Pending<B> {
    return { data: this.empty(), acks: new Map(), rows: 0, frames: 0 };
  }

  #seal(): void {
    this.#timer?.();
    this.#timer = null;
    if (this.#current.frames > 0) {
      this.#sealed.push(this.#current);
      this.#current = this.#fresh();
    }
    if (!this.#draining && this.#sealed.length > 0) {
      this.#draining = this.#drain().finally(() => {
        this.#draining = null;
        // What arrived during the last write, held back to keep writes `flushIntervalMs` apart.
        if (this.#current.frames > 0) this.#arm(Math.max(0, this.#lastWriteAt + this.opts.flushIntervalMs - performance.now()));
      });
    }
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.#sealed.length === 0) {
        if (this.#current.frames === 0) return;
        // With an interval, writes start at most that often unless a batch is full: under a
        // trickle each write carries what came in meanwhile; when writes take longer than the
        // interval (a flood) they follow each other at once.
        const early = this.#lastWriteAt + this.opts.flushIntervalMs - performance.now();
        if (early > 0 && this.#current.rows < this.opts.maxRows) return;
        this.#sealed.push(this.#current);
        this.#current = this.#fresh();
      }
      const batch = this.#sealed.shift()!;
      this.#lastWriteAt = performance.now();
      await this.#write(batch);
      this.#queuedRows -= batch.rows;
      if (!this.overloaded && this.#drained.size > 0) {
        const resumes = [...this.#drained];
        this.#drained.clear();
        resumeGradually(resumes);
      }
    }
  }

  async #write(batch: Pending<B>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const refused = (await this.store(batch.data)) ?? [];
        this.stats.batches++;
        this.stats.frames += batch.frames;
        this.epoch++;
        const byKey = new Map(refused.map((r) => [`${r.agentId}\u0000${r.msgId}`, r.reason]));
        for (const [target, ids] of batch.acks) {
          const keyOf = (id: string) => `${target.agentId}\u0000${id}`;
          for (const id of ids.filter((i) => byKey.has(keyOf(i)))) target.refuse(id, byKey.get(keyOf(id))!);
          target.ack(byKey.size ? ids.filter((i) => !byKey.has(keyOf(i))) : ids);
        }
        return;
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS) {
          this.stats.failedBatches++;
          this.log.error({ err, queue: this.name, frames: batch.frames }, 'ingest batch not stored; asking its agents to reconnect and resend');
          for (const target of batch.acks.keys()) target.storeFailed();
          return;
        }
        this.log.warn({ err, queue: this.name, attempt }, 'ingest batch failed; retrying');
        await new Promise((r) => setTimeout(r, 100 * 4 ** attempt));
      }
    }
  }
}
