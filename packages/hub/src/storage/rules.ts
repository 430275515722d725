import { sql } from 'kysely';
import type { Db } from './database.ts';
import type { AttemptStatus, ExecRequest, MatchSpec, RemediationAttempt, RemediationRule } from './tables.ts';

export interface RuleInput {
  name: string;
  match: MatchSpec;
  action: { command: string; params: Record<string, string | number | boolean> };
  mode: 'auto' | 'approve';
  cooldown_s: number;
  max_per_hour: number;
  verify_s: number;
  enabled: boolean;
}

export async function createRule(db: Db, id: string, r: RuleInput, by: string, at: Date): Promise<RemediationRule | undefined> {
  return db
    .insertInto('remediation_rules')
    .values({ id, ...r, match: JSON.stringify(r.match), action: JSON.stringify(r.action), created_at: at, updated_at: at, created_by: by })
    .onConflict((oc) => oc.column('name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** Replace a rule; saving it closes its circuit breaker (re-enabling it is a person's decision). */
export async function updateRule(db: Db, id: string, r: RuleInput, at: Date): Promise<RemediationRule | 'name_taken' | undefined> {
  const clash = await db.selectFrom('remediation_rules').select('id').where('name', '=', r.name).where('id', '<>', id).executeTakeFirst();
  if (clash) return 'name_taken';
  return db
    .updateTable('remediation_rules')
    .set({ ...r, match: JSON.stringify(r.match), action: JSON.stringify(r.action), updated_at: at, suspended_at: null, suspended_reason: null })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function getRule(db: Db, id: string): Promise<RemediationRule | undefined> {
  return db.selectFrom('remediation_rules').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listRules(db: Db): Promise<RemediationRule[]> {
  return db.selectFrom('remediation_rules').selectAll().orderBy('name').execute();
}

export async function deleteRule(db: Db, id: string): Promise<RemediationRule | undefined> {
  return db.deleteFrom('remediation_rules').where('id', '=', id).returningAll().executeTakeFirst();
}

export async function suspendRule(db: Db, id: string, reason: string, at: Date): Promise<boolean> {
  const r = await db.updateTable('remediation_rules').set({ suspended_at: at, suspended_reason: reason }).where('id', '=', id).where('suspended_at', 'is', null).executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** Statuses of attempts whose action actually ran (or is running). */
const RAN: AttemptStatus[] = ['running', 'verifying', 'verified', 'failed'];

/** When this rule last acted on this fingerprint. */
export async function lastRunOnFingerprint(db: Db, ruleId: string, fp: { agent_id: string; type: string; source: string }): Promise<Date | undefined> {
  const row = await db
    .selectFrom('remediation_attempts')
    .select('created_at')
    .where('rule_id', '=', ruleId)
    .where('agent_id', '=', fp.agent_id)
    .where('type', '=', fp.type)
    .where('source', '=', fp.source)
    .where('status', 'in', [...RAN, 'awaiting_approval'])
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.created_at;
}

/** How many times this rule acted on this agent since `since`. */
export async function runsOnAgentSince(db: Db, ruleId: string, agentId: string, since: Date): Promise<number> {
  const { n } = await db
    .selectFrom('remediation_attempts')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('rule_id', '=', ruleId)
    .where('agent_id', '=', agentId)
    .where('status', 'in', RAN)
    .where('created_at', '>=', since)
    .executeTakeFirstOrThrow();
  return Number(n);
}

export async function failuresSince(db: Db, ruleId: string, since: Date): Promise<number> {
  const { n } = await db
    .selectFrom('remediation_attempts')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('rule_id', '=', ruleId)
    .where('status', '=', 'failed')
    .where('finished_at', '>=', since)
    .executeTakeFirstOrThrow();
  return Number(n);
}

export async function createAttempt(db: Db, a: Omit<RemediationAttempt, 'exec_id' | 'decided_by' | 'started_at' | 'verify_by' | 'finished_at' | 'outcome'>): Promise<void> {
  await db.insertInto('remediation_attempts').values({ ...a, params: JSON.stringify(a.params) }).execute();
}

/** An incident's place in the remediation queue: which opening (or reopening) of it is waiting. */
export interface QueuedRemediation {
  incident_id: string;
  queued_at: Date;
}

/**
 * The rules are to be consulted on these incidents (opened or reopened at `at`). Called in the
 * transaction that opens them; a newer opening replaces a waiting one.
 */
export async function queueRemediation(db: Db, incidentIds: readonly string[], at: Date): Promise<void> {
  if (incidentIds.length === 0) return;
  await db
    .insertInto('remediation_queue')
    .values(incidentIds.map((id) => ({ incident_id: id, queued_at: at })))
    .onConflict((oc) => oc.column('incident_id').doUpdateSet((eb) => ({ queued_at: eb.ref('excluded.queued_at') })))
    .execute();
}

/** The oldest waiting incidents, in the order they were queued (after `after`, to page on). */
export async function queuedRemediations(db: Db, limit: number, after?: QueuedRemediation): Promise<QueuedRemediation[]> {
  let q = db.selectFrom('remediation_queue').selectAll();
  if (after) q = q.where((eb) => eb.or([eb('queued_at', '>', after.queued_at), eb.and([eb('queued_at', '=', after.queued_at), eb('incident_id', '>', after.incident_id)])]));
  return q.orderBy('queued_at').orderBy('incident_id').limit(limit).execute();
}

/**
 * Take this opening of the incident off the queue: true if it was still there. The engine does
 * this in the transaction that records a rule's attempt, so an attempt is made once per opening
 * however often a crash makes the rules run again; false means another run (or a newer opening)
 * came first.
 */
export async function dequeueRemediation(db: Db, q: QueuedRemediation): Promise<boolean> {
  const r = await db.deleteFrom('remediation_queue').where('incident_id', '=', q.incident_id).where('queued_at', '=', q.queued_at).executeTakeFirst();
  return r.numDeletedRows > 0n;
}

export async function getAttempt(db: Db, id: string): Promise<RemediationAttempt | undefined> {
  return db.selectFrom('remediation_attempts').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Move an attempt on, only from the status the caller saw (two hubs, two clicks: one wins). */
export async function moveAttempt(
  db: Db,
  id: string,
  from: AttemptStatus[],
  set: Partial<Pick<RemediationAttempt, 'status' | 'exec_id' | 'decided_by' | 'started_at' | 'verify_by' | 'finished_at' | 'outcome'>>,
): Promise<RemediationAttempt | undefined> {
  return db.updateTable('remediation_attempts').set(set).where('id', '=', id).where('status', 'in', from).returningAll().executeTakeFirst();
}

export async function dueVerifications(db: Db, at: Date): Promise<RemediationAttempt[]> {
  return db.selectFrom('remediation_attempts').selectAll().where('status', '=', 'verifying').where('verify_by', '<=', at).orderBy('verify_by').limit(100).execute();
}

export async function attemptsOf(db: Db, incidentId: string): Promise<RemediationAttempt[]> {
  return db.selectFrom('remediation_attempts').selectAll().where('incident_id', '=', incidentId).orderBy('id').execute();
}

export async function holdOn(db: Db, fp: { agent_id: string; type: string; source: string }): Promise<{ incident_id: string; since: Date; reason: string } | undefined> {
  return db
    .selectFrom('autonomy_holds')
    .select(['incident_id', 'since', 'reason'])
    .where('agent_id', '=', fp.agent_id)
    .where('type', '=', fp.type)
    .where('source', '=', fp.source)
    .executeTakeFirst();
}

export async function placeHold(db: Db, fp: { agent_id: string; type: string; source: string }, incidentId: string, reason: string, at: Date): Promise<void> {
  await db
    .insertInto('autonomy_holds')
    .values({ agent_id: fp.agent_id, type: fp.type, source: fp.source, incident_id: incidentId, since: at, reason })
    .onConflict((oc) => oc.columns(['agent_id', 'type', 'source']).doUpdateSet({ incident_id: incidentId, since: at, reason }))
    .execute();
}

/** A person acted on an incident: automatic attempts on its fingerprint may resume. */
export async function releaseHold(db: Db, incidentId: string): Promise<boolean> {
  const r = await sql`
    DELETE FROM autonomy_holds h USING incidents i
    WHERE i.id = ${incidentId} AND h.agent_id = i.agent_id AND h.type = i.type AND h.source = i.source`.execute(db);
  return (r.numAffectedRows ?? 0n) > 0n;
}

/** Attempts that were running (their exec sent) when the hub stopped. */
export async function interruptedAttempts(db: Db): Promise<RemediationAttempt[]> {
  return db.selectFrom('remediation_attempts').selectAll().where('status', '=', 'running').where('started_at', 'is not', null).execute();
}

/** The exec an attempt sent: the first of its rule's command on its incident since it started. */
export async function attemptExec(db: Db, attempt: RemediationAttempt): Promise<ExecRequest | undefined> {
  return db
    .selectFrom('exec_requests')
    .selectAll()
    .where('incident_id', '=', attempt.incident_id)
    .where('requested_by', '=', `rule:${attempt.rule_name}`)
    .where('command', '=', attempt.command)
    .where('created_at', '>=', attempt.started_at!)
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
}
