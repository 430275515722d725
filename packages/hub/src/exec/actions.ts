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
