import { BadParams, BUILTIN_ACTION_CONTRACTS, checkParams, type ExecParams, type ParamSpec } from '@opspilot/protocol';
import { cachedPattern } from '../pattern.ts';

export { BadParams, type ParamSpec };

/**
 * An action: a fixed argv where an element that is exactly `{name}` is replaced by the value of
 * parameter `name`, as one whole argument. Nothing is ever parsed by a shell or split.
 */
export interface ActionSpec {
  argv: string[];
  params: Readonly<Record<string, ParamSpec>>;
  timeout_ms: number;
  /** Keep only the first N lines of stdout (after the header line when `header` is set). */
  limitLinesParam?: string;
  /** Exit codes that are answers, not failures (default: 0 only). */
  okExitCodes?: readonly number[];
}

/** How each built-in action runs here; its name and parameters are the protocol's contract. */
const HOW: Readonly<Record<string, Omit<ActionSpec, 'params'>>> = {
  restart_service: { argv: ['systemctl', 'restart', '{service}'], timeout_ms: 60_000 },
  start_service: { argv: ['systemctl', 'start', '{service}'], timeout_ms: 60_000 },
  stop_service: { argv: ['systemctl', 'stop', '{service}'], timeout_ms: 60_000 },
  // systemctl status exits 1-3 for a unit that is not running (LSB): an answer about the unit.
  // 4 (no such unit) is a failure.
  service_status: { argv: ['systemctl', 'status', '--no-pager', '--lines=0', '{service}'], timeout_ms: 15_000, okExitCodes: [0, 1, 2, 3] },
  service_logs: { argv: ['journalctl', '--no-pager', '--output=short-iso', '--unit', '{service}', '--lines', '{lines}'], timeout_ms: 15_000 },
  disk_usage: { argv: ['df', '-P', '-k'], timeout_ms: 15_000 },
  top_processes: { argv: ['ps', '-eo', 'pid,user,pcpu,pmem,rss,etime,comm', '--sort=-pcpu'], timeout_ms: 15_000, limitLinesParam: 'limit' },
};

/** The built-in catalogue. Operators add their own actions in the config file. */
export const BUILTIN_ACTIONS: Readonly<Record<string, ActionSpec>> = Object.freeze(
  Object.fromEntries(
    Object.entries(BUILTIN_ACTION_CONTRACTS).map(([name, contract]) => {
      const how = HOW[name];
      if (!how) throw new Error(`the agent does not know how to run the built-in action ${name}`);
      return [name, { ...how, params: contract.params }];
    }),
  ),
);

const PLACEHOLDER = /^\{([A-Za-z0-9_]+)\}$/;

/** Check `params` against `spec` and build the argv. Throws BadParams with the reason. */
export function buildArgv(spec: ActionSpec, params: ExecParams): { argv: string[]; values: Record<string, string | number | boolean> } {
  const values = checkParams(spec.params, params, (pattern, value) => cachedPattern(pattern).test(value));
  const argv = spec.argv.map((arg) => {
    const match = PLACEHOLDER.exec(arg);
    if (!match) return arg;
    const value = values[match[1]!];
    if (value === undefined) throw new BadParams(`parameter "${match[1]}" is required`);
    return String(value);
  });
  return { argv, values };
}
