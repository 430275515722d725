import { CompiledQuery, DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type Compilable } from 'kysely';
import type { Database } from './tables.ts';

/** A slot's stand-in while the shape is compiled: no value a caller passes looks like it. */
const MARK = '\u0000opspilot-slot\u0000';

/**
 * A statement built by Kysely once (with the first caller's database: the hub's two speak the
 * same PostgreSQL), and bound to each call's values after. Building a long statement
 * (recordAlert's: ten common table expressions) walks Kysely's builders and compiler every time:
 * ~0.22 ms of the hub's thread per alert, against ~1.5 µs bound (`pnpm bench statements`). The
 * text does not change, only the values do.
 *
 * `build` is given stand-ins for the values and must use each only as a value (`eb.val(v.x)`,
 * `${v.x}` in `sql`, a `set` or `where` operand), never look inside one or choose the statement's
 * form by it: what changes the form (an optional part, a list's length) is a separate shape.
 * The first call checks that: every stand-in must come back as a parameter, none in the text.
 * Parameters that are not slots (a constant operand) keep the value they were built with.
 */
export function statementShape<D, V extends Record<string, unknown>, R>(build: (db: D, v: V) => Compilable<R>): (db: D, values: V) => CompiledQuery<R> {
  let text: string | undefined;
  let order: ({ slot: string } | { constant: unknown })[] = [];
  return (db, values) => {
    if (text === undefined) {
      const handed = new Set<string>();
      const stand = new Proxy({} as V, {
        get: (_, key) => {
          if (typeof key !== 'string') return undefined;
          handed.add(`${MARK}${key}`);
          return `${MARK}${key}`;
        },
      });
      const query = build(db, stand).compile();
      if (query.sql.includes(MARK)) throw new Error('statementShape: a slot was written into the text, not passed as a value');
      order = query.parameters.map((p) => {
        if (typeof p === 'string' && handed.has(p)) return { slot: p.slice(MARK.length) };
        if (typeof p === 'string' && p.includes(MARK)) throw new Error('statementShape: a slot was changed, not passed as a value');
        return { constant: p };
      });
      text = query.sql;
    }
    const parameters = order.map((o) => {
      if ('constant' in o) return o.constant;
      if (!(o.slot in values)) throw new Error(`statementShape: no value for ${o.slot}`);
      return values[o.slot];
    });
    return CompiledQuery.raw(text, parameters) as CompiledQuery<R>;
  };
}

/** A Kysely that compiles PostgreSQL and runs nothing: what a shape's statement is, for tests and `pnpm bench statements`. */
export function compileOnly(): Kysely<Database> {
  return new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
}
