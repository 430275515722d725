import { SchemaViolation, checkText } from '@opspilot/protocol';

const MAX_DEPTH = 32;

/**
 * The first string (or object key) in a request's body, query or path that no store can keep (a
 * NUL, a lone surrogate), named by where it is; null when all is well. It answers 400 before
 * any handler or SQL sees the text (PostgreSQL refuses a NUL with an error that was a 500).
 */
export function unstorableText(value: unknown, where: string, depth = 0): string | null {
  if (typeof value === 'string') {
    try {
      checkText(value, where);
      return null;
    } catch (err) {
      if (err instanceof SchemaViolation) return err.message;
      throw err;
    }
  }
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return null;
  if (Buffer.isBuffer(value)) return null; // a raw body (intake/): its reader makes its text storable
  for (const [key, v] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    const at = `${where}.${String(key)}`;
    const bad = (typeof key === 'string' ? unstorableText(key, `${where} key`, depth + 1) : null) ?? unstorableText(v, at, depth + 1);
    if (bad) return bad;
  }
  return null;
}

/** A database error: PostgreSQL's five-character SQLSTATE. */
const SQLSTATE = /^[0-9A-Z]{5}$/;
/** PostgreSQL quotes the offending value in double quotes (`invalid input syntax ...: "…"`). */
const QUOTED_VALUE = /"[^"\n]{17,}"/g;

/**
 * An error as the log shows it: its kind, code, message and stack, never the SQL text or
 * parameters a database driver attaches (PGlite's errors carry both: a token's hash was in the
 * log), nor a constraint's `detail` (it quotes the row's values). In a database error's message
 * a long quoted value is cut out too; identifiers (short) stay readable.
 */
export function loggableError(err: unknown): { type: string; message: string; stack: string; [key: string]: unknown } {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err), stack: '' };
  const e = err as Error & { code?: unknown; statusCode?: unknown };
  const fromDatabase = typeof e.code === 'string' && SQLSTATE.test(e.code);
  const scrub = (text: string) => (fromDatabase ? text.replace(QUOTED_VALUE, '"[value]"') : text);
  return {
    type: e.name,
    message: scrub(e.message),
    ...(e.code !== undefined ? { code: e.code } : {}),
    ...(e.statusCode !== undefined ? { statusCode: e.statusCode } : {}),
    stack: scrub(e.stack ?? ''),
  };
}
