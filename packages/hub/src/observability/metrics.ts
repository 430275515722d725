import { readdir } from 'node:fs/promises';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { App } from '../http.ts';
import type { ExecBroker } from '../exec/broker.ts';
import type { AgentRegistry } from '../ingest/registry.ts';
import type { CoalescedKind, CoalescerView } from '../ingest/stream-route.ts';
import type { IngestWriter } from '../ingest/writer.ts';
import { HubError } from '../errors.ts';

/** prom-client defaults left out: each walks every handle or file of the process at every scrape. */
const SOCKET_WALKING_DEFAULTS = ['nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total', 'process_open_fds'];

/**
 * Prometheus metrics at `GET /metrics` (any valid token: a `read` token is what Prometheus
 * should hold): ingest throughput,
 * connected agents, pending execs, and the process's own CPU, memory and event-loop lag.
 * Each app has its own registry, so several hubs in one process (tests) do not collide.
 */
export async function metricsPlugin(
  app: App,
  hub: {
    writer: IngestWriter;
    registry: AgentRegistry;
    broker: ExecBroker;
    coalesced: ReadonlyMap<CoalescedKind, CoalescerView>;
    authenticate: (authorization: string | undefined) => Promise<boolean>;
  },
): Promise<void> {
  const { authenticate } = hub;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'opspilot_hub_' });
  // Default collectors that walk every socket at each scrape: at 10,000 agents they held the
  // event loop 50-70 ms per scrape (10,000 handles listed twice, 10,000 resources twice, and
  // /proc/self/fd read synchronously), and every exec or alert arriving meanwhile waited. How many
  // agents are connected is opspilot_agents_connected; open files are counted off the main thread.
  for (const name of SOCKET_WALKING_DEFAULTS) registry.removeSingleMetric(`opspilot_hub_${name}`);
  if (process.platform === 'linux') {
    new Gauge({
      name: 'opspilot_hub_process_open_fds',
      help: 'Number of open file descriptors (a hub holds one per agent connection).',
      registers: [registry],
      async collect() {
        try {
          // Listed by the thread pool; less the one readdir itself had open.
          this.set((await readdir('/proc/self/fd')).length - 1);
        } catch {
          // not readable here: left out
        }
      },
    });
  }
  new Counter({
    name: 'opspilot_ingest_frames_total',
    help: 'Agent frames stored (committed) by the ingest writer',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(hub.writer.stats.frames);
    },
  });
  new Counter({
    name: 'opspilot_ingest_batches_total',
    help: 'Bulk ingest statements committed (heartbeats, hellos, metric samples)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(hub.writer.stats.batches);
    },
  });
  new Counter({
    name: 'opspilot_ingest_event_batches_total',
    help: 'Event transactions committed (alerts, resolves, exec results)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(hub.writer.stats.eventBatches);
    },
  });
  new Counter({
    name: 'opspilot_ingest_failed_batches_total',
    help: 'Ingest batches given up after retries (their agents were asked to reconnect and resend)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(hub.writer.stats.failedBatches);
    },
  });
  new Gauge({
    name: 'opspilot_agents_connected',
    help: 'Agents with an open WebSocket on this hub',
    registers: [registry],
    collect() {
      this.set(hub.registry.size);
    },
  });
  new Gauge({
    name: 'opspilot_exec_waiting',
    help: 'Exec requests waiting for their result',
    registers: [registry],
    collect() {
      this.set(hub.broker.waiting);
    },
  });

  // Agents connecting and leaving: their token lookups, claims and releases go to the database
  // many at a time. Requests over statements is how many each carried (1 when quiet, hundreds
  // in a reconnect storm); waiting is what queues behind the statement in flight.
  const count = (metric: Counter<'kind'>, each: (c: CoalescerView) => number) => {
    metric.reset();
    for (const [kind, c] of hub.coalesced) metric.inc({ kind }, each(c));
  };
  new Counter({
    name: 'opspilot_coalesced_requests_total',
    help: 'Token lookups, claims and releases asked by agent connections (kind)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      count(this, (c) => c.stats.requests);
    },
  });
  new Counter({
    name: 'opspilot_coalesced_statements_total',
    help: 'Statements that answered them, each for one request or many (kind)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      count(this, (c) => c.stats.batches);
    },
  });
  new Counter({
    name: 'opspilot_coalesced_split_total',
    help: 'Statements that failed for a batch and were tried again in halves (kind)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      count(this, (c) => c.stats.fallbacks);
    },
  });
  new Gauge({
    name: 'opspilot_coalesced_waiting',
    help: 'Requests waiting for the statement in flight to return (kind)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, c] of hub.coalesced) this.set({ kind }, c.waiting);
    },
  });

  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    if (!(await authenticate(req.headers.authorization))) throw new HubError('HUB_UNAUTHORIZED', 'missing or invalid token (Authorization: Bearer <token>)');
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}
