#!/usr/bin/env node
/**
 * `opspilot`: the hub from a terminal. Tables for people, `--json` for scripts, exit codes that
 * mean something (api.ts: EXIT), errors with the hub's code. Built on commander (the most used
 * argument parser for Node: subcommands, help and errors for unknown options, no dependencies).
 */
import { Command, CommanderError, Option } from 'commander';
import { ApiError, EXIT, Hub } from './api.ts';
import { UsageError, loadCredentials, normalizeHub, saveCredentials } from './config.ts';
import { ago, clip, safe, table } from './format.ts';
import { parseParams } from './params.ts';
import { tail } from './tail.ts';
import type { Agent, Exec, Incident, IncidentStatus, IncidentSummary, Rule, Silence } from '@opspilot/hub/views';

const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};
const json = (v: unknown): void => out(JSON.stringify(v, null, 2));

interface Globals {
  hub?: string;
  token?: string;
  json?: boolean;
}

const program = new Command('opspilot')
  .description('OpsPilot from a terminal: agents, incidents, exec, rules, silences and the live event stream')
  .option('--hub <url>', 'the hub (default: OPSPILOT_HUB, or what login saved)')
  .option('--token <token>', 'an API token (default: OPSPILOT_TOKEN, or what login saved)')
  .option('--json', 'print JSON (for scripts)')
  .showHelpAfterError()
  .exitOverride();

const globals = (): Globals => program.opts<Globals>();
function hub(): Hub {
  const g = globals();
  const creds = loadCredentials(process.env, g);
  if (!creds) throw new ApiError('CLI_NOT_LOGGED_IN', 'not logged in: run `opspilot login <hub-url> --token <token>` (or set OPSPILOT_HUB and OPSPILOT_TOKEN)', 401);
  return new Hub(creds);
}
const q = (params: Record<string, string | number | undefined>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) s.set(k, String(v));
  const text = s.toString();
  return text ? `?${text}` : '';
};
const id = (value: string) => {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) throw new UsageError(`"${clip(value, 40)}" is not an id`);
  return encodeURIComponent(value);
};

program
  .command('login')
  .description('save the hub and a token (file mode 600); the token is checked first')
  .argument('<hub-url>', 'like http://127.0.0.1:8080')
  .option('--token <token>', 'the token (default: read from standard input)')
  .action(async (url: string, o: { token?: string }) => {
    const hubUrl = normalizeHub(url);
    let token = o.token ?? globals().token;
    if (!token && !process.stdin.isTTY) {
      let text = '';
      for await (const chunk of process.stdin) text += chunk;
      token = text.trim();
    }
    if (!token) throw new UsageError('give the token with --token, or on standard input');
    await new Hub({ hub: hubUrl, token }).get('/v1/agents?limit=1');
    const file = saveCredentials(process.env, { hub: hubUrl, token });
    if (globals().json) json({ hub: hubUrl, saved: file });
    else out(`logged in to ${hubUrl} (saved in ${file})`);
  });

program
  .command('agents')
  .description('list agents with their status')
  .action(async () => {
    const { agents } = await hub().get<{ agents: Agent[] }>('/v1/agents');
    if (globals().json) return json(agents);
    out(table(['ID', 'HOSTNAME', 'STATUS', 'LAST SEEN', 'LABELS'], agents.map((a) => [a.id, a.hostname ?? a.facts?.hostname ?? '', a.status, ago(a.last_seen_at), Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(',')])));
  });

program
  .command('agent')
  .description("one agent: facts, catalogue, latest heartbeat")
  .argument('<id>')
  .action(async (agentId: string) => {
    const a = await hub().get<Agent>(`/v1/agents/${id(agentId)}`);
    if (globals().json) return json(a);
    const f = a.facts;
    out(
      [
        `${safe(a.hostname ?? f?.hostname ?? a.id)}  ${a.status}  (last seen ${ago(a.last_seen_at)})`,
        `id        ${a.id}`,
        `system    ${safe([f?.os, f?.arch, f?.kernel].filter(Boolean).join(' ') || '-')}`,
        `agent     ${safe(String(f?.agent_version ?? '-'))} (protocol ${f?.protocol ?? '-'})`,
        `labels    ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}`,
        `actions   ${(a.actions ?? []).join(', ') || '-'}`,
        `stats     ${a.stats ? Object.entries(a.stats).map(([k, v]) => `${k} ${v}`).join(', ') : '-'}`,
      ].join('\n'),
    );
  });

const SEVERITY = ['critical', 'high', 'medium', 'low'] as const satisfies readonly NonNullable<IncidentSummary['severity']>[];
// The hub's statuses, checked against its type both ways: one added there fails to compile here.
const STATUS = ['new', 'analyzing', 'open', 'acknowledged', 'ignored', 'resolved'] as const satisfies readonly IncidentStatus[];
export const ALL_STATUSES: [Exclude<IncidentStatus, (typeof STATUS)[number]>] extends [never] ? true : never = true;
program
  .command('incidents')
  .description('list incidents, newest first')
  .addOption(new Option('--status <status>').choices(STATUS))
  .addOption(new Option('--severity <severity>').choices(SEVERITY))
  .option('--agent <id>', "that agent's only")
  .option('--service <name>', 'of that service')
  .option('--label <name=value>', 'with that label (repeat for several)', (v: string, all: string[] = []) => [...all, v])
  .option('--text <text>', 'with this text in the message or source (any case)')
  .option('--limit <n>', 'at most n', '50')
  .action(async (o: { status?: string; severity?: string; agent?: string; service?: string; label?: string[]; text?: string; limit: string }) => {
    const limit = Number(o.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit is a number from 1 to 1000');
    for (const l of o.label ?? []) if (!/^[^=]{1,128}=/.test(l)) throw new UsageError(`--label is name=value, not "${clip(l, 40)}"`);
    const query = q({ status: o.status, severity: o.severity, agent_id: o.agent ? id(o.agent) : undefined, service: o.service, q: o.text, limit });
    const labels = (o.label ?? []).map((l) => `&label=${encodeURIComponent(l)}`).join('');
    const { incidents } = await hub().get<{ incidents: IncidentSummary[] }>(`/v1/incidents${query}${labels}`);
    if (globals().json) return json(incidents);
    out(table(['ID', 'SEVERITY', 'STATUS', 'COUNT', 'LAST', 'SOURCE', 'MESSAGE'], incidents.map((i) => [i.id, i.severity ?? '-', i.status, i.count, ago(i.last_seen_at), i.source, i.message])));
  });

program
  .command('incident')
  .description('one incident: its message, analysis and timeline')
  .argument('<id>')
  .action(async (incidentId: string) => {
    const h = hub();
    const [i, timeline] = await Promise.all([h.get<Incident>(`/v1/incidents/${id(incidentId)}`), h.get<{ events: { at: string; kind: string; actor: string; by: string | null }[] }>(`/v1/incidents/${id(incidentId)}/timeline`)]);
    if (globals().json) return json({ ...i, timeline: timeline.events });
    const a = i.analysis;
    const lines = [
      `${i.id}  ${i.severity ?? '-'}  ${i.status}  ×${i.count}`,
      `${safe(i.type)} ${safe(i.source)}: ${safe(i.message)}`,
      `first ${i.first_seen_at}, last ${i.last_seen_at}${i.agent_id ? `, agent ${i.agent_id}` : ''}${i.service ? `, service ${safe(i.service)}` : ''}`,
    ];
    if (a) {
      const action = a.suggested_action ? `${a.suggested_action.command} ${Object.entries(a.suggested_action.params ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')}`.trim() : 'none';
      lines.push('', `analysis  ${safe(a.root_cause)} (${a.source}, confidence ${a.confidence}, ${a.redactions} secrets redacted)`, `suggested ${safe(action)} (risk ${a.risk})`);
    }
    if (i.logs) lines.push('', 'logs:', ...safe(String(i.logs)).split('\n').slice(-20).map((l) => `  ${l}`));
    lines.push('', 'timeline:');
    for (const e of timeline.events) lines.push(`  ${e.at}  ${e.kind.padEnd(18)} ${e.actor}${e.by ? ` (${safe(e.by)})` : ''}`);
    out(lines.join('\n'));
  });

for (const [name, path, done] of [
  ['ack', 'acknowledge', 'acknowledged'],
  ['resolve', 'resolve', 'resolved'],
] as const) {
  program
    .command(name)
    .description(`${path} an incident`)
    .argument('<id>')
    .action(async (incidentId: string) => {
      const i = await hub().post<Incident>(`/v1/incidents/${id(incidentId)}/${path}`);
      if (globals().json) return json(i);
      out(`${i.id} ${done} (${i.status})`);
    });
}

program
  .command('ignore')
  .description('ignore an incident: marked ignored, its fingerprint muted (no notification, no automatic fix) for a while')
  .argument('<id>')
  .option('--for <duration>', 'how long: 30m, 4h, 1d (at most 30d)', '1d')
  .action(async (incidentId: string, o: { for: string }) => {
    const minutes = Math.ceil(duration(o.for) / 60);
    if (minutes > 43_200) throw new UsageError('--for is at most 30d');
    const i = await hub().post<Incident>(`/v1/incidents/${id(incidentId)}/ignore`, { minutes });
    if (globals().json) return json(i);
    out(`${i.id} ignored for ${o.for} (${i.status})`);
  });

program
  .command('exec')
  .description("run an action of the agent's catalogue and print its result (exit 6 when it failed on the host)")
  .argument('<agent>', 'agent id')
  .argument('<action>', 'e.g. service_status, restart_service, disk_usage')
  .argument('[params...]', 'key=value (typed from the catalogue), or key:=json for an operator action')
  .option('--timeout <ms>', 'wait at most this long')
  .action(async (agentId: string, action: string, pairs: string[], o: { timeout?: string }) => {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(action)) throw new UsageError(`"${clip(action, 40)}" is not an action name`);
    const params = parseParams(action, pairs);
    const h = hub();
    const agent = await h.get<Agent>(`/v1/agents/${id(agentId)}`);
    if (Array.isArray(agent.actions) && !agent.actions.includes(action)) throw new UsageError(`agent ${agentId} has no action "${action}"; it has: ${agent.actions.join(', ')}`);
    const timeout = o.timeout === undefined ? undefined : Number(o.timeout);
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1)) throw new UsageError('--timeout is milliseconds, a whole number');
    const r = await h.post<Exec>('/v1/admin/exec', { agent_id: agentId, command: action, params, ...(timeout ? { timeout_ms: timeout } : {}) });
    if (globals().json) json(r);
    else {
      if (r.stdout) process.stdout.write(safe(r.stdout).endsWith('\n') ? safe(r.stdout) : `${safe(r.stdout)}\n`);
      if (r.stderr) process.stderr.write(safe(r.stderr).endsWith('\n') ? safe(r.stderr) : `${safe(r.stderr)}\n`);
      process.stderr.write(`${action} on ${agentId}: ${r.status}${r.exit_code !== null ? `, exit ${r.exit_code}` : ''}${r.error_code ? ` (${r.error_code})` : ''}${r.truncated ? ', output truncated' : ''}\n`);
    }
    if (r.status !== 'succeeded') process.exitCode = EXIT.execFailed;
  });

program
  .command('rules')
  .description('list remediation rules')
  .action(async () => {
    const { rules } = await hub().get<{ rules: Rule[] }>('/v1/rules');
    if (globals().json) return json(rules);
    out(table(['ID', 'NAME', 'MODE', 'ENABLED', 'ACTION', 'MATCH'], rules.map((r) => [r.id, r.name, r.mode, r.enabled ? 'yes' : 'no', r.action.command, JSON.stringify(r.match)])));
  });

/** 90s, 15m, 2h, 3d → seconds. */
function duration(text: string): number {
  const m = /^([0-9]{1,6})([smhd])$/.exec(text);
  if (!m) throw new UsageError(`"${clip(text, 20)}" is not a duration like 30m, 2h or 1d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

program
  .command('silence')
  .description('hold back notifications and rules for what matches, for a while')
  .requiredOption('--for <duration>', 'how long: 30m, 2h, 1d')
  .requiredOption('--reason <text>', 'why (kept on the audit trail)')
  .option('--agent <id>')
  .option('--source <glob>', 'e.g. nginx.service or api-*')
  .option('--type <type>', 'systemd, log, host, http…')
  .addOption(new Option('--severity <severity>').choices(SEVERITY))
  .action(async (o: { for: string; reason: string; agent?: string; source?: string; type?: string; severity?: string }) => {
    const match = { ...(o.agent ? { agent_id: o.agent } : {}), ...(o.source ? { source: o.source } : {}), ...(o.type ? { type: o.type } : {}), ...(o.severity ? { severity: o.severity } : {}) };
    if (Object.keys(match).length === 0) throw new UsageError('say what to silence: --agent, --source, --type or --severity');
    const s = await hub().post<Silence>('/v1/silences', { match, ends_at: new Date(Date.now() + duration(o.for) * 1000).toISOString(), reason: o.reason });
    if (globals().json) return json(s);
    out(`silence ${s.id} until ${s.ends_at}`);
  });

program
  .command('silences')
  .description('list silences in force')
  .action(async () => {
    const { silences } = await hub().get<{ silences: Silence[] }>('/v1/silences');
    if (globals().json) return json(silences);
    out(table(['ID', 'UNTIL', 'MATCH', 'REASON'], silences.map((s) => [s.id, s.ends_at ?? 'recurring', JSON.stringify(s.match), s.reason])));
  });

program
  .command('tail')
  .description('follow the live event stream (reconnects where it left off)')
  .option('--types <list>', 'groups (incident, analysis, exec, remediation, agent, monitor, config) or types, comma-separated')
  .option('--agent <id>')
  .option('--incident <id>')
  .option('--max <n>', 'stop after n events')
  .action(async (o: { types?: string; agent?: string; incident?: string; max?: string }) => {
    const max = o.max === undefined ? Infinity : Number(o.max);
    if (!(max > 0)) throw new UsageError('--max is a positive number');
    const path = `/v1/events${q({ types: o.types, agent_id: o.agent ? id(o.agent) : undefined, incident_id: o.incident ? id(o.incident) : undefined })}`;
    await tail(hub(), path, { json: Boolean(globals().json), max, out, err: (s) => process.stderr.write(`${s}\n`) });
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : EXIT.usage;
      return;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`opspilot: ${err.message}\n`);
      process.exitCode = EXIT.usage;
      return;
    }
    if (err instanceof ApiError) {
      process.stderr.write(`opspilot: ${err.code}: ${safe(err.message)}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    throw err;
  }
}

await main();
