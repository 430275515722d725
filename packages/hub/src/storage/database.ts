import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, sql, type KyselyConfig } from 'kysely';
import pg from 'pg';
import { PGliteDialect } from './pglite-dialect.ts';
import type { Database } from './tables.ts';

export type Db = Kysely<Database>;

export interface HubDatabase {
  readonly db: Db;
  readonly kind: 'pglite' | 'postgres';
  /** Run SQL text that may hold several statements (the schema). */
  exec(sqlText: string): Promise<void>;
  /** One transaction on one connection, for SQL text (migrations): committed when `fn` returns, rolled back if it throws. */
  transaction<T>(fn: (tx: SqlSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /**
   * A new connection outside the pool, for what lives and dies with the hub (LISTEN, the leader
   * lock: storage/cluster.ts). Null on the embedded database, which one hub holds.
   */
  readonly dedicatedClient: (() => pg.Client) | null;
}

/** Raw SQL on one connection inside a transaction. */
export interface SqlSession {
  /** SQL text that may hold several statements. */
  exec(sqlText: string): Promise<void>;
  query<R>(sqlText: string, params?: unknown[]): Promise<R[]>;
}

export interface OpenDatabaseOptions {
  /** A PostgreSQL connection string; without it PGlite runs in `pgliteDir`. */
  databaseUrl?: string;
  /** PGlite's data directory, or `memory://` for a throwaway database. */
  pgliteDir?: string;
  /** PostgreSQL schema to work in (tests give each file its own). */
  searchPath?: string;
  /** Pool size for PostgreSQL. */
  maxConnections?: number;
  /** Kysely's query log: every statement sent, with its duration (tests count a write's round trips). */
  log?: KyselyConfig['log'];
  /** PostgreSQL settings for the hub's sessions (tests: `plan_cache_mode`). */
  settings?: Record<string, string>;
}

const INT8_OID = 20;

export async function openDatabase(opts: OpenDatabaseOptions): Promise<HubDatabase> {
  if (opts.databaseUrl) return openPostgres(opts.databaseUrl, opts);
  return openPGlite(opts.pgliteDir ?? 'memory://', opts.log);
}

async function openPostgres(connectionString: string, opts: OpenDatabaseOptions): Promise<HubDatabase> {
  const settings = { ...(opts.searchPath ? { search_path: opts.searchPath } : {}), ...opts.settings };
  const options = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
  const pool = new pg.Pool({
    connectionString,
    max: opts.maxConnections ?? 10,
    ...(options ? { options } : {}),
    // Counts and byte sizes are bigint in SQL but fit a JS number: read them as numbers, as PGlite does.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // A client's error (the server restarted, its connection was killed) must not crash the hub:
  // an idle client's goes to the pool, which replaces it; a checked-out client's to itself, and
  // the query it was running fails and is handled by its caller.
  pool.on('error', () => {});
  const statements = new StatementNames();
  pool.on('connect', (client) => {
    client.on('error', () => {});
    statements.prepareOn(client);
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), ...(opts.log ? { log: opts.log } : {}) });
  return {
    db,
    kind: 'postgres',
    dedicatedClient: () =>
      new pg.Client({ connectionString, application_name: 'opspilot-hub', ...(options ? { options } : {}) }),
    async exec(sqlText) {
      const client = await pool.connect();
      try {
        await client.query(sqlText);
      } catch (err) {
        // A failed multi-statement text can leave its transaction open: end it before the
        // connection goes back to the pool.
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({
          exec: async (text) => void (await client.query(text)),
          query: async (text, params) => (await client.query(text, params as unknown[])).rows,
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async close() {
      await db.destroy();
    },
  };
}

/** Statement texts of at most this many characters are prepared once seen again. */
const PREPARED_MAX_TEXT = 16_384;
/** Statements prepared per connection; past that, the rest go unnamed (parsed and planned each time). */
const PREPARED_PER_CONNECTION = 256;
/** Distinct texts counted; past that, no new text is prepared. */
const COUNTED_TEXTS = 4096;

/**
 * Prepared statements for what runs again and again. Each unnamed statement is parsed and
 * planned on every call: for a lone alert's statement that was ~1.2 ms of its ~1.7 ms on the
 * server. A text seen a second time is prepared under a name derived from it (once per
 * connection; PostgreSQL switches to a generic plan when it costs no more), within bounds: texts
 * that differ every time (a batch's VALUES list) are never counted twice and stay unnamed.
 */
class StatementNames {
  /** Texts seen, by their hash (a text may be 16 KiB; its hash is 27 characters): prepared once seen again. */
  readonly #seen = new Set<string>();

  /** The name to prepare `text` under, or undefined to send it unnamed. */
  nameOf(text: string): string | undefined {
    if (text.length > PREPARED_MAX_TEXT) return undefined;
    const hash = createHash('sha1').update(text).digest('base64url');
    if (this.#seen.has(hash)) return `opspilot_${hash}`;
    if (this.#seen.size < COUNTED_TEXTS) this.#seen.add(hash);
    return undefined;
  }

  /** Route the client's parameterised queries (Kysely's) through `nameOf`. */
  prepareOn(client: pg.PoolClient): void {
    const prepared = new Set<string>();
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((text: unknown, values?: unknown, callback?: unknown) => {
      if (typeof text !== 'string' || !Array.isArray(values) || callback !== undefined) return query(text, values, callback);
      let name = this.nameOf(text);
      if (name && !prepared.has(name)) {
        if (prepared.size >= PREPARED_PER_CONNECTION) name = undefined;
        else prepared.add(name);
      }
      return name ? query({ name, text, values }) : query(text, values);
    }) as typeof client.query;
  }
}

/** The embedded database's settings (its postgresql.conf). */
export const PGLITE_CONF = ['shared_buffers = 16MB', 'wal_buffers = 1MB'];

async function openPGlite(dir: string, log?: KyselyConfig['log']): Promise<HubDatabase> {
  const { PGlite } = await import('@electric-sql/pglite');
  let unlock = () => {};
  if (!dir.includes('://')) {
    mkdirSync(dir, { recursive: true });
    unlock = lockDataDir(dir);
  }
  // PostgreSQL's default 128 MB of shared buffers is most of an embedded hub's memory, and the
  // operating system caches the data files anyway: 16 MB keeps a restarted idle hub near 250 MB.
  const open = () => PGlite.create(dir, { postgresqlconf: PGLITE_CONF });
  const fresh = !dir.includes('://') && !existsSync(path.join(dir, 'PG_VERSION'));
  const client = await (async () => {
    // A new directory is initialised (initdb) inside the WebAssembly instance, whose memory grows
    // to ~500 MB and never shrinks: opened once more afterwards, the hub keeps only what a
    // running database needs (~250 MB instead of ~740 MB).
    if (fresh) await (await open()).close();
    return open();
  })().catch((err: unknown) => {
    unlock();
    throw err;
  });
  const db = new Kysely<Database>({ dialect: new PGliteDialect(client), ...(log ? { log } : {}) });
  return {
    db,
    kind: 'pglite',
    dedicatedClient: null,
    async exec(sqlText) {
      await client.exec(sqlText);
    },
    async transaction(fn) {
      return client.transaction(async (tx) =>
        fn({
          exec: async (text) => void (await tx.exec(text)),
          query: async <R>(text: string, params?: unknown[]) => (await tx.query<R>(text, params)).rows,
        }),
      );
    },
    async close() {
      try {
        await db.destroy();
      } finally {
        unlock();
      }
    },
  };
}

/**
 * The embedded database serves one hub: its directory is taken with a file naming the process
 * (created exclusively). A second hub pointed at it is refused, saying why; a file left by a
 * process that no longer runs is taken over. Returns the release.
 */
const heldHere = new Set<string>();

function lockDataDir(dir: string): () => void {
  const file = `${dir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      heldHere.add(file);
      return () => {
        heldHere.delete(file);
        try {
          if (readFileSync(file, 'utf8') === String(process.pid)) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      // A file naming this process that this process did not write was left by an earlier one
      // that had the same number (a container's hub restarted).
      const ours = pid === process.pid && !heldHere.has(file);
      if (Number.isInteger(pid) && pid > 0 && !ours && processRuns(pid)) {
        throw new Error(
          `the embedded database in ${dir} is in use by another hub (process ${pid}). It serves one hub; several hubs share a PostgreSQL database (set DATABASE_URL)`,
        );
      }
      unlinkSync(file); // left by a hub that is gone
    }
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A fault of the database or of the way to it, not of the hub's logic: the server refusing or
 * dropping connections, shutting down, out of resources (SQLSTATE classes 08, 53, 57).
 */
export function isDatabaseFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return /Connection terminated|connection (?:is )?closed|Client has encountered a connection error/i.test(String((err as Error | null)?.message ?? ''));
  return /^(08|53|57)[0-9A-Z]{3}$/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code);
}

/** True when a trivial query answers: what /readyz reports. */
export async function ping(db: Db): Promise<boolean> {
  try {
    await sql`SELECT 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
