import cron from 'node-cron';

/**
 * What time it is, for everything the hub records or decides by the time (incident times,
 * reopen and flapping windows, offline deadlines, verification deadlines, retention, silences),
 * and waiting on that time (the pace between Slack posts, a rate limit's pause, coming back when
 * a silence ends). Passed to the hub's parts by buildApp, so a test moves time by moving the
 * clock instead of rewriting rows or sleeping. An agent's read budget and the ingest flush
 * measure real elapsed time and do not use it. Periodic work (the offline sweep, retention) is
 * scheduled through it too: a test's clock runs it only when the test asks, so a wall-clock timer
 * never fires between a test's jump in time and what the test does next.
 */
export interface Clock {
  now(): Date;
  /** Resolves once `ms` of this clock's time has passed. */
  wait(ms: number): Promise<void>;
  /** Calls `fn` once `ms` of this clock's time has passed; never keeps the process alive. */
  after(ms: number, fn: () => void): void;
  /** Runs `fn` on a cron schedule (one run at a time); the returned function stops it. */
  every(schedule: string, name: string, fn: () => Promise<void>): () => Promise<void>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  wait: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  after: (ms, fn) => void setTimeout(fn, ms).unref(),
  every: (schedule, name, fn) => {
    const task = cron.schedule(schedule, fn, { name, noOverlap: true });
    return async () => {
      await task.destroy();
    };
  },
};
