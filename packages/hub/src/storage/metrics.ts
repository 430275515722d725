import type { Db } from './database.ts';
import type { MetricSampleRow } from './tables.ts';

export async function querySamples(
  db: Db,
  agentId: string,
  range: { since: Date; until: Date; limit: number },
): Promise<MetricSampleRow[]> {
  return db
    .selectFrom('metric_samples')
    .selectAll()
    .where('agent_id', '=', agentId)
    .where('ts', '>=', range.since)
    .where('ts', '<=', range.until)
    .orderBy('ts')
    .limit(range.limit)
    .execute();
}
