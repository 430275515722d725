/**
 * How results become states, the same wherever a check runs: a location (the hub, an agent) is
 * down after `failure_threshold` failures in a row and up after `success_threshold` successes in
 * a row; a monitor is down when a quorum of its locations is.
 */
export const MONITOR_STATES = ['up', 'down', 'unknown'] as const;
export type MonitorState = (typeof MONITOR_STATES)[number];

export interface LocationCounters {
  state: MonitorState;
  /** Failures in a row, and successes in a row, up to the latest result. */
  failures: number;
  successes: number;
}

export interface Thresholds {
  failure_threshold: number;
  success_threshold: number;
}

/**
 * A location's state after one more result: down after `failure_threshold` failures in a row, up
 * after `success_threshold` successes in a row; a location with no state yet (new, or back after
 * its agent was offline) is up at its first success.
 */
export function nextLocationState(l: LocationCounters, ok: boolean, m: Thresholds): LocationCounters {
  const failures = ok ? 0 : l.failures + 1;
  const successes = ok ? l.successes + 1 : 0;
  let state = l.state;
  if (!ok && failures >= m.failure_threshold) state = 'down';
  if (ok && (l.state === 'unknown' || successes >= m.success_threshold)) state = 'up';
  return { state, failures, successes };
}

/**
 * The monitor's state from the states of the `locations` it runs from (one per location; a
 * location with no result yet, or whose agent is offline, is 'unknown'):
 * - down when at least `quorum` locations are down (default: a majority of the locations), so
 *   one place's network trouble is not an outage; a quorum above the locations there are asks
 *   for all of them, never the impossible;
 * - up when that quorum is not met and at least one location sees it up;
 * - unknown otherwise: no location can tell (every agent offline), or the only ones that can
 *   see it down and are too few to decide.
 */
export function monitorState(locations: readonly MonitorState[], quorum: number | null): MonitorState {
  const n = locations.length;
  if (n === 0) return 'unknown';
  const need = Math.min(quorum ?? Math.floor(n / 2) + 1, n);
  let down = 0;
  let up = 0;
  for (const s of locations) {
    if (s === 'down') down++;
    else if (s === 'up') up++;
  }
  if (down >= need) return 'down';
  return up > 0 ? 'up' : 'unknown';
}
