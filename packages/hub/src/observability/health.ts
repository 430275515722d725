import { Type } from '@sinclair/typebox';
import type { App } from '../http.ts';
import { HubError } from '../errors.ts';
import type { AgentRegistry } from '../ingest/registry.ts';
import type { Cluster } from '../cluster.ts';
import { ping, type Db } from '../storage/database.ts';

/** `/healthz` (the process is up) and `/readyz` (the database answers, or did within 8 s): no token, for probes. */
export async function healthPlugin(app: App, { db, registry, cluster }: { db: Db; registry: AgentRegistry; cluster: Pick<Cluster, 'hubId' | 'isLeader' | 'databaseAnsweredWithin'> }): Promise<void> {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The process is up', security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'The database answers',
        security: [],
        response: {
          200: Type.Object({ status: Type.Literal('ready'), agents_online: Type.Integer(), hub_id: Type.String(), leader: Type.Boolean({ description: 'this hub runs the background work' }) }),
          503: Type.Ref('ErrorResponse'),
        },
      },
    },
    async () => {
      // The hub's own upkeep reaches the database every 5 s: a recent answer is enough, so a load
      // balancer's checks never queue behind a busy pool (a reconnect storm) and mark a working
      // hub down. Without one, ask now.
      if (!cluster.databaseAnsweredWithin(8000) && !(await ping(db))) throw new HubError('HUB_UNAVAILABLE', 'database is not reachable');
      return { status: 'ready' as const, agents_online: registry.size, hub_id: cluster.hubId, leader: cluster.isLeader };
    },
  );
}
