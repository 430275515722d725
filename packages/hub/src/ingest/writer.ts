import type { FastifyBaseLogger } from 'fastify';
import type { HelloPayload } from '@opspilot/protocol';
import type { Db } from '../storage/database.ts';
import { storeBatch, type AgentSeen, type BatchOutcome, type IngestBatch, type OrderedItem } from '../storage/ingest-batch.ts';

/** Who to ack once an id is stored. */
export interface AckTarget {
  ack(ids: string[]): void;
  /** Called when a batch could not be stored: the agent should reconnect and resend. */
  storeFailed(): void;
}

export interface IncomingFrame {
  agentId: string;
  at: Date;
  stats?: Record<string, number>;
  hello?: HelloPayload;
  item?: OrderedItem;
  msgId?: string;
  ackTo?: AckTarget;
}

export interface WriterOptions {
  flushIntervalMs: number;
  maxBatchItems: number;
}

export interface WriterHooks {
  onStored?(outcome: BatchOutcome): void;
}

interface PendingBatch {
  data: IngestBatch;
  acks: Map<AckTarget, string[]>;
  /** Rows to write: what decides when the batch is flushed. */
  size: number;
  /** Frames received: every frame marks its agent seen once. */
  frames: number;
}

const MAX_ATTEMPTS = 3;
const OVERLOAD_BATCHES = 4; // pause reading from agents while this many full batches wait

/**
 * Funnels every agent's frames into batched transactions (group commit): heartbeats coalesce to
 * the latest per agent, metric samples go in one insert per batch, and one frame never costs one
 * round trip. A batch is sealed when it holds `maxBatchItems` rows, or `flushIntervalMs` after
 * its first frame, or as soon as the previous batch commits; sealed batches are written one at a
 * time, in order. Ids are acked only after their batch commits. When the database falls behind,
 * agents' sockets are paused until the backlog drains, so memory stays bounded and TCP pushes
 * back on the agents.
 */
export class IngestWriter {
  #current: PendingBatch = emptyBatch();
  readonly #sealed: PendingBatch[] = [];
  #queuedRows = 0;
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  #closed = false;
  readonly #paused = new Set<() => void>();
  /** Counters for operators (and tests): how many frames went into how many transactions. */
  readonly stats = { batches: 0, frames: 0, failedBatches: 0 };

  constructor(
    private readonly db: Db,
    private readonly opts: WriterOptions,
    private readonly log: FastifyBaseLogger,
    private readonly hooks: WriterHooks = {},
  ) {}

  /**
   * Take one frame: it marks its agent seen (with the latest heartbeat stats or hello), may carry
   * an item to store in order, and an id to ack to `ackTo` once stored. A frame is taken whole,
   * so its item and its id always land in the same batch.
   */
  add(frame: IncomingFrame): void {
    const batch = this.#current;
    batch.frames++;
    let rows = 0;
    const prev = batch.data.seen.get(frame.agentId);
    const seen: AgentSeen = prev ?? { at: frame.at };
    seen.at = frame.at;
    if (frame.stats) seen.stats = frame.stats;
    if (frame.hello) seen.hello = frame.hello;
    if (!prev) {
      batch.data.seen.set(frame.agentId, seen);
      rows++;
    }
    if (frame.item) {
      batch.data.items.push(frame.item);
      rows += frame.item.kind === 'metrics' ? frame.item.samples.length : 1;
    }
    if (frame.msgId !== undefined && frame.ackTo) {
      batch.data.ids.push({ agentId: frame.agentId, msgId: frame.msgId });
      const list = batch.acks.get(frame.ackTo);
      if (list) list.push(frame.msgId);
      else batch.acks.set(frame.ackTo, [frame.msgId]);
      rows++;
    }
    this.#grow(rows);
  }

  /** True when readers should pause: the database is far behind. */
  get overloaded(): boolean {
    return this.#queuedRows >= this.opts.maxBatchItems * OVERLOAD_BATCHES;
  }

  /** Call `resume` once the backlog has drained. */
  whenDrained(resume: () => void): void {
    this.#paused.add(resume);
  }

  /** Write everything waiting, and what arrives meanwhile. */
  async flush(): Promise<void> {
    for (;;) {
      this.#seal();
      if (!this.#flushing) return;
      await this.#flushing;
    }
  }

  /** Flush and stop taking frames. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }

  #grow(rows: number): void {
    if (this.#closed) return;
    this.#current.size += rows;
    this.#queuedRows += rows;
    if (this.#current.size >= this.opts.maxBatchItems) {
      this.#seal();
    } else if (!this.#timer && !this.#flushing) {
      // While a batch is being written the next one fills; it is sealed when that one commits.
      this.#timer = setTimeout(() => {
        this.#timer = null;
        if (!this.#flushing) this.#seal();
      }, this.opts.flushIntervalMs);
    }
  }

  #seal(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = this.#current;
    if (batch.frames > 0 || batch.size > 0) {
      this.#sealed.push(batch);
      this.#current = emptyBatch();
    }
    if (!this.#flushing && this.#sealed.length > 0) {
      this.#flushing = this.#drain().finally(() => {
        this.#flushing = null;
      });
    }
  }

  async #drain(): Promise<void> {
    for (;;) {
      if (this.#sealed.length === 0) {
        const waiting = this.#current;
        if (waiting.frames === 0 && waiting.size === 0) return;
        this.#sealed.push(waiting);
        this.#current = emptyBatch();
      }
      const batch = this.#sealed.shift()!;
      await this.#store(batch);
      this.#queuedRows -= batch.size;
      if (!this.overloaded && this.#paused.size > 0) {
        const resumes = [...this.#paused];
        this.#paused.clear();
        for (const resume of resumes) resume();
      }
    }
  }

  async #store(batch: PendingBatch): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await storeBatch(this.db, batch.data);
        this.stats.batches++;
        this.stats.frames += batch.frames;
        this.#deliver(batch, outcome);
        return;
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS) {
          this.stats.failedBatches++;
          // Nothing is acked, so the agents still hold their alerts, resolves and results;
          // asking them to reconnect makes them resend those from their outboxes.
          this.log.error({ err, frames: batch.frames, ids: batch.data.ids.length }, 'ingest batch not stored; asking its agents to reconnect and resend');
          for (const target of batch.acks.keys()) target.storeFailed();
          return;
        }
        this.log.warn({ err, attempt }, 'ingest batch failed; retrying');
        await new Promise((r) => setTimeout(r, 100 * 4 ** attempt));
      }
    }
  }

  #deliver(batch: PendingBatch, outcome: BatchOutcome): void {
    for (const [target, ids] of batch.acks) target.ack(ids);
    this.hooks.onStored?.(outcome);
  }
}

function emptyBatch(): PendingBatch {
  return { data: { seen: new Map(), ids: [], items: [] }, acks: new Map(), size: 0, frames: 0 };
}

