import type { MatchSpec } from '../storage/tables.ts';

/** What a rule or a silence is matched against. */
export interface MatchSubject {
  type: string;
  source: string;
  severity: string | null;
  category: string | null;
  agent_id: string;
  labels: Record<string, string>;
}

/** `*` any run of characters (slashes too), `?` one character; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's');
}

/** Every field the spec names must match; an empty spec matches everything. */
export function matches(spec: MatchSpec, s: MatchSubject): boolean {
  if (spec.type !== undefined && spec.type !== s.type) return false;
  if (spec.source !== undefined && !globToRegExp(spec.source).test(s.source)) return false;
  if (spec.severity !== undefined && spec.severity !== s.severity) return false;
  if (spec.category !== undefined && spec.category !== s.category) return false;
  if (spec.agent_id !== undefined && spec.agent_id !== s.agent_id) return false;
  for (const [k, v] of Object.entries(spec.labels ?? {})) if (s.labels[k] !== v) return false;
  return true;
}
