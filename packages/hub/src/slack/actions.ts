import type { App as BoltApp, BlockButtonAction } from '@slack/bolt';
import type { Clock } from '../clock.ts';
import type { FastifyBaseLogger } from 'fastify';
import type { ExecParams } from '@opspilot/protocol';
import type { ExecBroker } from '../exec/broker.ts';
import { HubError } from '../errors.ts';
import { READ_ONLY_ACTIONS, concernsIncident, unitOf } from '../exec/actions.ts';
import { firstSight } from '../storage/slack-interactions.ts';
import type { Redactor } from '../incidents/redact.ts';
import type { Db } from '../storage/database.ts';
import { getIncident } from '../storage/incidents.ts';
import { enqueueMessage, enqueueThread } from '../storage/notifications.ts';
import type { ExecRequest, Incident } from '../storage/tables.ts';
import { recordEvent } from '../storage/timeline.ts';
import { ACTION_IDS, APPROVAL_IDS, clip, escapeCode, escapeMrkdwn, type ActionName } from './blocks.ts';
import { ignoreByPerson, personActed } from '../incidents/lifecycle.ts';


export interface ActionDeps {
  db: Db;
  clock: Clock;
  broker: ExecBroker;
  redactor: Redactor;
  log: FastifyBaseLogger;
  allowedUsers: ReadonlySet<string>;
  ignoreS: number;
  execTimeoutMs: number;
  /** After a change to the outbox: this module's own notifier. */
  kick(): void;
  /** Approve mode's answers. */
  remediation: {
    approve(attemptId: string, by: string): Promise<unknown>;
    reject(attemptId: string, by: string): Promise<unknown>;
  };
}

const NAMES = Object.fromEntries(Object.entries(ACTION_IDS).map(([name, id]) => [id, name as ActionName])) as Record<string, ActionName>;
const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The message's buttons. Each click is acknowledged first (Slack wants an answer within 3 s),
 * then worked on: the hub looks the incident up from the button's value and decides what runs.
 * Actions that change a host, and Ignore, need a user on the allowlist; others get an ephemeral
 * refusal and nothing runs. Every click is on the incident's timeline with the Slack user id.
 */
export function registerActions(bolt: BoltApp, deps: ActionDeps): void {
  bolt.action<BlockButtonAction>({ type: 'block_actions', action_id: /^opspilot_(restart|logs|ignore|run_suggested)$/ }, async ({ ack, body, action, client }) => {
    await ack();
    const name = NAMES[action.action_id];
    const user = body.user?.id;
    const channel = body.channel?.id;
    if (!name || typeof user !== 'string' || !/^[UW][A-Z0-9]+$/.test(user)) return;
    if (!(await firstTime(deps, body, action))) return;
    const tell = ephemeral(client, channel, user, deps);
    const incident = typeof action.value === 'string' && ID_PATTERN.test(action.value) ? await getIncident(deps.db, action.value) : undefined;
    if (!incident) return tell('OpsPilot: that incident no longer exists.');
    await handle(deps, name, incident, user, tell);
  });

  bolt.action<BlockButtonAction>({ type: 'block_actions', action_id: /^opspilot_(approve|reject)$/ }, async ({ ack, body, action, client }) => {
    await ack();
    const user = body.user?.id;
    const channel = body.channel?.id;
    if (typeof user !== 'string' || !/^[UW][A-Z0-9]+$/.test(user)) return;
    if (!(await firstTime(deps, body, action))) return;
    const tell = ephemeral(client, channel, user, deps);
    const engine = deps.remediation;
    const attemptId = typeof action.value === 'string' && ID_PATTERN.test(action.value) ? action.value : null;
    if (!attemptId) return tell('OpsPilot: that request no longer exists.');
    if (!deps.allowedUsers.has(user)) {
      deps.log.warn({ user, attemptId }, 'slack approval refused: user not allowed');
      return tell('OpsPilot: you are not allowed to approve or reject automatic actions. Nothing was run.');
    }
    const approve = action.action_id === APPROVAL_IDS.approve;
    const result = approve ? await engine.approve(attemptId, `slack:${user}`) : await engine.reject(attemptId, `slack:${user}`);
    if (result === 'not_waiting') return tell('OpsPilot: that request was already answered.');
    if (result === 'blocked') return tell('OpsPilot: that action may no longer run (resolved, rule suspended, or autonomy off). Nothing was run.');
    const attempt = result as { incident_id: string; command: string; rule_name: string };
    await enqueueThread(deps.db, attempt.incident_id, `${approve ? '👍' : '👎'} <@${user}> ${approve ? 'approved' : 'rejected'} \`${escapeCode(attempt.command)}\` of rule \`${escapeCode(attempt.rule_name)}\`.`, deps.clock.now());
    deps.kick();
  });
}

/**
 * Each interaction acts once: Slack gives every click its own trigger id and action time, so a
 * second request with the same ones is a replay of a signed request (valid for 5 minutes) and
 * runs nothing. Without a trigger id there is nothing to tell a replay by: it is refused.
 */
async function firstTime(deps: Pick<ActionDeps, 'db' | 'log' | 'clock'>, body: { trigger_id?: unknown; user?: { id?: unknown } }, action: { action_id: string; action_ts?: unknown }): Promise<boolean> {
  if (typeof body.trigger_id !== 'string' || body.trigger_id.length === 0 || body.trigger_id.length > 200) return false;
  const key = `${body.trigger_id}|${String(action.action_ts ?? '')}|${action.action_id}`;
  if (await firstSight(deps.db, key, deps.clock.now())) return true;
  deps.log.warn({ user: body.user?.id, action: action.action_id }, 'slack interaction replayed: ignored');
  return false;
}

/** A message only the clicking user sees. */
function ephemeral(client: { chat: { postEphemeral(args: { channel: string; user: string; text: string }): Promise<unknown> } }, channel: string | undefined, user: string, deps: Pick<ActionDeps, 'log' | 'redactor'>) {
  return async (text: string): Promise<void> => {
    if (!channel) return;
    await client.chat.postEphemeral({ channel, user, text: deps.redactor.redact(text).text }).catch((err: unknown) => deps.log.warn({ err }, 'could not send an ephemeral message'));
  };
}

async function handle(deps: ActionDeps, name: ActionName, incident: Incident, user: string, tell: (text: string) => Promise<void>): Promise<void> {
  const by = `slack:${user}`;
  const at = deps.clock.now();
  const plan = planFor(name, incident);
  if ('refusal' in plan) return tell(`OpsPilot: ${plan.refusal}`);

  const changesHost = plan.kind === 'ignore' || !READ_ONLY_ACTIONS.has(plan.command);
  if (changesHost && !deps.allowedUsers.has(user)) {
    await recordEvent(deps.db, { incidentId: incident.id, at, actor: 'user', by, kind: 'action_refused', detail: { action: name, reason: 'not on OPSPILOT_SLACK_ALLOWED_USERS' } });
    deps.log.warn({ incidentId: incident.id, user, action: name }, 'slack action refused: user not allowed');
    return tell(`OpsPilot: you are not allowed to ${name === 'ignore' ? 'ignore incidents' : 'run actions that change a host'}. Nothing was run.`);
  }

  // Someone allowed to change things stepped in: automatic attempts held after a failed fix may
  // resume. Reading logs is not stepping in.
  if (changesHost) await personActed(deps.db, incident.id);
  if (plan.kind === 'ignore') {
    const until = new Date(at.getTime() + deps.ignoreS * 1000);
    // The click came from the incident's message, which follows it: notified.
    await deps.db.transaction().execute((trx) => ignoreByPerson(trx, { notify: true }, incident, by, at, until, duration(deps.ignoreS)));
    deps.log.info({ incidentId: incident.id, user, until }, 'incident ignored from slack');
    return deps.kick();
  }

  await recordEvent(deps.db, { incidentId: incident.id, at, actor: 'user', by, kind: 'action_requested', detail: { action: name, command: plan.command, params: plan.params } });
  await enqueueMessage(deps.db, incident.id, at);
  deps.kick();
  deps.log.info({ incidentId: incident.id, user, command: plan.command }, 'slack action');

  let result: ExecRequest | undefined;
  let failure: HubError | undefined;
  try {
    result = await deps.broker.run({
      agentId: plan.agentId,
      command: plan.command,
      params: plan.params,
      timeoutMs: deps.execTimeoutMs,
      requestedBy: by,
      origin: 'slack',
      incidentId: incident.id,
    });
  } catch (err) {
    if (!(err instanceof HubError)) throw err;
    failure = err;
  }
  const done = deps.clock.now();
  const status = result?.status ?? 'failed';
  const outcome = result ? describeResult(result) : failure!.message;
  await deps.db.transaction().execute(async (trx) => {
    await recordEvent(trx, {
      incidentId: incident.id,
      at: done,
      actor: 'user',
      by,
      kind: 'action_completed',
      detail: { action: name, command: plan.command, exec_id: result?.id ?? null, status, outcome, ...(failure ? { error_code: failure.code } : {}) },
    });
    await enqueueThread(trx, incident.id, threadReply(user, plan.command, status, outcome, result, deps.redactor), done);
    await enqueueMessage(trx, incident.id, done);
  });
  deps.kick();
}

type Plan = { kind: 'ignore' } | { kind: 'exec'; agentId: string; command: string; params: ExecParams } | { refusal: string };

/** What a button does for this incident; decided here, never taken from the click. */
function planFor(name: ActionName, incident: Incident): Plan {
  if (name === 'ignore') return { kind: 'ignore' };
  const agentId = incident.agent_id;
  if (!agentId) return { refusal: 'this alert is not linked to a host OpsPilot runs on; nothing was run.' };
  if (name === 'runSuggested') {
    const suggested = (incident.analysis as { suggested_action?: { command: string; params: ExecParams } | null } | null)?.suggested_action;
    if (!suggested) return { refusal: 'this incident has no suggested action.' };
    // Checked again at the click: an analysis stored before this rule may name another unit.
    if (!concernsIncident(suggested, incident)) return { refusal: `the suggested action names another unit than ${incident.source}; nothing was run.` };
    return { kind: 'exec', agentId, command: suggested.command, params: suggested.params };
  }
  const unit = unitOf(incident);
  if (!unit) return { refusal: 'this incident is not about a systemd unit on a host OpsPilot runs on.' };
  if (incident.status === 'resolved' && name === 'restart') return { refusal: 'this incident is resolved; nothing was restarted.' };
  return name === 'restart'
    ? { kind: 'exec', agentId, command: 'restart_service', params: { service: unit } }
    : { kind: 'exec', agentId, command: 'service_logs', params: { service: unit, lines: 50 } };
}

function describeResult(r: ExecRequest): string {
  if (r.status === 'succeeded') return `succeeded (exit ${r.exit_code ?? 0}, ${r.duration_ms ?? 0} ms)`;
  if (r.error_code) return `failed: ${r.error_code}`;
  return `${r.status}${r.exit_code !== null ? ` (exit ${r.exit_code})` : ''}`;
}

/** The thread reply: who ran what, the outcome, and the output, redacted and escaped. */
export function threadReply(user: string, command: string, status: string, outcome: string, r: ExecRequest | undefined, redactor: Redactor): string {
  const icon = status === 'succeeded' ? '✅' : '❌';
  const lines = [`${icon} \`${escapeCode(command)}\` for <@${user}>: ${escapeMrkdwn(outcome)}`];
  const output = [r?.stdout ?? '', r?.stderr ? `stderr:\n${r.stderr}` : ''].filter((s) => s.trim().length > 0).join('\n');
  // Redact only what can be shown, plus a margin so a secret across the cut is still seen whole:
  // never the whole output (a Logs click answered with 256 KiB blocked the hub for 30 s).
  if (output) lines.push(`\`\`\`${escapeCode(clip(redactor.redact(output.slice(0, 3500 + 1024)).text, 3500))}\`\`\``);
  return lines.join('\n');
}

function duration(s: number): string {
  return s % 3600 === 0 ? `${s / 3600} h` : `${Math.round(s / 60)} min`;
}
