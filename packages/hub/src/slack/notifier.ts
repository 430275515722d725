import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.ts';
import { Worker } from '../worker.ts';
import type { Db } from '../storage/database.ts';
import {
  claimDue,
  completeNotification,
  deferNotification,
  failNotification,
  getSlackMessage,
  isMuted,
  messageData,
  retryNotification,
  releaseLeases,
  retryPendingNow,
  saveSlackMessage,
  type DueNotification,
} from '../storage/notifications.ts';
import { getAttempt } from '../storage/rules.ts';
import { subjectOf } from '../storage/silences.ts';
import { silencing } from '../remediation/match.ts';
import { approvalBlocks, renderMessage } from './blocks.ts';
import { agentHostname } from '../storage/agents.ts';

/** How the hub talks to Slack: the Web API (app mode) or an incoming webhook (post only). */
export interface SlackTransport {
  readonly buttons: boolean;
  post(channel: string, msg: { text: string; blocks: object[] }): Promise<{ ts: string | null }>;
  /** Edit a posted message; absent in webhook mode. */
  update?(channel: string, ts: string, msg: { text: string; blocks: object[] }): Promise<void>;
  /** A reply in a message's thread (blocks for questions); absent in webhook mode. */
  reply?(channel: string, ts: string, text: string, blocks?: object[]): Promise<void>;
}

/** Slack asked us to wait (HTTP 429); `retryAfterMs` from its Retry-After header. */
export class SlackRateLimited extends Error {
  constructor(readonly retryAfterMs: number) {
    super(`rate limited by Slack for ${retryAfterMs} ms`);
  }
}

/** A silence holds the incident's first post until `until`. */
class Silenced extends Error {
  constructor(readonly until: Date) {
    super('silenced');
  }
}
const SILENCED = 'silenced';

/** Slack refused the call for a reason retrying will not change (channel_not_found, invalid_auth…). */
export class SlackRefused extends Error {}

export interface NotifierOptions {
  channel: string;
  /** Least time between two posts (messages and thread replies) to one channel. */
  paceMs: number;
  /** Look for due work at least this often (retries that came due, other hubs' leftovers). */
  pollMs: number;
  maxAttempts: number;
  /** What time it is for the outbox's rows, and the waits between posts and after a 429. */
  clock: Clock;
}

const LEASE_MS = 60_000;
const backoff = (attempts: number) => Math.min(300_000, 1000 * 2 ** attempts);

/**
 * Works the notifications outbox in order: posts an incident's message once, edits it after
 * each change, and posts thread replies under it. Posts to a channel are paced; a 429 pauses the
 * channel for Retry-After without counting as a failure; other errors back off and are retried
 * up to `maxAttempts` times. Everything pending is in the database, so a restart resumes it.
 */
export class SlackNotifier {
  readonly worker: Worker;
  #lastPostAt = 0;
  #pausedUntil = 0;

  constructor(
    private readonly db: Db,
    private readonly transport: SlackTransport,
    private readonly opts: NotifierOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.worker = new Worker(
      {
        name: 'slack notifier',
        pollMs: opts.pollMs,
        prepare: async () => {
          const pending = await retryPendingNow(this.db, this.opts.clock.now());
          if (pending > 0) this.log.info({ pending }, 'slack notifications pending from before: sending');
        },
        run: () => this.#drain(),
      },
      log,
    );
  }

  /** Pending notifications (from before a restart, or backing off) are tried at once. */
  start = (): Promise<void> => this.worker.start();
  /** There may be something to send. */
  kick = (): void => this.worker.kick();
  stop = (): Promise<void> => this.worker.stop();
  /** Resolves once nothing is being sent (tests). */
  idle = (): Promise<void> => this.worker.idle();

  async #drain(): Promise<void> {
    for (;;) {
      if (this.worker.stopped) return;
      const wait = this.#pausedUntil - this.#now();
      if (wait > 0) {
        // Rate limited: come back when Slack said to.
        this.opts.clock.after(wait, this.kick);
        return;
      }
      const due = await claimDue(this.db, 10, this.opts.clock.now(), LEASE_MS);
      if (due.length === 0) return;
      for (const [i, n] of due.entries()) {
        if (this.worker.stopped) {
          // Stopping: give back what this hub leased and did not send, for the next start.
          await releaseLeases(this.db, due.slice(i).map((d) => d.id));
          return;
        }
        if (this.#pausedUntil > this.#now()) {
          // Rate limited midway: the rest of the batch waits too, in order.
          await retryNotification(this.db, n.id, new Date(this.#pausedUntil), 'waiting out a rate limit', false);
          continue;
        }
        await this.#deliver(n);
      }
    }
  }

  async #deliver(n: DueNotification): Promise<void> {
    try {
      if (n.kind === 'message') await this.#syncMessage(n.incident_id, n);
      else if (n.kind === 'approval') {
        const attempt = await getAttempt(this.db, n.body ?? '');
        if (attempt?.status === 'awaiting_approval') {
          const q = approvalBlocks(attempt, await this.#hostname(attempt.agent_id));
          await this.#reply(n.incident_id, q.text, q.blocks);
        }
      } else await this.#reply(n.incident_id, n.body ?? '');
      await completeNotification(this.db, n, this.opts.clock.now());
    } catch (err) {
      const now = this.opts.clock.now().getTime();
      if (err instanceof Silenced) {
        await deferNotification(this.db, n.id, err.until, SILENCED);
        // Come back as the silence ends, not at the next poll.
        this.opts.clock.after(Math.max(0, err.until.getTime() - now) + 10, this.kick);
        return;
      }
      if (err instanceof SlackRateLimited) {
        this.#pausedUntil = now + err.retryAfterMs;
        this.log.warn({ retryAfterMs: err.retryAfterMs }, 'slack rate limit: pausing');
        await retryNotification(this.db, n.id, new Date(now + err.retryAfterMs), err.message, false);
        return;
      }
      const message = (err as Error).message ?? String(err);
      if (err instanceof SlackRefused || n.attempts + 1 >= this.opts.maxAttempts) {
        this.log.error({ incidentId: n.incident_id, kind: n.kind, error: message }, 'slack notification failed for good');
        await failNotification(this.db, n.id, this.opts.clock.now(), message);
        return;
      }
      this.log.warn({ incidentId: n.incident_id, kind: n.kind, error: message, attempts: n.attempts + 1 }, 'slack notification failed; retrying');
      await retryNotification(this.db, n.id, new Date(now + backoff(n.attempts)), message, true);
    }
  }

  /** Post the incident's message, or edit it to show the incident as it is now. */
  async #syncMessage(incidentId: string, n?: DueNotification): Promise<{ channel: string; ts: string | null } | undefined> {
    const data = await messageData(this.db, incidentId);
    if (!data) return undefined; // deleted with its agent
    const msg = renderMessage(data, { buttons: this.transport.buttons });
    const posted = await getSlackMessage(this.db, incidentId);
    if (posted) {
      if (posted.ts && this.transport.update) await this.transport.update(posted.channel, posted.ts, msg);
      return posted;
    }
    // Never posted: a muted or ignored incident stays out of the channel.
    if (data.incident.status === 'ignored' || (await isMuted(this.db, data.incident, this.opts.clock.now()))) return undefined;
    // Silenced: wait for the silence to end; then only what is still open is posted.
    const subject = await subjectOf(this.db, incidentId);
    const silence = subject ? await silencing(this.db, subject, this.opts.clock.now()) : undefined;
    if (silence && n) throw new Silenced(silence.until);
    if (n?.body === SILENCED && data.incident.status === 'resolved') return undefined;
    await this.#pace();
    const { ts } = await this.transport.post(this.opts.channel, msg);
    await saveSlackMessage(this.db, incidentId, this.opts.channel, ts, this.opts.clock.now());
    return { channel: this.opts.channel, ts };
  }

  async #reply(incidentId: string, text: string, blocks?: object[]): Promise<void> {
    if (!this.transport.reply) return;
    const posted = (await getSlackMessage(this.db, incidentId)) ?? (await this.#syncMessage(incidentId));
    if (!posted?.ts) return;
    await this.#pace();
    await this.transport.reply(posted.channel, posted.ts, text, blocks);
  }

  #hostname(agentId: string): Promise<string> {
    return agentHostname(this.db, agentId);
  }

  /** Wait until the last post is `paceMs` ago (never longer, should the clock be set back). */
  async #pace(): Promise<void> {
    const wait = Math.min(this.opts.paceMs, this.#lastPostAt + this.opts.paceMs - this.#now());
    if (wait > 0) await this.opts.clock.wait(wait);
    this.#lastPostAt = this.#now();
  }

  #now(): number {
    return this.opts.clock.now().getTime();
  }
}
