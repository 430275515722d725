import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.ts';
import { newId } from '@opspilot/protocol';
import type { ExecBroker } from '../exec/broker.ts';
import { HubError } from '../errors.ts';
import type { AgentRegistry } from '../ingest/registry.ts';
import { unitOf } from '../exec/actions.ts';
import { resolveByRule, type LifecycleOptions } from '../incidents/lifecycle.ts';
import type { Db } from '../storage/database.ts';
import { getAgent } from '../storage/agents.ts';
import { getIncident } from '../storage/incidents.ts';
import { enqueueThread } from '../storage/notifications.ts';
import {
  attemptExec,
  createAttempt,
  dequeueRemediation,
  dueVerifications,
  failuresSince,
  getAttempt,
  holdOn,
  interruptedAttempts,
  lastRunOnFingerprint,
  listRules,
  moveAttempt,
  placeHold,
  queuedRemediations,
  runsOnAgentSince,
  suspendRule,
  type QueuedRemediation,
} from '../storage/rules.ts';
import { getExecRequest } from '../storage/exec-requests.ts';
import { getAutonomy } from '../storage/settings.ts';
import { silencing } from './match.ts';
import type { Incident, RemediationAttempt, RemediationRule } from '../storage/tables.ts';
import { recordEvent } from '../storage/timeline.ts';
import { matches, type MatchSubject } from './match.ts';
import { fillParams } from './params.ts';
import { escalate } from '../incidents/lifecycle.ts';
import type { HubEvents } from '../events.ts';
import { Worker } from '../worker.ts';

export interface EngineOptions {
  lifecycle: LifecycleOptions;
  execTimeoutMs: number;
  /** How often verifications that came due, and openings waiting for their agent, are checked. */
  sweepMs: number;
  /** An agent not heard from for this long counts offline (3 heartbeat intervals): until then, an opening waits for it. */
  offlineAfterMs: number;
  /** Told when a thread reply or an approval question is queued for Slack. */
  events: HubEvents;
  clock: Clock;
  /** Approve mode: ask in Slack (queues the approval message); false when Slack is not set up. */
  askApproval(db: Db, attempt: RemediationAttempt): Promise<boolean>;
}

/** Failures of one rule within an hour that open its circuit breaker. */
export const CIRCUIT_FAILURES = 3;
const SEVERITY_UP: Record<string, string> = { low: 'medium', medium: 'high', high: 'critical', critical: 'critical' };

/** Thrown to roll back an attempt whose opening was no longer queued. */
const NOT_QUEUED = Symbol('not queued');

/**
 * Remediation: when an incident opens or reopens, the first enabled rule that matches and passes
 * every gate (kill switch, agent autonomy, a hold after a failed fix, silences, cooldown, hourly
 * cap, circuit breaker) acts: `auto` runs its action, `approve` asks in Slack. After a run the
 * incident must resolve within `verify_s`; otherwise, or when the action fails, the incident is
 * escalated and its fingerprint held until a person acts. Every decision is on the audit trail.
 */
export class RemediationEngine {
  readonly worker: Worker;

  constructor(
    private readonly db: Db,
    private readonly broker: ExecBroker,
    private readonly registry: AgentRegistry,
    private readonly opts: EngineOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.worker = new Worker(
      {
        name: 'remediation',
        pollMs: opts.sweepMs,
        prepare: () => this.#settleInterrupted(),
        run: async () => {
          await this.#drainQueue();
          await this.sweep();
        },
      },
      log,
    );
  }

  start = (): Promise<void> => this.worker.start();

  /**
   * Attempts a stopped hub left running: a stored success goes on to verification (the sweep
   * checks it); anything else is treated as failed, which escalates: an action nobody can vouch
   * for is not assumed to have worked.
   */
  async #settleInterrupted(): Promise<void> {
    for (const attempt of await interruptedAttempts(this.db)) {
      const exec = await attemptExec(this.db, attempt);
      if (exec?.status === 'succeeded') {
        const rule = (await listRules(this.db)).find((r) => r.id === attempt.rule_id);
        const verifyBy = new Date(attempt.started_at!.getTime() + (rule?.verify_s ?? 0) * 1000);
        await moveAttempt(this.db, attempt.id, ['running'], { status: 'verifying', exec_id: exec.id, verify_by: verifyBy });
        continue;
      }
      await this.#failed(attempt, 'interrupted by a hub restart', exec ? `exec ${exec.id} ${exec.status}` : 'the exec was not sent');
    }
  }

  /** Call after `broker.shutdown()`, so no exec wait holds this up. */
  stop = (): Promise<void> => this.worker.stop();

  /**
   * Incidents were opened or reopened (on any hub): the queue they were written to in the same
   * transaction has work. Ignored on a hub that is not the leader; the leader also looks every
   * `sweepMs`, and when it takes over, so an opening whose news was lost is still decided.
   */
  kick = (): void => this.worker.kick();

  /** The queue, oldest first, one incident at a time; what waits for its agent is passed over until the next run. */
  async #drainQueue(): Promise<void> {
    let after: QueuedRemediation | undefined;
    for (;;) {
      const due = await queuedRemediations(this.db, 20, after);
      if (due.length === 0) return;
      for (const q of due) {
        if (this.worker.stopped) return; // left queued: the next leader decides it
        try {
          await this.#evaluate(q);
        } catch (err) {
          // Left queued, tried again at the next run (a rule's attempt is made once per opening: dequeued with it).
          this.log.error({ err, incidentId: q.incident_id }, 'remediation failed');
        }
      }
      after = due.at(-1);
    }
  }

  /** Verifications that came due: resolved means fixed; otherwise a restarted unit may be active again. */
  async sweep(now = this.opts.clock.now()): Promise<void> {
    if (this.worker.stopped) return;
    for (const attempt of await dueVerifications(this.db, now)) await this.#verify(attempt);
  }

  /**
   * Consult the rules on one opening of an incident. An attempt is recorded in one transaction
   * with taking the opening off the queue, so it is made at most once per opening; a run that
   * dies before deciding leaves it queued, and the next run decides again (a skipped rule may then
   * be on the timeline twice).
   */
  async #evaluate(q: QueuedRemediation): Promise<void> {
    const rules = (await listRules(this.db)).filter((r) => r.enabled);
    const incident = rules.length > 0 ? await incidentOnHost(this.db, q.incident_id) : undefined;
    // An integration's alert acts only on the host it is linked to.
    const agent = incident && incident.status !== 'resolved' ? await getAgent(this.db, incident.agent_id) : undefined;
    if (!incident || !agent) {
      await dequeueRemediation(this.db, q);
      return;
    }
    const subject: MatchSubject = { ...incident, labels: { ...(agent.labels ?? {}), ...incident.labels } };
    const matching = rules.filter((rule) => matches(rule.match, subject));
    if (matching.length === 0) {
      await dequeueRemediation(this.db, q);
      return;
    }
    // Connected here or to another hub that lives. If not, and not yet past its offline deadline,
    // it is most likely reconnecting (its hub died, say): the opening waits for it.
    const reachable = await this.broker.reachable(agent.id);
    const at = this.opts.clock.now();
    if (!reachable && agent.last_seen_at && at.getTime() - agent.last_seen_at.getTime() < this.opts.offlineAfterMs) return;
    let fired: RemediationRule | null = null;
    for (const rule of matching) {
      const reason = fired ? `rule ${fired.name} acted first` : await this.#gate(rule, incident, subject, agent.autonomy, reachable, at);
      if (reason) {
        await this.#audit(incident, at, 'rule_skipped', rule, { reason });
        continue;
      }
      const filled = fillParams(rule.action.command, rule.action.params, {
        source: incident.source,
        type: incident.type,
        agent_id: incident.agent_id,
        hostname: agent.hostname,
        incident_id: incident.id,
        severity: incident.severity,
        category: incident.category,
        unit: unitOf(incident),
        service: incident.service,
      });
      if ('problem' in filled) {
        await this.#audit(incident, at, 'rule_skipped', rule, { reason: `params: ${filled.problem}` });
        continue;
      }
      const catalogue = this.registry.get(agent.id)?.actions ?? agent.actions;
      if (catalogue && !catalogue.includes(rule.action.command)) {
        await this.#audit(incident, at, 'rule_skipped', rule, { reason: `the agent does not offer ${rule.action.command}` });
        continue;
      }
      fired = rule;
      const attempt: RemediationAttempt = {
        id: newId(),
        rule_id: rule.id,
        rule_name: rule.name,
        incident_id: incident.id,
        agent_id: incident.agent_id,
        type: incident.type,
        source: incident.source,
        command: rule.action.command,
        params: filled.params,
        status: rule.mode === 'auto' ? 'running' : 'awaiting_approval',
        exec_id: null,
        decided_by: null,
        created_at: at,
        started_at: null,
        verify_by: null,
        finished_at: null,
        outcome: null,
      };
      const taken = await this.db
        .transaction()
        .execute(async (trx) => {
          // Another run (a leader that took over) or a newer opening came first: record nothing.
          if (!(await dequeueRemediation(trx, q))) throw NOT_QUEUED;
          await createAttempt(trx, attempt);
          await this.#audit(incident, at, 'rule_fired', rule, { attempt_id: attempt.id, mode: rule.mode, command: attempt.command, params: attempt.params }, trx);
          if (rule.mode === 'approve') {
            const asked = await this.opts.askApproval(trx, attempt);
            await this.#audit(incident, at, 'approval_requested', rule, { attempt_id: attempt.id, via: asked ? 'slack' : 'rest' }, trx);
          }
          return true;
        })
        .catch((err: unknown) => {
          if (err === NOT_QUEUED) return false;
          throw err;
        });
      if (!taken) return;
      if (rule.mode === 'approve') this.opts.events.emit('notification.queued', {});
      else void this.worker.track(this.#execute(attempt, rule));
    }
    if (!fired) await dequeueRemediation(this.db, q);
  }

  /** Why this rule may not act on this incident now, or null. */
  async #gate(rule: RemediationRule, incident: OnHost, subject: MatchSubject, agentAutonomy: boolean, reachable: boolean, at: Date): Promise<string | null> {
    if (rule.suspended_at) return `circuit open: ${rule.suspended_reason ?? 'suspended'}`;
    if (!(await getAutonomy(this.db)).enabled) return 'kill switch: autonomy is off';
    if (!agentAutonomy) return "the agent's autonomy is off";
    const hold = await holdOn(this.db, incident);
    if (hold) return `held since an automatic fix failed (${hold.reason}); a person must act first`;
    const silence = await silencing(this.db, subject, at);
    if (silence) return `silenced until ${silence.until.toISOString()} (${silence.silence.reason})`;
    const last = await lastRunOnFingerprint(this.db, rule.id, incident);
    if (last && at.getTime() - last.getTime() < rule.cooldown_s * 1000) return `cooldown: last ran ${Math.round((at.getTime() - last.getTime()) / 1000)} s ago (cooldown_s ${rule.cooldown_s})`;
    const runs = await runsOnAgentSince(this.db, rule.id, incident.agent_id, new Date(at.getTime() - 3_600_000));
    if (runs >= rule.max_per_hour) return `rate limit: ${runs} runs on this agent in the last hour (max_per_hour ${rule.max_per_hour})`;
    if (!reachable) return 'the agent is offline';
    return null;
  }

  /** Approve mode: a person said yes (Slack or REST). Gates that stop everything still apply. */
  async approve(attemptId: string, by: string): Promise<RemediationAttempt | 'not_waiting' | 'blocked'> {
    const attempt = await getAttempt(this.db, attemptId);
    if (!attempt || attempt.status !== 'awaiting_approval') return 'not_waiting';
    const incident = await incidentOnHost(this.db, attempt.incident_id);
    const rule = (await listRules(this.db)).find((r) => r.id === attempt.rule_id);
    const at = this.opts.clock.now();
    if (!incident || !rule || incident.status === 'resolved' || !(await getAutonomy(this.db)).enabled || rule.suspended_at) {
      await moveAttempt(this.db, attemptId, ['awaiting_approval'], { status: 'rejected', decided_by: by, finished_at: at, outcome: 'no longer allowed to run' });
      if (incident) await this.#audit(incident, at, 'rejected', rule ?? null, { attempt_id: attemptId, reason: 'no longer allowed to run (resolved, rule gone or suspended, or autonomy off)' }, this.db, by);
      return 'blocked';
    }
    const moved = await moveAttempt(this.db, attemptId, ['awaiting_approval'], { status: 'running', decided_by: by });
    if (!moved) return 'not_waiting';
    await this.#audit(incident, at, 'approved', rule, { attempt_id: attemptId }, this.db, by);
    void this.worker.track(this.#execute(moved, rule));
    return moved;
  }

  async reject(attemptId: string, by: string): Promise<RemediationAttempt | 'not_waiting'> {
    const at = this.opts.clock.now();
    const moved = await moveAttempt(this.db, attemptId, ['awaiting_approval'], { status: 'rejected', decided_by: by, finished_at: at, outcome: 'rejected' });
    if (!moved) return 'not_waiting';
    const incident = await incidentOnHost(this.db, moved.incident_id);
    if (incident) await this.#audit(incident, at, 'rejected', { id: moved.rule_id, name: moved.rule_name }, { attempt_id: attemptId }, this.db, by);
    return moved;
  }

  async #execute(attempt: RemediationAttempt, rule: RemediationRule): Promise<void> {
    const started = this.opts.clock.now();
    await moveAttempt(this.db, attempt.id, ['running'], { started_at: started });
    let outcome: string;
    try {
      const result = await this.broker.run({
        agentId: attempt.agent_id,
        command: attempt.command,
        params: attempt.params,
        timeoutMs: this.opts.execTimeoutMs,
        requestedBy: `rule:${rule.name}`,
        origin: 'rule',
        incidentId: attempt.incident_id,
      });
      if (result.status === 'succeeded') {
        const verifyBy = new Date(this.opts.clock.now().getTime() + rule.verify_s * 1000);
        const moved = await moveAttempt(this.db, attempt.id, ['running'], { status: 'verifying', exec_id: result.id, verify_by: verifyBy });
        if (!moved) return;
        const timer = setTimeout(() => void this.worker.track(getAttempt(this.db, attempt.id).then((a) => a && this.#verify(a))), rule.verify_s * 1000);
        timer.unref();
        return;
      }
      outcome = `${result.command} ${result.status}${result.exit_code !== null ? ` (exit ${result.exit_code})` : ''}${result.error_code ? `: ${result.error_code}` : ''}`;
      await moveAttempt(this.db, attempt.id, ['running'], { exec_id: result.id });
    } catch (err) {
      // Stopping: the attempt stays `running`; the next start settles it.
      if (this.worker.stopped) return;
      outcome = err instanceof HubError ? `${err.code}: ${err.message}` : `error: ${(err as Error).message}`;
    }
    await this.#failed(attempt, 'the action failed', outcome);
  }

  /**
   * The deadline came. The fix held when the incident did not fail again after the action, and
   * it is resolved now, or (after a restart or start) the unit is active now. A resolve that was
   * reopened since, or a failure recorded after the action, is not a fix.
   */
  async #verify(attempt: RemediationAttempt): Promise<void> {
    if (attempt.status !== 'verifying') return;
    const incident = await incidentOnHost(this.db, attempt.incident_id);
    if (!incident) {
      await this.#verified(attempt, 'the incident was deleted');
      return;
    }
    const exec = attempt.exec_id ? await getExecRequest(this.db, attempt.exec_id) : undefined;
    const actedAt = exec?.completed_at ?? attempt.started_at ?? attempt.created_at;
    if (incident.last_seen_at.getTime() > actedAt.getTime()) {
      const after = Math.max(0, Math.round((incident.last_seen_at.getTime() - actedAt.getTime()) / 1000));
      await this.#failed(attempt, 'verification failed', `${incident.source} failed again ${after} s after the action`);
      return;
    }
    if (incident.status === 'resolved') {
      await this.#verified(attempt, 'the incident resolved');
      return;
    }
    // Connected here or to another hub: its unit is asked about (what it offers, from its connection or its hello).
    if (['restart_service', 'start_service'].includes(attempt.command) && typeof attempt.params.service === 'string' && (await this.broker.reachable(attempt.agent_id))) {
      const offers = this.registry.get(attempt.agent_id)?.actions ?? (await getAgent(this.db, attempt.agent_id))?.actions;
      if (!offers || offers.includes('service_status')) {
        const status = await this.broker
          .run({
            agentId: attempt.agent_id,
            command: 'service_status',
            params: { service: attempt.params.service },
            timeoutMs: this.opts.execTimeoutMs,
            requestedBy: `rule:${attempt.rule_name}`,
            origin: 'rule',
            incidentId: attempt.incident_id,
          })
          .catch(() => null);
        // `systemctl status` exits 0 only for an active unit (3 for inactive or failed).
        if (status?.status === 'succeeded' && status.exit_code === 0) {
          const verified = await this.#verified(attempt, `${attempt.params.service} is active again`);
          if (verified) {
            await resolveByRule(this.db, this.opts.lifecycle, incident.id, this.opts.clock.now(), `${attempt.params.service} active again after ${attempt.command} by rule ${attempt.rule_name}`);
            this.opts.events.emit('notification.queued', {});
          }
          return;
        }
      }
    }
    await this.#failed(attempt, 'verification failed', `still not resolved ${Math.round((this.opts.clock.now().getTime() - (attempt.started_at ?? attempt.created_at).getTime()) / 1000)} s after the action`);
  }

  async #verified(attempt: RemediationAttempt, how: string): Promise<boolean> {
    const at = this.opts.clock.now();
    const moved = await moveAttempt(this.db, attempt.id, ['verifying'], { status: 'verified', finished_at: at, outcome: how });
    if (!moved) return false;
    const incident = await incidentOnHost(this.db, attempt.incident_id);
    if (incident) await this.#audit(incident, at, 'verified', { id: attempt.rule_id, name: attempt.rule_name }, { attempt_id: attempt.id, how, exec_id: attempt.exec_id });
    this.log.info({ incidentId: attempt.incident_id, rule: attempt.rule_name }, 'automatic fix verified');
    return true;
  }

  /** The fix did not work: escalate, hold the fingerprint, and maybe open the rule's circuit. */
  async #failed(attempt: RemediationAttempt, what: string, outcome: string): Promise<void> {
    const at = this.opts.clock.now();
    const moved = await moveAttempt(this.db, attempt.id, ['running', 'verifying'], { status: 'failed', finished_at: at, outcome: `${what}: ${outcome}` });
    if (!moved) return;
    const incident = await incidentOnHost(this.db, attempt.incident_id);
    const rule = { id: attempt.rule_id, name: attempt.rule_name };
    let suspended = false;
    await this.db.transaction().execute(async (trx) => {
      if (incident) {
        await this.#audit(incident, at, 'verification_failed', rule, { attempt_id: attempt.id, what, outcome }, trx);
        const from = incident.severity ?? 'medium';
        const to = SEVERITY_UP[from] ?? 'high';
        await escalate(trx, this.opts.lifecycle, incident.id, to, at);
        await placeHold(trx, incident, incident.id, `rule ${attempt.rule_name}: ${what}`, at);
        await this.#audit(incident, at, 'escalated', rule, { from, to, reason: `${what}: ${outcome}`, held: true }, trx);
        if (this.opts.lifecycle.notify) {
          await enqueueThread(
            trx,
            incident.id,
            `⚠️ The automatic fix by rule \`${attempt.rule_name}\` (\`${attempt.command}\`) did not work (${what}). Severity raised to *${to}*; no more automatic attempts on this until someone acknowledges or resolves it.`,
            at,
          );
        }
      }
      if ((await failuresSince(trx, attempt.rule_id, new Date(at.getTime() - 3_600_000))) >= CIRCUIT_FAILURES) {
        suspended = await suspendRule(trx, attempt.rule_id, `${CIRCUIT_FAILURES} failures within an hour`, at);
        if (suspended) await recordEvent(trx, { incidentId: null, agentId: null, at, actor: 'hub', kind: 'rule_suspended', detail: { rule_id: attempt.rule_id, rule: attempt.rule_name, failures: CIRCUIT_FAILURES } });
      }
    });
    this.log.warn({ incidentId: attempt.incident_id, rule: attempt.rule_name, outcome }, 'automatic fix failed; escalated');
    if (suspended) this.log.error({ rule: attempt.rule_name }, 'rule suspended: circuit breaker open');
    this.opts.events.emit('notification.queued', {});
  }

  async #audit(
    incident: Pick<Incident, 'id' | 'agent_id'>,
    at: Date,
    kind: 'rule_fired' | 'rule_skipped' | 'approval_requested' | 'approved' | 'rejected' | 'verified' | 'verification_failed' | 'escalated',
    rule: Pick<RemediationRule, 'id' | 'name'> | null,
    detail: Record<string, unknown>,
    db: Db = this.db,
    by?: string,
  ): Promise<void> {
    const person = kind === 'approved' || kind === 'rejected';
    await recordEvent(db, {
      incidentId: incident.id,
      agentId: incident.agent_id,
      at,
      actor: person ? 'user' : 'rule',
      by: by ?? (rule ? `rule:${rule.name}` : undefined),
      kind,
      detail: { ...(rule ? { rule_id: rule.id, rule: rule.name } : {}), ...detail },
    });
  }
}

/** An incident on a host (an agent's, or an integration's linked to one): what rules act on. */
type OnHost = Incident & { agent_id: string };

async function incidentOnHost(db: Db, id: string): Promise<OnHost | undefined> {
  const incident = await getIncident(db, id);
  return incident && incident.agent_id !== null ? (incident as OnHost) : undefined;
}
