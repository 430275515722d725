import { createHash } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { AlertPayload } from '@opspilot/protocol';
import { writeFileDurably } from '../state-file.ts';
import { linearPattern, type LinearPattern } from '../pattern.ts';

export interface LogTailOptions {
  path: string;
  /** Matched case-insensitively against each line. */
  pattern: string;
  stateDir: string;
  /** After an alert, further matches within this window are merged into one follow-up alert. */
  windowMs: number;
  /** Lines before a match sent with it. */
  contextLines: number;
  /** Hand an alert to the outbox. The id is the same however often the same lines are read. */
  send: (id: string, alert: AlertPayload) => void;
  now?: () => number;
}

interface Saved {
  dev: number;
  ino: number;
  offset: number;
}

const READ_CHUNK = 64 * 1024;
const MAX_LINE = 16 * 1024; // a longer "line" is cut here, so a file with no newlines cannot grow memory
const MERGED_SAMPLE = 20;

/**
 * Follows one log file across rotation (rename and truncate) and turns matching lines into
 * `log` alerts. The read offset is kept in the state directory and never moves past a matched
 * line whose alert is not yet in the outbox, so a restart neither skips nor loses lines; and an
 * alert's id comes from the file and the line's offset, so lines read twice (after a crash)
 * give the same ids, which the outbox and the hub store once.
 */
export class LogTail {
  readonly #re: LinearPattern;
  readonly #stateFile: string;
  readonly #now: () => number;
  readonly #pathKey: string;
  #fd: number | null = null;
  #file: { dev: number; ino: number } | null = null;
  #offset = 0;
  #savedKey = '';
  #context: string[] = [];
  #windowStart = -Infinity;
  #pending: { start: number; count: number; lines: string[]; last: string } | null = null;

  constructor(private readonly opts: LogTailOptions) {
    this.#re = linearPattern(opts.pattern, { caseInsensitive: true });
    this.#now = opts.now ?? Date.now;
    this.#pathKey = createHash('sha256').update(opts.path).digest('hex').slice(0, 12);
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    this.#stateFile = path.join(opts.stateDir, `log-${this.#pathKey}.json`);
    const saved = this.#load();
    const st = this.#statPath();
    if (st) {
      this.#open(st);
      if (saved && saved.dev === st.dev && saved.ino === st.ino) {
        this.#offset = saved.offset <= st.size ? saved.offset : 0; // truncated while we were away
      } else if (saved) {
        this.#offset = 0; // rotated while we were away: this file is all new
      } else {
        this.#offset = st.size; // first run: old lines are history, not incidents
      }
      this.#save();
    }
  }

  /** Read what was appended, follow a rotation, and send what is due. */
  poll(): void {
    if (this.#fd !== null) {
      const own = fstatSync(this.#fd);
      if (own.size < this.#offset) {
        this.#offset = 0; // truncated in place (copytruncate)
        this.#context = [];
      }
      this.#drain(false);
    }
    const st = this.#statPath();
    if (st && (!this.#file || st.dev !== this.#file.dev || st.ino !== this.#file.ino)) {
      // Renamed away and recreated: finish the old file, last line included, then start the new one.
      if (this.#fd !== null) {
        this.#drain(true);
        closeSync(this.#fd);
      }
      this.#open(st);
      this.#offset = 0;
      this.#context = [];
      this.#drain(false);
    }
    this.#sendMergedIfDue(false);
    this.#save();
  }

  /** Send what is merged now (on shutdown), then close. */
  close(): void {
    this.#sendMergedIfDue(true);
    this.#save();
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  #drain(toEnd: boolean): void {
    const fd = this.#fd!;
    const buf = Buffer.alloc(READ_CHUNK);
    for (;;) {
      const n = readSync(fd, buf, 0, READ_CHUNK, this.#offset);
      if (n === 0) return;
      let start = 0;
      let consumed = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0 || nl >= n) break;
        this.#line(buf.subarray(start, nl), this.#offset + start);
        start = nl + 1;
        consumed = start;
      }
      if (consumed === 0) {
        if (n === READ_CHUNK || (toEnd && n > 0)) {
          // No newline in a whole chunk (or the file's last line after a rotation): take it as a line.
          this.#line(buf.subarray(0, Math.min(n, MAX_LINE)), this.#offset);
          this.#offset += n;
          continue;
        }
        return; // a partial line: read again when it is complete
      }
      this.#offset += consumed;
      if (n < READ_CHUNK && consumed === n) return;
    }
  }

  #line(bytes: Buffer, at: number): void {
    const text = bytes.subarray(0, MAX_LINE).toString('utf8').replace(/\r$/, '');
    if (this.#re.test(text)) this.#match(text, at);
    this.#context.push(text);
    if (this.#context.length > this.opts.contextLines) this.#context.shift();
  }

  #match(line: string, at: number): void {
    const now = this.#now();
    if (now - this.#windowStart >= this.opts.windowMs && !this.#pending) {
      this.#windowStart = now;
      this.opts.send(this.#id(at), {
        type: 'log',
        source: this.opts.path,
        message: line.slice(0, 4096),
        logs: [...this.#context, line].join('\n'),
      });
      return;
    }
    if (!this.#pending) this.#pending = { start: at, count: 0, lines: [], last: line };
    this.#pending.count++;
    this.#pending.last = line;
    if (this.#pending.lines.length < MERGED_SAMPLE) this.#pending.lines.push(line);
  }

  #sendMergedIfDue(force: boolean): void {
    const p = this.#pending;
    if (!p) return;
    const now = this.#now();
    if (!force && now - this.#windowStart < this.opts.windowMs) return;
    this.#pending = null;
    this.#windowStart = now;
    const more = p.count > p.lines.length ? `\n… and ${p.count - p.lines.length} more` : '';
    this.opts.send(this.#id(p.start), {
      type: 'log',
      source: this.opts.path,
      message: `${p.count} matching line${p.count === 1 ? '' : 's'} in ${Math.round(this.opts.windowMs / 1000)} s; latest: ${p.last.slice(0, 4000)}`,
      logs: p.lines.join('\n') + more,
      context: { merged_lines: p.count },
    });
  }

  /** Same file, same line → same id. */
  #id(at: number): string {
    const f = this.#file!;
    return `lg-${this.#pathKey}-${f.dev.toString(36)}_${f.ino.toString(36)}-${at.toString(36).padStart(9, '0')}`;
  }

  #statPath(): Stats | null {
    try {
      return statSync(this.opts.path);
    } catch {
      return null;
    }
  }

  #open(st: Stats): void {
    this.#fd = openSync(this.opts.path, 'r');
    const own = fstatSync(this.#fd);
    this.#file = { dev: own.dev, ino: own.ino };
    void st;
  }

  #load(): Saved | null {
    try {
      const s = JSON.parse(readFileSync(this.#stateFile, 'utf8')) as Saved;
      return Number.isInteger(s.offset) && Number.isInteger(s.ino) && Number.isInteger(s.dev) ? s : null;
    } catch {
      return null;
    }
  }

  /** The offset to resume from: never past a matched line still waiting to be sent. */
  #save(): void {
    if (!this.#file) return;
    const offset = this.#pending ? Math.min(this.#pending.start, this.#offset) : this.#offset;
    const key = `${this.#file.dev}:${this.#file.ino}:${offset}`;
    if (key === this.#savedKey) return; // polled every second: write only what changed
    this.#savedKey = key;
    writeFileDurably(this.#stateFile, JSON.stringify({ dev: this.#file.dev, ino: this.#file.ino, offset } satisfies Saved));
  }
}
