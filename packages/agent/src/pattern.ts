import { RE2JS } from 're2js';

/**
 * Patterns an operator writes into the agent's config (log watches, parameters of their own
 * actions) run on RE2JS, a linear-time engine: a log line or a parameter value cannot make one
 * backtrack for seconds, as `(a+)+$` would on V8's engine. RE2 syntax is the common Perl syntax
 * without lookaround or backreferences.
 */
export interface LinearPattern {
  readonly source: string;
  test(text: string): boolean;
}

export class PatternSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatternSyntaxError';
  }
}

const MAX_PROGRAM_SIZE = 20_000;

export function linearPattern(source: string, opts: { caseInsensitive?: boolean } = {}): LinearPattern {
  let re: RE2JS;
  try {
    re = RE2JS.compile(source, opts.caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (err) {
    throw new PatternSyntaxError(`${(err as Error).message} (RE2 syntax: no lookaround, no backreferences)`);
  }
  if (re.programSize() > MAX_PROGRAM_SIZE) throw new PatternSyntaxError(`is too large once compiled (${re.programSize()} instructions, at most ${MAX_PROGRAM_SIZE})`);
  return { source, test: (text) => re.test(text) };
}

const cache = new Map<string, LinearPattern>();

/** The compiled pattern for `source`, compiled once (catalogue patterns are a handful of fixed strings). */
export function cachedPattern(source: string): LinearPattern {
  let p = cache.get(source);
  if (!p) {
    p = linearPattern(source);
    if (cache.size < 1024) cache.set(source, p);
  }
  return p;
}
