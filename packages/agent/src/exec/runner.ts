import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { writeFileDurably } from '../state-file.ts';
import path from 'node:path';
import type { ExecPayload, ExecResultPayload } from '@opspilot/protocol';
import { BadParams, buildArgv, type ActionSpec } from './catalogue.ts';

export const OUTPUT_CAP_BYTES = 64 * 1024; // stdout and stderr each
const KILL_GRACE_MS = 2000;
const REMEMBERED_REQUESTS = 10_000;

export interface RunnerOptions {
  actions: Readonly<Record<string, ActionSpec>>;
  /** Where executed request ids are kept, so a request never runs twice, even across restarts. */
  stateDir: string;
  maxConcurrent: number;
  /** Every exec and its outcome, for the local log. */
  log?: (entry: { request_id: string; command: string; argv?: string[]; outcome: string; exit_code?: number | null; duration_ms?: number }) => void;
  /** Environment of the commands; default a minimal PATH and LANG. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs exec requests from the catalogue: argv arrays only, never a shell; a timeout (SIGTERM,
 * then SIGKILL); stdout and stderr capped at 64 KiB each; at most `maxConcurrent` at once; and
 * each request_id at most once, recorded durably before the command starts.
 */
export class ExecRunner {
  readonly #seen: Set<string>;
  readonly #seenFile: string;
  #running = 0;

  constructor(private readonly opts: RunnerOptions) {
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    this.#seenFile = path.join(opts.stateDir, 'exec-requests.log');
    let lines: string[] = [];
    try {
      lines = readFileSync(this.#seenFile, 'utf8').split('\n').filter(Boolean);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.#seen = new Set(lines.slice(-REMEMBERED_REQUESTS));
    // Compacted through a temp file, fsynced and renamed: a crash leaves the old log or the new one,
    // never a torn one that would forget requests already run.
    if (lines.length > REMEMBERED_REQUESTS * 2) writeFileDurably(this.#seenFile, [...this.#seen].join('\n') + '\n');
  }

  get actionNames(): string[] {
    return Object.keys(this.opts.actions);
  }

  async run(exec: ExecPayload): Promise<ExecResultPayload> {
    const started = Date.now();
    const refuse = (error_code: NonNullable<ExecResultPayload['error_code']>, stderr: string): ExecResultPayload => {
      this.opts.log?.({ request_id: exec.request_id, command: exec.command, outcome: error_code });
      return { request_id: exec.request_id, ok: false, exit_code: null, stdout: '', stderr, duration_ms: Date.now() - started, truncated: false, error_code };
    };
    if (this.#seen.has(exec.request_id)) return refuse('EXEC_DUPLICATE', `request ${exec.request_id} was already run`);
    const spec = Object.hasOwn(this.opts.actions, exec.command) ? this.opts.actions[exec.command]! : undefined;
    if (!spec) return refuse('EXEC_NOT_ALLOWED', `"${exec.command}" is not in this agent's catalogue`);
    let argv: string[];
    let values: Record<string, string | number | boolean>;
    try {
      ({ argv, values } = buildArgv(spec, exec.params));
    } catch (err) {
      if (err instanceof BadParams) return refuse('EXEC_BAD_PARAMS', err.message);
      throw err;
    }
    if (this.#running >= this.opts.maxConcurrent) return refuse('EXEC_BUSY', `already running ${this.#running} commands`);
    this.#remember(exec.request_id);
    this.#running++;
    try {
      const timeoutMs = Math.min(exec.timeout_ms, spec.timeout_ms);
      const result = await runCommand(argv, timeoutMs, this.opts.env ?? { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' });
      let stdout = result.stdout;
      if (spec.limitLinesParam && typeof values[spec.limitLinesParam] === 'number') {
        stdout = keepLines(stdout, 1 + (values[spec.limitLinesParam] as number));
      }
      const out: ExecResultPayload = {
        request_id: exec.request_id,
        ok: result.error_code === undefined && result.exit_code !== null && (spec.okExitCodes ?? [0]).includes(result.exit_code),
        exit_code: result.exit_code,
        stdout,
        stderr: result.stderr,
        duration_ms: Date.now() - started,
        truncated: result.truncated,
      };
      if (result.error_code) out.error_code = result.error_code;
      this.opts.log?.({ request_id: exec.request_id, command: exec.command, argv, outcome: result.error_code ?? 'exited', exit_code: out.exit_code, duration_ms: out.duration_ms });
      return out;
    } finally {
      this.#running--;
    }
  }

  /**
   * Remember a request before it runs. When the disk refuses (full, read-only), it is remembered
   * in memory only: the request still runs once in this process, and the hub never sends a
   * request id twice.
   */
  #remember(requestId: string): void {
    this.#seen.add(requestId);
    try {
      const fd = openSync(this.#seenFile, 'a', 0o600);
      try {
        appendFileSync(fd, requestId + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      this.opts.log?.({ request_id: requestId, command: '', outcome: `not recorded on disk: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    }
  }
}

interface CommandResult {
  exit_code: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  error_code?: 'EXEC_TIMEOUT' | 'EXEC_FAILED_TO_START';
}

/** Run argv without a shell, capping each stream and killing it at the timeout. */
export function runCommand(argv: string[], timeoutMs: number, env: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { shell: false, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], sizes: { stdout: 0, stderr: 0 } };
    let truncated = false;
    let timedOut = false;
    let failedToStart: Error | null = null;
    const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const room = OUTPUT_CAP_BYTES - out.sizes[stream];
      if (room <= 0) {
        truncated = true;
        return; // keep draining so the child never blocks on a full pipe
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (part.length < chunk.length) truncated = true;
      out[stream].push(part);
      out.sizes[stream] += part.length;
    };
    child.stdout.on('data', collect('stdout'));
    child.stderr.on('data', collect('stderr'));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS).unref();
    }, timeoutMs);
    child.on('error', (err) => {
      failedToStart = err;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result: CommandResult = {
        exit_code: failedToStart ? null : code,
        stdout: Buffer.concat(out.stdout).toString('utf8'),
        stderr: failedToStart ? String((failedToStart as Error).message) : Buffer.concat(out.stderr).toString('utf8'),
        truncated,
      };
      if (failedToStart) result.error_code = 'EXEC_FAILED_TO_START';
      else if (timedOut) result.error_code = 'EXEC_TIMEOUT';
      resolve(result);
    });
  });
}

function keepLines(text: string, n: number): string {
  const lines = text.split('\n');
  return lines.length <= n ? text : lines.slice(0, n).join('\n') + '\n';
}
