import type { Clock } from './clock.ts';
import type { FastifyBaseLogger } from 'fastify';
import type { Db } from './storage/database.ts';
import { deleteExpiredSessions } from './storage/sessions.ts';
import { deleteMetricsBefore, downsampleMetrics, downsampleMonitorResults, pruneOlder, pruneReceivedEnvelopes } from './storage/retention.ts';

export interface RetentionSettings {
  /** Metric samples are kept as sent this long, then as 5-minute averages... */
  metricsRawHours: number;
  /** ...until they are this old. */
  metricsRetentionDays: number;
  /** Envelope ids are remembered (for dedupe) this long. */
  dedupeRetentionDays: number;
  /** Monitor results are kept as checked this long, then hourly... */
  monitorResultsRawDays: number;
  /** ...until they are this old. */
  monitorResultsRetentionDays: number;
}

export interface RetentionReport {
  envelopeIds: number;
  /** Integration deliveries and heartbeat pings older than the envelope ids' window. */
  deliveries: number;
  expiredSamples: number;
  downsampledSamples: number;
  expiredResults: number;
  downsampledResults: number;
  /** Dashboard sessions past their end. */
  expiredSessions: number;
}

/** Rows per statement, and statements per run: a run is bounded, the next one goes on. */
const BATCH_ROWS = 5_000;
const MAX_STATEMENTS = 400;

/**
 * Keeps the database from growing without bound: forgets old envelope ids, deletes expired
 * metric samples and downsamples old ones. Every 10 minutes (and at start), in statements of at
 * most 5,000 rows with a turn of the event loop between them; a failed run is logged and the
 * next one retries.
 */
export class Retention {
  #stopTask: (() => Promise<void>) | null = null;
  #running: Promise<RetentionReport> | null = null;

  constructor(
    private readonly db: Db,
    private readonly settings: RetentionSettings,
    private readonly log: FastifyBaseLogger,
    private readonly clock: Clock,
  ) {}

  start(): void {
    if (this.#stopTask) return;
    this.#stopTask = this.clock.every('*/10 * * * *', 'opspilot-retention', () => this.#runLogged());
    void this.#runLogged();
  }

  async stop(): Promise<void> {
    await this.#stopTask?.();
    this.#stopTask = null;
    await this.#running?.catch(() => undefined);
  }

  /** One run now (or the one in progress). */
  run(now = this.clock.now()): Promise<RetentionReport> {
    this.#running ??= this.#run(now).finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #runLogged(): Promise<void> {
    try {
      const report = await this.run();
      if (Object.values(report).some((n) => n > 0)) this.log.info(report, 'retention: old data pruned');
    } catch (err) {
      this.log.warn({ err }, 'retention run failed; the next run retries');
    }
  }

  async #run(now: Date): Promise<RetentionReport> {
    const report: RetentionReport = { envelopeIds: 0, deliveries: 0, expiredSamples: 0, downsampledSamples: 0, expiredResults: 0, downsampledResults: 0, expiredSessions: 0 };
    let statements = 0;
    const drain = async (step: () => Promise<number>, key: keyof RetentionReport) => {
      while (statements < MAX_STATEMENTS) {
        statements++;
        const n = await step();
        report[key] += n;
        if (n < BATCH_ROWS) return;
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const days = (d: number) => new Date(now.getTime() - d * 86_400_000);
    await drain(() => pruneReceivedEnvelopes(this.db, days(this.settings.dedupeRetentionDays), BATCH_ROWS), 'envelopeIds');
    await drain(() => pruneOlder(this.db, 'integration_deliveries', days(this.settings.dedupeRetentionDays), BATCH_ROWS), 'deliveries');
    await drain(() => pruneOlder(this.db, 'heartbeat_pings', days(this.settings.dedupeRetentionDays), BATCH_ROWS), 'deliveries');
    await drain(() => deleteMetricsBefore(this.db, days(this.settings.metricsRetentionDays), BATCH_ROWS), 'expiredSamples');
    await drain(() => pruneOlder(this.db, 'monitor_results', days(this.settings.monitorResultsRetentionDays), BATCH_ROWS), 'expiredResults');
    await drain(() => downsampleMetrics(this.db, new Date(now.getTime() - this.settings.metricsRawHours * 3_600_000), BATCH_ROWS), 'downsampledSamples');
    await drain(() => deleteExpiredSessions(this.db, now, BATCH_ROWS), 'expiredSessions');
    await drain(() => downsampleMonitorResults(this.db, days(this.settings.monitorResultsRawDays), BATCH_ROWS), 'downsampledResults');
    return report;
  }
}
