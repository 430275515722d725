import type { MessageData } from '../storage/notifications.ts';
import { READ_ONLY_ACTIONS, describeCommand, unitOf } from '../exec/actions.ts';

/** Stable action ids of the message's buttons. A button's value is only the incident id. */
export const ACTION_IDS = {
  restart: 'opspilot_restart',
  logs: 'opspilot_logs',
  ignore: 'opspilot_ignore',
  runSuggested: 'opspilot_run_suggested',
} as const;
/** Approve mode's buttons; their value is the remediation attempt's id. */
export const APPROVAL_IDS = { approve: 'opspilot_approve', reject: 'opspilot_reject' } as const;
export type ActionName = keyof typeof ACTION_IDS;

/**
 * Text from hosts and the model, made inert for mrkdwn: `&`, `<` and `>` are the only characters
 * Slack asks to escape, and escaping `<` is what stops `<!channel>`, `<@U…>` and `<url|label>`.
 */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Escaped text for inside a code span or block: backticks cannot close it early. */
export function escapeCode(text: string): string {
  return escapeMrkdwn(text).replace(/`/g, 'ˋ');
}

/** Cut to `max` characters (Slack's limits: 150 in a header, 3000 in a section). */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const SEVERITY_ICON: Record<string, string> = { critical: '🔴', high: '🟠', medium: '🟡', low: '🔵' };
const HEADLINE: Record<string, string> = { systemd: 'Service down', log: 'Log alert', host: 'Host alert', agent: 'Agent offline' };

/**
 * `🚨 Service down: <source> (<hostname>)`, as the original OpsPilot wrote it; an alert from
 * another tool says what it says, and where: the host, else the service, else the integration.
 */
export function headline(d: MessageData): string {
  const i = d.incident;
  const icon = i.status === 'resolved' ? '✅' : i.status === 'ignored' ? '🔕' : '🚨';
  if (i.integration_id) {
    const where = d.hostname ?? i.service ?? d.integration ?? i.type;
    return clip(`${icon} ${i.status === 'resolved' ? 'Resolved: ' : ''}${i.message} (${where})`, 150);
  }
  const host = d.hostname ?? i.agent_id;
  const what = i.status === 'resolved' ? 'Resolved' : (HEADLINE[i.type] ?? 'Alert');
  return clip(`${icon} ${what}: ${i.source} (${host})`, 150);
}

const when = (d: Date) => `<!date^${Math.floor(d.getTime() / 1000)}^{date_short_pretty} {time_secs}|${d.toISOString()}>`;

interface Analysis {
  summary?: string;
  root_cause?: string;
  confidence?: number;
  suggested_action?: { command: string; params: Record<string, unknown>; label: string } | null;
  risk?: string;
  source?: string;
}

/** The buttons an incident offers: restart and logs need a unit; none once it is resolved. */
export function offeredActions(d: MessageData): ActionName[] {
  const i = d.incident;
  if (i.status === 'resolved') return [];
  const offers = (command: string) => d.catalogue === null || d.catalogue.includes(command);
  const actions: ActionName[] = [];
  const unit = unitOf(i);
  if (unit && offers('restart_service')) actions.push('restart');
  if (unit && offers('service_logs')) actions.push('logs');
  if (i.status !== 'ignored') actions.push('ignore');
  if (i.agent_id && (i.analysis as Analysis | null)?.suggested_action) actions.push('runSuggested');
  return actions;
}

/** The incident's message: text for notifications, blocks for the channel. */
export function renderMessage(d: MessageData, opts: { buttons: boolean }): { text: string; blocks: object[] } {
  const i = d.incident;
  const title = headline(d);
  const blocks: object[] = [{ type: 'header', text: { type: 'plain_text', text: title, emoji: true } }];
  const field = (label: string, value: string) => ({ type: 'mrkdwn', text: `*${label}*\n${value}` });
  blocks.push({
    type: 'section',
    fields: [
      field('Severity', `${SEVERITY_ICON[i.severity ?? ''] ?? '⚪'} ${escapeMrkdwn(i.severity ?? 'unclassified')}${i.category ? ` · ${escapeMrkdwn(i.category)}` : ''}`),
      i.integration_id
        ? field('From', escapeMrkdwn([d.integration ?? i.type, i.service, d.hostname].filter(Boolean).join(' · ')))
        : field('Host', escapeMrkdwn(d.hostname ?? i.agent_id ?? '')),
      field('Status', `${escapeMrkdwn(i.status)}${i.flapping ? ' · flapping' : ''}${i.escalated ? ' · ⚠️ escalated' : ''}${i.acknowledged_by ? ` (ack: ${actorLabel(i.acknowledged_by)})` : ''}`),
      field('Count', String(i.count)),
      field('First seen', when(i.first_seen_at)),
      field('Last seen', when(i.last_seen_at)),
    ],
  });
  blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(`\`\`\`${escapeCode(clip(i.message, 1000))}\`\`\``, 3000) } });

  const a = i.analysis as Analysis | null;
  if (a?.summary) {
    const lines = [`*${a.source === 'llm' ? 'Analysis' : 'Likely cause'}:* ${escapeMrkdwn(a.summary)}`];
    if (a.root_cause) lines.push(`*Root cause:* ${escapeMrkdwn(a.root_cause)}`);
    if (a.suggested_action) {
      const params = Object.entries(a.suggested_action.params)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ');
      lines.push(`*Suggested fix:* ${escapeMrkdwn(a.suggested_action.label)} (\`${escapeCode(`${a.suggested_action.command}${params ? ` ${params}` : ''}`)}\`, risk ${escapeMrkdwn(a.risk ?? 'unknown')})`);
    }
    if (typeof a.confidence === 'number') lines.push(`_confidence ${Math.round(a.confidence * 100)}% · ${a.source === 'llm' ? 'model' : 'heuristics'}_`);
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(lines.join('\n'), 3000) } });
  } else if (i.status === 'new' || i.status === 'analyzing') {
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: '_Analysing…_' }] });
  }

  if (opts.buttons) {
    const elements = offeredActions(d).map((name) => button(name, i.id, i.source, a?.suggested_action ?? undefined));
    if (elements.length > 0) blocks.push({ type: 'actions', block_id: 'opspilot_actions', elements });
  }

  const context = [`incident \`${i.id}\``, i.rule ? `rule \`${escapeCode(i.rule)}\`` : null].filter(Boolean).join(' · ');
  const history = d.actions.map(describeAction);
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: clip([...history, context].join('\n'), 3000) }] });
  return { text: title, blocks };
}

function button(name: ActionName, incidentId: string, source: string, suggested?: { command: string; params: Record<string, unknown> }): object {
  const base = { type: 'button', action_id: ACTION_IDS[name], value: incidentId };
  switch (name) {
    case 'restart':
      return {
        ...base,
        style: 'danger',
        text: { type: 'plain_text', text: 'Restart' },
        confirm: {
          title: { type: 'plain_text', text: 'Restart the service?' },
          text: { type: 'mrkdwn', text: clip(`Restart \`${escapeCode(source)}\` on this host now?`, 300) },
          confirm: { type: 'plain_text', text: 'Restart' },
          deny: { type: 'plain_text', text: 'Cancel' },
          style: 'danger',
        },
      };
    case 'logs':
      return { ...base, text: { type: 'plain_text', text: 'Logs' } };
    case 'ignore':
      return { ...base, text: { type: 'plain_text', text: 'Ignore 24 h' } };
    case 'runSuggested': {
      // The hub says what the button runs, from the action itself; the model's label is only
      // shown as its description. Anything that changes the host asks first.
      const what = suggested ? describeCommand(suggested.command, suggested.params) : 'the suggested fix';
      const text = { type: 'plain_text', text: clip(`Run: ${what}`, 75) };
      if (!suggested || READ_ONLY_ACTIONS.has(suggested.command)) return { ...base, text };
      return {
        ...base,
        style: 'danger',
        text,
        confirm: {
          title: { type: 'plain_text', text: 'Run the suggested fix?' },
          text: { type: 'mrkdwn', text: clip(`Run \`${escapeCode(what)}\` on this host now? It changes the host.`, 300) },
          confirm: { type: 'plain_text', text: 'Run' },
          deny: { type: 'plain_text', text: 'Cancel' },
          style: 'danger',
        },
      };
    }
  }
}

/**
 * Who acted, as people read it: a Slack user as a mention, an API token by its name ("token:x"
 * would look like a secret to the redaction every Slack text goes through), a rule by its name.
 */
export function actorLabel(by: string | null): string {
  if (!by) return 'someone';
  if (by.startsWith('slack:')) return `<@${by.slice(6).replace(/[^A-Z0-9]/gi, '')}>`;
  if (by.startsWith('token:')) return `${escapeMrkdwn(by.slice(6))} (API token)`;
  if (by.startsWith('rule:')) return `rule ${escapeMrkdwn(by.slice(5))}`;
  return escapeMrkdwn(by);
}

/** One line of the message's history: who did what, and how it ended. */
export function describeAction(e: MessageData['actions'][number]): string {
  const who = actorLabel(e.by ?? null);
  const d = e.detail ?? {};
  const what = escapeCode(String(d.command ?? d.action ?? ''));
  switch (e.kind) {
    case 'action_requested':
      return `⏳ ${who} ran \`${what}\``;
    case 'action_completed':
      return `${d.status === 'succeeded' ? '✅' : '❌'} \`${what}\` for ${who}: ${escapeMrkdwn(String(d.outcome ?? d.status ?? ''))}`;
    case 'action_refused':
      return `⛔ ${who} may not run \`${what}\``;
    case 'ignored':
      return `🔕 ${who} ignored this for ${escapeMrkdwn(String(d.for ?? '24 h'))}`;
    default:
      return '';
  }
}

/** The question of an `approve` rule, posted in the incident's thread. */
export function approvalBlocks(a: { id: string; rule_name: string; command: string; params: Record<string, unknown> }, hostname: string): { text: string; blocks: object[] } {
  const params = Object.entries(a.params)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  const what = `\`${escapeCode(`${a.command}${params ? ` ${params}` : ''}`)}\``;
  const text = `🤖 Rule \`${escapeCode(a.rule_name)}\` wants to run ${what} on ${escapeMrkdwn(hostname)}. Approve?`;
  return {
    text: clip(text, 3000),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: clip(text, 3000) } },
      {
        type: 'actions',
        block_id: 'opspilot_approval',
        elements: [
          {
            type: 'button',
            action_id: APPROVAL_IDS.approve,
            value: a.id,
            style: 'primary',
            text: { type: 'plain_text', text: 'Approve' },
            confirm: {
              title: { type: 'plain_text', text: 'Run it now?' },
              text: { type: 'mrkdwn', text: clip(`Run ${what} on ${escapeMrkdwn(hostname)}?`, 300) },
              confirm: { type: 'plain_text', text: 'Run' },
              deny: { type: 'plain_text', text: 'Cancel' },
            },
          },
          { type: 'button', action_id: APPROVAL_IDS.reject, value: a.id, style: 'danger', text: { type: 'plain_text', text: 'Reject' } },
        ],
      },
    ],
  };
}
