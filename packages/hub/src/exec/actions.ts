import { BadParams, BUILTIN_ACTION_CONTRACTS, checkParams, READ_ONLY_ACTIONS, type ExecParams } from '@opspilot/protocol';

export { READ_ONLY_ACTIONS };

const compiled = new Map<string, RegExp>();
/** The built-in actions' patterns (the protocol's own, checked for backtracking by redos.test.ts). */
function builtinMatches(pattern: string, value: string): boolean {
  let re = compiled.get(pattern);
  if (!re) compiled.set(pattern, (re = new RegExp(pattern)));
  return re.test(value);
}

/**
 * Why these params cannot go with this command, or null when they can: built-in actions are
 * checked against the protocol's contract (every param known and valid, required ones present),
 * exactly as the agent will check them; operator actions get scalars only, and the agent checks
 * them against its own catalogue.
 */
export function paramsProblem(command: string, params: Record<string, unknown>): string | null {
  const entries = Object.entries(params);
  if (entries.length > 32) return 'more than 32 params';
  for (const [k, v] of entries) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(k)) return `param name "${k.slice(0, 64)}" is not allowed`;
    if (!['string', 'number', 'boolean'].includes(typeof v) || (typeof v === 'string' && v.length > 4096)) return `param ${k} must be a string (≤ 4096), number or boolean`;
  }
  const contract = BUILTIN_ACTION_CONTRACTS[command];
  if (!contract) return null;
  try {
    checkParams(contract.params, params as ExecParams, builtinMatches);
    return null;
  } catch (err) {
    if (err instanceof BadParams) return `${command}: ${err.message}`;
    throw err;
  }
}

/**
 * Why one literal param of a built-in action is not acceptable, or null (the others may still be
 * templates, filled in later). Unknown names are refused; an operator action's params are not known here.
 */
export function paramProblem(command: string, name: string, value: string | number | boolean | undefined): string | null {
  const contract = BUILTIN_ACTION_CONTRACTS[command];
  if (!contract) return null;
  const spec = contract.params[name];
  if (!spec) return `${command}: unknown parameter "${name}"`;
  if (value === undefined) return null;
  try {
    checkParams({ [name]: spec }, { [name]: value }, builtinMatches);
    return null;
  } catch (err) {
    if (err instanceof BadParams) return `${command}: ${err.message}`;
    throw err;
  }
}

/** The built-in action's required params missing from `names`, as a problem, or null. */
export function missingParams(command: string, names: readonly string[]): string | null {
  const contract = BUILTIN_ACTION_CONTRACTS[command];
  if (!contract) return null;
  const missing = Object.entries(contract.params).filter(([k, p]) => p.required && !names.includes(k)).map(([k]) => k);
  return missing.length ? `${command}: parameter "${missing[0]}" is required` : null;
}

/**
 * Does a suggested action concern this incident? It always runs on the incident's agent; one
 * that names a unit must name the incident's own (a model's answer must not steer a click to
 * another service: "Restart nginx" that stops sshd).
 */
export function concernsIncident(action: { command: string; params: Record<string, unknown> }, incident: UnitSubject): boolean {
  const service = action.params.service;
  if (service === undefined) return true;
  const unit = unitOf(incident);
  return unit !== null && service === unit;
}

export type UnitSubject = { type: string; source: string; agent_id?: string | null; integration_id?: string | null; service?: string | null; labels?: Record<string, string> | null };

/** Label names an alert from another tool names its systemd unit by (node_exporter's systemd collector says `name`). */
const UNIT_LABELS = ['systemd_unit', 'unit', 'name'] as const;

/**
 * The systemd unit an incident is about, if any: an agent's systemd alert's source; for an
 * integration's alert linked to a host, a unit its labels or service name (`….service`).
 */
export function unitOf(i: UnitSubject): string | null {
  if (!i.integration_id) return i.type === 'systemd' ? i.source : null;
  if (!i.agent_id) return null;
  const named = [...UNIT_LABELS.map((k) => i.labels?.[k]), i.service].find((v) => typeof v === 'string' && /^[A-Za-z0-9@:._\\-]{1,240}\.service$/.test(v));
  return named ?? null;
}

/** What an action does, in the hub's words: the command and its parameter values. */
export function describeCommand(command: string, params: Record<string, unknown>): string {
  const values = Object.entries(params).map(([k, v]) => (k === 'service' ? String(v) : `${k}=${String(v)}`));
  return [command, ...values].join(' ');
}
