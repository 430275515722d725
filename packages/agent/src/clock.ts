/**
 * Time for the agent's watchers: the wall clock, the monotonic clock systemd stamps units with,
 * and timers. Injected so a test moves time (`ManualClock` in the tests) instead of sleeping
 * through a settle time or a repeat window; child processes and sockets stay real.
 */
export interface Timer {
  cancel(): void;
}

export interface AgentClock {
  /** Wall-clock milliseconds, as Date.now(). */
  now(): number;
  /** CLOCK_MONOTONIC in microseconds, the clock of systemd's *TimestampMonotonic properties. */
  monotonicUs(): bigint;
  /** Run `fn` once after `ms`. */
  after(ms: number, fn: () => void): Timer;
}

export const systemClock: AgentClock = {
  now: () => Date.now(),
  monotonicUs: () => process.hrtime.bigint() / 1000n, // libuv reads CLOCK_MONOTONIC on Linux
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(timer) };
  },
};
