import { activeWindow, liveSilences } from '../storage/silences.ts';
import type { Db } from '../storage/database.ts';
import type { MatchSpec, MatchSubject, Silence } from '../storage/tables.ts';

export type { MatchSubject };


/**
 * Does `text` match the whole of `glob`? `*` is any run of characters (slashes too), `?` one
 * character, everything else literal. No regular expression: a glob is an operator's or an
 * exec-scoped token's input, and compiled to a backtracking pattern `*?*?*?…#` took seconds per
 * alert. Two cursors and the last star: at most |glob| × |text| steps (both bounded by the API:
 * 512 × 1024), usually linear.
 */
export function globMatch(glob: string, text: string): boolean {
  const g = [...glob];
  const s = [...text]; // by code point, so `?` is one character, not half a surrogate pair
  let gi = 0;
  let si = 0;
  let star = -1;
  let resume = 0;
  while (si < s.length) {
    if (gi < g.length && (g[gi] === '?' || (g[gi] !== '*' && g[gi] === s[si]))) {
      gi++;
      si++;
    } else if (gi < g.length && g[gi] === '*') {
      star = gi++;
      resume = si;
    } else if (star >= 0) {
      gi = star + 1;
      si = ++resume;
    } else {
      return false;
    }
  }
  while (gi < g.length && g[gi] === '*') gi++;
  return gi === g.length;
}

/** Every field the spec names must match; an empty spec matches everything. */
export function matches(spec: MatchSpec, s: MatchSubject): boolean {
  if (spec.type !== undefined && spec.type !== s.type) return false;
  if (spec.source !== undefined && !globMatch(spec.source, s.source)) return false;
  if (spec.severity !== undefined && spec.severity !== s.severity) return false;
  if (spec.category !== undefined && spec.category !== s.category) return false;
  if (spec.agent_id !== undefined && spec.agent_id !== s.agent_id) return false;
  if (spec.integration_id !== undefined && spec.integration_id !== s.integration_id) return false;
  if (spec.service !== undefined && (s.service === null || !globMatch(spec.service, s.service))) return false;
  for (const [k, v] of Object.entries(spec.labels ?? {})) if (s.labels[k] !== v) return false;
  return true;
}

/** The silence holding this subject at `at`, with the end of its current window. */
export async function silencing(db: Db, subject: MatchSubject, at: Date): Promise<{ silence: Silence; until: Date } | undefined> {
  for (const s of await liveSilences(db, at)) {
    if (!matches(s.match, subject)) continue;
    const w = activeWindow(s, at);
    if (w) return { silence: s, until: w.until };
  }
  return undefined;
}
