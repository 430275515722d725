import { UNIT_NAME_PATTERN } from './limits.ts';
import type { ExecParams } from './messages.ts';

/**
 * The built-in exec actions as both sides must agree on them: their names, their parameters and
 * the rules those follow, and whether they only read. The agent adds how each runs (argv,
 * timeout); the hub checks requests, Slack buttons and remediation rules against the same rules,
 * so the two cannot drift. Operator actions (the agent's config) are known to the agent alone.
 */

/** How one parameter is typed and checked. */
export type ParamSpec =
  | { type: 'string'; pattern: string; required?: boolean; default?: string; maxLength?: number }
  | { type: 'integer'; min: number; max: number; required?: boolean; default?: number }
  | { type: 'boolean'; required?: boolean; default?: boolean };

export interface ActionContract {
  params: Readonly<Record<string, ParamSpec>>;
  /** Only reads the host: no confirmation, allowed to anyone who may see the incident. */
  readOnly: boolean;
}

// A unit name also must not start with '-', or systemctl would read it as an option (every string
// parameter is refused when it would).
const UNIT = { type: 'string', pattern: UNIT_NAME_PATTERN.source, required: true } as const satisfies ParamSpec;

export const BUILTIN_ACTION_CONTRACTS: Readonly<Record<string, ActionContract>> = Object.freeze({
  restart_service: { params: { service: UNIT }, readOnly: false },
  start_service: { params: { service: UNIT }, readOnly: false },
  stop_service: { params: { service: UNIT }, readOnly: false },
  service_status: { params: { service: UNIT }, readOnly: true },
  service_logs: { params: { service: UNIT, lines: { type: 'integer', min: 1, max: 1000, default: 100 } }, readOnly: true },
  disk_usage: { params: {}, readOnly: true },
  top_processes: { params: { limit: { type: 'integer', min: 1, max: 100, default: 10 } }, readOnly: true },
});

/** Built-in actions that only read. */
export const READ_ONLY_ACTIONS: ReadonlySet<string> = new Set(Object.entries(BUILTIN_ACTION_CONTRACTS).filter(([, c]) => c.readOnly).map(([name]) => name));

export class BadParams extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadParams';
  }
}

/**
 * Check `given` against `params` and return the values to use (defaults filled in). Throws
 * BadParams with the reason. `matches(pattern, value)` tests a string parameter's pattern: the
 * agent runs operators' patterns on a linear-time engine, which this package does not carry.
 */
export function checkParams(
  params: Readonly<Record<string, ParamSpec>>,
  given: ExecParams,
  matches: (pattern: string, value: string) => boolean,
): Record<string, string | number | boolean> {
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(params, key)) throw new BadParams(`unknown parameter "${key.slice(0, 64)}"`);
  }
  const values: Record<string, string | number | boolean> = {};
  for (const [name, p] of Object.entries(params)) {
    const value = Object.hasOwn(given, name) ? given[name] : p.default;
    if (value === undefined) {
      if (p.required) throw new BadParams(`parameter "${name}" is required`);
      continue;
    }
    if (p.type === 'string') {
      if (typeof value !== 'string') throw new BadParams(`parameter "${name}" must be a string`);
      if (value.length > (p.maxLength ?? 4096)) throw new BadParams(`parameter "${name}" is too long`);
      if (!matches(p.pattern, value)) throw new BadParams(`parameter "${name}" must match ${p.pattern}`);
      if (value.startsWith('-')) throw new BadParams(`parameter "${name}" must not start with "-"`);
    } else if (p.type === 'integer') {
      if (typeof value !== 'number' || !Number.isInteger(value)) throw new BadParams(`parameter "${name}" must be an integer`);
      if (value < p.min || value > p.max) throw new BadParams(`parameter "${name}" must be from ${p.min} to ${p.max}`);
      // As an argument "-5" reads as an option to most programs, whatever the range allows.
      if (value < 0) throw new BadParams(`parameter "${name}" must not be negative (it would read as an option)`);
    } else if (typeof value !== 'boolean') {
      throw new BadParams(`parameter "${name}" must be a boolean`);
    }
    values[name] = value;
  }
  return values;
}
