import { newId } from '@opspilot/protocol';
import type { Db } from '../storage/database.ts';
import { insertAdminToken, listAdminTokenHashes } from '../storage/admin-tokens.ts';
import { findApiToken, touchApiToken } from '../storage/api-tokens.ts';
import { ADMIN_TOKEN_PREFIX, generateToken, hashToken, hashesEqual } from './tokens.ts';
import { highest, type Scope } from './scopes.ts';

export { SCOPES, allows, highest, type Scope } from './scopes.ts';

export interface Operator {
  /** Who is acting, as recorded in audit columns: `token:<name>`. */
  actor: string;
  /** The highest scope the token holds. */
  scope: Scope;
}


const CACHE_MS = 30_000;

/**
 * Checks REST bearer tokens: the admin tokens (configured or stored, held in memory) and the
 * scoped API tokens of `POST /v1/tokens` (looked up by hash, remembered for 30 s, forgotten at
 * once when deleted on this hub). Only hashes are ever compared or stored.
 */
export class AdminAuth {
  readonly #cache = new Map<string, { operator: Operator | null; until: number }>();

  private constructor(
    private readonly tokens: { name: string; hash: string }[],
    private readonly db: Db | null = null,
  ) {}

  /**
   * With `configured` (OPSPILOT_ADMIN_TOKEN) only that token is accepted. Without it the stored
   * tokens are; when there are none, one is generated, stored hashed and shown once.
   */
  static async load(db: Db, configured: string | null, showOnce: (token: string) => void): Promise<AdminAuth> {
    if (configured !== null) return new AdminAuth([{ name: 'admin', hash: hashToken(configured) }], db);
    let rows = await listAdminTokenHashes(db);
    if (rows.length === 0) {
      const token = generateToken(ADMIN_TOKEN_PREFIX);
      await insertAdminToken(db, { id: newId(), name: 'admin', tokenHash: hashToken(token) });
      showOnce(token);
      rows = await listAdminTokenHashes(db);
    }
    return new AdminAuth(
      rows.map((r) => ({ name: r.name, hash: r.token_hash })),
      db,
    );
  }

  /** The hash of the first admin token (what a one-time sign-in link signs in as). */
  adminHash(): string | undefined {
    return this.tokens[0]?.hash;
  }

  /** The admin tokens only (no database): `GET /metrics`. */
  verifyAdmin(token: string | undefined): Operator | undefined {
    if (token === undefined) return undefined;
    return this.#adminByHash(hashToken(token));
  }

  #adminByHash(hash: string): Operator | undefined {
    let found: string | undefined;
    // Compare against every token so the time taken does not say which one matched.
    for (const t of this.tokens) if (hashesEqual(hash, t.hash)) found = t.name;
    return found === undefined ? undefined : { actor: `token:${found}`, scope: 'admin' };
  }

  async verify(token: string | undefined): Promise<Operator | undefined> {
    if (token === undefined) return undefined;
    return this.verifyHash(hashToken(token));
  }

  /** A token known by its hash only (a session keeps no token, only this). */
  async verifyHash(hash: string): Promise<Operator | undefined> {
    const admin = this.#adminByHash(hash);
    if (admin || this.db === null) return admin;
    const now = Date.now();
    const cached = this.#cache.get(hash);
    if (cached && cached.until > now) return cached.operator ?? undefined;
    // The lookup is by hash, so the time taken says nothing about the token's value.
    const row = await findApiToken(this.db, hash);
    const operator: Operator | null = row ? { actor: `token:${row.name}`, scope: highest(row.scopes) } : null;
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(hash, { operator, until: now + CACHE_MS });
    if (row) void touchApiToken(this.db, row.id, new Date()).catch(() => {});
    return operator ?? undefined;
  }

  /** A token was deleted here: stop accepting it now rather than when the cache runs out. */
  forget(tokenHash: string): void {
    this.#cache.delete(tokenHash);
  }
}
