import { newId } from '@opspilot/protocol';
import { monitorState, nextLocationState, runCheck, type CheckResult, type CheckSpec } from '@opspilot/checks';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.ts';
import type { HubEvents } from '../events.ts';
import { applyExternalAlert, applyExternalResolve, type LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import { openExternal, type ExternalAlert } from '../storage/external-alerts.ts';
import { hubIntegration } from '../storage/integrations.ts';
import {
  HUB_LOCATION,
  claimDueMonitors,
  dropLocationsExcept,
  expireQuietLocations,
  lockLocation,
  lockMonitor,
  locationsOf,
  monitorAgents,
  recordResult,
  monitorsToReconsider,
  runsOnHub,
  setLocation,
  setMonitorStatus,
  type Monitor,
  type MonitorLocation,
} from '../storage/monitors.ts';
import { recordEvent } from '../storage/timeline.ts';
import { Worker } from '../worker.ts';

/** Checks the hub runs at once, at most (a slow target holds one slot, not the schedule). */
const CONCURRENCY = 64;
const DAY_MS = 86_400_000;

/** How often agents' locations are looked at for silence, */
const SWEEP_MS = 10_000;
/** and every monitor run by agents for a state that disagrees with its locations'. */
const RECONCILE_MS = 60_000;

/** What a monitor asks of the probe. */
export function specOf(m: Monitor): CheckSpec {
  return { kind: m.kind, target: m.target, timeout_ms: m.timeout_ms, conditions: m.conditions, ...(m.options as Partial<CheckSpec>) };
}

/**
 * Owns monitors' states and incidents. Runs the monitors the hub runs, on their schedule (the next
 * run of each is in the database, so a restart loses nothing and with several hubs each run is
 * taken once), and takes every result: stored, the location's state moved, the monitor's state
 * decided from its locations', and its incident opened or resolved through the lifecycle; a
 * certificate near its expiry opens a low incident of its own. Agents' results are stored by
 * ingest; their monitors are decided here once committed (`decide`), and every 10 s the
 * locations of agents gone quiet turn unknown.
 */
export class MonitorRunner {
  readonly worker: Worker;
  readonly #running = new Set<string>();

  constructor(
    private readonly db: Db,
    private readonly opts: { clock: Clock; lifecycle: LifecycleOptions; events: HubEvents; pollMs: number; allowInternal: boolean; offlineAfterMs: number },
    private readonly log: FastifyBaseLogger,
  ) {
    this.worker = new Worker({ name: 'monitors', pollMs: opts.pollMs, run: () => this.#runDue() }, log);
  }

  start = (): Promise<void> => this.worker.start();
  kick = (): void => this.worker.kick();
  stop = (): Promise<void> => this.worker.stop();
  /** Resolves once no check is running (tests). */
  idle = (): Promise<void> => this.worker.idle();

  #sweptAt = 0;
  #reconciledAt = 0;

  async #runDue(): Promise<void> {
    if (this.opts.clock.now().getTime() - this.#sweptAt >= SWEEP_MS) await this.sweep();
    const room = CONCURRENCY - this.#running.size;
    if (room <= 0) return;
    const due = await this.db.transaction().execute((trx) => claimDueMonitors(trx, this.opts.clock.now(), room));
    for (const m of due) {
      if (this.#running.has(m.id)) continue; // its last run is still going (a long timeout)
      this.#running.add(m.id);
      void this.worker.track(
        runCheck(specOf(m), { guard: !this.opts.allowInternal })
          .then((result) => this.take(m, 'hub', result, this.opts.clock.now()))
          .finally(() => {
            this.#running.delete(m.id);
            this.kick(); // a slot is free: more may be due
          }),
      );
    }
  }

  /** One result from one location, taken in one transaction with the decision it leads to. */
  async take(m: Monitor, location: string, result: CheckResult, at: Date): Promise<void> {
    const changes = new Changes();
    await this.db.transaction().execute(async (trx) => {
      await recordResult(trx, {
        id: newId(),
        monitor_id: m.id,
        location,
        at,
        ok: result.ok,
        status: result.status ?? null,
        response_ms: result.response_ms,
        error: result.error ?? (result.failures ? result.failures.join('; ').slice(0, 1000) : null),
        cert_expires_at: result.cert_expires_at ? new Date(result.cert_expires_at) : null,
      });
      const before = await lockLocation(trx, m.id, location);
      await setLocation(trx, {
        ...before,
        ...nextLocationState(before, result.ok, m),
        last_result_at: at,
        last_ok: result.ok,
        last_status: result.status ?? null,
        last_response_ms: result.response_ms,
        last_error: result.ok ? null : (result.error ?? result.failures?.join('; ') ?? 'failed').slice(0, 1000),
      });
      await this.#decide(trx, m.id, at, changes);
      if (result.cert_expires_at && m.cert_warn_days > 0) await this.#certificate(trx, m, result.cert_expires_at, at, changes);
    });
    changes.publish(this.opts.events);
  }

  /**
   * Decide these monitors' states from their locations' (after agents' results were stored, or
   * their assignment changed), each in a transaction of its own. One that fails is logged; the
   * sweep decides it again.
   */
  async decide(monitorIds: readonly string[], certificates: readonly { monitorId: string; expiresAt: string; at: Date }[] = []): Promise<void> {
    const changes = new Changes();
    for (const id of new Set(monitorIds)) {
      try {
        await this.db.transaction().execute((trx) => this.#decide(trx, id, this.opts.clock.now(), changes));
      } catch (err) {
        this.log.warn({ err, monitorId: id }, 'could not decide a monitor; the sweep retries');
      }
    }
    // The certificate agents saw: the latest per monitor, warned about (or resolved when renewed).
    const latest = new Map<string, { expiresAt: string; at: Date }>();
    for (const c of certificates) if (!latest.has(c.monitorId) || latest.get(c.monitorId)!.at < c.at) latest.set(c.monitorId, c);
    for (const [id, c] of latest) {
      try {
        await this.db.transaction().execute(async (trx) => {
          const m = await lockMonitor(trx, id);
          if (m?.enabled) await this.#certificate(trx, m, c.expiresAt, this.opts.clock.now(), changes);
        });
      } catch (err) {
        this.log.warn({ err, monitorId: id }, "could not decide on a monitor's certificate; its next result does");
      }
    }
    changes.publish(this.opts.events);
  }

  /**
   * Agents' locations gone quiet turn unknown and their monitors are decided again; once a minute
   * too, every monitor run by agents whose stored state is not what its locations say (a decision
   * lost in a crash, an agent deleted or enrolled with matching labels).
   */
  async sweep(now = this.opts.clock.now()): Promise<void> {
    this.#sweptAt = now.getTime();
    const ids = await expireQuietLocations(this.db, now, this.opts.offlineAfterMs);
    if (now.getTime() - this.#reconciledAt >= RECONCILE_MS) {
      this.#reconciledAt = now.getTime();
      ids.push(...(await monitorsToReconsider(this.db)));
    }
    await this.decide(ids);
  }

  /** The monitor's state from its locations', and its incident opened or resolved when it changes. */
  async #decide(trx: Db, monitorId: string, at: Date, changes: Changes): Promise<void> {
    const m = await lockMonitor(trx, monitorId);
    if (!m) return;
    const agents = await monitorAgents(trx, m.run_on);
    const where = [...(runsOnHub(m.run_on) ? [HUB_LOCATION] : []), ...agents.map((a) => a.id)];
    await dropLocationsExcept(trx, m.id, where);
    const rows = new Map((await locationsOf(trx, m.id)).map((l) => [l.location, l]));
    const state = m.enabled ? monitorState(where.map((w) => rows.get(w)?.state ?? 'unknown'), m.quorum) : 'unknown';
    if (state === m.status) return;
    await setMonitorStatus(trx, m.id, state, at);
    await recordEvent(trx, { incidentId: null, at, actor: 'hub', kind: 'monitor_state', detail: { monitor_id: m.id, name: m.name, from: m.status, to: state } });
    const integration = await hubIntegration(trx, 'monitor', at);
    if (state === 'down') {
      const names = new Map([[HUB_LOCATION, HUB_LOCATION], ...agents.map((a) => [a.id, a.name] as [string, string])]);
      changes.note(await applyExternalAlert(trx, this.opts.lifecycle, integration, null, this.#down(m, [...rows.values()], names), at, { monitor_id: m.id }));
    } else if (state === 'up' && m.status === 'down') {
      // Unknown (every agent offline) leaves a down monitor's incident open: nobody saw it come back.
      changes.note(await applyExternalResolve(trx, this.opts.lifecycle, integration, m.id, at, { monitor_id: m.id }));
    }
  }

  /** A certificate under its warning threshold opens a low incident; renewed, it resolves. */
  async #certificate(trx: Db, m: Monitor, expires: string, at: Date, changes: Changes): Promise<void> {
    const integration = await hubIntegration(trx, 'monitor', at);
    const left = Date.parse(expires) - at.getTime();
    const key = `cert:${m.id}`;
    if (left < m.cert_warn_days * DAY_MS) {
      const alert: ExternalAlert = {
        key,
        type: 'tls',
        status: 'firing',
        title: `${m.name}: the certificate expires in ${Math.max(0, Math.floor(left / DAY_MS))} days (${expires.slice(0, 10)})`,
        severity: 'low',
        service: m.name,
        labels: { ...m.labels, monitor: m.name },
        occurrence: expires,
      };
      changes.note(await applyExternalAlert(trx, this.opts.lifecycle, integration, null, alert, at, { monitor_id: m.id }));
    } else if (await openExternal(trx, integration.id, key)) {
      changes.note(await applyExternalResolve(trx, this.opts.lifecycle, integration, key, at, { monitor_id: m.id }));
    }
  }

  #down(m: Monitor, locations: MonitorLocation[], names: Map<string, string>): ExternalAlert {
    const failing = locations.filter((l) => l.state === 'down' && names.has(l.location));
    const name = (l: MonitorLocation) => names.get(l.location)!;
    const where = failing.map(name).join(', ');
    const first = failing[0];
    const lines = failing.map(
      (l) => `${name(l)}: ${l.failures} failures in a row; last ${l.last_status !== null ? `status ${l.last_status}, ` : ''}${l.last_response_ms !== null ? `${l.last_response_ms} ms, ` : ''}${l.last_error ?? 'failed'}`,
    );
    return {
      key: m.id,
      type: m.kind,
      status: 'firing',
      title: `${m.name}: down from ${where} (${(first?.last_error ?? 'failed').slice(0, 200)})`,
      details: [`${m.kind} ${m.target}`, ...lines].join('\n'),
      severity: 'high',
      service: m.name,
      labels: { ...m.labels, monitor: m.name },
      context: { monitor_id: m.id, target: m.target, locations: failing.map((l) => ({ location: l.location, name: name(l), status: l.last_status, response_ms: l.last_response_ms, error: l.last_error })) },
    };
  }
}

/** Incidents a transaction changed, published once it has committed. */
class Changes {
  readonly changed: string[] = [];
  readonly opened: string[] = [];

  note(r: { incidentId: string; change: string } | string | undefined): void {
    if (!r) return;
    if (typeof r === 'string') return void this.changed.push(r);
    if (r.change !== 'unchanged') this.changed.push(r.incidentId);
    if (r.change === 'opened' || r.change === 'reopened') this.opened.push(r.incidentId);
  }

  publish(events: HubEvents): void {
    if (this.changed.length > 0) events.emit('incident.changed', { incidentIds: [...this.changed], opened: [...this.opened] });
    this.changed.length = 0;
    this.opened.length = 0;
  }
}
