import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.ts';
import type OpenAI from 'openai';
import type { Db } from '../storage/database.ts';
import { claimAnalyses, hostContext, recentAnalysis, requeueRunningAnalyses, storeAnalysis, type QueuedIncident, type StoredAnalysis } from '../storage/analysis.ts';
import { analyze } from './llm.ts';
import { recordEvent } from '../storage/timeline.ts';
import { enqueueMessage } from '../storage/notifications.ts';
import type { Redactor } from './redact.ts';
import type { HubEvents } from '../events.ts';
import { Worker } from '../worker.ts';

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
  /** Told of each stored analysis. */
  events: HubEvents;
  clock: Clock;
  /** The catalogue a connected agent said in its hello (fresher than the stored one), if connected. */
  liveCatalogue(agentId: string): readonly string[] | null | undefined;
}

/**
 * Works the analysis queue (incidents with analysis_status = pending) at most `concurrency` at a
 * time: the model when one is configured, the heuristics otherwise or when it fails.
 */
export class Analyzer {
  readonly worker: Worker;
  #analyzing = 0;

  constructor(
    private readonly db: Db,
    private readonly opts: AnalyzerOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.worker = new Worker(
      {
        name: 'analyzer',
        pollMs: opts.pollMs,
        prepare: async () => {
          const requeued = await requeueRunningAnalyses(this.db);
          if (requeued > 0) this.log.info({ requeued }, 'resuming analyses interrupted by a restart');
        },
        run: () => this.#claim(),
      },
      log,
    );
  }

  start = (): Promise<void> => this.worker.start();
  /** There may be new work. */
  kick = (): void => this.worker.kick();
  stop = (): Promise<void> => this.worker.stop();

  /** Claim what the free slots can take; each analysis goes on after the run, tracked. */
  async #claim(): Promise<void> {
    const room = this.opts.concurrency - this.#analyzing;
    if (room <= 0) return;
    for (const incident of await claimAnalyses(this.db, room)) {
      this.#analyzing++;
      void this.worker.track(
        this.#analyze(incident).finally(() => {
          this.#analyzing--;
          this.kick();
        }),
      );
    }
  }

  async #analyze(incident: QueuedIncident): Promise<void> {
    try {
      const at = this.opts.clock.now();
      await recordEvent(this.db, { incidentId: incident.id, at, actor: 'hub', kind: 'analyzing' });
      const reused =
        incident.analysis_reuse && this.opts.reuseMs > 0 && this.opts.llm ? await recentAnalysis(this.db, incident, new Date(at.getTime() - this.opts.reuseMs)) : undefined;
      const analysis: StoredAnalysis = reused
        ? { ...reused.analysis, reused_from: reused.id }
        : { ...(await this.#ask(incident)), analyzed_at: this.opts.clock.now().toISOString() };
      const done = this.opts.clock.now();
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
      this.opts.events.emit('analysis.stored', { incidentId: incident.id });
    } catch (err) {
      // Left 'running': the next start puts it back in the queue.
      this.log.error({ err, incidentId: incident.id }, 'analysis failed');
    }
  }

  async #ask(incident: QueuedIncident) {
    // An integration's alert not linked to a host: no host, metrics or catalogue to tell.
    const { agent, metrics } = incident.agent_id ? await hostContext(this.db, incident.agent_id) : { agent: undefined, metrics: undefined };
    const catalogue = incident.agent_id ? (this.opts.liveCatalogue(incident.agent_id) ?? agent?.actions ?? null) : [];
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
