import { sql } from 'kysely';
import type { Db } from './database.ts';

/**
 * Retention, in bounded steps: each function does at most `limit` rows and says how many it did,
 * so the caller can loop with pauses between statements. (On the embedded database a statement
 * runs on the hub's own thread: one that deletes a million rows would stall everything.)
 */

/** The length of a downsampled bucket. */
export const ROLLUP_PERIOD_S = 300;

/** The start of the bucket holding `at`; buckets are aligned to the epoch. */
export function bucketStart(at: Date, periodS = ROLLUP_PERIOD_S): Date {
  return new Date(Math.floor(at.getTime() / 1000 / periodS) * periodS * 1000);
}

/**
 * Replace samples sent before `before` (rounded down to a bucket boundary, so no bucket is split)
 * by one row per agent and 5-minute bucket: the mean of CPU, memory, swap and load, and the last
 * sample's disks and network. At least `limit` raw rows are taken from the oldest, completed to
 * whole buckets. Returns the raw rows replaced.
 */
export async function downsampleMetrics(db: Db, before: Date, limit: number): Promise<number> {
  const cutoff = bucketStart(before);
  // A literal, not a parameter: GROUP BY must see the same expression as the SELECT list.
  const p = sql.lit(ROLLUP_PERIOD_S);
  const result = await sql<{ raw: string | number }>`
    WITH picked AS (
      SELECT DISTINCT agent_id, floor(extract(epoch FROM ts) / ${p}) AS bucket
      FROM (SELECT agent_id, ts FROM metric_samples WHERE period_s = 0 AND ts < ${cutoff} ORDER BY ts LIMIT ${limit}) oldest
    ), gone AS (
      DELETE FROM metric_samples m
      USING picked
      WHERE m.period_s = 0 AND m.agent_id = picked.agent_id
        AND m.ts >= to_timestamp(picked.bucket * ${p}) AND m.ts < to_timestamp((picked.bucket + 1) * ${p})
      RETURNING m.*
    ), rolled AS (
      INSERT INTO metric_samples (agent_id, ts, period_s, cpu_pct, mem_used, mem_total, swap_used, load1, load5, load15, disks, net)
      SELECT agent_id, to_timestamp(floor(extract(epoch FROM ts) / ${p}) * ${p}), ${p},
        avg(cpu_pct), round(avg(mem_used))::bigint, max(mem_total), round(avg(swap_used))::bigint,
        avg(load1), avg(load5), avg(load15),
        (array_agg(disks ORDER BY ts DESC))[1], (array_agg(net ORDER BY ts DESC))[1]
      FROM gone
      GROUP BY agent_id, floor(extract(epoch FROM ts) / ${p})
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) AS raw, (SELECT count(*) FROM rolled) AS rolled`.execute(db);
  return Number(result.rows[0]?.raw ?? 0);
}

/** Delete up to `limit` samples (as sent or downsampled) older than `before`. */
export async function deleteMetricsBefore(db: Db, before: Date, limit: number): Promise<number> {
  let n = 0;
  for (const kind of [sql`period_s = 0`, sql`period_s > 0`]) {
    const result = await sql`
      DELETE FROM metric_samples WHERE ctid IN (
        SELECT ctid FROM metric_samples WHERE ${kind} AND ts < ${before} ORDER BY ts LIMIT ${limit - n}
      )`.execute(db);
    n += Number(result.numAffectedRows ?? 0);
    if (n >= limit) break;
  }
  return n;
}

/**
 * Forget up to `limit` envelope ids received before `before`. Dedupe only has to outlast an
 * agent's outbox replay, so ids are kept for a retention window rather than for ever.
 */
export async function pruneReceivedEnvelopes(db: Db, before: Date, limit: number): Promise<number> {
  const result = await sql`
    DELETE FROM received_envelopes WHERE ctid IN (
      SELECT ctid FROM received_envelopes WHERE received_at < ${before} LIMIT ${limit}
    )`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/**
 * Rows kept for a window, not for ever, and what dates them: integration deliveries (their keys
 * dedupe resends), heartbeat pings (a check keeps its state without them), monitor results.
 */
const DATED = {
  integration_deliveries: 'received_at',
  heartbeat_pings: 'at',
  monitor_results: 'at',
} as const;

/** Forget up to `limit` rows of a dated table older than `before`. */
export async function pruneOlder(db: Db, table: keyof typeof DATED, before: Date, limit: number): Promise<number> {
  const result = await sql`
    DELETE FROM ${sql.table(table)} WHERE id IN (
      SELECT id FROM ${sql.table(table)} WHERE ${sql.ref(DATED[table])} < ${before} LIMIT ${limit}
    )`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** The length of a monitor's downsampled results: an hour. */
export const MONITOR_ROLLUP_S = 3600;

/**
 * Replace monitor results checked before `before` (rounded down to the hour) by one row per
 * monitor, location and hour: its checks and the ok ones (ok when all were), the mean and the
 * slowest response time, the last status, error and certificate expiry. At least `limit` raw rows
 * are taken from the oldest, completed to whole hours; a late raw row for an hour already rolled
 * up is added into that hour's row. Returns the raw rows replaced.
 */
export async function downsampleMonitorResults(db: Db, before: Date, limit: number): Promise<number> {
  const cutoff = bucketStart(before, MONITOR_ROLLUP_S);
  const p = sql.lit(MONITOR_ROLLUP_S);
  const result = await sql<{ raw: string | number }>`
    WITH picked AS (
      SELECT DISTINCT monitor_id, location, floor(extract(epoch FROM at) / ${p}) AS bucket
      FROM (SELECT monitor_id, location, at FROM monitor_results WHERE period_s = 0 AND at < ${cutoff} ORDER BY at LIMIT ${limit}) oldest
    ), gone AS (
      DELETE FROM monitor_results r
      USING picked
      WHERE r.period_s = 0 AND r.monitor_id = picked.monitor_id AND r.location = picked.location
        AND r.at >= to_timestamp(picked.bucket * ${p}) AND r.at < to_timestamp((picked.bucket + 1) * ${p})
      RETURNING r.*
    ), hours AS (
      SELECT monitor_id, location, floor(extract(epoch FROM at) / ${p}) AS bucket,
        count(*)::int AS checks, count(*) FILTER (WHERE ok)::int AS ok_checks,
        avg(response_ms) AS mean_ms, max(response_ms) AS max_ms,
        (array_agg(status ORDER BY at DESC))[1] AS status,
        (array_agg(error ORDER BY at DESC) FILTER (WHERE error IS NOT NULL))[1] AS error,
        (array_agg(cert_expires_at ORDER BY at DESC) FILTER (WHERE cert_expires_at IS NOT NULL))[1] AS cert_expires_at
      FROM gone
      GROUP BY monitor_id, location, floor(extract(epoch FROM at) / ${p})
    ), rolled AS (
      INSERT INTO monitor_results AS r (id, monitor_id, location, at, ok, status, response_ms, error, cert_expires_at, period_s, checks, ok_checks, max_response_ms)
      SELECT 'h:' || monitor_id || ':' || md5(location) || ':' || bucket::bigint, monitor_id, location, to_timestamp(bucket * ${p}),
        ok_checks = checks, status, mean_ms, error, cert_expires_at, ${p}, checks, ok_checks, max_ms
      FROM hours
      ON CONFLICT (id) DO UPDATE SET
        response_ms = (r.response_ms * r.checks + excluded.response_ms * excluded.checks) / (r.checks + excluded.checks),
        checks = r.checks + excluded.checks,
        ok_checks = r.ok_checks + excluded.ok_checks,
        ok = r.ok AND excluded.ok,
        max_response_ms = greatest(r.max_response_ms, excluded.max_response_ms)
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) AS raw, (SELECT count(*) FROM rolled) AS rolled`.execute(db);
  return Number(result.rows[0]?.raw ?? 0);
}
