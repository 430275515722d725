import { createHmac, randomBytes } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { Db } from '../storage/database.ts';
import { deleteSession, findSession, insertSession } from '../storage/sessions.ts';
import type { AdminAuth, Operator } from './admin.ts';
import { hashToken, hashesEqual } from './tokens.ts';

export const SESSION_COOKIE = 'opspilot_session';
/** A sign-in lasts this long; then the token is asked for again. */
export const SESSION_MS = 12 * 3_600_000;
/** A one-time sign-in link works this long. */
export const LINK_MS = 15 * 60_000;

/**
 * The CSRF token of a session: derived from its id (which only the HttpOnly cookie holds), so
 * the hub keeps nothing more and a page that reloads asks for it again (GET /v1/sessions/current).
 */
export function csrfOf(sessionId: string): string {
  return createHmac('sha256', sessionId).update('opspilot csrf v1').digest('base64url');
}

export function csrfMatches(sessionId: string, given: unknown): boolean {
  return typeof given === 'string' && given.length < 200 && hashesEqual(hashToken(given), hashToken(csrfOf(sessionId)));
}

/**
 * Dashboard sign-ins: an API token (or the admin token) exchanged for a session id held in an
 * HttpOnly, SameSite=Strict cookie. Only the id's hash and the token's hash are stored; each use
 * checks the token again, so a session has its token's scope and ends when the token is deleted.
 */
export class Sessions {
  /** One-time sign-in codes (their hashes) and when each stops working. */
  readonly #links = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly auth: AdminAuth,
    private readonly clock: Clock,
  ) {}

  /** A new session for `token`, or undefined when the token is not one. */
  async create(token: string): Promise<{ id: string; operator: Operator; csrf: string; expiresAt: Date } | undefined> {
    return this.#open(hashToken(token));
  }

  async #open(tokenHash: string): Promise<{ id: string; operator: Operator; csrf: string; expiresAt: Date } | undefined> {
    const operator = await this.auth.verifyHash(tokenHash);
    if (!operator) return undefined;
    const id = randomBytes(32).toString('base64url');
    const at = this.clock.now();
    const expiresAt = new Date(at.getTime() + SESSION_MS);
    await insertSession(this.db, { idHash: hashToken(id), tokenHash, actor: operator.actor, at, expiresAt });
    return { id, operator, csrf: csrfOf(id), expiresAt };
  }

  /**
   * A one-time code that signs in as the admin (the dashboard link `pnpm start` prints): only
   * its hash is kept, in this process's memory, for `ttlMs`; the first use spends it.
   * Undefined when the hub has no admin token it could sign in as.
   */
  issueLink(ttlMs = LINK_MS): string | undefined {
    if (!this.auth.adminHash()) return undefined;
    const now = this.clock.now().getTime();
    for (const [hash, until] of this.#links) if (until <= now) this.#links.delete(hash);
    if (this.#links.size >= 16) this.#links.delete(this.#links.keys().next().value!);
    const code = randomBytes(32).toString('base64url');
    this.#links.set(hashToken(code), now + ttlMs);
    return code;
  }

  /** A session for a one-time code, which is spent; undefined when it is not one (or was used, or ran out). */
  async createFromLink(code: string): Promise<{ id: string; operator: Operator; csrf: string; expiresAt: Date } | undefined> {
    const hash = hashToken(code);
    const until = this.#links.get(hash);
    this.#links.delete(hash);
    const adminHash = this.auth.adminHash();
    if (until === undefined || until <= this.clock.now().getTime() || !adminHash) return undefined;
    return this.#open(adminHash);
  }

  /** Who a session cookie acts as, while it lasts and its token exists. */
  async verify(id: string | undefined): Promise<(Operator & { expiresAt: Date }) | undefined> {
    if (id === undefined || id.length > 100) return undefined;
    const row = await findSession(this.db, hashToken(id), this.clock.now());
    if (!row) return undefined;
    const operator = await this.auth.verifyHash(row.token_hash);
    return operator ? { ...operator, expiresAt: row.expires_at } : undefined;
  }

  revoke(id: string): Promise<boolean> {
    return deleteSession(this.db, hashToken(id));
  }
}
