import type { FastifyBaseLogger } from 'fastify';
import type { ExecRequest } from './storage/tables.ts';

/**
 * What happened inside the hub, for the parts that act on it. Each event is published after its
 * change is committed (the database already holds it: a subscriber that reads finds it), and every
 * subscriber runs on its own: one that throws is logged and costs the others nothing.
 *
 * Who publishes what, and who listens, is the hub's wiring in one table (app.ts subscribes):
 * | event | published by | heard by |
 * |---|---|---|
 * | incident.changed | ingest (alerts, resolves), the offline sweep, REST, Slack, remediation | analyzer (new analyses), Slack notifier (the message), remediation (opened ones) |
 * | analysis.requested | REST (analyse again) | analyzer |
 * | analysis.stored | analyzer | Slack notifier |
 * | exec.finished | ingest (exec results) | exec broker (REST calls, Slack clicks and rules waiting for the result) |
 * | notification.queued | remediation, REST (silence deleted), Slack (replies) | Slack notifier |
 * | monitor.results | ingest (agents' check results that moved a location's state) | monitor runner (decides the monitor's state) |
 * | monitors.changed | REST (a monitor added, changed or deleted) | monitor assignments (agents get their new set) |
 */
export interface HubEventMap {
  /** Incidents changed (opened, repeated, reopened, resolved, acknowledged, ignored, escalated). */
  'incident.changed': { incidentIds: string[]; opened: string[] };
  'analysis.requested': { incidentId: string };
  'analysis.stored': { incidentId: string };
  /** `announced`: the statement that stored them told the other hubs (exec_done) already. */
  'exec.finished': { execs: ExecRequest[]; announced?: boolean };
  /** Something was put in the Slack outbox. */
  'notification.queued': Record<string, never>;
  /** Agents' results stored: monitors whose location changed state, certificate expiries seen. */
  'monitor.results': { monitorIds: string[]; certificates: { monitorId: string; expiresAt: string; at: Date }[] };
  'monitors.changed': Record<string, never>;
}
export type HubEventName = keyof HubEventMap;
export const HUB_EVENT_NAMES = ['incident.changed', 'analysis.requested', 'analysis.stored', 'exec.finished', 'notification.queued', 'monitor.results', 'monitors.changed'] as const satisfies readonly HubEventName[];

type Listener<K extends HubEventName> = (event: HubEventMap[K]) => void | Promise<void>;

export class HubEvents {
  readonly #listeners = new Map<HubEventName, Listener<HubEventName>[]>();
  /** Set when other hubs share the database: what is published here is told to them (cluster.ts). */
  relay: (<K extends HubEventName>(name: K, event: HubEventMap[K]) => void) | null = null;

  constructor(private readonly log: Pick<FastifyBaseLogger, 'error'>) {}

  on<K extends HubEventName>(name: K, listener: Listener<K>): void {
    const list = this.#listeners.get(name) ?? [];
    list.push(listener as Listener<HubEventName>);
    this.#listeners.set(name, list);
  }

  /** Tell every listener here and every other hub; a listener's failure (thrown or rejected) is logged. */
  emit<K extends HubEventName>(name: K, event: HubEventMap[K]): void {
    this.deliver(name, event);
    this.relay?.(name, event);
  }

  /** Tell this hub's listeners, synchronously in order (an event from another hub arrives here). */
  deliver<K extends HubEventName>(name: K, event: HubEventMap[K]): void {
    for (const listener of this.#listeners.get(name) ?? []) {
      try {
        const result = listener(event);
        if (result) result.catch((err: unknown) => this.log.error({ err, event: name }, 'a hub event listener failed'));
      } catch (err) {
        this.log.error({ err, event: name }, 'a hub event listener failed');
      }
    }
  }
}
