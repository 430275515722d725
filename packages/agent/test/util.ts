/** Small helpers shared by the agent's end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AgentClock, Timer } from '../src/clock.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Poll `fn` (errors count as "not yet") until it returns something truthy, or fail after `ms`. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * An AgentClock a test moves by hand: `advance(ms)` runs the timers that fall due, in order,
 * with the clock at each one's time. Child processes and sockets stay real.
 */
export class ManualClock implements AgentClock {
  #ms: number;
  #monoUs = 1_000_000_000n;
  #seq = 0;
  readonly #timers: { at: number; seq: number; fn: () => void }[] = [];

  constructor(startMs = Date.now()) {
    this.#ms = startMs;
  }
  now(): number {
    return this.#ms;
  }
  monotonicUs(): bigint {
    return this.#monoUs;
  }
  after(ms: number, fn: () => void): Timer {
    const timer = { at: this.#ms + Math.max(0, ms), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return {
      cancel: () => {
        const i = this.#timers.indexOf(timer);
        if (i >= 0) this.#timers.splice(i, 1);
      },
    };
  }
  /** Timers waiting to fire. */
  get pending(): number {
    return this.#timers.length;
  }
  advance(ms: number): void {
    const target = this.#ms + ms;
    for (;;) {
      const next = this.#timers.filter((x) => x.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.#timers.splice(this.#timers.indexOf(next), 1);
      this.#move(next.at);
      next.fn();
    }
    this.#move(target);
  }
  #move(to: number): void {
    this.#monoUs += BigInt(to - this.#ms) * 1000n;
    this.#ms = to;
  }
}

/** A TypeScript entry point (the hub's or the agent's main) as a child process, its output kept. */
export function proc(script: string, args: string[], env: Record<string, string>): { child: ChildProcess; exited: Promise<number | null>; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))), output: () => out };
}
