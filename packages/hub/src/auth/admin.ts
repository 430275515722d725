import { newId } from '@opspilot/protocol';
import type { Db } from '../storage/database.ts';
import { insertAdminToken, listAdminTokenHashes } from '../storage/admin-tokens.ts';
import { ADMIN_TOKEN_PREFIX, generateToken, hashToken, hashesEqual } from './tokens.ts';

export interface Operator {
  /** Who is acting, as recorded in audit columns: `token:<name>`. */
  actor: string;
}

/** Checks REST bearer tokens against the configured or stored admin tokens (hashes only). */
export class AdminAuth {
  private constructor(private readonly tokens: { name: string; hash: string }[]) {}

  /**
   * With `configured` (OPSPILOT_ADMIN_TOKEN) only that token is accepted. Without it the stored
   * tokens are; when there are none, one is generated, stored hashed and shown once.
   */
  static async load(db: Db, configured: string | null, showOnce: (token: string) => void): Promise<AdminAuth> {
    if (configured !== null) return new AdminAuth([{ name: 'admin', hash: hashToken(configured) }]);
    let rows = await listAdminTokenHashes(db);
    if (rows.length === 0) {
      const token = generateToken(ADMIN_TOKEN_PREFIX);
      await insertAdminToken(db, { id: newId(), name: 'admin', tokenHash: hashToken(token) });
      showOnce(token);
      rows = await listAdminTokenHashes(db);
    }
    return new AdminAuth(rows.map((r) => ({ name: r.name, hash: r.token_hash })));
  }

  verify(token: string | undefined): Operator | undefined {
    if (token === undefined) return undefined;
    const hash = hashToken(token);
    let found: string | undefined;
    // Compare against every token so the time taken does not say which one matched.
    for (const t of this.tokens) if (hashesEqual(hash, t.hash)) found = t.name;
    return found === undefined ? undefined : { actor: `token:${found}` };
  }
}
