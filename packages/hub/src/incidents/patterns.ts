import { RE2JS } from 're2js';

/**
 * A pattern that scans untrusted text (logs, messages, exec output). Two kinds:
 *
 * - the hub's own patterns are V8 regular expressions, fast on the common case and proven free of
 *   catastrophic backtracking by a static checker in the tests (`test/redos.test.ts`);
 * - patterns an operator writes (classification rules, redactions) run on RE2JS, a linear-time
 *   engine: no lookaround and no backreferences, but no input can make it backtrack. An operator's
 *   `(a+)+$` costs the same as `a+`.
 */
export interface TextPattern {
  /** `v8`: the hub's own, checked statically; `re2`: an operator's, linear by construction. */
  readonly engine: 'v8' | 're2';
  readonly source: string;
  readonly flags: string;
  test(text: string): boolean;
  /**
   * Every non-overlapping match replaced by `replacer(match, keep)`, where `keep` is the named
   * group `keep` if the pattern has one (what a redaction leaves in place), else ''.
   */
  replace(text: string, replacer: (match: string, keep: string) => string): string;
}

/** The hub's own pattern; it must have the `g` flag if it is used to replace. */
export function builtinPattern(re: RegExp): TextPattern {
  return {
    engine: 'v8',
    source: re.source,
    flags: re.flags,
    test: (text) => {
      re.lastIndex = 0;
      return re.test(text);
    },
    replace: (text, replacer) =>
      text.replace(re, (...args) => {
        const groups = args[args.length - 1] as Record<string, string | undefined> | string;
        return replacer(args[0] as string, (typeof groups === 'object' && groups?.keep) || '');
      }),
  };
}

/** Largest compiled program an operator pattern may have (RE2's "program size"; `a{1000}` is ~1000). */
export const MAX_PROGRAM_SIZE = 20_000;
export const MAX_PATTERN_LENGTH = 4096;

export class PatternError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatternError';
  }
}

/**
 * An operator's pattern, compiled by the linear-time engine. Throws PatternError naming the problem;
 * RE2 syntax is the common Perl syntax less lookaround (`(?=`, `(?!`, `(?<=`) and backreferences.
 */
export function operatorPattern(source: string, opts: { caseInsensitive?: boolean } = {}): TextPattern {
  if (source.length > MAX_PATTERN_LENGTH) throw new PatternError(`is longer than ${MAX_PATTERN_LENGTH} characters`);
  let re: RE2JS;
  try {
    re = RE2JS.compile(source, opts.caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (err) {
    const message = (err as Error).message;
    const hint = /Perl syntax|escape sequence|named capture/.test(message) ? ' (patterns run on a linear-time engine, RE2: no lookaround, no backreferences)' : '';
    throw new PatternError(`${message}${hint}`);
  }
  if (re.programSize() > MAX_PROGRAM_SIZE) throw new PatternError(`is too large once compiled (${re.programSize()} instructions, at most ${MAX_PROGRAM_SIZE})`);
  const keepGroup = re.namedGroups().keep;
  return {
    engine: 're2',
    source,
    flags: opts.caseInsensitive ? 'i' : '',
    test: (text) => re.test(text),
    replace(text, replacer) {
      const m = re.matcher(text);
      let out = '';
      let from = 0;
      while (m.find()) {
        const start = m.start();
        const end = m.end();
        if (end === start) continue; // an empty match replaces nothing
        const keep = keepGroup === undefined ? '' : (m.group(keepGroup) ?? '');
        out += text.slice(from, start) + replacer(text.slice(start, end), keep);
        from = end;
      }
      return from === 0 ? text : out + text.slice(from);
    },
  };
}
