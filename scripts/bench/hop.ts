/**
 * `pnpm bench hop`: the machine's floor under a hop between two processes, with nothing else
 * running: one byte to an echo server in a process of its own (echo-server.ts) and back over
 * loopback TCP, one at a time, a random 0-10 ms apart (so the CPUs go idle between, as they do
 * under a fleet at real intervals). Then the same with every CPU kept busy by a spinning
 * process at SCHED_IDLE (`chrt -i 0`), which runs only when nothing else wants the CPU: on a
 * virtual machine whose idle vCPUs halt, whether keeping them from halting shortens a wakeup.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';

export interface HopRow {
  n: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  over_1ms: number;
}

const ECHO = path.join(import.meta.dirname, 'echo-server.ts');

/** An echo server in a process of its own, and a connection to it: `once()` times one byte there and back (ms). */
export async function startEcho(): Promise<{ once(): Promise<number>; close(): void }> {
  const echo = fork(ECHO, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => echo.once('message', (p) => resolve(p as number)).once('exit', () => reject(new Error('echo server exited'))));
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  return {
    async once() {
      const s = performance.now();
      await new Promise((resolve) => {
        socket.once('data', resolve);
        socket.write('x');
      });
      return performance.now() - s;
    },
    close() {
      socket.destroy();
      echo.disconnect();
    },
  };
}

async function hops(n: number): Promise<HopRow> {
  const echo = await startEcho();
  try {
    const ms: number[] = [];
    for (let i = 0; i < n + 50; i++) {
      await new Promise((r) => setTimeout(r, Math.random() * 10));
      const took = await echo.once();
      if (i >= 50) ms.push(took); // the first 50 warm up
    }
    ms.sort((a, b) => a - b);
    const at = (q: number) => Math.round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]! * 1000) / 1000;
    return { n: ms.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: Math.round(ms.at(-1)! * 1000) / 1000, over_1ms: ms.filter((x) => x > 1).length };
  } finally {
    echo.close();
  }
}

export async function hopBench(n = Number(process.env.BENCH_HOPS ?? 3000)): Promise<{ idle: HopRow; spinning: HopRow | null }> {
  const idle = await hops(n);
  const spinners: ChildProcess[] = [];
  try {
    for (let cpu = 0; cpu < availableParallelism(); cpu++) {
      spinners.push(spawn('taskset', ['-c', String(cpu), 'chrt', '-i', '0', process.execPath, '-e', 'for (;;);'], { stdio: 'ignore' }));
    }
    const started = await Promise.all(spinners.map((s) => new Promise<boolean>((resolve) => s.once('spawn', () => resolve(true)).once('error', () => resolve(false)))));
    if (!started.every(Boolean)) return { idle, spinning: null };
    await new Promise((r) => setTimeout(r, 500));
    return { idle, spinning: await hops(n) };
  } finally {
    for (const s of spinners) s.kill('SIGKILL');
  }
}
