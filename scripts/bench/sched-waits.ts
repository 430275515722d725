/**
 * Who ran while a thread waited for a CPU, from a kernel scheduler trace (`perf sched record -a`,
 * as `pnpm bench fleet` takes with BENCH_SCHED_TRACE=FILE):
 *
 *   node --import tsx scripts/bench/sched-waits.ts FILE TID [label=pid,pid ...]
 *
 * A wait starts when the thread is woken (sched_waking) or switched out still runnable
 * (preempted) and ends when it is switched in. For each wait, what ran on the CPU it was switched
 * in on, over the wait, is added up by process: the groups named on the command line (by process
 * id: `clients=812,813 bench=700`), then PostgreSQL, the kernel's threads, idle, and any other.
 * Also which process took the CPU each time the thread was preempted. Needs `perf` (Debian's
 * linux-perf).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const [file, tidArg, ...labelArgs] = process.argv.slice(2);
if (!file || !tidArg) {
  process.stderr.write('usage: sched-waits.ts PERF_DATA TID [label=pid,pid ...]\n');
  process.exit(2);
}
const target = Number(tidArg);
const named = new Map<number, string>();
for (const arg of labelArgs) {
  const [label, pids] = arg.split('=');
  for (const pid of (pids ?? '').split(',').filter(Boolean)) named.set(Number(pid), label!);
}

/** tid → process id, learnt from each event's own header (the task it ran in). */
const tgidOf = new Map<number, number>();
const commOf = new Map<number, string>();
const groupOf = (tid: number): string => {
  if (tid === 0) return 'idle';
  const tgid = tgidOf.get(tid);
  if (tid === target) return 'the thread itself';
  if (tgid === target) return `its process's other threads (${commOf.get(tid) ?? '?'})`;
  if (tgid !== undefined && named.has(tgid)) return named.get(tgid)!;
  if (named.has(tid)) return named.get(tid)!;
  const comm = commOf.get(tid) ?? '?';
  if (comm === 'postgres') return 'postgres';
  if (/^(kworker|ksoftirqd|migration|rcu_|kthreadd|jbd2|kswapd|irq\/)/.test(comm)) return `kernel (${comm.replace(/[/:].*$/, '')})`;
  return `other (${comm})`;
};

interface Segment {
  tid: number;
  start: number;
  end: number;
}
const RECENT = 4096;
/** Per CPU: what runs now, since when, and the recent segments of what ran. */
const cpus = new Map<number, { tid: number; since: number; past: Segment[] }>();
const cpuState = (cpu: number) => {
  let s = cpus.get(cpu);
  if (!s) cpus.set(cpu, (s = { tid: -1, since: 0, past: [] }));
  return s;
};

let waitingSince: number | null = null;
/** Whether the thread is on a CPU now (a wakeup of a running thread is no wait). */
let onCpu = false;
let waitKind: 'woken' | 'preempted' = 'woken';
let woke = -1;
const ranDuring = new Map<string, number>();
const preemptedBy = new Map<string, number>();
const waits: number[] = [];
/** Waits that began with the CPU it then ran on idle: how long that CPU took to wake and run it. */
const idleWaits: number[] = [];
let idleAtStart = false;
const waitsByKind = { woken: 0, preempted: 0 };
let first = Infinity;
let last = 0;
let running = 0;

const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);

// `perf script` lines: "comm pid/tid [cpu] time: sched:event: fields".
const LINE = /^\s*(.+?)\s+(\d+)\/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s(.*)$/;
const perf = spawn('perf', ['script', '-i', file, '-F', 'comm,pid,tid,cpu,time,event,trace'], { stdio: ['ignore', 'pipe', 'ignore'] });
const lines = createInterface({ input: perf.stdout });
for await (const line of lines) {
  const m = LINE.exec(line);
  if (!m) continue;
  const [, comm, pid, tid, cpuText, timeText, event, fields] = m;
  const t = Number(timeText) * 1000; // ms
  const cpu = Number(cpuText);
  tgidOf.set(Number(tid), Number(pid));
  commOf.set(Number(tid), comm!);
  first = Math.min(first, t);
  last = Math.max(last, t);
  if (event === 'sched_waking') {
    const woken = Number(/ pid=(\d+)/.exec(fields!)?.[1]);
    if (woken === target && waitingSince === null && !onCpu) {
      waitingSince = t;
      waitKind = 'woken';
      woke = Number(/ target_cpu=(\d+)/.exec(fields!)?.[1]);
      idleAtStart = cpuState(woke).tid === 0;
    }
  } else if (event === 'sched_switch') {
    const f = /prev_comm=(.*) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+)/.exec(fields!);
    if (!f) continue;
    const prev = Number(f[2]);
    const next = Number(f[5]);
    commOf.set(next, f[4]!);
    const state = cpuState(cpu);
    if (state.tid >= 0) {
      state.past.push({ tid: state.tid, start: state.since, end: t });
      if (state.past.length > RECENT) state.past.splice(0, state.past.length - RECENT);
    }
    if (prev === target) {
      onCpu = false;
      running += t - state.since;
      if (f[3]!.startsWith('R')) {
        waitingSince = t;
        waitKind = 'preempted';
        idleAtStart = false;
        add(preemptedBy, groupOf(next), 1);
      }
    }
    if (next === target) onCpu = true;
    if (next === target && waitingSince !== null) {
      const from = waitingSince;
      waits.push(t - from);
      if (idleAtStart && cpu === woke) idleWaits.push(t - from);
      waitsByKind[waitKind] += t - from;
      for (let i = state.past.length - 1; i >= 0; i--) {
        const s = state.past[i]!;
        if (s.end <= from) break;
        add(ranDuring, groupOf(s.tid), Math.min(s.end, t) - Math.max(s.start, from));
      }
      waitingSince = null;
    }
    state.tid = next;
    state.since = t;
  }
}

const ms = (x: number) => Math.round(x * 10) / 10;
const sorted = [...waits].sort((a, b) => a - b);
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
const total = waits.reduce((a, b) => a + b, 0);
const idleSorted = [...idleWaits].sort((a, b) => a - b);
const idlePct = (p: number) => idleSorted[Math.min(idleSorted.length - 1, Math.floor((p / 100) * idleSorted.length))] ?? 0;
const out = {
  trace_ms: ms(last - first),
  thread: target,
  ran_ms: ms(running),
  waited_ms: ms(total),
  waits: waits.length,
  waited_after_wakeup_ms: ms(waitsByKind.woken),
  waited_after_preemption_ms: ms(waitsByKind.preempted),
  wait_p50_p99_max_ms: [pct(50), pct(99), sorted.at(-1) ?? 0].map((x) => Math.round(x * 1000) / 1000),
  waits_over_1ms: waits.filter((w) => w > 1).length,
  woken_on_an_idle_cpu: {
    waits: idleWaits.length,
    waited_ms: ms(idleWaits.reduce((a, b) => a + b, 0)),
    p50_p99_max_ms: [idlePct(50), idlePct(99), idleSorted.at(-1) ?? 0].map((x) => Math.round(x * 1000) / 1000),
  },
  waits_over_5ms: waits.filter((w) => w > 5).length,
  ran_on_its_cpu_while_it_waited_ms: Object.fromEntries([...ranDuring].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, ms(v)])),
  preempted_by: Object.fromEntries([...preemptedBy].sort((a, b) => b[1] - a[1])),
};
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
