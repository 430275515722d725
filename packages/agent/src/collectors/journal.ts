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
    const res = await this.#run(['--lines=1', '--output=json']);
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
   * about it, for that invocation only; without an invocation id, the unit's last lines.
   */
  async unitLines(unit: string, invocation: string | undefined): Promise<string> {
    const match = invocation && /^[0-9a-f]{32}$/.test(invocation) ? [`_SYSTEMD_INVOCATION_ID=${invocation}`, '+', `INVOCATION_ID=${invocation}`] : ['--unit', unit];
    const res = await this.#run([`--lines=${TAIL_LINES}`, '--output=json', '--output-fields=MESSAGE', ...match]);
    if (res.error_code) return '';
    const out: string[] = [];
    for (const line of res.stdout.split('\n')) {
      const entry = parseEntry(line); // the last line may be cut when the output was capped
      const message = entry && field(entry, 'MESSAGE');
      if (message !== undefined && message !== null) out.push(message);
    }
    return out.slice(-TAIL_LINES).join('\n');
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
