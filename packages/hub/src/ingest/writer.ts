import type { FastifyBaseLogger } from 'fastify';
import type { HelloPayload, MetricSample } from '@opspilot/protocol';
import type { Db } from '../storage/database.ts';
import type { ClusterChannel } from '../storage/cluster.ts';
import { storeBulkIsolated, type BulkBatch, type EventBatch, type EventItem, type EventOutcome } from '../storage/ingest-batch.ts';
import { storeEvents, type SentAt } from './events.ts';
import { BatchQueue, type AckTarget } from './batch-queue.ts';
import type { LifecycleOptions } from '../incidents/lifecycle.ts';

export type { AckTarget, Refusal } from './batch-queue.ts';

export interface IncomingFrame {
  agentId: string;
  at: Date;
  stats?: Record<string, number>;
  hello?: HelloPayload;
  samples?: MetricSample[];
  event?: EventItem;
  msgId?: string;
  ackTo?: AckTarget;
}

export interface WriterOptions {
  /** How long an alert, resolve or exec result waits for company when nothing is being written (0: the end of the turn). */
  flushIntervalMs: number;
  /**
   * How long heartbeats, hellos and metric samples wait for company when nothing is being
   * written. Nobody waits on them; at 10,000 agents a heartbeat arrives every 0.1 ms, and
   * writing them as they come costs hundreds of commits a second of the CPU the alerts and exec
   * results need. Batches still go at once when full.
   */
  bulkIntervalMs: number;
  maxBatchItems: number;
  /** Classification rules and notifications applied to every alert and resolve as it is stored. */
  lifecycle: LifecycleOptions;
}

export interface WriterHooks {
  onEventsStored?(outcome: EventOutcome): void;
  /** When this hub sent an exec request it waits on: written with its result (no second write on the row). */
  execSentAt?: SentAt;
  /** Where the statement storing exec results tells the other hubs, when there are others. */
  execDone?: () => ClusterChannel | null;
}

const OVERLOAD_BATCHES = 4; // pause reading from agents while this many full batches wait

/**
 * Where agents' frames are written, in three lanes that never wait for each other:
 * - bulk: last-seen times, heartbeats, hellos and metric samples, one SQL statement per batch
 *   (heartbeats coalesce to the latest per agent; one frame never costs one round trip);
 * - events: alerts, resolves and check results, one small transaction per batch, in arrival
 *   order, so an alert is never stuck behind a backlog of metrics;
 * - results: exec results, one statement per batch: someone is waiting for each, and it never
 *   waits behind an alert's transaction (they touch different rows; order between them does not
 *   matter).
 * Each lane is a group-commit BatchQueue; ids are acked after their batch commits. When the bulk
 * lane falls behind, agents' sockets are paused until it drains, so memory stays bounded and TCP
 * pushes back on the agents.
 */
export class IngestWriter {
  readonly #bulk: BatchQueue<BulkBatch>;
  readonly #events: BatchQueue<EventBatch>;
  readonly #results: BatchQueue<EventBatch>;
  #closed = false;

  constructor(db: Db, opts: WriterOptions, log: FastifyBaseLogger, hooks: WriterHooks = {}) {
    const queue = { maxRows: opts.maxBatchItems, flushIntervalMs: opts.flushIntervalMs, overloadRows: opts.maxBatchItems * OVERLOAD_BATCHES };
    this.#bulk = new BatchQueue<BulkBatch>(
      'bulk',
      () => ({ seen: new Map(), metrics: [], ids: [] }),
      (b) => storeBulkIsolated(db, b),
      { ...queue, flushIntervalMs: opts.bulkIntervalMs },
      log,
    );
    const events = (name: string) =>
      new BatchQueue<EventBatch>(
        name,
        () => ({ items: [], ids: [], receivedAt: new Date(0) }),
        async (b) => {
          const outcome = await storeEvents(db, b, opts.lifecycle, { sentAt: hooks.execSentAt, execDone: hooks.execDone });
          hooks.onEventsStored?.(outcome);
          return outcome.refused;
        },
        queue,
        log,
      );
    this.#events = events('events');
    this.#results = events('results');
  }

  /**
   * Take one frame: it marks its agent seen (with the latest heartbeat stats or hello), may carry
   * metric samples or an event, and an id to ack to `ackTo` once stored. The id travels in the
   * same batch as what it names.
   */
  add(frame: IncomingFrame): void {
    if (this.#closed) return;
    const ack = frame.msgId !== undefined && frame.ackTo ? { target: frame.ackTo, id: frame.msgId } : undefined;

    const bulk = this.#bulk.current;
    let bulkRows = 0;
    const prev = bulk.seen.get(frame.agentId);
    if (prev) {
      prev.at = frame.at;
    } else {
      bulk.seen.set(frame.agentId, { at: frame.at });
      bulkRows++;
    }
    const seen = bulk.seen.get(frame.agentId)!;
    if (frame.stats) seen.stats = frame.stats;
    if (frame.hello) seen.hello = frame.hello;
    if (frame.samples) {
      bulk.metrics.push({ agentId: frame.agentId, msgId: frame.msgId, samples: frame.samples });
      bulkRows += frame.samples.length;
    }

    if (frame.event) {
      const lane = frame.event.kind === 'exec_result' ? this.#results : this.#events;
      const events = lane.current;
      events.items.push(frame.event);
      events.receivedAt = frame.at;
      if (ack) events.ids.push({ agentId: frame.agentId, msgId: ack.id });
      this.#bulk.added(bulkRows, 1);
      lane.added(ack ? 2 : 1, 1, ack);
    } else {
      if (ack) bulk.ids.push({ agentId: frame.agentId, msgId: ack.id });
      this.#bulk.added(bulkRows + (ack ? 1 : 0), 1, ack);
    }
  }

  /** True when readers should pause: the database is far behind on bulk writes. */
  get overloaded(): boolean {
    return this.#bulk.overloaded;
  }

  whenDrained(resume: () => void): void {
    this.#bulk.whenDrained(resume);
  }

  /** Bumps at every bulk write; a reader counts its frames per epoch to tell floods from trickles. */
  get epoch(): number {
    return this.#bulk.epoch;
  }

  /** Counters for operators (and tests): frames taken and transactions committed. */
  get stats(): { batches: number; frames: number; failedBatches: number; eventBatches: number } {
    return {
      batches: this.#bulk.stats.batches,
      // Every frame passes through the bulk lane (it marks its agent seen).
      frames: this.#bulk.stats.frames,
      failedBatches: this.#bulk.stats.failedBatches + this.#events.stats.failedBatches + this.#results.stats.failedBatches,
      eventBatches: this.#events.stats.batches + this.#results.stats.batches,
    };
  }

  async flush(): Promise<void> {
    await Promise.all([this.#bulk.flush(), this.#events.flush(), this.#results.flush()]);
  }

  /** Flush and stop taking frames. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }
}
