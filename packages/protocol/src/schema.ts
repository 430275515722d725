/**
 * A small validator for payloads: each check returns a fresh value built only from the keys it
 * knows (so `__proto__` and unknown keys never reach the caller) or throws a SchemaViolation
 * naming the path that failed.
 */
export class SchemaViolation extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path || 'payload'}: ${reason}`);
    this.name = 'SchemaViolation';
  }
}

export type Check<T> = (value: unknown, path: string) => T;
export type Infer<C> = C extends Check<infer T> ? T : never;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * Text that every store and encoder takes: no NUL (PostgreSQL text refuses it) and no lone
 * surrogate (not Unicode; JSON encoders and databases refuse or mangle it). Linear time.
 */
export function checkText(value: string, path: string): void {
  if (value.includes('\0')) throw new SchemaViolation(path, 'contains a NUL character');
  if (!(value as string & { isWellFormed(): boolean }).isWellFormed()) throw new SchemaViolation(path, 'is not well-formed Unicode (a lone surrogate)');
}

export function str(opts: { min?: number; max: number; pattern?: RegExp }): Check<string> {
  const min = opts.min ?? 0;
  return (value, path) => {
    if (typeof value !== 'string') throw new SchemaViolation(path, `expected a string, got ${describe(value)}`);
    checkText(value, path);
    if (value.length < min) throw new SchemaViolation(path, `must be at least ${min} characters`);
    if (value.length > opts.max) throw new SchemaViolation(path, `must be at most ${opts.max} characters`);
    if (opts.pattern && !opts.pattern.test(value)) {
      throw new SchemaViolation(path, `does not match ${opts.pattern.source}`);
    }
    return value;
  };
}

export function num(opts: { min?: number; max?: number; integer?: boolean } = {}): Check<number> {
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new SchemaViolation(path, `expected a number, got ${describe(value)}`);
    }
    if (opts.integer && !Number.isInteger(value)) throw new SchemaViolation(path, 'expected an integer');
    if (opts.min !== undefined && value < opts.min) throw new SchemaViolation(path, `must be >= ${opts.min}`);
    if (opts.max !== undefined && value > opts.max) throw new SchemaViolation(path, `must be <= ${opts.max}`);
    return value;
  };
}

export const int = (opts: { min?: number; max?: number } = {}): Check<number> => num({ ...opts, integer: true });

export const bool: Check<boolean> = (value, path) => {
  if (typeof value !== 'boolean') throw new SchemaViolation(path, `expected a boolean, got ${describe(value)}`);
  return value;
};

export function literal<const T extends string | number>(expected: T): Check<T> {
  return (value, path) => {
    if (value !== expected) throw new SchemaViolation(path, `expected ${JSON.stringify(expected)}`);
    return expected;
  };
}

export function oneOf<const T extends readonly string[]>(values: T): Check<T[number]> {
  return (value, path) => {
    if (typeof value !== 'string' || !values.includes(value)) {
      throw new SchemaViolation(path, `expected one of ${values.join(', ')}`);
    }
    return value as T[number];
  };
}

export function nullable<T>(check: Check<T>): Check<T | null> {
  return (value, path) => (value === null ? null : check(value, path));
}

export function arr<T>(item: Check<T>, opts: { max: number; min?: number }): Check<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) throw new SchemaViolation(path, `expected an array, got ${describe(value)}`);
    if (value.length > opts.max) throw new SchemaViolation(path, `must have at most ${opts.max} items`);
    if (opts.min !== undefined && value.length < opts.min) {
      throw new SchemaViolation(path, `must have at least ${opts.min} items`);
    }
    return value.map((v, i) => item(v, `${path}[${i}]`));
  };
}

/** Any JSON object, kept as sent (it is data, never interpreted). */
export const jsonObject: Check<Record<string, unknown>> = (value, path) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SchemaViolation(path, `expected an object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
};

/**
 * A JSON object of free-form data (an alert's `context`), copied and bounded: at most `maxDepth`
 * levels of nesting, `maxNodes` values in all, keys of at most 256 characters, strings of at
 * most `maxString`, and every string and key well-formed text (see checkText).
 */
export function jsonDocument(opts: { maxDepth: number; maxNodes: number; maxString: number }): Check<Record<string, unknown>> {
  return (value, path) => {
    let nodes = 0;
    const copy = (v: unknown, at: string, depth: number): unknown => {
      if (++nodes > opts.maxNodes) throw new SchemaViolation(path, `must have at most ${opts.maxNodes} values`);
      if (v === null || typeof v === 'boolean') return v;
      if (typeof v === 'number') return num()(v, at);
      if (typeof v === 'string') {
        if (v.length > opts.maxString) throw new SchemaViolation(at, `must be at most ${opts.maxString} characters`);
        checkText(v, at);
        return v;
      }
      if (depth >= opts.maxDepth) throw new SchemaViolation(at, `must nest at most ${opts.maxDepth} levels deep`);
      if (Array.isArray(v)) return v.map((item, i) => copy(item, `${at}[${i}]`, depth + 1));
      if (typeof v !== 'object') throw new SchemaViolation(at, `expected JSON, got ${describe(v)}`);
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(v)) {
        if (key.length > 256) throw new SchemaViolation(at, 'has a key longer than 256 characters');
        checkText(key, `${at}.<key>`);
        // defineProperty: a key named __proto__ stays data, never the copy's prototype.
        Object.defineProperty(out, key, { value: copy(item, `${at}.${key}`, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    };
    return copy(jsonObject(value, path), path, 0) as Record<string, unknown>;
  };
}

type Shape = Record<string, Check<unknown>>;
type Out<R extends Shape, O extends Shape> = { [K in keyof R]: Infer<R[K]> } & { [K in keyof O]?: Infer<O[K]> };

/**
 * An object with `required` and `optional` keys. Unknown keys are dropped, so a newer agent
 * that adds fields still talks to an older hub. An optional key sent as `null` counts as absent.
 */
export function obj<R extends Shape, O extends Shape = {}>(required: R, optional?: O): Check<Out<R, O>> {
  const req = Object.entries(required);
  const opt = Object.entries(optional ?? {});
  return (value, path) => {
    const input = jsonObject(value, path);
    const out: Record<string, unknown> = {};
    for (const [key, check] of req) {
      const sub = path ? `${path}.${key}` : key;
      if (!Object.hasOwn(input, key)) throw new SchemaViolation(sub, 'is required');
      out[key] = check(input[key], sub);
    }
    for (const [key, check] of opt) {
      if (!Object.hasOwn(input, key) || input[key] === null || input[key] === undefined) continue;
      out[key] = check(input[key], path ? `${path}.${key}` : key);
    }
    return out as Out<R, O>;
  };
}

/** An object used as a map: at most `max` keys, each checked by `key`, each value by `value`. */
export function record<T>(key: Check<string>, value: Check<T>, opts: { max: number }): Check<Record<string, T>> {
  return (input, path) => {
    const o = jsonObject(input, path);
    const keys = Object.keys(o);
    if (keys.length > opts.max) throw new SchemaViolation(path, `must have at most ${opts.max} keys`);
    const out: Record<string, T> = {};
    for (const k of keys) {
      key(k, `${path}.<key>`);
      Object.defineProperty(out, k, { value: value(o[k], `${path}.${k}`), enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
}

/** A fixed-length array, each position with its own check. */
export function pair<A, B>(a: Check<A>, b: Check<B>): Check<[A, B]> {
  return (value, path) => {
    if (!Array.isArray(value) || value.length !== 2) throw new SchemaViolation(path, 'expected an array of two');
    return [a(value[0], `${path}[0]`), b(value[1], `${path}[1]`)];
  };
}
