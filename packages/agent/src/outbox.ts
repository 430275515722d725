import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { DURABLE_MESSAGE_TYPES, ID_PATTERN } from '@opspilot/protocol';
import { writeFileDurably } from './state-file.ts';

export type DurableType = (typeof DURABLE_MESSAGE_TYPES)[number];

export interface OutboxEntry {
  id: string;
  type: DurableType;
  /** The encoded envelope, sent as is on every attempt (same id, same bytes). */
  frame: string;
}

const REJECTED_KEPT = 100;

export interface OutboxOptions {
  dir: string;
  /** At most this many entries; past it the oldest non-alert goes first, then the oldest alert. */
  maxEntries: number;
  /** Told about every entry dropped to stay within the bound. */
  onDrop?: (entry: { id: string; type: DurableType }) => void;
  /** Writing an entry failed (a full disk, a read-only or broken filesystem): told once, until a write works again. */
  onWriteError?: (err: NodeJS.ErrnoException) => void;
  /** A write works again after failing. */
  onWriteRecovered?: () => void;
}

/**
 * Alerts, resolves and exec results waiting for the hub's ack. Each is a file written to a temp
 * name, fsynced, renamed into place and the directory fsynced before `put` returns, so an entry
 * survives a crash or power loss the moment it is accepted; an ack deletes it. File names are
 * `<id>.<type>.json` and ids are ULIDs, so a directory listing is the sending order. When the
 * disk refuses a write, the entry is kept in memory only (and still sent and resent until
 * acked): losing durability is better than losing the entry, or the process.
 */
export class Outbox {
  readonly #entries = new Map<string, OutboxEntry>();
  #writeFailing = false;

  constructor(private readonly opts: OutboxOptions) {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(opts.dir).sort()) {
      const match = /^([A-Za-z0-9_-]{1,64})\.(alert|resolve|exec_result)\.json$/.exec(name);
      if (!match) {
        // A temp file from a write that never completed: the entry was never accepted.
        if (name.endsWith('.tmp')) unlinkSync(path.join(opts.dir, name));
        continue;
      }
      const [, id, type] = match;
      this.#entries.set(id!, { id: id!, type: type as DurableType, frame: readFileSync(path.join(opts.dir, name), 'utf8') });
    }
  }

  /** Store an entry durably; returns once it is on disk. */
  put(entry: OutboxEntry): void {
    if (!ID_PATTERN.test(entry.id)) throw new Error(`invalid outbox id ${JSON.stringify(entry.id)}`);
    if (this.#entries.has(entry.id)) return;
    while (this.#entries.size >= this.opts.maxEntries) this.#dropOne();
    let failed: NodeJS.ErrnoException | null = null;
    try {
      writeFileDurably(this.#file(entry), entry.frame);
    } catch (err) {
      failed = err as NodeJS.ErrnoException;
      try {
        unlinkSync(`${this.#file(entry)}.tmp`);
      } catch {
        // never written, or the filesystem is gone
      }
    }
    this.#entries.set(entry.id, entry);
    if (failed && !this.#writeFailing) {
      this.#writeFailing = true;
      this.opts.onWriteError?.(failed);
    } else if (!failed && this.#writeFailing) {
      this.#writeFailing = false;
      this.opts.onWriteRecovered?.();
    }
  }

  /** The hub stored these: forget them. Unknown ids are ignored. */
  ack(ids: readonly string[]): void {
    for (const id of ids) {
      const entry = this.#entries.get(id);
      if (!entry) continue;
      this.#entries.delete(id);
      try {
        unlinkSync(this.#file(entry));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  /**
   * The hub refused this entry for what it is (an `error` naming its id): move it to `rejected/`
   * with the reason, for a person to look at, and stop sending it. The newest 100 are kept.
   * Returns false when the id is not in the outbox.
   */
  setAside(id: string, reason: string): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    const dir = path.join(this.opts.dir, 'rejected');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileDurably(path.join(dir, `${entry.id}.${entry.type}.json`), JSON.stringify({ reason, frame: entry.frame }));
    this.ack([id]);
    const kept = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
    for (const name of kept.slice(0, Math.max(0, kept.length - REJECTED_KEPT))) unlinkSync(path.join(dir, name));
    return true;
  }

  /** Everything waiting, oldest first: what to resend after a reconnect. */
  pending(): OutboxEntry[] {
    return [...this.#entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get size(): number {
    return this.#entries.size;
  }

  #dropOne(): void {
    const all = this.pending();
    const victim = all.find((e) => e.type !== 'alert') ?? all[0]!;
    this.ack([victim.id]);
    this.opts.onDrop?.({ id: victim.id, type: victim.type });
  }

  #file(entry: { id: string; type: DurableType }): string {
    return path.join(this.opts.dir, `${entry.id}.${entry.type}.json`);
  }
}
