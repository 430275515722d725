import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { AlertPayload, ResolvePayload } from '@opspilot/protocol';
import { runCommand } from '../exec/runner.ts';
import type { Logger } from '../client.ts';

/**
 * systemd's own structured messages, from its message catalog
 * (/usr/lib/systemd/catalog/systemd.catalog): matched by MESSAGE_ID, never by their text.
 */
export const SYSTEMD_MESSAGES = {
  unitFailed: 'd9b373ed55a64feb8242e02dbe79a49c', // "Unit failed", UNIT_RESULT
  processExited: '98e322203f7a4ed290d09fe03c09fe15', // "Unit process exited", EXIT_CODE, EXIT_STATUS
  startFailed: 'be02cf6855d2428ba40df7e9d022f03d', // "A start job for unit has failed", JOB_RESULT
  startDone: '39f53479d3a045ac8e11786248231fbf', // "A start job for unit has finished successfully"
  oomKill: 'fe6faa94e7774663a0da52717891d8ef', // "A process of unit has been killed by the OOM killer"
} as const;

type JournalEntry = Record<string, unknown>;

export interface SystemdWatcherOptions {
  /** Units to watch; absent: all. */
  units?: readonly string[];
  alert: (a: AlertPayload) => void;
  resolve: (r: ResolvePayload) => void;
  log: Logger;
  /** The journalctl command (tests point it at a journal file). */
  journalctl?: string[];
  /** Whether systemd runs this host (default: /run/systemd/system exists, as sd_booted(3) checks). */
  isSystemd?: () => boolean;
  now?: () => number;
}

/** A "start job failed" this soon after "unit failed" is the same failure. */
const SAME_FAILURE_MS = 10_000;
const TAIL_LINES = 50;

/** journalctl -o json gives a field as a string, or as an array of bytes when it is not UTF-8. */
export function field(entry: JournalEntry, name: string): string | undefined {
  const v = entry[name];
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((b) => typeof b === 'number')) return Buffer.from(v as number[]).toString('utf8');
  return undefined;
}

/**
 * Unit failures and recoveries from the journal: follows `journalctl --follow --output=json`
 * filtered on systemd's catalog message ids. A failure is a `systemd` alert with the unit's last
 * 50 journal lines, the exit status of its last process and systemd's result; the unit's next
 * successful start is the resolve. Without systemd it says so once and stays off.
 */
export class SystemdWatcher {
  readonly #lastExit = new Map<string, { code?: string; status?: number }>();
  readonly #oom = new Set<string>();
  readonly #failedAt = new Map<string, number>();
  readonly #journalctl: string[];
  readonly #now: () => number;
  #child: ChildProcess | null = null;
  #stopped = false;
  #restartTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: SystemdWatcherOptions) {
    this.#journalctl = opts.journalctl ?? ['journalctl'];
    this.#now = opts.now ?? Date.now;
  }

  /** Start following; returns false (after saying why, once) when this host has no systemd. */
  start(): boolean {
    const isSystemd = this.opts.isSystemd ?? (() => existsSync('/run/systemd/system'));
    if (!isSystemd()) {
      this.opts.log.info('systemd watcher off: this host does not run systemd');
      return false;
    }
    this.#follow();
    return true;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#child?.kill('SIGTERM');
  }

  #follow(): void {
    if (this.#stopped) return;
    const matches = Object.values(SYSTEMD_MESSAGES).map((id) => `MESSAGE_ID=${id}`);
    const [cmd, ...prefix] = this.#journalctl;
    const child = spawn(cmd!, [...prefix, '--follow', '--lines=0', '--output=json', '--no-pager', ...matches], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => void this.handleLine(line));
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    child.on('error', (err) => this.opts.log.warn('systemd watcher: journalctl did not start', { error: err.message }));
    child.on('close', (code) => {
      if (this.#stopped) return;
      this.opts.log.warn('systemd watcher: journalctl ended; following again in 10 s', { code, stderr: stderr.trim() });
      this.#restartTimer = setTimeout(() => this.#follow(), 10_000);
    });
  }

  /** One line of `journalctl -o json`. Exposed for tests. */
  async handleLine(line: string): Promise<void> {
    let entry: JournalEntry;
    try {
      entry = JSON.parse(line) as JournalEntry;
    } catch {
      return;
    }
    if (typeof entry !== 'object' || entry === null) return;
    const unit = field(entry, 'UNIT');
    const id = field(entry, 'MESSAGE_ID');
    if (!unit || !id || !this.#watched(unit)) return;
    const message = field(entry, 'MESSAGE') ?? '';
    switch (id) {
      case SYSTEMD_MESSAGES.processExited: {
        const status = Number(field(entry, 'EXIT_STATUS'));
        this.#lastExit.set(unit, { code: field(entry, 'EXIT_CODE'), ...(Number.isInteger(status) ? { status } : {}) });
        return;
      }
      case SYSTEMD_MESSAGES.oomKill:
        this.#oom.add(unit);
        return;
      case SYSTEMD_MESSAGES.unitFailed:
        this.#failedAt.set(unit, this.#now());
        await this.#alert(unit, message, field(entry, 'UNIT_RESULT') ?? 'failed');
        return;
      case SYSTEMD_MESSAGES.startFailed: {
        const at = this.#failedAt.get(unit);
        if (at !== undefined && this.#now() - at < SAME_FAILURE_MS) return; // already reported
        this.#failedAt.set(unit, this.#now());
        await this.#alert(unit, message, field(entry, 'JOB_RESULT') ?? 'failed');
        return;
      }
      case SYSTEMD_MESSAGES.startDone:
        if (field(entry, 'JOB_RESULT') !== 'done' || !this.#failedAt.has(unit)) return;
        this.#failedAt.delete(unit);
        this.#lastExit.delete(unit);
        this.#oom.delete(unit);
        this.opts.resolve({ type: 'systemd', source: unit, message });
        return;
    }
  }

  #watched(unit: string): boolean {
    return !this.opts.units || this.opts.units.includes(unit);
  }

  async #alert(unit: string, message: string, result: string): Promise<void> {
    const exit = this.#lastExit.get(unit);
    const alert: AlertPayload = { type: 'systemd', source: unit, message, status: result, logs: await this.#tail(unit) };
    if (exit?.status !== undefined) alert.exit_code = exit.status;
    const context: Record<string, unknown> = {};
    if (exit?.code) context.exit_code_kind = exit.code;
    if (this.#oom.has(unit)) context.oom_killed = true;
    if (Object.keys(context).length > 0) alert.context = context;
    this.opts.alert(alert);
  }

  /** The unit's last journal lines, read from journalctl's JSON (MESSAGE fields only). */
  async #tail(unit: string): Promise<string> {
    const [cmd, ...prefix] = this.#journalctl;
    const res = await runCommand([cmd!, ...prefix, '--unit', unit, '--lines', String(TAIL_LINES), '--output=json', '--no-pager'], 10_000, process.env);
    if (res.error_code) return '';
    const out: string[] = [];
    for (const line of res.stdout.split('\n')) {
      try {
        const m = field(JSON.parse(line) as JournalEntry, 'MESSAGE');
        if (m !== undefined) out.push(m);
      } catch {
        // a partial last line when the output was capped
      }
    }
    return out.slice(-TAIL_LINES).join('\n');
  }
}
