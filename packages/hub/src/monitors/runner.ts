import { newId } from '@opspilot/protocol';
import { runCheck, type CheckResult, type CheckSpec } from '@opspilot/checks';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.ts';
import type { HubEvents } from '../events.ts';
import { applyExternalAlert, applyExternalResolve, type LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import { openExternal, type ExternalAlert } from '../storage/external-alerts.ts';
import { hubIntegration } from '../storage/integrations.ts';
import { claimDueMonitors, lockLocation, locationsOf, recordResult, setLocation, setMonitorStatus, type Monitor, type MonitorLocation } from '../storage/monitors.ts';
import type { MonitorState } from '../storage/tables.ts';
import { Worker } from '../worker.ts';

/** Checks the hub runs at once, at most (a slow target holds one slot, not the schedule). */
const CONCURRENCY = 64;
const DAY_MS = 86_400_000;

/** What a monitor asks of the probe. */
export function specOf(m: Monitor): CheckSpec {
  return { kind: m.kind, target: m.target, timeout_ms: m.timeout_ms, conditions: m.conditions, ...(m.options as Partial<CheckSpec>) };
}

/**
 * A location's state after one more result: down after `failure_threshold` failures in a row, up
 * after `success_threshold` successes in a row (a location never seen is up at its first success).
 */
export function nextLocationState(l: Pick<MonitorLocation, 'state' | 'failures' | 'successes'>, ok: boolean, m: Pick<Monitor, 'failure_threshold' | 'success_threshold'>): Pick<MonitorLocation, 'state' | 'failures' | 'successes'> {
  const failures = ok ? 0 : l.failures + 1;
  const successes = ok ? l.successes + 1 : 0;
  let state = l.state;
  if (!ok && failures >= m.failure_threshold) state = 'down';
  if (ok && (l.state === 'unknown' || successes >= m.success_threshold)) state = 'up';
  return { state, failures, successes };
}

/**
 * The monitor's state from its locations': down when at least `quorum` are down (default: a
 * majority of the locations it runs from), so one place's trouble is not an outage; unknown
 * while no location has a state; up otherwise.
 */
export function monitorState(states: readonly MonitorState[], quorum: number | null, locations: number): MonitorState {
  if (states.every((s) => s === 'unknown')) return 'unknown';
  // A quorum above the locations there are (an agent gone) asks for all of them, never the impossible.
  const need = Math.min(quorum ?? Math.floor(locations / 2) + 1, locations);
  return states.filter((s) => s === 'down').length >= need ? 'down' : 'up';
}

/**
 * Runs the monitors the hub runs, on their schedule (the next run of each is in the database, so
 * a restart loses nothing and with several hubs each run is taken once), and takes every result:
 * stored, the location's state moved, the monitor's state decided, and its incident opened or
 * resolved through the lifecycle; a certificate near its expiry opens a low incident of its own.
 */
export class MonitorRunner {
  readonly worker: Worker;
  readonly #running = new Set<string>();

  constructor(
    private readonly db: Db,
    private readonly opts: { clock: Clock; lifecycle: LifecycleOptions; events: HubEvents; pollMs: number; allowInternal: boolean },
    private readonly log: FastifyBaseLogger,
  ) {
    this.worker = new Worker({ name: 'monitors', pollMs: opts.pollMs, run: () => this.#runDue() }, log);
  }

  start = (): Promise<void> => this.worker.start();
  kick = (): void => this.worker.kick();
  stop = (): Promise<void> => this.worker.stop();
  /** Resolves once no check is running (tests). */
  idle = (): Promise<void> => this.worker.idle();

  async #runDue(): Promise<void> {
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

  /** One result from one location, taken in one transaction. */
  async take(m: Monitor, location: string, result: CheckResult, at: Date): Promise<void> {
    const changed: string[] = [];
    const opened: string[] = [];
    const note = (r: { incidentId: string; change: string } | string | undefined) => {
      if (!r) return;
      if (typeof r === 'string') return void changed.push(r);
      if (r.change !== 'unchanged') changed.push(r.incidentId);
      if (r.change === 'opened' || r.change === 'reopened') opened.push(r.incidentId);
    };
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
      const next = nextLocationState(before, result.ok, m);
      await setLocation(trx, {
        ...before,
        ...next,
        last_result_at: at,
        last_ok: result.ok,
        last_status: result.status ?? null,
        last_response_ms: result.response_ms,
        last_error: result.ok ? null : (result.error ?? result.failures?.join('; ') ?? 'failed').slice(0, 1000),
      });
      const locations = await locationsOf(trx, m.id);
      const state = monitorState(
        locations.map((l) => l.state),
        m.quorum,
        Math.max(1, locations.length),
      );
      const integration = await hubIntegration(trx, 'monitor', at);
      if (state !== m.status) {
        await setMonitorStatus(trx, m.id, state, at);
        if (state === 'down') note(await applyExternalAlert(trx, this.opts.lifecycle, integration, null, this.#down(m, locations), at, { monitor_id: m.id }));
        else if (m.status === 'down') note(await applyExternalResolve(trx, this.opts.lifecycle, integration, m.id, at, { monitor_id: m.id }));
      }
      if (result.cert_expires_at && m.cert_warn_days > 0) {
        const left = Date.parse(result.cert_expires_at) - at.getTime();
        const key = `cert:${m.id}`;
        if (left < m.cert_warn_days * DAY_MS) {
          const alert: ExternalAlert = {
            key,
            type: 'tls',
            status: 'firing',
            title: `${m.name}: the certificate expires in ${Math.max(0, Math.floor(left / DAY_MS))} days (${result.cert_expires_at.slice(0, 10)})`,
            severity: 'low',
            service: m.name,
            labels: { ...m.labels, monitor: m.name },
            occurrence: result.cert_expires_at,
          };
          note(await applyExternalAlert(trx, this.opts.lifecycle, integration, null, alert, at, { monitor_id: m.id }));
        } else if (await openExternal(trx, integration.id, key)) {
          note(await applyExternalResolve(trx, this.opts.lifecycle, integration, key, at, { monitor_id: m.id }));
        }
      }
    });
    if (changed.length > 0) this.opts.events.emit('incident.changed', { incidentIds: changed, opened });
  }

  #down(m: Monitor, locations: MonitorLocation[]): ExternalAlert {
    const failing = locations.filter((l) => l.state === 'down');
    const where = failing.map((l) => l.location).join(', ');
    const first = failing[0];
    const lines = failing.map(
      (l) => `${l.location}: ${l.failures} failures in a row; last ${l.last_status !== null ? `status ${l.last_status}, ` : ''}${l.last_response_ms !== null ? `${l.last_response_ms} ms, ` : ''}${l.last_error ?? 'failed'}`,
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
      context: { monitor_id: m.id, target: m.target, locations: failing.map((l) => ({ location: l.location, status: l.last_status, response_ms: l.last_response_ms, error: l.last_error })) },
    };
  }
}
