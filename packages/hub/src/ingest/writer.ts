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
const OVERLOAD_FACTOR = 20; // pause reading from agents when this many batches' worth is waiting

/**
 * Funnels every agent's frames into batched transactions (group commit): heartbeats coalesce to
 * the latest per agent, metric samples go in multi-row inserts, and one frame never costs one
 * round trip. A batch is written `flushIntervalMs` after its first frame, or at once when it
 * holds `maxBatchItems`; while one is being written the next one fills. Ids are acked only after
 * their batch commits.
 */
export class IngestWriter {
  #current: PendingBatch = emptyBatch();
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

  /** Record a frame from an agent, with its latest heartbeat stats or hello. Called once per frame. */
  seen(agentId: string, at: Date, update?: { stats?: Record<string, number>; hello?: HelloPayload }): void {
    this.#current.frames++;
    const seen = this.#current.data.seen;
    const prev = seen.get(agentId);
    const next: AgentSeen = prev ?? { at };
    next.at = at;
    if (update?.stats) next.stats = update.stats;
    if (update?.hello) next.hello = update.hello;
    if (!prev) {
      seen.set(agentId, next);
      this.#grow(1);
    }
  }

  item(item: OrderedItem): void {
    this.#current.data.items.push(item);
    this.#grow(item.kind === 'metrics' ? item.samples.length : 1);
  }

  /** Ack `msgId` to `target` once the batch it is in has been stored. */
  id(agentId: string, msgId: string, target: AckTarget): void {
    const batch = this.#current;
    batch.data.ids.push({ agentId, msgId });
    const list = batch.acks.get(target);
    if (list) list.push(msgId);
    else batch.acks.set(target, [msgId]);
    this.#grow(0);
  }

  /** True when readers should pause: the database is far behind. */
  get overloaded(): boolean {
    return this.#current.size >= this.opts.maxBatchItems * OVERLOAD_FACTOR;
  }

  /** Call `resume` once the backlog has drained. */
  whenDrained(resume: () => void): void {
    this.#paused.add(resume);
  }

  /** Write everything waiting, and what arrives meanwhile. */
  async flush(): Promise<void> {
    while (this.#flushing || this.#current.size > 0 || this.#current.data.ids.length > 0) {
      if (!this.#flushing) this.#startFlush();
      await this.#flushing;
    }
  }

  /** Flush and stop taking frames. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #grow(n: number): void {
    if (this.#closed) return;
    this.#current.size += n;
    if (this.#flushing) return; // the running flush picks this batch up when it ends
    if (this.#current.size >= this.opts.maxBatchItems) {
      this.#startFlush();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        if (!this.#flushing) this.#startFlush();
      }, this.opts.flushIntervalMs);
    }
  }

  #startFlush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#flushing = this.#run().finally(() => {
      this.#flushing = null;
      const waiting = this.#current;
      if (waiting.size > 0 || waiting.data.ids.length > 0) this.#grow(0);
      if (!this.overloaded && this.#paused.size > 0) {
        const resumes = [...this.#paused];
        this.#paused.clear();
        for (const resume of resumes) resume();
      }
    });
  }

  async #run(): Promise<void> {
    const batch = this.#current;
    this.#current = emptyBatch();
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

