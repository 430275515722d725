import { newId } from '@opspilot/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.ts';
import type { HubEvents } from '../events.ts';
import { applyExternalAlert, applyExternalResolve, type LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Redactor } from '../incidents/redact.ts';
import type { Db } from '../storage/database.ts';
import { agentOnHost, type ExternalAlert } from '../storage/external-alerts.ts';
import { claimDown, heartbeatIntegration, lockCheckByKey, markLate, recordPing, setCheck, type HeartbeatCheck } from '../storage/heartbeats.ts';
import type { PingKind } from '../storage/tables.ts';
import { Worker } from '../worker.ts';
import { nextDue } from './schedule.ts';

/** What is kept of a ping's body: a run's output, as Healthchecks.io keeps it. */
export const PING_BODY_BYTES = 100_000;
const CLAIM = 100;

export interface Ping {
  kind: PingKind;
  exitStatus?: number;
  rid?: string;
  body?: Buffer;
}

/**
 * Heartbeat checks for cron jobs and timers, as Healthchecks.io keeps them: a success ping puts a
 * check up and sets when the next is due (a period later, or the cron expression's next time in
 * its time zone); past due it is late; past due plus the grace time (or a run that started and
 * did not end within the grace) it is down and an incident opens; a failure (`/fail`, a nonzero
 * exit status) opens one at once; the next success resolves it. When each check turns late and
 * down is in the database, and the sweep reads it: restarts lose nothing, and with several hubs
 * each check is taken by one.
 */
export class HeartbeatMonitor {
  readonly worker: Worker;

  constructor(
    private readonly db: Db,
    private readonly opts: { clock: Clock; lifecycle: LifecycleOptions; events: HubEvents; redactor: Redactor; pollMs: number },
    private readonly log: FastifyBaseLogger,
  ) {
    this.worker = new Worker({ name: 'heartbeats', pollMs: opts.pollMs, run: () => this.sweep().then(() => undefined) }, log);
  }

  start = (): Promise<void> => this.worker.start();
  kick = (): void => this.worker.kick();
  stop = (): Promise<void> => this.worker.stop();

  /** A ping to `/ping/<key>…`: false when no check has that key. */
  async ping(key: string, p: Ping): Promise<boolean> {
    const at = this.opts.clock.now();
    const changed: string[] = [];
    const opened: string[] = [];
    const found = await this.db.transaction().execute(async (trx) => {
      const check = await lockCheckByKey(trx, key);
      if (!check) return false;
      const pingId = newId();
      const ended = p.kind === 'success' || p.kind === 'fail';
      const sameRun = check.started_at !== null && (p.rid === undefined || check.started_rid === null || check.started_rid === p.rid);
      const body = p.body && p.body.length > 0 ? this.opts.redactor.redact(p.body.subarray(0, PING_BODY_BYTES).toString('utf8').replace(/\u0000/g, '\ufffd')).text : null;
      await recordPing(trx, {
        id: pingId,
        check_id: check.id,
        at,
        kind: p.kind,
        exit_status: p.exitStatus ?? null,
        rid: p.rid ?? null,
        duration_ms: ended && sameRun ? at.getTime() - check.started_at!.getTime() : null,
        body,
        body_bytes: p.body?.length ?? 0,
      });
      if (p.kind === 'log') {
        await setCheck(trx, check.id, { last_ping_at: at });
        return true;
      }
      if (p.kind === 'start') {
        const down = new Date(at.getTime() + check.grace_s * 1000);
        await setCheck(trx, check.id, {
          last_ping_at: at,
          started_at: at,
          started_rid: p.rid ?? null,
          // A start does not make a down check up: only a success does.
          status: check.status === 'down' ? 'down' : 'started',
          down_at: check.status === 'down' ? null : check.down_at && check.down_at < down ? check.down_at : down,
        });
        return true;
      }
      const due = nextDue(check, at);
      const integration = await heartbeatIntegration(trx, at);
      if (p.kind === 'success') {
        await setCheck(trx, check.id, { status: 'up', last_ping_at: at, last_success_at: at, started_at: null, started_rid: null, due_at: due, down_at: new Date(due.getTime() + check.grace_s * 1000) });
        const resolved = await applyExternalResolve(trx, this.opts.lifecycle, integration, check.id, at, { ping_id: pingId });
        if (resolved) changed.push(resolved);
        return true;
      }
      // A failed run: down now, until a success.
      await setCheck(trx, check.id, { status: 'down', last_ping_at: at, started_at: null, started_rid: null, due_at: due, down_at: null });
      const why = p.exitStatus !== undefined ? `failed (exit status ${p.exitStatus})` : 'failed';
      const alert = await this.#alert(trx, check, `${check.name}: run ${why}`, `fail:${pingId}`, body ?? undefined);
      const r = await applyExternalAlert(trx, this.opts.lifecycle, integration, alert.agentId, alert.alert, at, { ping_id: pingId });
      if (r.change !== 'unchanged') changed.push(r.incidentId);
      if (r.change === 'opened' || r.change === 'reopened') opened.push(r.incidentId);
      return true;
    });
    if (changed.length > 0) this.opts.events.emit('incident.changed', { incidentIds: changed, opened });
    this.kick(); // its next due time may be sooner than the sweep's next look
    return found;
  }

  /** Turn overdue checks late, and those past their grace down (each with its incident). */
  async sweep(now = this.opts.clock.now()): Promise<{ late: number; down: number }> {
    const late = await markLate(this.db, now);
    let down = 0;
    for (;;) {
      const changed: string[] = [];
      const opened: string[] = [];
      const n = await this.db.transaction().execute(async (trx) => {
        const checks = await claimDown(trx, now, CLAIM);
        if (checks.length === 0) return 0;
        const integration = await heartbeatIntegration(trx, now);
        for (const check of checks) {
          await setCheck(trx, check.id, { status: 'down', down_at: null });
          const startedLong = check.started_at !== null && check.started_at.getTime() + check.grace_s * 1000 <= now.getTime();
          const title = startedLong
            ? `${check.name}: started at ${check.started_at!.toISOString()} and did not finish within ${duration(check.grace_s)}`
            : `${check.name}: no ping since ${check.last_success_at?.toISOString() ?? 'it was set up'} (expected by ${check.due_at?.toISOString() ?? '?'}, grace ${duration(check.grace_s)})`;
          const alert = await this.#alert(trx, check, title, `missed:${check.due_at?.toISOString() ?? check.started_at?.toISOString()}`, undefined);
          const r = await applyExternalAlert(trx, this.opts.lifecycle, integration, alert.agentId, alert.alert, now);
          if (r.change !== 'unchanged') changed.push(r.incidentId);
          if (r.change === 'opened' || r.change === 'reopened') opened.push(r.incidentId);
        }
        return checks.length;
      });
      if (changed.length > 0) this.opts.events.emit('incident.changed', { incidentIds: changed, opened });
      down += n;
      if (n < CLAIM) break;
    }
    if (late + down > 0) this.log.info({ late, down }, 'heartbeat checks overdue');
    return { late, down };
  }

  async #alert(db: Db, check: HeartbeatCheck, title: string, occurrence: string, output: string | undefined): Promise<{ alert: ExternalAlert; agentId: string | null }> {
    const alert: ExternalAlert = {
      key: check.id,
      status: 'firing',
      title,
      severity: 'high',
      labels: { ...check.labels, check: check.name },
      occurrence,
      context: { check_id: check.id, schedule: check.cron ? `${check.cron} (${check.tz})` : `every ${duration(check.period_s!)}`, grace: duration(check.grace_s) },
    };
    if (output) alert.details = output;
    alert.service = check.service ?? check.name;
    if (check.host) alert.host = check.host;
    return { alert, agentId: check.host ? await agentOnHost(db, check.host) : null };
  }
}

function duration(s: number): string {
  if (s % 86_400 === 0) return `${s / 86_400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}
