import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { runCommand } from '../exec/runner.ts';

/**
 * systemd's own structured messages, from its message catalog
 * (/usr/lib/systemd/catalog/systemd.catalog): matched by MESSAGE_ID, never by their text.
 */
export const SYSTEMD_MESSAGES = {
  unitFailed: 'd9b373ed55a64feb8242e02dbe79a49c', // "Unit failed", UNIT_RESULT
  processExited: '98e322203f7a4ed290d09fe03c09fe15', // "Unit process exited", EXIT_CODE, EXIT_STATUS
  startFailed: 'be02cf6855d2428ba40df7e9d022f03d', // "A start job for unit has failed", JOB_RESULT
  startDone: '39f53479d3a045ac8e11786248231fbf', // "A start job for unit has finished", JOB_RESULT
  autoRestart: '5eb03494b6584870a536b337290809b3', // "Automatic restarting of a unit has been scheduled"
  unitSucceeded: '7ad2d189f7e94e70a38c781354912448', // "Unit succeeded": it entered the dead state cleanly
  oomKill: 'fe6faa94e7774663a0da52717891d8ef', // "A process of unit has been killed by the OOM killer"
} as const;

export type JournalEntry = Record<string, unknown>;

const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };
const TAIL_LINES = 50;
/** A longer line in an alert's logs is cut here (a stack trace in one entry, a binary dump). */
const MAX_LINE_CHARS = 4096;
/** A journal line longer than this is not one of systemd's messages about a unit: skipped. */
const MAX_ENTRY_CHARS = 256 * 1024;

/** journalctl -o json gives a field as a string, or as an array of bytes when it is not UTF-8. */
export function field(entry: JournalEntry, name: string): string | undefined {
  const v = entry[name];
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.length <= MAX_ENTRY_CHARS && v.every((b) => typeof b === 'number')) return Buffer.from(v as number[]).toString('utf8');
  return undefined;
}

export function parseEntry(line: string): JournalEntry | null {
  if (line.length > MAX_ENTRY_CHARS) return null;
  try {
    const entry = JSON.parse(line) as unknown;
    return typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? (entry as JournalEntry) : null;
  } catch {
    return null;
  }
}

/** The wall-clock time a cursor names (its `t=` part, microseconds in hex), if it has one. */
export function cursorTime(cursor: string): Date | null {
  const m = /(?:^|;)t=([0-9a-f]{1,16})(?:;|$)/.exec(cursor);
  return m ? new Date(Number(BigInt(`0x${m[1]}`) / 1000n)) : null;
}

/** journalctl as the agent uses it: one-shot reads, bounded, and one follower. */
export class Journal {
  constructor(private readonly argv: readonly string[] = ['journalctl']) {}

  /** The newest entry of the local journal: where following starts, and the boot it belongs to. */
  async newest(): Promise<{ cursor: string; boot: string | undefined } | null> {
    const res = await this.#run(['--lines=1', '--output=json', '--output-fields=_BOOT_ID']); // the cursor comes with every entry
    const entry = res.stdout.split('\n').map(parseEntry).find((e) => e !== null);
    const cursor = entry && field(entry, '__CURSOR');
    return cursor ? { cursor, boot: field(entry, '_BOOT_ID') } : null;
  }

  /**
   * The entry at `cursor`, or the first one after where it was when it is gone (rotated or
   * vacuumed), or null at the end of the journal.
   */
  async at(cursor: string): Promise<JournalEntry | null> {
    const child = this.#spawn([`--cursor=${cursor}`, '--output=json']);
    const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.once('error', () => undefined);
    let first: JournalEntry | null = null;
    for await (const line of lines) {
      first = parseEntry(line);
      break;
    }
    lines.close();
    child.kill('SIGTERM');
    await closed;
    return first;
  }

  /**
   * Stream entries matching `matches` from `cursor` (included; journalctl seeks to the nearest
   * entry when it is gone) to the current end, without following. `onEntry` is awaited for each,
   * so a long backlog is read at the pace it is handled.
   */
  async read(cursor: string, matches: readonly string[], onEntry: (e: JournalEntry) => Promise<void>, signal?: AbortSignal): Promise<{ code: number | null; stderr: string }> {
    const child = this.#spawn([`--cursor=${cursor}`, '--output=json', ...matches], signal);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    const closed = new Promise<number | null>((resolve) => {
      child.on('error', (err) => {
        if (err.name !== 'AbortError') stderr += err.message;
        resolve(null);
      });
      child.on('close', (code) => resolve(code));
    });
    for await (const line of createInterface({ input: child.stdout!, crlfDelay: Infinity })) {
      const entry = parseEntry(line);
      if (entry) await onEntry(entry);
    }
    return { code: await closed, stderr: stderr.trim() };
  }

  /**
   * Follow new entries matching `matches` after `afterCursor` (or from now). The boot is named
   * explicitly: `--follow` alone means "this boot", which journalctl takes from
   * /proc/sys/kernel/random/boot_id, and a sandboxed service in a container (nspawn, LXC) sees
   * the host's boot id there, not the container's, so nothing would ever match.
   */
  follow(opts: { afterCursor: string | null; boot: string | undefined; matches: readonly string[] }): ChildProcess {
    const position = opts.afterCursor ? [`--after-cursor=${opts.afterCursor}`] : ['--lines=0'];
    const boot = opts.boot && /^[0-9a-f]{32}$/.test(opts.boot) ? [`--boot=${opts.boot}`] : [];
    return this.#spawn(['--follow', ...boot, ...position, '--output=json', ...opts.matches]);
  }

  /**
   * The last journal lines of one run of a unit: what its processes wrote and what systemd said
   * about it, for that invocation only. journald cannot always tell which run a line came from
   * (a process that wrote and exited at once, on a busy host: about one line in six in a test
   * under load), so lines of the unit without an invocation id count when they lie within the
   * run's first and last entries. Without an invocation id, the unit's last lines.
   */
  async unitLines(unit: string, invocation: string | undefined): Promise<string> {
    const entries = await this.#collect(['--lines=200', '--output=json', '--output-fields=MESSAGE,_SYSTEMD_INVOCATION_ID,INVOCATION_ID', '--unit', unit]);
    const runOf = (e: JournalEntry) => field(e, '_SYSTEMD_INVOCATION_ID') ?? field(e, 'INVOCATION_ID');
    let span = entries;
    if (invocation) {
      const first = entries.findIndex((e) => runOf(e) === invocation);
      const last = entries.findLastIndex((e) => runOf(e) === invocation);
      if (first >= 0) span = entries.slice(first, last + 1).filter((e) => runOf(e) === undefined || runOf(e) === invocation);
    }
    const out: string[] = [];
    for (const e of span.slice(-TAIL_LINES)) {
      const message = field(e, 'MESSAGE');
      if (message !== undefined) out.push(message.length > MAX_LINE_CHARS ? `${message.slice(0, MAX_LINE_CHARS)}…` : message);
    }
    return out.join('\n');
  }

  /** Every entry journalctl prints for `args`, read as a stream (no output cap), within 15 s. */
  async #collect(args: string[]): Promise<JournalEntry[]> {
    const child = this.#spawn(args);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', () => undefined);
    child.stderr!.resume();
    const entries: JournalEntry[] = [];
    for await (const line of createInterface({ input: child.stdout!, crlfDelay: Infinity })) {
      const entry = parseEntry(line);
      if (entry) entries.push(entry);
    }
    clearTimeout(timer);
    return entries;
  }

  #run(args: string[]) {
    const [cmd, ...prefix] = this.argv;
    return runCommand([cmd!, ...prefix, '--no-pager', ...args], 15_000, ENV);
  }

  #spawn(args: string[], signal?: AbortSignal): ChildProcess {
    const [cmd, ...prefix] = this.argv;
    return spawn(cmd!, [...prefix, '--no-pager', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: ENV, ...(signal ? { signal } : {}) });
  }
}
