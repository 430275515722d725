import { StartupError } from '../errors.ts';
import { readJsonArray } from '../config-file.ts';
import { builtinPattern as v8, operatorPattern, PatternError, type TextPattern } from './patterns.ts';

/**
 * Secrets are removed from anything that leaves the hub (the LLM, Slack). Each pattern replaces
 * the secret with a marker naming its kind and keeps what is needed to read the line
 * ("password=[REDACTED:password]"). Order matters: whole structures (private keys, URLs with
 * credentials, connection strings) before the key=value forms that would cut them in pieces.
 */
export interface RedactionPattern {
  name: string;
  pattern: TextPattern;
  /** Replacement; `$<keep>` is the named group kept (the key and separator), if the pattern has one. */
  replace: string;
}

const SECRET_KEYS =
  '(?:password|passwd|pwd|pass|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|session[_-]?id|credentials?|signing[_-]?secret)';

export const BUILTIN_REDACTIONS: readonly RedactionPattern[] = [
  {
    name: 'private_key',
    pattern: v8(/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g),
    replace: '[REDACTED:private_key]',
  },
  {
    // scheme://user:password@host → keep scheme, user and host
    name: 'url_credentials',
    // Bounded runs: unbounded ones made this quadratic on long output without an '@'.
    pattern: v8(/(?<keep>\b[a-z][a-z0-9+.-]{0,31}:\/\/[^\s:/@]{1,256}:)[^\s@/]{1,256}(?=@)/gi),
    replace: '$<keep>[REDACTED:password]',
  },
  // Starts only where a token run starts (not at each '-' inside one): `\b` there made it quadratic.
  // The boundary is a consumed character (kept), not a lookbehind, so recheck proves it linear with
  // its exact automaton checker rather than by fuzzing, which is not deterministic.
  {
    name: 'jwt',
    pattern: v8(/(?<keep>^|[^A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/g),
    replace: '$<keep>[REDACTED:jwt]',
  },
  { name: 'bearer', pattern: v8(/(?<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi), replace: '$<keep>[REDACTED:token]' },
  { name: 'aws_access_key', pattern: v8(/\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[A-Z0-9]{16}\b/g), replace: '[REDACTED:aws_key]' },
  {
    name: 'aws_secret_key',
    pattern: v8(/(?<keep>aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?)[A-Za-z0-9/+=]{40}/gi),
    replace: '$<keep>[REDACTED:aws_secret]',
  },
  { name: 'opspilot_token', pattern: v8(/\bop[ak]_[A-Za-z0-9_-]{20,}/g), replace: '[REDACTED:token]' },
  {
    // Environment variables: PGPASSWORD=x, AWS_SESSION_TOKEN=x, MYAPP_API_KEY=x (upper case only,
    // so ordinary words ending in "pass" are left alone).
    name: 'env_secret',
    pattern: v8(/(?<keep>\b[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIALS?)=)(?!\[REDACTED)[^\s"',;&]+/g),
    replace: '$<keep>[REDACTED]',
  },
  {
    // "password": "x"  /  'token': 'x'
    name: 'json_secret',
    pattern: v8(new RegExp(`(?<keep>["']${SECRET_KEYS}["']\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|'(?:[^'\\\\]|\\\\.)*')`, 'gi')),
    replace: '$<keep>"[REDACTED]"',
  },
  {
    // password=x, token: x, --password x, PGPASSWORD=x (value up to whitespace, quote, comma, ; or &)
    name: 'key_value_secret',
    pattern: v8(new RegExp(`(?<keep>(?:\\b|_|--)${SECRET_KEYS}\\s*[:=]\\s*|--${SECRET_KEYS}\\s+)(?!\\[REDACTED)[^\\s"',;&]+`, 'gi')),
    replace: '$<keep>[REDACTED]',
  },
];

export interface Redactor {
  /** The text with secrets replaced, and how many were. */
  redact(text: string): { text: string; count: number };
}

/** A redactor with the built-in patterns, then `extra` ones (from config). */
export function createRedactor(extra: readonly RedactionPattern[] = []): Redactor {
  const patterns = [...BUILTIN_REDACTIONS, ...extra];
  return {
    redact(text: string) {
      let count = 0;
      let out = text;
      for (const p of patterns) {
        out = p.pattern.replace(out, (_match, keep) => {
          count++;
          return p.replace.replace('$<keep>', keep);
        });
      }
      return { text: out, count };
    },
  };
}

/**
 * Operator patterns from config: `{name, pattern}`, every match replaced, on the linear-time engine
 * (RE2 syntax; see patterns.ts). A named group `keep` is left in place.
 */
export function redactionFromConfig(name: string, pattern: string): RedactionPattern {
  return { name, pattern: operatorPattern(pattern), replace: `$<keep>[REDACTED:${name}]` };
}

export class RedactionsFileError extends StartupError {
  constructor(file: string, at: string, problem: string) {
    super('OPSPILOT_REDACTIONS_FILE', `redactions file ${file}: ${at}: ${problem}`);
    this.name = 'RedactionsFileError';
  }
}

/**
 * Read `OPSPILOT_REDACTIONS_FILE`: a JSON array of `{name, pattern}`. A pattern that does not
 * compile, or matches the empty string (it would redact between every character), is refused at
 * start with the entry named.
 */
export function loadRedactions(file: string | null): RedactionPattern[] {
  if (!file) return [];
  const raw = readJsonArray(file, '{name, pattern}', (problem) => new RedactionsFileError(file, 'file', problem));
  return raw.map((item: unknown, i) => {
    const at = `[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new RedactionsFileError(file, at, 'must be an object');
    const o = item as Record<string, unknown>;
    for (const key of Object.keys(o)) if (key !== 'name' && key !== 'pattern') throw new RedactionsFileError(file, `${at}.${key}`, 'unknown key');
    if (typeof o.name !== 'string' || !/^[a-z0-9_]{1,32}$/i.test(o.name)) throw new RedactionsFileError(file, `${at}.name`, 'must be 1-32 characters of [A-Za-z0-9_]');
    if (typeof o.pattern !== 'string' || o.pattern.length === 0) throw new RedactionsFileError(file, `${at}.pattern`, 'must be a regular expression string');
    let p: RedactionPattern;
    try {
      p = redactionFromConfig(o.name, o.pattern);
    } catch (err) {
      if (!(err instanceof PatternError)) throw err;
      throw new RedactionsFileError(file, `${at}.pattern`, err.message);
    }
    if (p.pattern.test('')) throw new RedactionsFileError(file, `${at}.pattern`, 'matches the empty string');
    return p;
  });
}
