import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { HubDatabase, SqlSession } from './database.ts';

/**
 * The database's shape, owned here: schema.sql is the current schema (a new database is made
 * from it), migrations/NNNN-name.sql are the ordered steps that bring an existing database to it.
 * Each applied step is a row in schema_migrations. The whole run is one transaction under an
 * advisory lock: two hubs starting on one PostgreSQL take turns, and a step that fails leaves the
 * database as it was.
 */
export const SCHEMA_PATH = path.join(repositoryRoot(), 'schema.sql');
export const MIGRATIONS_DIR = path.join(repositoryRoot(), 'migrations');

/**
 * The repository's root: the nearest folder above this module holding schema.sql and
 * migrations/ (the same from the sources, run by tsx, and from the hub's bundle in
 * packages/hub/dist).
 */
export function repositoryRoot(from: string = import.meta.dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'schema.sql')) && existsSync(path.join(dir, 'migrations'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no schema.sql and migrations/ above ${from}`);
  }
}

const LOCK_KEY = 4242001;
const FILE = /^(\d{4})-([a-z0-9.-]+)\.sql$/;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export interface MigrationResult {
  /** The version before: 0 for a database of 0.1.0 (no record), null for an empty one. */
  from: number | null;
  to: number;
  /** What ran: "schema.sql" for a new database, else each step's file name. */
  applied: string[];
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

/** The steps in migrations/, in order; their versions must run 1, 2, 3… without a gap. */
export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const steps = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((file) => {
      const m = FILE.exec(file);
      if (!m) throw new MigrationError(`${file}: a migration is named NNNN-name.sql`);
      return { version: Number(m[1]), name: file, sql: readFileSync(path.join(dir, file), 'utf8') };
    });
  steps.forEach((s, i) => {
    if (s.version !== i + 1) throw new MigrationError(`${s.name}: expected version ${i + 1} (versions run 1, 2, 3… without a gap)`);
  });
  return steps;
}

/** Bring the database to the current schema: made fresh from schema.sql, or upgraded step by step. */
export async function migrate(
  hdb: HubDatabase,
  opts: { schemaPath?: string; migrationsDir?: string; now?: Date } = {},
): Promise<MigrationResult> {
  const steps = readMigrations(opts.migrationsDir);
  const latest = steps.length;
  const at = (opts.now ?? new Date()).toISOString();
  return hdb.transaction(async (tx) => {
    await tx.exec(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
    await tx.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`,
    );
    const [state] = await tx.query<{ has_tables: boolean; version: number | null }>(
      `SELECT to_regclass('agents') IS NOT NULL AS has_tables, (SELECT max(version) FROM schema_migrations) AS version`,
    );
    const record = (s: SqlSession, step: Migration) => s.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [step.version, step.name, at]);

    if (!state!.has_tables) {
      await tx.exec(readFileSync(opts.schemaPath ?? SCHEMA_PATH, 'utf8'));
      for (const step of steps) await record(tx, step);
      return { from: null, to: latest, applied: ['schema.sql'] };
    }
    const from = state!.version ?? 0;
    if (from > latest) {
      throw new MigrationError(`the database is at schema version ${from}, newer than this hub knows (${latest}): run the newer OpsPilot, or restore a backup`);
    }
    const applied: string[] = [];
    for (const step of steps.slice(from)) {
      try {
        await tx.exec(step.sql);
      } catch (err) {
        throw new MigrationError(`${step.name} failed, nothing was changed: ${(err as Error).message}`);
      }
      await record(tx, step);
      applied.push(step.name);
    }
    return { from, to: latest, applied };
  });
}
