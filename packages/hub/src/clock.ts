/**
 * What time it is, for everything the hub records or decides by the time (incident times,
 * reopen and flapping windows, offline deadlines, verification deadlines, retention, silences).
 * Passed to the hub's parts by buildApp, so a test moves time by moving the clock instead of
 * rewriting rows. Pacing and rate limits (how long to wait before the next Slack post, an
 * agent's read budget) measure real elapsed time and do not use it.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
