/** What a token may do; each scope includes the ones before it. */
export const SCOPES = ['read', 'exec', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** Whether `held` covers `needed` (admin ⊃ exec ⊃ read). */
export function allows(held: Scope, needed: Scope): boolean {
  return SCOPES.indexOf(held) >= SCOPES.indexOf(needed);
}

/** The highest of a token's scopes. */
export function highest(scopes: readonly Scope[]): Scope {
  return scopes.reduce<Scope>((a, b) => (SCOPES.indexOf(b) > SCOPES.indexOf(a) ? b : a), 'read');
}
