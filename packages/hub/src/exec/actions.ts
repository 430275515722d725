import { UNIT_NAME_PATTERN } from '@opspilot/protocol';

/** What the hub knows of the agents' built-in actions (packages/agent/src/exec/catalogue.ts). */
export const PARAM_RULES: Record<string, Record<string, (v: unknown) => boolean>> = {
  restart_service: { service: isUnit },
  start_service: { service: isUnit },
  stop_service: { service: isUnit },
  service_status: { service: isUnit },
  service_logs: { service: isUnit, lines: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1000 },
  disk_usage: {},
  top_processes: { limit: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 100 },
};

/** Built-in actions that only read. */
export const READ_ONLY_ACTIONS = new Set(['service_status', 'service_logs', 'disk_usage', 'top_processes']);

export function isUnit(v: unknown): boolean {
  return typeof v === 'string' && UNIT_NAME_PATTERN.test(v) && !v.startsWith('-');
}

/**
 * Why these params cannot go with this command, or null when they can: built-in actions are
 * checked against their rules (every param known and valid, `service` present where needed);
 * operator actions get scalars only, and the agent checks them against its own catalogue.
 */
export function paramsProblem(command: string, params: Record<string, unknown>): string | null {
  const entries = Object.entries(params);
  if (entries.length > 32) return 'more than 32 params';
  for (const [k, v] of entries) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(k)) return `param name "${k.slice(0, 64)}" is not allowed`;
    if (!['string', 'number', 'boolean'].includes(typeof v) || (typeof v === 'string' && v.length > 4096)) return `param ${k} must be a string (≤ 4096), number or boolean`;
  }
  const rules = PARAM_RULES[command];
  if (!rules) return null;
  for (const [k, v] of entries) {
    if (!rules[k]) return `${command} takes no param ${k}`;
    if (!rules[k]!(v)) return `param ${k} of ${command} is not valid: ${JSON.stringify(v).slice(0, 100)}`;
  }
  if ('service' in rules && !('service' in params)) return `${command} needs a service`;
  return null;
}

/**
 * Does a suggested action concern this incident? It always runs on the incident's agent; one
 * that names a unit must name the incident's own (a model's answer must not steer a click to
 * another service: "Restart nginx" that stops sshd).
 */
export function concernsIncident(action: { command: string; params: Record<string, unknown> }, incident: { type: string; source: string }): boolean {
  const service = action.params.service;
  if (service === undefined) return true;
  return incident.type === 'systemd' && service === incident.source;
}

/** What an action does, in the hub's words: the command and its parameter values. */
export function describeCommand(command: string, params: Record<string, unknown>): string {
  const values = Object.entries(params).map(([k, v]) => (k === 'service' ? String(v) : `${k}=${String(v)}`));
  return [command, ...values].join(' ');
}
