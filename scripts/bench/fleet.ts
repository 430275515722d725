/**
 * `pnpm bench fleet`: a fleet at real intervals against one hub process on PostgreSQL, beside a
 * bare `ws` server holding the same sockets, in one run. N agents (BENCH_FLEET_AGENTS, 10,000) are
 * enrolled over REST and connected from client processes of at most 5,000 each, each from its own
 * source address (127.0.0.10, .11, …); each says hello, sends a heartbeat every 10 s and answers
 * execs at once. Once all are connected and a heartbeat round has passed, over the window
 * (BENCH_FLEET_SECONDS, 30): the hub's CPU and RSS, `POST /v1/admin/exec` round trips one at a time
 * and alert → ack (the incident committed) one at a time, both to and from random agents among 200
 * probes (part of the N, in a client process of their own: not stalled by 5,000 neighbours), and
 * `GET /healthz` (the HTTP floor; with balancers, also through one), a one-row INSERT committed
 * on PostgreSQL (the database's floor) and a byte to a process of its own and back (each hop's
 * floor) one at a time (BENCH_FLEET_SAMPLES, 200 each; after 20 of the first three not counted), and an 8 KB block written and fdatasync'd every 20 ms throughout
 * (the disk's floor: each exec or ack over 20 ms is told apart by whether a disk stall overlapped
 * it). Then
 * the same clients against the bare server: its RSS and CPU.
 *
 * With BENCH_FLEET_HUBS=K (K > 1): K hub processes on one database behind HAProxy (Debian's
 * package; one HAProxy process per 5,000 agents, since a process holds at most 20,000 files and a
 * proxied connection costs two: one per client process of 5,000), each client process on its own, execs asked at a random hub;
 * each hub's RSS and CPU; the bare server then holds as many sockets as one hub did. With
 * BENCH_FLEET_KILL=1, after the window one hub is killed (SIGKILL) and the reconnects of its agents
 * through the balancer are timed; once the deadline and a sweep have passed, the offline
 * incidents are counted. BENCH_FLEET_KILL=stop stops it instead (SIGTERM, as a rolling deploy
 * does): the same figures, and how long the hub took to exit. BENCH_HUB_LOG_DIR: each hub's log (at warn) is written there at the end;
 * BENCH_BALANCER_LOG_DIR: each HAProxy's log of its sessions (timings of each connection).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { open } from 'node:fs/promises';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, setPriority, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { spawnHub, freePort, haproxyConfig, type HubProcess } from '../hub-process.ts';
import { processes, statCpu } from './procs.ts';
import { startEcho } from './hop.ts';

/** BENCH_HUB_NODE_FLAGS, split: node options for every hub a bench starts (e.g. --trace-gc). */
export function hubNodeFlags(): string[] {
  return (process.env.BENCH_HUB_NODE_FLAGS ?? '').split(' ').filter(Boolean);
}

const CLIENT = path.join(import.meta.dirname, 'fleet-client.ts');
const BARE = path.join(import.meta.dirname, 'bare-receiver.ts');
const PER_CLIENT = 5000;
/** Agents in a client process of their own, which the timed execs and alerts go to. */
const PROBES = 200;
const HEARTBEAT_S = 10;

const HAPROXY = '/usr/sbin/haproxy';
/** BENCH_BALANCER_LOG_DIR: each HAProxy's session log (HTTP log format, one line per connection) there. */
const balancerLogDir = process.env.BENCH_BALANCER_LOG_DIR;
/** BENCH_HUB_CPU: the hubs pinned to this CPU, the bench and its clients to the others (taskset). */
const HUB_CPU = process.env.BENCH_HUB_CPU !== undefined ? Number(process.env.BENCH_HUB_CPU) : undefined;
const HUB_NICE = process.env.BENCH_HUB_NICE !== undefined ? Number(process.env.BENCH_HUB_NICE) : undefined;
/** prom-client's event-loop monitor's timer interval (its default `eventLoopMonitoringPrecision`). */
const LOOP_PRECISION_MS = 10;
/**
 * BENCH_SCHED_TRACE=FILE: the kernel's scheduler events (`perf sched record`, every CPU) for the
 * first BENCH_SCHED_TRACE_SECONDS (20) of the window, into FILE, for `perf sched timehist` or
 * `scripts/bench/sched-waits.ts`: who ran while the hub's main thread waited for a CPU.
 */
const SCHED_TRACE = process.env.BENCH_SCHED_TRACE;
const SCHED_TRACE_SECONDS = Number(process.env.BENCH_SCHED_TRACE_SECONDS ?? 20);
/** One HAProxy process per client process: 5,000 agents, 10,000 descriptors (a process may hold 20,000). */
const PER_BALANCER = 5000;

export interface FleetRow {
  connected: number;
  rss_mib: number;
  cpu_pct: number;
  /** How late the hub's event loop ran over the window (prom-client's histogram, reset at its start, less its 10 ms interval): p99 and max, ms. */
  loop_p99_ms?: number;
  loop_max_ms?: number;
  /** One `GET /metrics` (a Prometheus scrape) after the window, request to response: ms. */
  scrape_ms?: number;
  /**
   * The hub's main thread over the window: how long it was ready to run but waited for a CPU
   * (ms, /proc/<pid>/task/<pid>/schedstat), and how often the kernel took the CPU from it
   * (involuntary context switches). A CPU profile counts that time as the function it stopped
   * in: most often the write of a query, whose wakeup of PostgreSQL is where the switch happens.
   */
  main_waited_ms?: number;
  main_preempted?: number;
  exec?: Latency;
  ack?: Latency;
}

/** A series of timed samples: how many, how many failed, p50/p99/max (ms), how many over 20 ms. */
export interface Latency {
  n: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
  over_20: number;
  /** Of those over 20 ms, how many overlapped a disk stall (an fdatasync of the disk watch over 10 ms); exec and ack only. */
  over_20_in_stall?: number;
}

/** The disk watch writes and fdatasyncs a block this often; a sample over STALL_MS is a stall. */
const DISK_WATCH_MS = 20;
const STALL_MS = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssMib = (pid: number) => Math.round((Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024) * 10) / 10;
function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid);
  return user + system;
}
type CpuGroup = 'hubs' | 'clients' | 'balancers' | 'postgres' | 'bench' | 'kernel';
type MachineCpu = Record<CpuGroup | 'interrupts' | 'steal' | 'other' | 'idle', number>;
interface MachineSample {
  /** user nice system idle iowait irq softirq steal, in seconds (all cores; guest time is in user already). */
  cpu: number[];
  procs: Map<number, { group: CpuGroup | null; used: number }>;
}

/** Every process's CPU seconds so far, by group, and the machine's own counters. */
function machineSample(groups: { hubs: number[]; clients: number[] }): MachineSample {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map((n) => Number(n) / 100);
  const hubs = new Set(groups.hubs);
  const clients = new Set(groups.clients);
  const procs: MachineSample['procs'] = new Map();
  for (const { pid, cmd, cpu: used } of processes()) {
    const group: CpuGroup | null = hubs.has(pid)
      ? 'hubs'
      : clients.has(pid)
        ? 'clients'
        : pid === process.pid
          ? 'bench'
          : cmd.startsWith(HAPROXY)
            ? 'balancers'
            : cmd.startsWith('postgres') || cmd.includes('/bin/postgres')
              ? 'postgres'
              : cmd === ''
                ? 'kernel' // kernel threads have no command line (ksoftirqd: the network stack under load)
                : null;
    procs.set(pid, { group, used });
  }
  return { cpu, procs };
}

/**
 * Where the machine's CPU went between two samples, in seconds (all cores): the surviving hubs,
 * the client processes, the balancers, PostgreSQL, this process, kernel threads, interrupts (on
 * loopback, most of the network stack's work, charged to no process), time the hypervisor gave
 * other guests, the rest (other processes, and those that exited in between), and idle. On one
 * machine, a hub that cannot accept fast enough may be waiting for a core the others hold.
 */
function machineCpu(a: MachineSample, b: MachineSample): MachineCpu {
  const out: MachineCpu = { hubs: 0, clients: 0, balancers: 0, postgres: 0, bench: 0, kernel: 0, interrupts: 0, steal: 0, other: 0, idle: 0 };
  const d = b.cpu.map((v, i) => v - a.cpu[i]!);
  const total = d.reduce((x, y) => x + y, 0);
  out.idle = d[3]! + d[4]!;
  out.interrupts = d[5]! + d[6]!;
  out.steal = d[7]!;
  let counted = 0;
  // Processes alive at the second sample, since the first (or since they started). One that
  // exited in between took its whole history with it: its share lands in `other`.
  for (const [pid, now] of b.procs) {
    if (!now.group) continue;
    const used = now.used - (a.procs.get(pid)?.used ?? 0);
    out[now.group] += used;
    counted += used;
  }
  out.other = total - out.idle - out.interrupts - out.steal - counted;
  for (const k of Object.keys(out) as (keyof MachineCpu)[]) out[k] = Math.round(out[k] * 10) / 10;
  return out;
}
/** A process's main thread: time spent runnable but waiting for a CPU (ns), and involuntary context switches. */
function mainThreadSched(pid: number): { waitedNs: number; involuntary: number } {
  const [, waited] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
  const involuntary = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return { waitedNs: waited ?? NaN, involuntary };
}
/** A process's CPU seconds in user space and in the kernel (all its threads), and its main thread's (both). */
function cpuSplit(pid: number): { user: number; system: number; main: number } {
  const main = statCpu(`/proc/${pid}/task/${pid}/stat`);
  return { ...statCpu(`/proc/${pid}/stat`), main: main.user + main.system };
}
function summary(ms: number[], failed: number): Latency {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => Math.round((s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN) * 10) / 10;
  // over_20: the samples slower than the 20 ms target (at 200 samples, 3 of them make the p99).
  return { n: s.length, failed, p50: at(50), p99: at(99), max: Math.round((s.at(-1) ?? NaN) * 10) / 10, over_20: s.filter((x) => x > 20).length };
}

interface Clients {
  procs: ChildProcess[];
  connected: number;
  /** When each reconnect after a lost hub happened (ms since the epoch). */
  reconnects: number[];
  /** Each reconnect: how long after its drawn time it got in, whether past its offline deadline, failed attempts before. */
  reconnectDetails: { late_ms: number; past_deadline: boolean; failures: number }[];
  /** Failed reconnect attempts by reason. */
  reconnectFailures: Map<string, number>;
  alert(index: number, id: string): Promise<number>;
  /** Each client process's event-loop delay since the last call (ms past the timer's due time, p99 and max): the simulated agents' own hiccups. */
  loopDelay(): Promise<{ p99: number; max: number }[]>;
  stop(): Promise<void>;
}

/** The kernel's TcpExtListenOverflows: connections dropped because an accept queue was full (any socket on the machine). */
function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('ListenOverflows')]);
}

async function startClients(urls: string | string[], tokensFile: string, agents: number, probes = 0): Promise<Clients> {
  const procs: ChildProcess[] = [];
  const acked = new Map<string, (ms: number) => void>();
  const loopAnswers: ((d: { p99: number; max: number }) => void)[][] = [];
  const reconnects: number[] = [];
  const reconnectDetails: Clients['reconnectDetails'] = [];
  const reconnectFailures = new Map<string, number>();
  let connected = 0;
  const ready: Promise<void>[] = [];
  // The fleet in slices of PER_CLIENT, then the probes (the last `probes` agents) in a process of their own.
  const slices: { from: number; count: number }[] = [];
  for (let from = 0; from < agents - probes; from += PER_CLIENT) slices.push({ from, count: Math.min(PER_CLIENT, agents - probes - from) });
  if (probes > 0) slices.push({ from: agents - probes, count: probes });
  for (const [k, { from, count }] of slices.entries()) {
    const url = typeof urls === 'string' ? urls : urls[k % urls.length]!;
    const child = fork(CLIENT, [url, tokensFile, String(from), String(count), `127.0.0.${10 + k}`, String(HEARTBEAT_S)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    procs.push(child);
    const answers: ((d: { p99: number; max: number }) => void)[] = [];
    loopAnswers.push(answers);
    ready.push(
      new Promise((resolve) =>
        child.on('message', (m: { event: string; p99?: number; max?: number; connected?: number; id?: string; ms?: number; at?: number; late_ms?: number; past_deadline?: boolean; failures?: number; reason?: string }) => {
          if (m.event === 'reconnected') {
            reconnects.push(m.at!);
            if (m.late_ms !== undefined) reconnectDetails.push({ late_ms: m.late_ms, past_deadline: m.past_deadline!, failures: m.failures! });
          } else if (m.event === 'reconnect_failed') reconnectFailures.set(m.reason!, (reconnectFailures.get(m.reason!) ?? 0) + 1);
          else if (m.event === 'connected') {
            connected += m.connected!;
            resolve();
          } else if (m.event === 'acked') acked.get(m.id!)?.(m.ms!);
          else if (m.event === 'loop') answers.shift()?.({ p99: m.p99!, max: m.max! });
        }),
      ),
    );
  }
  await Promise.all(ready);
  return {
    procs,
    connected,
    reconnects,
    reconnectDetails,
    reconnectFailures,
    alert(index, id) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => (acked.delete(id), resolve(-1)), 10_000);
        acked.set(id, (ms) => {
          clearTimeout(timer);
          acked.delete(id);
          resolve(ms);
        });
        const k = slices.findLastIndex((sl) => sl.from <= index);
        procs[k]!.send({ cmd: 'alert', index: index - slices[k]!.from, id });
      });
    },
    loopDelay() {
      return Promise.all(procs.map((p, k) => new Promise<{ p99: number; max: number }>((resolve) => (loopAnswers[k]!.push(resolve), p.send({ cmd: 'loop' })))));
    },
    async stop() {
      await Promise.all(procs.map((p) => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.send({ cmd: 'stop' }))))));
    },
  };
}

export interface FleetResult {
  agents: number;
  hubs: number;
  balancers: number;
  /** Each hub: its RSS and CPU (connected: the agents it held, from GET /v1/hubs). */
  perHub: FleetRow[];
  total: { connected: number; rss_mib: number; cpu_pct: number; exec: FleetRow['exec']; ack: FleetRow['ack']; http_floor: FleetRow['exec']; commit_floor: FleetRow['exec']; disk_floor: FleetRow['exec']; hop_floor: FleetRow['exec']; balancer_floor?: FleetRow['exec'] };
  /** Where the machine's CPU went over the window, in CPU-seconds a second (2.0 = two cores busy): how loaded the machine under the samples was. */
  window_cores: MachineCpu;
  /** An exec's legs (ms: asked → row written, → sent, → result in, → answered), for the median exec and the mean of the slowest 2 %. */
  exec_legs: { median: number[]; slowest: number[]; slowest_n: number };
  /** The client processes' event-loop delay over the window (ms past due): the probes' process, and the worst of the others (p99, max). */
  client_loop: { probes: { p99: number; max: number }; fleet: { p99: number; max: number } };
  /** How many agents the timed execs and alerts went to (the probes). */
  probes: number;
  /** A bare ws server holding as many sockets as one hub did. */
  bare: FleetRow;
  kill?: {
    /** SIGKILL, or SIGTERM (a graceful stop). */
    how: 'kill' | 'stop';
    /** From the signal to the hub's exit. */
    exit_ms: number;
    orphans: number;
    reconnected: number;
    first_ms: number;
    median_ms: number;
    last_ms: number;
    offline_incidents: number;
    lost: number;
    /** Reconnects that got in after their agent's offline deadline. */
    past_deadline: number;
    /** How long after its drawn time a reconnect got in: p50 / p99 / max. */
    late_ms: { p50: number; p99: number; max: number };
    /** Failed attempts before getting in, and by reason. */
    failed_attempts: number;
    failures: Record<string, number>;
    /** The database's commits, and the surviving hubs' CPU seconds, from the kill to the last reconnect. */
    storm_commits: number;
    /** How long that was (it ends at the last reconnect, or 90 s after the hub's exit if some never came back). */
    storm_s: number;
    storm_hub_cpu_s: number;
    /** Of which in the kernel (system calls, and the network stack's work charged to the hubs). */
    storm_hub_system_s: number;
    /** Of which on the hubs' main threads (JavaScript and its system calls; the rest is GC helpers and libuv's pool). */
    storm_hub_main_thread_s: number;
    /** The whole machine's CPU over the storm, in seconds (all cores): who held the cores. */
    machine_cpu_s: MachineCpu;
    /** Disconnections audited since the kill (a stopped hub's agents), and the transactions that wrote them. */
    disconnections: { audited: number; transactions: number };
    /** The kernel's count of connections dropped from full accept queues (TcpExtListenOverflows), kill to count. */
    listen_overflows: number;
  };
}

/** HAProxy in front of the hubs (the README's configuration), one process per client process. */
async function startBalancers(dir: string, hubs: HubProcess[], agents: number): Promise<{ urls: string[]; stop(): void }> {
  const count = Math.max(1, Math.ceil(agents / PER_BALANCER));
  const procs: ChildProcess[] = [];
  const urls: string[] = [];
  for (let b = 0; b < count; b++) {
    const port = await freePort();
    const cfg = path.join(dir, `haproxy-${b}.cfg`);
    // Each balancer connects from its own address: ephemeral ports per source address are ~28,000.
    let config = haproxyConfig(port, hubs, { maxconn: PER_BALANCER + 500, source: `127.0.1.${b + 1}` });
    // Each session logged when its response starts (a WebSocket's would be logged only at its end):
    // where a connection's time went, queue (Tw), connect to the hub (Tc), the hub's 101 (Tr).
    if (balancerLogDir) config = config.replace(/^global\n/, 'global\n  log stderr format raw local0 info\n').replace(/^defaults\n/m, 'defaults\n  log global\n  option httplog\n  option logasap\n');
    writeFileSync(cfg, config + '\n');
    const log = balancerLogDir ? openSync(path.join(balancerLogDir, `haproxy-${b + 1}.log`), 'w') : 'inherit';
    const child = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', log] });
    procs.push(child);
    urls.push(`ws://127.0.0.1:${port}/v1/stream`);
    for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false)); i++) {
      if (i > 100) throw new Error(`HAProxy ${b} did not start`);
      await sleep(100);
    }
  }
  return { urls, stop: () => procs.forEach((p) => p.kill('SIGKILL')) };
}

export async function fleetBench(opts: {
  databaseUrl: string;
  agents: number;
  seconds: number;
  samples: number;
  hubs?: number;
  /** After the window, one hub is killed (SIGKILL) or stopped (SIGTERM). */
  kill?: 'kill' | 'stop';
  hubEnv?: Record<string, string>;
}): Promise<FleetResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-bench-fleet-'));
  const k = opts.hubs ?? 1;
  const hubs: HubProcess[] = [];
  let balancers: { urls: string[]; stop(): void } | null = null;
  const env = {
    DATABASE_URL: opts.databaseUrl,
    OPSPILOT_LOG_LEVEL: 'error',
    OPSPILOT_API_RATE_LIMIT: '10000000',
    OPSPILOT_ALERTS_PER_MINUTE: '100000',
    OPSPILOT_MAX_CONNECTIONS: String(Math.min(19_000, opts.agents + 1000)),
    ...opts.hubEnv,
  };
  const profileDir = process.env.BENCH_HUB_PROFILE_DIR;
  // Each hub's log (at warn) written there when the run ends: what a hub said while it went wrong.
  const logDir = process.env.BENCH_HUB_LOG_DIR;
  if (logDir) env.OPSPILOT_LOG_LEVEL = 'warn';
  // Made first: a directory missing at the end would throw away the run's figures.
  for (const d of [profileDir, logDir, balancerLogDir]) if (d) mkdirSync(d, { recursive: true });
  const profile = [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...hubNodeFlags()];
  try {
    for (let i = 0; i < k; i++) hubs.push(await spawnHub({ ...env, OPSPILOT_HUB_NAME: `hub-${i + 1}` }, { bundle: true, nodeArgs: profile, healthPort: k > 1 }));
    // Each hub's main thread at this nice value (Linux: per thread; negative needs root), as
    // `Nice=` in a systemd unit would set it: the scheduler then preempts it less often.
    if (HUB_NICE !== undefined) for (const h of hubs) setPriority(h.child.pid!, HUB_NICE);
    const first = hubs[0]!;
    // Enrolled over REST, 32 at a time.
    const tokens: string[] = new Array(opts.agents);
    const ids: string[] = new Array(opts.agents);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < opts.agents; i = next++) {
          const r = await first.api('POST', '/v1/agents', { hostname: `fleet-${i}` });
          if (r.status !== 201) throw new Error(`enrolling agent ${i}: ${r.status} ${JSON.stringify(r.body)}`);
          tokens[i] = r.body.token;
          ids[i] = r.body.id;
        }
      }),
    );
    const tokensFile = path.join(dir, 'tokens');
    writeFileSync(tokensFile, tokens.join('\n'));

    if (k > 1) balancers = await startBalancers(dir, hubs, opts.agents);
    const probes = Math.min(PROBES, Math.floor(opts.agents / 10));
    const clients = await startClients(balancers ? balancers.urls : `ws://127.0.0.1:${first.port}/v1/stream`, tokensFile, opts.agents, probes);
    await sleep((HEARTBEAT_S + 6) * 1000); // a heartbeat round, every hello stored, every lease renewed
    // Reading /metrics resets the event-loop delay histogram: read once now, once after the window.
    const loopDelay = async (h: HubProcess) => {
      const start = performance.now();
      const text = await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${h.adminToken}` } }).then((r) => r.text());
      const scrapeMs = Math.round((performance.now() - start) * 10) / 10;
      const value = (name: string) => Math.round(Number(new RegExp(`^opspilot_hub_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 10_000) / 10;
      // prom-client's histogram records the whole interval between its timer's firings (every
      // LOOP_PRECISION_MS): an idle loop reads 10.1 ms. The loop's lateness is what is over that.
      const late = (ms: number) => Math.max(0, Math.round((ms - LOOP_PRECISION_MS) * 10) / 10);
      return { p99: late(value('nodejs_eventloop_lag_p99_seconds')), max: late(value('nodejs_eventloop_lag_max_seconds')), scrapeMs };
    };
    // Execs and alerts go to the probes: agents like the others to the hubs, but in a process of
    // their own, as an agent has its host to itself; an agent sharing a process with 5,000 others
    // answers late whenever that process stalls, and that is the bench's, not the hub's.
    const pick = () => opts.agents - probes + Math.floor(Math.random() * probes);
    /** Each timed exec's legs, ms: asked → row written (HTTP, auth), → sent (the row's commit), → result in (the agent), → answered (the result's commit, the reply). */
    const execLegs: { ms: number; legs: number[] }[] = [];
    const execOnce = async () => {
      const s = performance.now();
      const hub = hubs[Math.floor(Math.random() * k)]!;
      const asked = Date.now();
      const r = await hub.api('POST', '/v1/admin/exec', { agent_id: ids[pick()], command: 'service_status', params: { service: 'nginx.service' } });
      if (r.status === 200 && r.body.status === 'succeeded') {
        const ms = performance.now() - s;
        // The row's own times (the hub's clock, this machine's) split the round trip in legs.
        const at = (k: string) => Date.parse(r.body[k] as string);
        execLegs.push({ ms, legs: [at('created_at') - asked, at('sent_at') - at('created_at'), at('completed_at') - at('sent_at'), Date.now() - at('completed_at')] });
        return ms;
      }
      // A failure says why (every one: there are at most BENCH_FLEET_SAMPLES).
      console.error(`bench: fleet: an exec failed at hub ${hubs.indexOf(hub) + 1}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      return -1;
    };
    const any = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
    const getOnce = async (url: string) => {
      const s = performance.now();
      const r = await fetch(url);
      await r.arrayBuffer();
      return r.ok ? performance.now() - s : -1;
    };
    const floorOnce = () => getOnce(`${any(hubs).url}/healthz`);
    // With balancers: the same request through a random one (the hop an agent's frames take).
    const balancerOnce = () => getOnce(any(balancers!.urls).replace(/^ws:/, 'http:').replace(/\/v1\/stream$/, '/healthz'));
    // The database's floor under an exec (two commits) and an ack (one): a one-row INSERT
    // committed by its own connection, from this process, in the same window.
    const floorDb = new pg.Client({ connectionString: opts.databaseUrl });
    await floorDb.connect();
    await floorDb.query('CREATE TABLE IF NOT EXISTS bench_commit_floor (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
    const commitOnce = async () => {
      const s = performance.now();
      await floorDb.query('INSERT INTO bench_commit_floor DEFAULT VALUES');
      return performance.now() - s;
    };
    // The machine's floor under each hop between processes: one byte to an echo server in a
    // process of its own and back, over loopback TCP. An exec crosses ~8 such hops (the bench
    // and the hub, the hub and PostgreSQL twice, the hub and the agent), an alert ~4.
    const echo = await startEcho();
    const hopOnce = () => echo.once();
    // The disk's floor under that commit: one 8 KB block written and fdatasync'd (what a WAL
    // flush costs the disk), on the bench's temporary directory: the same disk as PostgreSQL's
    // data where both are on one filesystem (as here), off the bench's event loop. It runs every
    // 20 ms through the window (50 a second, next to PostgreSQL's hundreds of WAL flushes), so a
    // stall of the disk is seen while it lasts: each exec or ack over 20 ms is then told apart by
    // whether one overlapped it.
    const probe = await open(path.join(dir, 'fsync-probe'), 'w');
    const block = Buffer.alloc(8192, 1);
    const diskMs: number[] = [];
    /** The disk watch's samples over STALL_MS: [start, end] (performance.now()). */
    const stalls: [number, number][] = [];
    /** Writes and fdatasyncs every DISK_WATCH_MS until `watching()` says stop. */
    const diskWatch = async (watching: () => boolean) => {
      while (watching()) {
        const s = performance.now();
        await probe.write(block, 0, block.length, 0);
        await probe.datasync();
        const e = performance.now();
        diskMs.push(e - s);
        if (e - s > STALL_MS) stalls.push([s, e]);
        await sleep(Math.max(0, DISK_WATCH_MS - (e - s)));
      }
    };
    // Warm-up, not counted: the first uses of each path (statements planned, code compiled)
    // are not what a hub that has been running does.
    for (let i = 0; i < 20; i++) await Promise.all([execOnce(), clients.alert(pick(), `fleet-warm-${i}`), floorOnce(), commitOnce(), hopOnce()]);
    await sleep(3000); // the warm-up's incidents analysed
    await Promise.all(hubs.map(loopDelay));
    await clients.loopDelay();
    execLegs.length = 0;
    if (HUB_CPU !== undefined) {
      // The hubs on a CPU of their own, the load (client processes and this one) on the others;
      // PostgreSQL where the scheduler puts it: as near as one machine comes to a hub on its own.
      const others = Array.from({ length: availableParallelism() }, (_, i) => i).filter((i) => i !== HUB_CPU).join(',');
      const pin = (cpus: string, pid: number) => execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
      for (const h of hubs) pin(String(HUB_CPU), h.child.pid!);
      for (const p of [...clients.procs.map((c) => c.pid!), process.pid]) pin(others, p);
    }
    const cpu0 = hubs.map((h) => cpuSeconds(h.child.pid!));
    const sched0 = hubs.map((h) => mainThreadSched(h.child.pid!));
    const windowGroups = { hubs: hubs.map((h) => h.child.pid!), clients: clients.procs.map((p) => p.pid!) };
    const machine0 = machineSample(windowGroups);
    const t0 = performance.now();
    const windowStart = process.hrtime.bigint();
    const schedTrace = SCHED_TRACE
      ? spawn('perf', ['sched', 'record', '-a', '-o', SCHED_TRACE, '--', 'sleep', String(SCHED_TRACE_SECONDS)], { stdio: ['ignore', 'ignore', 'inherit'] })
      : null;
    const schedTraced = schedTrace ? new Promise((resolve) => schedTrace.once('exit', resolve).once('error', resolve)) : null;
    const execMs: number[] = [];
    const ackMs: number[] = [];
    const floorMs: number[] = [];
    let execFailed = 0;
    let ackFailed = 0;
    let floorFailed = 0;
    const commitMs: number[] = [];
    const hopMs: number[] = [];
    const balancerMs: number[] = [];
    let balancerFailed = 0;
    const deadline = Date.now() + opts.seconds * 1000;
    // Execs, alerts and bare HTTP requests (GET /healthz: the floor under an exec's round trip),
    // each one at a time, independently: each waits a random gap (exponential, with a mean
    // spreading the samples over the window) after the last one ended, so they neither march in
    // step nor avoid each other. Each exec is asked at a random hub.
    const gap = (opts.seconds * 1000) / opts.samples;
    const loop = async (once: () => Promise<number>, into: number[], failed: () => void, spans?: [number, number][]) => {
      await sleep(-Math.log(1 - Math.random()) * gap);
      for (let i = 0; i < opts.samples && Date.now() < deadline; i++) {
        const s = performance.now();
        const ms = await once();
        if (ms >= 0) into.push(ms);
        else failed();
        if (ms > 20) spans?.push([s, performance.now()]);
        await sleep(Math.max(0, -Math.log(1 - Math.random()) * gap - (performance.now() - s)));
      }
    };
    let alerts = 0;
    const execSlow: [number, number][] = [];
    const ackSlow: [number, number][] = [];
    let sampling = true;
    const watch = diskWatch(() => sampling);
    try {
      await Promise.all([
        loop(execOnce, execMs, () => execFailed++, execSlow),
        loop(() => clients.alert(pick(), `fleet-alert-${alerts++}`), ackMs, () => ackFailed++, ackSlow),
        loop(floorOnce, floorMs, () => floorFailed++),
        loop(commitOnce, commitMs, () => {}),
        loop(hopOnce, hopMs, () => {}),
        ...(balancers ? [loop(balancerOnce, balancerMs, () => balancerFailed++)] : []),
      ]);
    } finally {
      sampling = false; // the watch ends with the samples, however they end
      await watch;
    }
    await floorDb.end();
    echo.close();
    await probe.close();
    const inStall = (spans: [number, number][]) => spans.filter(([s, e]) => stalls.some(([a, b]) => a < e && b > s)).length;
    await sleep(Math.max(0, deadline - Date.now()));
    const seconds = (performance.now() - t0) / 1000;
    const machineWindow = machineCpu(machine0, machineSample(windowGroups));
    if (profileDir) process.stderr.write(`fleet: the window ran from monotonic ${windowStart / 1000n} to ${process.hrtime.bigint() / 1000n} µs\n`);
    const loops = await Promise.all(hubs.map(loopDelay));
    if (schedTraced) {
      await schedTraced;
      const pids = (ps: (ChildProcess | { pid?: number })[]) => ps.map((p) => p.pid).join(',');
      process.stderr.write(
        `fleet: scheduler trace in ${SCHED_TRACE}: node --import tsx scripts/bench/sched-waits.ts ${SCHED_TRACE} ${hubs[0]!.child.pid} hubs=${pids(hubs.map((h) => h.child))} clients=${pids(clients.procs)} bench=${process.pid}\n`,
      );
    }
    const clientLoops = await clients.loopDelay();
    // The legs of the median exec's and of the slowest 2 % (at least 3), each leg their mean.
    const byMs = [...execLegs].sort((a, b) => a.ms - b.ms);
    const meanLegs = (xs: typeof execLegs) => [0, 1, 2, 3].map((j) => Math.round((xs.reduce((a, x) => a + x.legs[j]!, 0) / Math.max(1, xs.length)) * 10) / 10);
    const slowest = byMs.slice(-Math.max(3, Math.ceil(byMs.length / 50)));
    const held = new Map<string, number>(((await first.api('GET', '/v1/hubs')).body.hubs as { name: string; agents: number }[]).map((h) => [h.name, h.agents]));
    const perHub: FleetRow[] = hubs.map((h, i) => ({
      connected: held.get(`hub-${i + 1}`) ?? 0,
      rss_mib: rssMib(h.child.pid!),
      cpu_pct: Math.round(((cpuSeconds(h.child.pid!) - cpu0[i]!) / seconds) * 1000) / 10,
      loop_p99_ms: loops[i]!.p99,
      loop_max_ms: loops[i]!.max,
      scrape_ms: loops[i]!.scrapeMs,
      ...(() => {
        const now = mainThreadSched(h.child.pid!);
        const was = sched0[i]!;
        return { main_waited_ms: Math.round((now.waitedNs - was.waitedNs) / 1e6), main_preempted: now.involuntary - was.involuntary };
      })(),
    }));
    const result: FleetResult = {
      agents: opts.agents,
      hubs: k,
      balancers: balancers?.urls.length ?? 0,
      perHub,
      total: {
        connected: clients.connected,
        rss_mib: Math.round(perHub.reduce((a, r) => a + r.rss_mib, 0) * 10) / 10,
        cpu_pct: Math.round(perHub.reduce((a, r) => a + r.cpu_pct, 0) * 10) / 10,
        exec: { ...summary(execMs, execFailed), over_20_in_stall: inStall(execSlow) },
        ack: { ...summary(ackMs, ackFailed), over_20_in_stall: inStall(ackSlow) },
        http_floor: summary(floorMs, floorFailed),
        commit_floor: summary(commitMs, 0),
        disk_floor: summary(diskMs, 0),
        hop_floor: summary(hopMs, 0),
        ...(balancers ? { balancer_floor: summary(balancerMs, balancerFailed) } : {}),
      },
      exec_legs: { median: byMs.length ? meanLegs([byMs[Math.floor(byMs.length / 2)]!]) : [], slowest: meanLegs(slowest), slowest_n: slowest.length },
      probes,
      client_loop: {
        probes: clientLoops.at(-1)!,
        fleet: { p99: Math.max(...clientLoops.slice(0, -1).map((l) => l.p99)), max: Math.max(...clientLoops.slice(0, -1).map((l) => l.max)) },
      },
      window_cores: Object.fromEntries(Object.entries(machineWindow).map(([group, s]) => [group, Math.round((s / seconds) * 100) / 100])) as MachineCpu,
      bare: { connected: 0, rss_mib: 0, cpu_pct: 0 },
    };

    if (opts.kill && k > 1) {
      // The last hub dies with its agents connected (not the leader: that case is in the tests).
      const victim = hubs[k - 1]!;
      const orphans = perHub[k - 1]!.connected;
      const overflowsBefore = listenOverflows();
      const detailsBefore = clients.reconnectDetails.length;
      clients.reconnectFailures.clear();
      // What the storm cost: the database's commits and the surviving hubs' CPU from the kill to the last reconnect.
      const statsDb = new pg.Client({ connectionString: opts.databaseUrl });
      await statsDb.connect();
      const commits = async () => Number((await statsDb.query(`SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()`)).rows[0].n);
      const survivors = hubs.slice(0, k - 1);
      const commits0 = await commits();
      const cpuBefore = survivors.map((h) => cpuSplit(h.child.pid!));
      const groups = { hubs: survivors.map((h) => h.child.pid!), clients: clients.procs.map((p) => p.pid!) };
      const machineBefore = machineSample(groups);
      // Counted from before the signal: a stopped hub takes seconds to exit, and its agents start
      // coming back meanwhile (counted from its exit, the wait below ran to its 90 s limit).
      const before = clients.reconnects.length;
      const killedAt = Date.now();
      victim.child.kill(opts.kill === 'stop' ? 'SIGTERM' : 'SIGKILL');
      if (profileDir) process.stderr.write(`fleet: hub ${opts.kill === 'stop' ? 'stopped' : 'killed'} at monotonic ${process.hrtime.bigint() / 1000n} µs\n`);
      await victim.exited;
      const exitMs = Date.now() - killedAt;
      const until = Date.now() + 90_000;
      while (clients.reconnects.length - before < orphans && Date.now() < until) await sleep(500);
      const stormCommits = (await commits()) - commits0 - 1;
      const cpuAfter = survivors.map((h) => cpuSplit(h.child.pid!));
      const stormMs = Date.now() - killedAt;
      const machine = machineCpu(machineBefore, machineSample(groups));
      const stormUser = cpuAfter.reduce((sum, c, i) => sum + c.user - cpuBefore[i]!.user, 0);
      const stormSystem = cpuAfter.reduce((sum, c, i) => sum + c.system - cpuBefore[i]!.system, 0);
      const stormMain = cpuAfter.reduce((sum, c, i) => sum + c.main - cpuBefore[i]!.main, 0);
      const stormCpu = stormUser + stormSystem;
      await statsDb.end();
      const back = clients.reconnects.filter((t) => t >= killedAt).map((t) => t - killedAt).sort((a, b) => a - b);
      const details = clients.reconnectDetails.slice(detailsBefore);
      const late = details.map((d) => d.late_ms).sort((a, b) => a - b);
      const overflows = listenOverflows() - overflowsBefore;
      // An agent back within its deadline must not count offline: wait past the deadline and a sweep.
      await sleep(Math.max(0, killedAt + 3 * HEARTBEAT_S * 1000 + 35_000 - Date.now()));
      const db = new pg.Client({ connectionString: opts.databaseUrl });
      await db.connect();
      const offline = Number((await db.query(`SELECT count(*) AS n FROM incidents WHERE source = 'offline'`)).rows[0].n);
      const alive = Number((await db.query(`SELECT count(*) AS n FROM agents WHERE hub_id IS NOT NULL`)).rows[0].n);
      // The stopped hub's disconnections on the audit trail, and in how many transactions they were written.
      const gone = (await db.query(`SELECT count(*) AS n, count(DISTINCT xmin::text) AS tx FROM incident_events WHERE kind = 'agent_disconnected' AND at >= $1`, [new Date(killedAt)])).rows[0];
      await db.end();
      result.kill = {
        how: opts.kill,
        exit_ms: exitMs,
        orphans,
        reconnected: back.length,
        first_ms: back[0] ?? NaN,
        median_ms: back[Math.floor(back.length / 2)] ?? NaN,
        last_ms: back.at(-1) ?? NaN,
        offline_incidents: offline,
        lost: opts.agents - alive,
        past_deadline: details.filter((d) => d.past_deadline).length,
        late_ms: { p50: Math.round(late[Math.floor(late.length / 2)] ?? NaN), p99: Math.round(late[Math.floor(late.length * 0.99)] ?? NaN), max: Math.round(late.at(-1) ?? NaN) },
        failed_attempts: details.reduce((n, d) => n + d.failures, 0),
        storm_commits: stormCommits,
        storm_s: Math.round(stormMs / 100) / 10,
        disconnections: { audited: Number(gone.n), transactions: Number(gone.tx) },
        storm_hub_cpu_s: Math.round(stormCpu * 100) / 100,
        storm_hub_system_s: Math.round(stormSystem * 100) / 100,
        storm_hub_main_thread_s: Math.round(stormMain * 100) / 100,
        machine_cpu_s: machine,
        failures: Object.fromEntries(clients.reconnectFailures),
        listen_overflows: overflows,
      };
    }
    await clients.stop();
    balancers?.stop();
    balancers = null;
    for (const h of hubs) await h.stop();

    // A bare ws server holding as many sockets, with the same heartbeats.
    const perHubAgents = Math.ceil(opts.agents / k);
    const port = await freePort();
    const bare = spawn(process.execPath, ['--import', 'tsx', BARE, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => bare.stdout!.once('data', () => r()));
    try {
      const bareClients = await startClients(`ws://127.0.0.1:${port}/`, '-', perHubAgents);
      await sleep((HEARTBEAT_S + 2) * 1000);
      const b0 = cpuSeconds(bare.pid!);
      await sleep(opts.seconds * 1000);
      result.bare = { connected: bareClients.connected, rss_mib: rssMib(bare.pid!), cpu_pct: Math.round(((cpuSeconds(bare.pid!) - b0) / opts.seconds) * 1000) / 10 };
      await bareClients.stop();
      return result;
    } finally {
      bare.kill('SIGKILL');
    }
  } finally {
    balancers?.stop();
    for (const h of hubs) await h.stop();
    if (logDir) hubs.forEach((h, i) => writeFileSync(path.join(logDir, `hub-${i + 1}.log`), h.output()));
    rmSync(dir, { recursive: true, force: true });
  }
}
