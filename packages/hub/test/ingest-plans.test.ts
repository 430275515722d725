// The statements that write many agents at once (the bulk write of heartbeats, hellos and metric
// samples; a reconnect storm's claims; a lost network's releases) must cost time linear in their
// batch, whatever the planner guesses: json_to_recordset is always guessed at 100 rows, and a join
// between two such row sets planned as a nested loop compares every row with every other (a
// flood's batch of 31,000 samples from 2,000 agents took 14 s). Read from EXPLAIN ANALYZE: rows
// compared and thrown away by joins, and the largest rows × loops of any step; counts, not times.
import t from 'tap';
import { sql, type RawBuilder } from 'kysely';
import { eachBackend } from './helpers.ts';
import { bulkStatement, type BulkBatch } from '../src/storage/ingest-batch.ts';
import { claimStatement, releaseStatement } from '../src/storage/cluster.ts';
import type { Db } from '../src/storage/database.ts';
import type { Test } from 'tap';
import type { MetricSample } from '@opspilot/protocol';
import { migrate } from '../src/storage/migrate.ts';

interface PlanNode {
  'Node Type': string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Join Filter'?: number;
  Plans?: PlanNode[];
}

function* nodes(n: PlanNode): Generator<PlanNode> {
  yield n;
  for (const c of n.Plans ?? []) yield* nodes(c);
}

const sample = (ts: number): MetricSample => ({
  ts,
  cpu_pct: 12.5,
  mem_used: 3e9,
  mem_total: 8e9,
  load1: 0.4,
  load5: 0.3,
  load15: 0.2,
  disks: [{ mount: '/', used: 1e9, size: 6e10 }],
  net: [{ iface: 'eth0', rx_bps: 1000, tx_bps: 500 }],
});

/** A fleet of 10,000 agents (what the planner divides its guesses by). */
async function fleet(db: Db): Promise<string[]> {
  const ids = Array.from({ length: 10_000 }, (_, i) => `agent-${String(i).padStart(5, '0')}`);
  await sql`INSERT INTO agents (id, hostname, token_hash) SELECT v, v, 'h-' || v FROM unnest(${ids}::text[]) AS v`.execute(db);
  await sql`ANALYZE agents`.execute(db);
  return ids;
}

/** Run `statement` under EXPLAIN ANALYZE and check its plan stays linear in `rows`. */
async function linear(t: Test, db: Db, statement: RawBuilder<unknown>, rows: number, fleetSize: number): Promise<void> {
  const explained = await sql<{ 'QUERY PLAN': unknown }>`EXPLAIN (ANALYZE, FORMAT JSON) ${statement}`.execute(db);
  const raw = explained.rows[0]!['QUERY PLAN'];
  const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as { Plan: PlanNode }[];
  const all = [...nodes(plan[0]!.Plan)];
  const discarded = all.reduce((sum, n) => sum + (n['Rows Removed by Join Filter'] ?? 0), 0);
  t.ok(discarded <= rows, `rows compared and discarded by joins: ${discarded} (batch of ${rows} rows)`);
  // No step runs once per row of another over a row set of its own: loops × rows stays within
  // a few times the batch (or one pass over the fleet's table).
  const worst = Math.max(...all.map((n) => (n['Actual Loops'] ?? 1) * (n['Actual Rows'] ?? 0)));
  t.ok(worst <= 4 * Math.max(rows, fleetSize), `largest loops × rows of any step: ${worst}`);
}

eachBackend(t, 'a reconnect storm\'s claims and a lost network\'s releases: linear however many', async (t, backend) => {
  const db = await backend.open(t);
  await migrate(db);
  const ids = (await fleet(db.db)).slice(0, 3000);
  const at = new Date();
  await linear(t, db.db, claimStatement(ids.map((agentId) => ({ agentId, at })), 'hub-a', { type: 'host', source: 'agent offline' }), ids.length, 10_000);
  const held = await sql<{ n: string }>`SELECT count(*) AS n FROM agents WHERE hub_id = 'hub-a'`.execute(db.db);
  t.equal(Number(held.rows[0]!.n), 3000, 'every agent claimed');
  const epochs = await sql<{ id: string; conn_epoch: string }>`SELECT id, conn_epoch FROM agents WHERE hub_id = 'hub-a'`.execute(db.db);
  const releases = epochs.rows.map((r) => ({ agentId: r.id, epoch: Number(r.conn_epoch), closed: { at, code: 1006 } }));
  await linear(t, db.db, releaseStatement(releases, 'hub-a'), releases.length, 10_000);
  const left = await sql<{ n: string }>`SELECT count(*) AS n FROM agents WHERE hub_id IS NOT NULL`.execute(db.db);
  t.equal(Number(left.rows[0]!.n), 0, 'every agent freed');
});

eachBackend(t, 'the bulk statement joins nothing quadratically, however large its batch', async (t, backend) => {
  const db = await backend.open(t);
  await migrate(db);
  const AGENTS = 1500;
  const ids = (await fleet(db.db)).slice(0, AGENTS);
  // Every agent seen, four metrics frames each (two with ids, as resent frames have), one id each.
  const now = new Date();
  const batch: BulkBatch = { seen: new Map(ids.map((id) => [id, { at: now, stats: { cpu_pct: 1 } }])), metrics: [], ids: [] };
  for (const id of ids) {
    for (let k = 0; k < 4; k++) {
      const msgId = k < 2 ? `m-${k}` : undefined;
      batch.metrics.push({ agentId: id, msgId, samples: [sample(1_764_000_000 + k)] });
      if (msgId) batch.ids.push({ agentId: id, msgId });
    }
  }
  const rows = batch.seen.size + batch.metrics.length + batch.ids.length;
  await linear(t, db.db, bulkStatement(batch), rows, 10_000);
  const stored = await sql<{ n: string }>`SELECT count(*) AS n FROM metric_samples`.execute(db.db);
  t.equal(Number(stored.rows[0]!.n), AGENTS * 4, 'and every sample stored');
});
