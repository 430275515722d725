/**
 * Statements the hub runs again and again are prepared (parsed and planned once per connection);
 * a text seen once, or one that differs every time, is not; a connection holds a bounded number.
 * PostgreSQL only: the embedded database has no connection protocol to prepare on.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { CompiledQuery, sql } from 'kysely';
import pg from 'pg';
import { openDatabase } from '../src/storage/database.ts';

const SERVER = process.env.DATABASE_URL;

if (!SERVER) {
  t.comment('not run: needs DATABASE_URL (PostgreSQL)');
} else {
  /** The hub's database on one connection, in a schema of its own: what it has prepared is what pg_prepared_statements shows. */
  const oneConnection = async (t: Test) => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: SERVER });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    t.teardown(async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    });
    const hub = await openDatabase({ databaseUrl: SERVER!, searchPath: schema, maxConnections: 1 });
    t.teardown(() => hub.close());
    const prepared = async () =>
      (await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements`.execute(hub.db)).rows.map((r) => r.statement);
    return { hub, prepared };
  };

  t.test('a statement seen twice is prepared; what differs every time is not; a connection holds at most 256', async (t) => {
    const { hub, prepared } = await oneConnection(t);

    const again = (n: number) => sql<{ n: number }>`SELECT ${n}::int + 1 AS n`.execute(hub.db);
    t.same((await again(1)).rows, [{ n: 2 }]);
    t.notOk((await prepared()).some((s) => s.includes('::int + 1')), 'seen once: sent unnamed');
    t.same((await again(2)).rows, [{ n: 3 }], 'the second time: prepared, with its own parameters');
    for (let i = 3; i < 10; i++) t.same((await again(i)).rows, [{ n: i + 1 }]);
    t.equal((await prepared()).filter((s) => s.includes('::int + 1')).length, 1, 'prepared once on the connection');

    // A text that differs every time (a list of a different length each call) is never prepared.
    for (let n = 1; n <= 5; n++) await sql`SELECT ${sql.join(Array.from({ length: n }, (_, i) => sql`${i}::int`))}`.execute(hub.db);
    t.equal((await prepared()).filter((s) => s.includes('::int, ')).length, 0, 'one-off texts stay unnamed');

    // Past 256 on one connection, the rest go unnamed and still work.
    for (let k = 0; k < 300; k++) {
      const text = sql<{ k: number }>`SELECT ${k}::int AS k, ${sql.lit(`shape ${k}`)} AS shape`;
      await text.execute(hub.db);
      t.equal((await text.execute(hub.db)).rows[0]!.k, k);
    }
    const count = (await prepared()).length;
    t.ok(count <= 256, `${count} statements prepared on the connection`);
  });

  t.test('a text of over 16,384 characters is never prepared, one of 16,384 is', async (t) => {
    const { hub, prepared } = await oneConnection(t);
    // A comment pads a text to the length wanted; the parameter makes it a parameterised query.
    const run = (tag: string, length: number) => {
      const head = `SELECT $1::int AS n /* ${tag} `;
      const text = `${head}${'x'.repeat(length - head.length - 3)} */`;
      if (text.length !== length) throw new Error('padding');
      return hub.db.executeQuery<{ n: number }>(CompiledQuery.raw(text, [7]));
    };
    for (let i = 0; i < 3; i++) t.same((await run('longest', 16_384)).rows, [{ n: 7 }]);
    t.ok((await prepared()).some((s) => s.includes('/* longest ')), '16,384 characters: prepared');
    for (let i = 0; i < 3; i++) t.same((await run('long', 16_385)).rows, [{ n: 7 }]);
    t.notOk((await prepared()).some((s) => s.includes('/* long ')), 'over 16,384 characters: unnamed every time');
  });
}
