import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { AlertPayload, ResolvePayload } from '@opspilot/protocol';
import type { Logger } from '../client.ts';
import { readJsonState, writeFileDurably } from '../state-file.ts';
import { Journal, SYSTEMD_MESSAGES, cursorTime, field, parseEntry, type JournalEntry } from './journal.ts';
import { systemClock, type AgentClock, type Timer } from '../clock.ts';
import { Units, assessRecovery, type UnitState } from './unit-state.ts';

export { SYSTEMD_MESSAGES, field } from './journal.ts';

export interface SystemdWatcherOptions {
  /** Units to watch; absent: all. */
  units?: readonly string[];
  /** A unit that failed is recovered once active this long without a break. */
  settleMs: number;
  /** Further failures of a unit this soon after its last alert are merged into one (default 10 s). */
  repeatWindowMs?: number;
  /** Where the journal position and the failing units are kept across restarts. */
  stateDir: string;
  alert: (a: AlertPayload) => void;
  resolve: (r: ResolvePayload) => void;
  log: Logger;
  /** The journalctl and systemctl commands (tests put recorders in front of the real ones). */
  journalctl?: string[];
  systemctl?: string[];
  /** Whether systemd runs this host (default: /run/systemd/system exists, as sd_booted(3) checks). */
  isSystemd?: () => boolean;
  /** Wall and monotonic time and the settle, repeat-window and log timers (tests move it). */
  clock?: AgentClock;
}

/** A "start job failed" this soon after "unit failed" is the same failure. */
const SAME_FAILURE_MS = 10_000;
/** After an alert for a unit, its further failures within this window are merged into one. */
export const REPEAT_WINDOW_MS = 10_000;
/** Cursor-only progress is written at most this often; failures and recoveries at once. */
const SAVE_EVERY_MS = 1_000;
const FOLLOW_RETRY_MS = 10_000;
/**
 * journald writes a service's own output (its stdout stream) a little after systemd's message
 * that it failed, which comes by another socket: the lines of a failed run are read this long
 * after the failure at the earliest, or the last words of a process that died young are missed.
 */
const LOG_SETTLE_MS = 300;
const STATE_VERSION = 1;

interface Failure {
  unit: string;
  /** When systemd logged it (ms), from the journal entry. */
  at?: number;
  invocation: string | undefined;
  message: string;
  result: string;
  exitStatus?: number;
  exitKind?: string;
  oom?: boolean;
  foundAtStart?: boolean;
}

/** What is kept on disk: where the journal was read to, and the units reported failed. */
interface SavedState {
  version: number;
  cursor: string | null;
  failing: Record<string, { invocation: string | null; since: number }>;
}

interface UnitTrack {
  lastExit?: { invocation: string | undefined; kind?: string; status?: number };
  oomInvocation?: string | undefined;
  failedAt?: number;
  lastAlertAt?: number;
  /** Failures merged since the last alert, sent when the window closes. */
  merged?: { failure: Failure; count: number; timer: Timer };
  checkTimer?: Timer;
  checkDue?: number;
}

/**
 * Unit failures and recoveries on a systemd host, from the journal and systemd's own state:
 * - a failure is systemd's "unit failed" or "start job failed" catalog message (never its
 *   text): a `systemd` alert with the journal lines of the run that failed, its exit status and
 *   systemd's result; further failures of that unit within 10 s are merged into one alert;
 * - a recovery is the unit healthy, as systemd says (see `assessRecovery`): a oneshot that ran
 *   successfully, or a unit active without a break for the settle time. A start job alone, or
 *   systemd's own Restart= loop, is never a recovery;
 * - the journal position (cursor) and the units reported failed are kept on disk: after a
 *   restart the journal is read from where it stopped, units failed now and not yet reported are
 *   reported, and journal entries rotated or vacuumed in the meantime are reported as a gap.
 * Without systemd it says so once and stays off.
 */
export class SystemdWatcher {
  readonly #tracks = new Map<string, UnitTrack>();
  readonly #failing = new Map<string, { invocation: string | undefined; since: number }>();
  readonly #journal: Journal;
  readonly #units: Units;
  readonly #clock: AgentClock;
  readonly #stateFile: string;
  readonly #matches = Object.values(SYSTEMD_MESSAGES).map((id) => `MESSAGE_ID=${id}`);
  #cursor: string | null = null;
  #boot: string | undefined;
  #savedAt = 0;
  #saveTimer: NodeJS.Timeout | null = null;
  #child: ChildProcess | null = null;
  #followTimer: NodeJS.Timeout | null = null;
  #started = false;
  readonly #abort = new AbortController();
  #stopped = false;
  /** Everything the watcher sends or decides, one at a time, in journal order. */
  #chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: SystemdWatcherOptions) {
    this.#journal = new Journal(opts.journalctl);
    this.#units = new Units(opts.systemctl);
    this.#clock = opts.clock ?? systemClock;
    this.#stateFile = path.join(opts.stateDir, 'systemd.json');
  }

  /** Start watching; returns false (after saying why, once) when this host has no systemd. */
  async start(): Promise<boolean> {
    const isSystemd = this.opts.isSystemd ?? (() => existsSync('/run/systemd/system'));
    if (!isSystemd()) {
      this.opts.log.info('systemd watcher off: this host does not run systemd');
      return false;
    }
    this.#started = true;
    this.#load();
    const newest = await this.#journal.newest().catch(() => null);
    this.#boot = newest?.boot;
    if (this.#cursor) await this.#catchUp(this.#cursor);
    else this.#cursor = newest?.cursor ?? null; // first run: the journal's past is history, not news
    await this.#scan();
    this.#save(true);
    this.#follow();
    return true;
  }

  /** Stop following; what is merged and waiting is sent, and the position saved. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    if (this.#followTimer) clearTimeout(this.#followTimer);
    this.#child?.kill('SIGTERM');
    for (const [unit, track] of this.#tracks) {
      track.checkTimer?.cancel();
      if (track.merged) this.#flush(unit);
    }
    await this.#chain;
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    if (this.#started) this.#save(true);
  }

  /** Settled: every entry read so far has been handled (tests and shutdown wait on it). */
  get idle(): Promise<void> {
    return this.#chain;
  }

  /** The journal position read up to (tests wait on it rather than on time). */
  get cursor(): string | null {
    return this.#cursor;
  }

  /** Units reported failed and not recovered yet. */
  get failingUnits(): string[] {
    return [...this.#failing.keys()];
  }

  /** Read what was written while the agent was not running, from the saved cursor on. */
  async #catchUp(saved: string): Promise<void> {
    const there = await this.#journal.at(saved).catch(() => null);
    const found = there !== null && field(there, '__CURSOR') === saved;
    if (!found) this.#gap(saved, there);
    const res = await this.#journal.read(
      saved,
      this.#matches,
      async (entry) => {
        if (field(entry, '__CURSOR') === saved) return; // handled before the stop
        this.#enqueue(() => this.#handle(entry));
        await this.#chain;
      },
      this.#abort.signal,
    );
    if (res.code !== 0 && !this.#stopped) this.opts.log.warn('systemd watcher: could not read the journal from the saved position', { code: res.code, stderr: res.stderr });
  }

  /** The saved position is gone from the journal: say what can no longer be seen. */
  #gap(saved: string, next: JournalEntry | null): void {
    const from = cursorTime(saved);
    const nextUs = next ? Number(field(next, '__REALTIME_TIMESTAMP')) : NaN;
    const to = Number.isFinite(nextUs) ? new Date(nextUs / 1000) : null;
    const window = `${from ? `from ${from.toISOString()} ` : ''}${to ? `to ${to.toISOString()}` : 'to now'}`;
    const message = `Journal entries ${window} were rotated or vacuumed before the agent read them: unit failures in that time cannot be reported (units still failed are reported).`;
    this.opts.log.warn('systemd watcher: journal gap', { from: from?.toISOString(), to: to?.toISOString() });
    this.#enqueue(async () => {
      const context: Record<string, string> = {};
      if (from) context.from = from.toISOString();
      if (to) context.to = to.toISOString();
      this.opts.alert({ type: 'journal', source: 'journal', message, context });
    });
  }

  /**
   * Units failed now and not reported yet are reported once; units reported failed are checked
   * for recovery (they may have recovered while the agent was down).
   */
  async #scan(): Promise<void> {
    const failed = await this.#units.failed();
    if (failed === null) {
      this.opts.log.warn('systemd watcher: could not list failed units');
    } else {
      for (const unit of failed.filter((u) => this.#watched(u))) {
        const state = await this.#units.show(unit);
        if (!state || state.activeState !== 'failed') continue;
        if (this.#failing.has(unit) && this.#failing.get(unit)!.invocation === state.invocation) continue; // reported already
        this.#enqueue(() => this.#fail(this.#foundFailed(state)));
      }
    }
    await this.#chain;
    for (const unit of this.#failing.keys()) if (!failed?.includes(unit)) this.#check(unit, 0);
  }

  #foundFailed(state: UnitState): Failure {
    const failure: Failure = { unit: state.id, invocation: state.invocation, message: `${state.id}: Failed with result '${state.result}'.`, result: state.result, foundAtStart: true };
    if (state.exitStatus !== undefined) {
      failure.exitStatus = state.exitStatus;
      failure.exitKind = 'exited';
    }
    if (state.result === 'oom-kill') failure.oom = true;
    return failure;
  }

  #follow(): void {
    if (this.#stopped) return;
    const child = this.#journal.follow({ afterCursor: this.#cursor, boot: this.#boot, matches: this.#matches });
    this.#child = child;
    createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => {
      const entry = parseEntry(line);
      if (entry) this.#enqueue(() => this.#handle(entry));
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
    child.on('error', (err) => this.opts.log.warn('systemd watcher: journalctl did not start', { error: err.message }));
    child.on('close', (code) => {
      if (this.#stopped) return;
      this.opts.log.warn(`systemd watcher: journalctl ended; following again in ${FOLLOW_RETRY_MS / 1000} s`, { code, stderr: stderr.trim() });
      this.#followTimer = setTimeout(() => {
        // Resume after the last entry handled, so nothing between the two followers is lost.
        void this.#chain.then(() => this.#follow());
      }, FOLLOW_RETRY_MS);
    });
  }

  #enqueue(work: () => Promise<void> | void): void {
    this.#chain = this.#chain.then(work).catch((err: Error) => this.opts.log.error('systemd watcher failed on an entry', { error: err.message }));
  }

  /** One journal entry: systemd's word on a unit. */
  async #handle(entry: JournalEntry): Promise<void> {
    const cursor = field(entry, '__CURSOR');
    const unit = field(entry, 'UNIT');
    const id = field(entry, 'MESSAGE_ID');
    if (unit && id && this.#watched(unit)) await this.#event(unit, id, entry);
    if (cursor) {
      this.#cursor = cursor;
      this.#save(false);
    }
  }

  async #event(unit: string, id: string, entry: JournalEntry): Promise<void> {
    const track = this.#track(unit);
    const invocation = field(entry, 'INVOCATION_ID');
    const message = field(entry, 'MESSAGE') ?? '';
    switch (id) {
      case SYSTEMD_MESSAGES.processExited: {
        const status = Number(field(entry, 'EXIT_STATUS'));
        track.lastExit = { invocation, kind: field(entry, 'EXIT_CODE'), ...(Number.isInteger(status) ? { status } : {}) };
        return;
      }
      case SYSTEMD_MESSAGES.oomKill:
        track.oomInvocation = invocation;
        return;
      case SYSTEMD_MESSAGES.unitFailed:
        track.failedAt = this.#clock.now();
        await this.#fail(this.#failure(unit, invocation, message, field(entry, 'UNIT_RESULT') ?? 'failed', entry));
        return;
      case SYSTEMD_MESSAGES.startFailed: {
        if (track.failedAt !== undefined && this.#clock.now() - track.failedAt < SAME_FAILURE_MS) return; // the same failure
        track.failedAt = this.#clock.now();
        await this.#fail(this.#failure(unit, invocation, message, field(entry, 'JOB_RESULT') ?? 'failed', entry));
        return;
      }
      case SYSTEMD_MESSAGES.autoRestart:
        this.#cancelCheck(track); // systemd's own restart loop: not healthy
        return;
      case SYSTEMD_MESSAGES.startDone:
        // A oneshot's start job finishes when its run has: it can be judged at once.
        if (field(entry, 'JOB_RESULT') === 'done') this.#check(unit, this.opts.settleMs, invocation);
        return;
      case SYSTEMD_MESSAGES.unitSucceeded:
        this.#check(unit, 0, invocation); // a oneshot that finished; anything else the check turns down
        return;
    }
  }

  #failure(unit: string, invocation: string | undefined, message: string, result: string, entry: JournalEntry): Failure {
    const track = this.#track(unit);
    const failure: Failure = { unit, invocation, message, result };
    const us = Number(field(entry, '__REALTIME_TIMESTAMP'));
    if (Number.isFinite(us)) failure.at = us / 1000;
    const exit = track.lastExit;
    if (exit && (exit.invocation === invocation || !invocation)) {
      if (exit.status !== undefined) failure.exitStatus = exit.status;
      if (exit.kind) failure.exitKind = exit.kind;
    }
    if (track.oomInvocation !== undefined && track.oomInvocation === invocation) failure.oom = true;
    return failure;
  }

  /** A unit failed: report it now, or merge it into the alert that closes its repeat window. */
  async #fail(failure: Failure): Promise<void> {
    const track = this.#track(failure.unit);
    this.#cancelCheck(track);
    this.#failing.set(failure.unit, { invocation: failure.invocation, since: this.#failing.get(failure.unit)?.since ?? this.#clock.now() });
    this.#save(true);
    const now = this.#clock.now();
    if (track.merged) {
      track.merged.failure = failure;
      track.merged.count++;
      return;
    }
    const window = this.opts.repeatWindowMs ?? REPEAT_WINDOW_MS;
    if (track.lastAlertAt !== undefined && now - track.lastAlertAt < window) {
      const timer = this.#clock.after(track.lastAlertAt + window - now, () => this.#flush(failure.unit));
      track.merged = { failure, count: 1, timer };
      return;
    }
    track.lastAlertAt = now;
    await this.#send(failure, 1);
  }

  #flush(unit: string): void {
    const track = this.#track(unit);
    const merged = track.merged;
    if (!merged) return;
    merged.timer.cancel();
    track.merged = undefined;
    track.lastAlertAt = this.#clock.now();
    this.#enqueue(() => this.#send(merged.failure, merged.count));
  }

  async #send(f: Failure, failures: number): Promise<void> {
    const wait = f.at === undefined ? 0 : f.at + LOG_SETTLE_MS - this.#clock.now();
    if (wait > 0) await new Promise<void>((r) => this.#clock.after(Math.min(wait, LOG_SETTLE_MS), r));
    const alert: AlertPayload = { type: 'systemd', source: f.unit, message: f.message, status: f.result, logs: await this.#journal.unitLines(f.unit, f.invocation) };
    if (f.exitStatus !== undefined) alert.exit_code = f.exitStatus;
    const context: Record<string, unknown> = {};
    if (f.exitKind) context.exit_code_kind = f.exitKind;
    if (f.oom) context.oom_killed = true;
    if (f.invocation) context.invocation_id = f.invocation;
    if (failures > 1) context.failures = failures;
    if (f.foundAtStart) context.found_at_start = true;
    if (Object.keys(context).length > 0) alert.context = context;
    this.opts.alert(alert);
  }

  /**
   * Look at the unit's state after `delayMs` and resolve it if it is healthy. `ran` is the
   * invocation a journal entry just said finished, if any.
   */
  #check(unit: string, delayMs: number, ran?: string): void {
    if (!this.#failing.has(unit) || this.#stopped) return;
    const track = this.#track(unit);
    const due = this.#clock.now() + delayMs;
    if (track.checkTimer && track.checkDue! <= due) return; // an earlier look is coming; it reschedules if needed
    this.#cancelCheck(track);
    track.checkDue = due;
    track.checkTimer = this.#clock.after(delayMs, () => {
      track.checkTimer = undefined;
      this.#enqueue(() => this.#recheck(unit, ran));
    });
  }

  async #recheck(unit: string, ran: string | undefined): Promise<void> {
    const failing = this.#failing.get(unit);
    if (!failing) return;
    const state = await this.#units.show(unit);
    if (!state) return;
    const verdict = assessRecovery(state, failing.invocation, this.#clock.monotonicUs(), this.opts.settleMs, ran);
    if (verdict.kind === 'wait') this.#check(unit, verdict.ms, ran);
    if (verdict.kind !== 'healthy') return;
    const track = this.#track(unit);
    if (track.merged) {
      // Failures still merged belong before the recovery.
      const merged = track.merged;
      merged.timer.cancel();
      track.merged = undefined;
      await this.#send(merged.failure, merged.count);
    }
    this.#failing.delete(unit);
    track.failedAt = undefined;
    track.lastExit = undefined;
    track.oomInvocation = undefined;
    this.#save(true);
    this.opts.resolve({ type: 'systemd', source: unit, message: verdict.message });
  }

  #cancelCheck(track: UnitTrack): void {
    track.checkTimer?.cancel();
    track.checkTimer = undefined;
  }

  #track(unit: string): UnitTrack {
    let track = this.#tracks.get(unit);
    if (!track) this.#tracks.set(unit, (track = {}));
    return track;
  }

  #watched(unit: string): boolean {
    return !this.opts.units || this.opts.units.includes(unit);
  }

  #load(): void {
    const saved = readJsonState(this.#stateFile) as Partial<SavedState> | null;
    if (!saved || saved.version !== STATE_VERSION) return;
    if (typeof saved.cursor === 'string' && saved.cursor.length <= 1024) this.#cursor = saved.cursor;
    if (typeof saved.failing === 'object' && saved.failing !== null) {
      for (const [unit, f] of Object.entries(saved.failing)) {
        if (typeof f !== 'object' || f === null || !Number.isFinite(f.since)) continue;
        this.#failing.set(unit, { invocation: typeof f.invocation === 'string' ? f.invocation : undefined, since: f.since });
      }
    }
  }

  /** Write the state now (`urgent`), or within a second when only the cursor moved. */
  #save(urgent: boolean): void {
    if (!urgent && this.#clock.now() - this.#savedAt < SAVE_EVERY_MS) {
      this.#saveTimer ??= setTimeout(() => {
        this.#saveTimer = null;
        this.#save(true);
      }, SAVE_EVERY_MS);
      return;
    }
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    this.#saveTimer = null;
    this.#savedAt = this.#clock.now();
    const failing: SavedState['failing'] = {};
    for (const [unit, f] of this.#failing) failing[unit] = { invocation: f.invocation ?? null, since: f.since };
    try {
      writeFileDurably(this.#stateFile, JSON.stringify({ version: STATE_VERSION, cursor: this.#cursor, failing } satisfies SavedState));
    } catch (err) {
      this.opts.log.warn('systemd watcher: could not save its position', { error: (err as Error).message });
    }
  }
}
