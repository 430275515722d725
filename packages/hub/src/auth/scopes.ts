import { SCOPES, type Scope } from '../storage/tables.ts';

export { SCOPES, type Scope };

/** Whether `held` covers `needed` (admin ⊃ exec ⊃ read). */
export function allows(held: Scope, needed: Scope): boolean {
  return SCOPES.indexOf(held) >= SCOPES.indexOf(needed);
}

/** The highest of a token's scopes. */
export function highest(scopes: readonly Scope[]): Scope {
  return scopes.reduce<Scope>((a, b) => (SCOPES.indexOf(b) > SCOPES.indexOf(a) ? b : a), 'read');
}
