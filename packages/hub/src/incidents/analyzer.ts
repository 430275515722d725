import type { FastifyBaseLogger } from 'fastify';
import type OpenAI from 'openai';
import type { AgentRegistry } from '../ingest/registry.ts';
import type { Db } from '../storage/database.ts';
import { claimAnalyses, hostContext, recentAnalysis, requeueRunningAnalyses, storeAnalysis, type QueuedIncident, type StoredAnalysis } from '../storage/analysis.ts';
import { analyze } from './llm.ts';
import { recordEvent } from '../storage/timeline.ts';
import { enqueueMessage } from '../storage/notifications.ts';
import type { Redactor } from './redact.ts';

export interface AnalyzerOptions {
  llm: { client: OpenAI; model: string } | null;
  concurrency: number;
  redactor: Redactor;
  /** Reuse a model's analysis of the same fingerprint younger than this (0: never). */
  reuseMs: number;
  /** A safety net: look for queued work this often even when nobody kicks. */
  pollMs: number;
  /** Queue a Slack edit with each stored analysis. */
  notify: boolean;
  /** Called after each stored analysis. */
  onAnalyzed?: (incidentId: string) => void;
}

/**
 * Works the analysis queue (incidents with analysis_status = pending) at most `concurrency` at a
 * time: the model when one is configured, the heuristics otherwise or when it fails.
 */
export class Analyzer {
  #running = 0;
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly db: Db,
    private readonly registry: AgentRegistry,
    private readonly opts: AnalyzerOptions,
    private readonly log: FastifyBaseLogger,
  ) {}

  async start(): Promise<void> {
    const requeued = await requeueRunningAnalyses(this.db);
    if (requeued > 0) this.log.info({ requeued }, 'resuming analyses interrupted by a restart');
    this.#timer = setInterval(() => this.kick(), this.opts.pollMs);
    this.#timer.unref();
    this.kick();
  }

  /** There may be new work. */
  kick(): void {
    if (this.#stopped || this.#running >= this.opts.concurrency) return;
    const room = this.opts.concurrency - this.#running;
    this.#running += room; // reserve while claiming
    void claimAnalyses(this.db, room).then(
      (claimed) => {
        this.#running -= room - claimed.length;
        for (const incident of claimed) this.#track(this.#analyze(incident));
      },
      (err) => {
        this.#running -= room;
        if (!this.#stopped) this.log.warn({ err }, 'could not read the analysis queue');
      },
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await Promise.allSettled([...this.#inFlight]);
  }

  #track(p: Promise<void>): void {
    this.#inFlight.add(p);
    void p.catch((err) => this.log.error({ err }, 'analysis failed; the queue tries again')).finally(() => {
      this.#inFlight.delete(p);
      this.#running--;
      this.kick();
    });
  }

  async #analyze(incident: QueuedIncident): Promise<void> {
    try {
      const at = new Date();
      await recordEvent(this.db, { incidentId: incident.id, at, actor: 'hub', kind: 'analyzing' });
      const reused =
        incident.analysis_reuse && this.opts.reuseMs > 0 && this.opts.llm ? await recentAnalysis(this.db, incident, new Date(at.getTime() - this.opts.reuseMs)) : undefined;
      const analysis: StoredAnalysis = reused
        ? { ...reused.analysis, reused_from: reused.id }
        : { ...(await this.#ask(incident)), analyzed_at: new Date().toISOString() };
      const done = new Date();
      if (!(await storeAnalysis(this.db, incident.id, analysis))) return; // asked again meanwhile: the newer request wins
      if (this.opts.notify) await enqueueMessage(this.db, incident.id, done);
      await recordEvent(this.db, {
        incidentId: incident.id,
        at: done,
        actor: analysis.source,
        kind: 'analyzed',
        detail: {
          confidence: analysis.confidence,
          suggested_action: analysis.suggested_action?.command ?? null,
          redactions: analysis.redactions,
          ...(reused ? { reused_from: reused.id } : {}),
        },
      });
      this.opts.onAnalyzed?.(incident.id);
    } catch (err) {
      // Left 'running': the next start puts it back in the queue.
      this.log.error({ err, incidentId: incident.id }, 'analysis failed');
    }
  }

  async #ask(incident: QueuedIncident) {
    const { agent, metrics } = await hostContext(this.db, incident.agent_id);
    const catalogue = this.registry.get(incident.agent_id)?.actions ?? agent?.actions ?? null;
    return analyze(
      this.opts.llm,
      {
        incident,
        host: agent ? { hostname: agent.hostname, ...(agent.facts ?? {}) } : null,
        metrics: metrics ? { ...metrics, ts: metrics.ts.toISOString() } : null,
        catalogue,
      },
      this.opts.redactor,
      (err) => this.log.warn({ incidentId: incident.id, error: err.message }, 'model analysis failed; using heuristics'),
    );
  }
}
