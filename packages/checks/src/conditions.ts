/**
 * Conditions on a check's result, in the small language users know from Gatus:
 * `[STATUS] == 200`, `[RESPONSE_TIME] < 300`, `[BODY].status == "ok"`,
 * `[CERTIFICATE_EXPIRATION] > 14d`, `[CONNECTED] == true`, `len([BODY].items) > 0`.
 * A condition is `operand operator operand`; operands are placeholders (a `[BODY]` may be
 * followed by a path: `.field`, `[0]`), `len(…)`, numbers, durations (`300ms`, `30s`, `5m`, `48h`,
 * `14d`), strings (`"ok"`, or a bare word), `true`, `false`. Parsed when a monitor is saved (a bad
 * one is refused with what is wrong and where), evaluated by walking the parsed form: never
 * `eval`, no regular expression over the condition's text beyond its tokens, all bounded.
 */

export const PLACEHOLDERS = ['STATUS', 'RESPONSE_TIME', 'BODY', 'CERTIFICATE_EXPIRATION', 'CONNECTED', 'IP', 'DNS_RCODE'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export const OPERATORS = ['==', '!=', '<=', '>=', '<', '>'] as const;
export type Operator = (typeof OPERATORS)[number];

export const MAX_CONDITION_LENGTH = 256;
export const MAX_CONDITIONS = 20;
const MAX_PATH = 16;

export type Operand =
  | { kind: 'placeholder'; name: Placeholder; path: (string | number)[] }
  | { kind: 'len'; of: Operand }
  | { kind: 'number'; value: number; duration: boolean }
  | { kind: 'string'; value: string }
  | { kind: 'bool'; value: boolean };

export interface Condition {
  text: string;
  left: Operand;
  op: Operator;
  right: Operand;
}

export class ConditionError extends Error {
  constructor(
    readonly condition: string,
    readonly at: number,
    reason: string,
  ) {
    super(`condition "${condition}": ${reason} (at character ${at + 1})`);
    this.name = 'ConditionError';
  }
}

const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse one condition; throws ConditionError naming what is wrong and where. */
export function parseCondition(text: string): Condition {
  if (typeof text !== 'string' || text.trim().length === 0) throw new ConditionError(String(text), 0, 'empty');
  if (text.length > MAX_CONDITION_LENGTH) throw new ConditionError(text.slice(0, 40) + '…', MAX_CONDITION_LENGTH, `longer than ${MAX_CONDITION_LENGTH} characters`);
  let i = 0;
  const fail = (reason: string): never => {
    throw new ConditionError(text, i, reason);
  };
  const space = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
  };

  const operand = (depth: number): Operand => {
    space();
    if (i >= text.length) fail('an operand is missing');
    const c = text[i]!;
    if (c === '[') {
      const end = text.indexOf(']', i);
      if (end < 0) fail('a placeholder is not closed with ]');
      const name = text.slice(i + 1, end);
      if (!(PLACEHOLDERS as readonly string[]).includes(name)) fail(`[${name}] is not a placeholder (${PLACEHOLDERS.map((p) => `[${p}]`).join(', ')})`);
      i = end + 1;
      const path: (string | number)[] = [];
      while (i < text.length && (text[i] === '.' || text[i] === '[')) {
        if (name !== 'BODY') fail(`only [BODY] takes a path`);
        if (path.length >= MAX_PATH) fail(`a path of more than ${MAX_PATH} steps`);
        if (text[i] === '.') {
          i++;
          const start = i;
          while (i < text.length && /[A-Za-z0-9_-]/.test(text[i]!)) i++;
          if (i === start) fail('a field name is missing after "."');
          path.push(text.slice(start, i));
        } else {
          const end = text.indexOf(']', i);
          const index = text.slice(i + 1, end < 0 ? undefined : end);
          if (end < 0 || !/^\d{1,6}$/.test(index)) fail('an index is [0], [1], …');
          path.push(Number(index));
          i = end + 1;
        }
      }
      return { kind: 'placeholder', name: name as Placeholder, path };
    }
    if (text.startsWith('len(', i)) {
      if (depth > 0) fail('len() inside len()');
      i += 4;
      const of = operand(depth + 1);
      space();
      if (text[i] !== ')') fail('len( is not closed with )');
      i++;
      if (of.kind !== 'placeholder') fail('len() takes a placeholder');
      return { kind: 'len', of };
    }
    if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) fail('a string is not closed with "');
      const value = text.slice(i + 1, end);
      i = end + 1;
      return { kind: 'string', value };
    }
    const start = i;
    while (i < text.length && !/[\s=!<>()]/.test(text[i]!)) i++;
    const word = text.slice(start, i);
    if (word === 'true' || word === 'false') return { kind: 'bool', value: word === 'true' };
    const num = /^(-?\d{1,15}(?:\.\d{1,9})?)(ms|s|m|h|d)?$/.exec(word);
    if (num) return { kind: 'number', value: Number(num[1]) * (num[2] ? DURATION_MS[num[2]]! : 1), duration: num[2] !== undefined };
    if (word.length === 0) fail('an operand is missing');
    return { kind: 'string', value: word };
  };

  const left = operand(0);
  space();
  const op = OPERATORS.find((o) => text.startsWith(o, i));
  if (!op) fail(`an operator is missing (${OPERATORS.join(' ')})`);
  i += op!.length;
  const right = operand(0);
  space();
  if (i < text.length) fail(`unexpected "${text.slice(i, i + 10)}"`);
  if (left.kind !== 'placeholder' && left.kind !== 'len' && right.kind !== 'placeholder' && right.kind !== 'len') {
    i = 0;
    fail('compares two constants: name a placeholder such as [STATUS]');
  }
  if ((op === '<' || op === '>' || op === '<=' || op === '>=') && (left.kind === 'string' || right.kind === 'string' || left.kind === 'bool' || right.kind === 'bool')) {
    i = 0;
    fail(`${op} compares numbers and durations`);
  }
  return { text, left, op: op!, right };
}

/** Parse a monitor's conditions; throws ConditionError for the first bad one. */
export function parseConditions(texts: readonly string[]): Condition[] {
  if (texts.length > MAX_CONDITIONS) throw new ConditionError(String(texts[MAX_CONDITIONS]), 0, `more than ${MAX_CONDITIONS} conditions`);
  return texts.map(parseCondition);
}

/** What a check found, as conditions see it. */
export interface Observed {
  status?: number;
  responseMs?: number;
  /** The body as text (bounded by the probe); parsed as JSON only when a path needs it. */
  body?: string;
  /** Milliseconds until the certificate expires. */
  certificateExpirationMs?: number;
  connected?: boolean;
  ip?: string;
  dnsRcode?: string;
}

type Value = number | string | boolean | null | undefined | unknown[] | Record<string, unknown>;

/** Does every condition hold? The ones that do not, each with the value found. */
export function evaluate(conditions: readonly Condition[], seen: Observed): { ok: boolean; failures: string[] } {
  let json: { value: unknown } | null | undefined;
  const bodyJson = () => {
    if (json === undefined) {
      try {
        json = { value: JSON.parse(seen.body ?? '') };
      } catch {
        json = null;
      }
    }
    return json;
  };
  const value = (o: Operand): Value => {
    switch (o.kind) {
      case 'number':
      case 'string':
      case 'bool':
        return o.value;
      case 'len': {
        const v = value(o.of);
        return typeof v === 'string' || Array.isArray(v) ? v.length : isRecord(v) ? Object.keys(v).length : undefined;
      }
      case 'placeholder':
        switch (o.name) {
          case 'STATUS':
            return seen.status;
          case 'RESPONSE_TIME':
            return seen.responseMs;
          case 'CERTIFICATE_EXPIRATION':
            return seen.certificateExpirationMs;
          case 'CONNECTED':
            return seen.connected;
          case 'IP':
            return seen.ip;
          case 'DNS_RCODE':
            return seen.dnsRcode;
          case 'BODY': {
            if (o.path.length === 0) return seen.body;
            const parsed = bodyJson();
            if (!parsed) return undefined;
            let v: unknown = parsed.value;
            for (const step of o.path) {
              if (typeof step === 'number' ? Array.isArray(v) : isRecord(v)) v = (v as Record<string | number, unknown>)[step];
              else return undefined;
            }
            return v as Value;
          }
        }
    }
  };
  const failures: string[] = [];
  for (const c of conditions) {
    const l = value(c.left);
    const r = value(c.right);
    if (!holds(l, c.op, r)) failures.push(`${c.text} (found ${show(c.left.kind === 'number' || c.left.kind === 'string' || c.left.kind === 'bool' ? r : l)})`);
  }
  return { ok: failures.length === 0, failures };
}

function holds(l: Value, op: Operator, r: Value): boolean {
  if (l === undefined || r === undefined) return op === '!=' && l !== r;
  if (op === '==' || op === '!=') {
    const same = typeof l === 'number' && typeof r === 'number' ? l === r : typeof l === 'object' || typeof r === 'object' ? boundedJson(l) === boundedJson(r) : String(l) === String(r);
    return op === '==' ? same : !same;
  }
  const a = typeof l === 'number' ? l : typeof l === 'string' && /^-?\d+(\.\d+)?$/.test(l) ? Number(l) : NaN;
  const b = typeof r === 'number' ? r : typeof r === 'string' && /^-?\d+(\.\d+)?$/.test(r) ? Number(r) : NaN;
  if (Number.isNaN(a) || Number.isNaN(b)) return false;
  return op === '<' ? a < b : op === '<=' ? a <= b : op === '>' ? a > b : a >= b;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: Value): string {
  if (v === undefined) return 'nothing';
  const s = boundedJson(v);
  return s.length <= 80 ? s : `${s.slice(0, 79)}…`;
}

/** JSON text of a value from a body, at most 32 levels deep and ~4 KiB (a hostile body can nest thousands). */
function boundedJson(v: unknown, depth = 0, budget = { left: 4096 }): string {
  if (budget.left <= 0) return '…';
  if (v === null || typeof v !== 'object') {
    const s = JSON.stringify(v) ?? String(v);
    budget.left -= s.length;
    return s;
  }
  if (depth >= 32) return '…';
  const parts = Array.isArray(v)
    ? v.slice(0, 100).map((x) => boundedJson(x, depth + 1, budget))
    : Object.entries(v).slice(0, 100).map(([k, x]) => `${JSON.stringify(k)}:${boundedJson(x, depth + 1, budget)}`);
  budget.left -= 2;
  return Array.isArray(v) ? `[${parts.join(',')}]` : `{${parts.join(',')}}`;
}
