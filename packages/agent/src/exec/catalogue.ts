import { UNIT_NAME_PATTERN, type ExecParams } from '@opspilot/protocol';
import { cachedPattern } from '../pattern.ts';

/** How one parameter is typed and checked. */
export type ParamSpec =
  | { type: 'string'; pattern: string; required?: boolean; default?: string; maxLength?: number }
  | { type: 'integer'; min: number; max: number; required?: boolean; default?: number }
  | { type: 'boolean'; required?: boolean; default?: boolean };

/**
 * An action: a fixed argv where an element that is exactly `{name}` is replaced by the value of
 * parameter `name`, as one whole argument. Nothing is ever parsed by a shell or split.
 */
export interface ActionSpec {
  argv: string[];
  params: Record<string, ParamSpec>;
  timeout_ms: number;
  /** Keep only the first N lines of stdout (after the header line when `header` is set). */
  limitLinesParam?: string;
  /** Exit codes that are answers, not failures (default: 0 only). */
  okExitCodes?: readonly number[];
}

export class BadParams extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadParams';
  }
}

// A unit name also must not start with '-', or systemctl would read it as an option.
const UNIT = { type: 'string', pattern: UNIT_NAME_PATTERN.source, required: true } as const satisfies ParamSpec;

/** The built-in catalogue. Operators add their own actions in the config file. */
export const BUILTIN_ACTIONS: Readonly<Record<string, ActionSpec>> = Object.freeze({
  restart_service: { argv: ['systemctl', 'restart', '{service}'], params: { service: UNIT }, timeout_ms: 60_000 },
  start_service: { argv: ['systemctl', 'start', '{service}'], params: { service: UNIT }, timeout_ms: 60_000 },
  stop_service: { argv: ['systemctl', 'stop', '{service}'], params: { service: UNIT }, timeout_ms: 60_000 },
  // systemctl status exits 1-3 for a unit that is not running (LSB): an answer about the unit.
  // 4 (no such unit) is a failure.
  service_status: { argv: ['systemctl', 'status', '--no-pager', '--lines=0', '{service}'], params: { service: UNIT }, timeout_ms: 15_000, okExitCodes: [0, 1, 2, 3] },
  service_logs: {
    argv: ['journalctl', '--no-pager', '--output=short-iso', '--unit', '{service}', '--lines', '{lines}'],
    params: { service: UNIT, lines: { type: 'integer', min: 1, max: 1000, default: 100 } },
    timeout_ms: 15_000,
  },
  disk_usage: { argv: ['df', '-P', '-k'], params: {}, timeout_ms: 15_000 },
  top_processes: {
    argv: ['ps', '-eo', 'pid,user,pcpu,pmem,rss,etime,comm', '--sort=-pcpu'],
    params: { limit: { type: 'integer', min: 1, max: 100, default: 10 } },
    timeout_ms: 15_000,
    limitLinesParam: 'limit',
  },
});

const PLACEHOLDER = /^\{([A-Za-z0-9_]+)\}$/;

/** Check `params` against `spec` and build the argv. Throws BadParams with the reason. */
export function buildArgv(spec: ActionSpec, params: ExecParams): { argv: string[]; values: Record<string, string | number | boolean> } {
  for (const key of Object.keys(params)) {
    if (!Object.hasOwn(spec.params, key)) throw new BadParams(`unknown parameter "${key}"`);
  }
  const values: Record<string, string | number | boolean> = {};
  for (const [name, p] of Object.entries(spec.params)) {
    let value = Object.hasOwn(params, name) ? params[name] : p.default;
    if (value === undefined) {
      if (p.required) throw new BadParams(`parameter "${name}" is required`);
      continue;
    }
    if (p.type === 'string') {
      if (typeof value !== 'string') throw new BadParams(`parameter "${name}" must be a string`);
      if (value.length > (p.maxLength ?? 4096)) throw new BadParams(`parameter "${name}" is too long`);
      if (!cachedPattern(p.pattern).test(value)) throw new BadParams(`parameter "${name}" must match ${p.pattern}`);
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
  const argv = spec.argv.map((arg) => {
    const match = PLACEHOLDER.exec(arg);
    if (!match) return arg;
    const value = values[match[1]!];
    if (value === undefined) throw new BadParams(`parameter "${match[1]}" is required`);
    return String(value);
  });
  return { argv, values };
}
