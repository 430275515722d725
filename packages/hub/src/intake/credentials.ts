import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { bearerToken, hashToken, hashesEqual } from '../auth/tokens.ts';
import type { IntegrationKind } from '../storage/tables.ts';

/** Prefix of the secrets OpsPilot makes for integrations (recognisable when leaked). */
export const INTEGRATION_SECRET_PREFIX = 'opi_';
/** A signed request older or newer than this is refused (a replay). */
export const SIGNATURE_WINDOW_S = 300;

/** Where a sender signs with the secret: it must be kept in clear, not only hashed. */
export const SIGNING_KINDS: ReadonlySet<IntegrationKind> = new Set(['sentry', 'grafana']);

/**
 * A new secret for an integration: 256 bits. For Events API v2 senders it is the routing key,
 * which tools expect to be 32 characters: 32 hex digits (128 bits).
 */
export function generateIntegrationSecret(kind: IntegrationKind): string {
  return kind === 'pagerduty' ? randomBytes(16).toString('hex') : INTEGRATION_SECRET_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * The secret a request presents in its Authorization header: a bearer token, or a basic-auth
 * password (Alertmanager's and Grafana's `basic_auth`; the user name is not checked). Undefined
 * when there is none.
 */
export function presentedSecret(authorization: string | undefined): string | undefined {
  const bearer = bearerToken(authorization);
  if (bearer) return bearer;
  const basic = /^Basic[ \t]+([A-Za-z0-9+/=]{1,1024})[ \t]*$/i.exec(authorization ?? '');
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon >= 0 ? decoded.slice(colon + 1) : '';
  return password.length > 0 ? password : undefined;
}

/** Does the presented secret match the stored hash? Constant time over the hashes. */
export function secretMatches(presented: string | undefined, secretHash: string): boolean {
  return presented !== undefined && hashesEqual(hashToken(presented), secretHash);
}

/** hex(HMAC-SHA256(secret, text)) equals the signature given, compared in constant time. */
export function hmacMatches(secret: string, signed: Buffer, signature: string | undefined): boolean {
  if (typeof signature !== 'string' || !/^[0-9a-f]{64}$/i.test(signature.trim())) return false;
  const expected = createHmac('sha256', secret).update(signed).digest();
  return timingSafeEqual(expected, Buffer.from(signature.trim(), 'hex'));
}

/** A Unix-seconds timestamp header within the window of `nowMs`; false when absent or malformed. */
export function fresh(timestamp: string | undefined, nowMs: number): boolean {
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) return false;
  return Math.abs(nowMs / 1000 - Number(timestamp)) <= SIGNATURE_WINDOW_S;
}
