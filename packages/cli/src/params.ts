import { BUILTIN_ACTION_CONTRACTS, BadParams, checkParams } from '@opspilot/protocol';
import { UsageError } from './config.ts';
import { clip } from './format.ts';

/** `key=value` (typed by the built-in catalogue: integer, boolean, string) or `key:=json-scalar`. */
export function parseParams(action: string, pairs: string[]): Record<string, string | number | boolean> {
  const contract = BUILTIN_ACTION_CONTRACTS[action];
  const params: Record<string, string | number | boolean> = {};
  for (const pair of pairs) {
    const m = /^([A-Za-z0-9_.-]{1,64})(:?=)([\s\S]*)$/.exec(pair);
    if (!m) throw new UsageError(`"${clip(pair, 40)}" is not key=value`);
    const [, key, op, raw] = m as unknown as [string, string, string, string];
    if (op === ':=') {
      let v: unknown;
      try {
        v = JSON.parse(raw);
      } catch {
        throw new UsageError(`${key}:= takes a JSON number, true or false, or a quoted string`);
      }
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new UsageError(`${key}:= takes a number, a boolean or a string`);
      params[key] = v;
      continue;
    }
    const spec = contract?.params[key];
    if (contract && !spec) throw new UsageError(`${action} has no parameter "${key}" (it takes: ${Object.keys(contract.params).join(', ') || 'none'})`);
    if (spec?.type === 'integer') {
      if (!/^-?[0-9]{1,15}$/.test(raw)) throw new UsageError(`${key} is an integer (${spec.min} to ${spec.max})`);
      params[key] = Number(raw);
    } else if (spec?.type === 'boolean') {
      if (raw !== 'true' && raw !== 'false') throw new UsageError(`${key} is true or false`);
      params[key] = raw === 'true';
    } else {
      params[key] = raw;
    }
  }
  // A built-in action's rules are the protocol's: a mistake is said here, before the hub and the
  // agent refuse it. (Its patterns are the catalogue's own, fixed and simple.)
  if (contract) {
    try {
      checkParams(contract.params, params, (pattern, value) => new RegExp(pattern).test(value));
    } catch (err) {
      if (err instanceof BadParams) throw new UsageError(`${action}: ${err.message}`);
      throw err;
    }
  }
  return params;
}
