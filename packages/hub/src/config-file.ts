import { readFileSync } from 'node:fs';

/**
 * An operator's JSON array file (rules, redactions): read and parsed, or `fail` with what is wrong
 * with the file as a whole. Its entries are for the caller to check.
 */
export function readJsonArray(file: string, what: string, fail: (problem: string) => Error): unknown[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw fail((err as Error).message);
  }
  if (!Array.isArray(raw)) throw fail(`must be a JSON array of ${what}`);
  return raw;
}
