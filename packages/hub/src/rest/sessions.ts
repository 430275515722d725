import { Type, type Static } from '@sinclair/typebox';
import type { App } from '../http.ts';
import { HubError } from '../errors.ts';
import { SESSION_COOKIE, SESSION_MS, csrfOf, type Sessions } from '../auth/sessions.ts';
import { errorResponses } from './schemas.ts';

export const SessionView = Type.Object({
  actor: Type.String({ description: 'who the session acts as: token:<name>' }),
  scope: Type.String({ description: "the token's scope: read, exec or admin" }),
  csrf_token: Type.String({ description: 'send as X-CSRF-Token with every change made with the session' }),
  expires_at: Type.String({ format: 'date-time' }),
});

/**
 * Sign-in for the dashboard: `POST /v1/sessions {token}` sets an HttpOnly, SameSite=Strict
 * session cookie (Secure over https) and answers the CSRF token every change must carry;
 * `GET /v1/sessions/current` answers it again (a reloaded page); `DELETE` signs out (the session
 * is revoked, the cookie cleared). The session has its token's scope.
 */
export function sessionRoutes(app: App, { sessions }: { sessions: Sessions }): void {
  const tags = ['sessions'];
  const cookie = { httpOnly: true, sameSite: 'strict' as const, path: '/', secure: 'auto' as const };

  app.post(
    '/v1/sessions',
    { compress: false,
      config: { public: true },
      schema: {
        tags,
        summary: 'Sign in: exchange an API token, or a one-time sign-in code, for a session cookie',
        description: 'A one-time code is what the link `pnpm start` prints carries (`/#signin=<code>`): it signs in as the admin, once, within 15 minutes.',
        security: [],
        body: Type.Union([
          Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
          Type.Object({ code: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
        ]),
        response: { 201: SessionView, ...errorResponses },
      },
    },
    async (req, reply) => {
      const made = 'token' in req.body ? await sessions.create(req.body.token) : await sessions.createFromLink(req.body.code);
      if (!made) throw new HubError('HUB_UNAUTHORIZED', 'token' in req.body ? 'that is not a valid token' : 'that sign-in link is not valid: it was used, ran out (15 minutes) or belongs to another start of the hub');
      req.log.info({ actor: made.operator.actor }, 'signed in');
      return reply
        .setCookie(SESSION_COOKIE, made.id, { ...cookie, maxAge: SESSION_MS / 1000 })
        .code(201)
        .send({ actor: made.operator.actor, scope: made.operator.scope, csrf_token: made.csrf, expires_at: made.expiresAt.toISOString() });
    },
  );

  app.get('/v1/sessions/current', { compress: false, schema: { tags, summary: 'The session this cookie holds', response: { 200: SessionView, ...errorResponses } } }, async (req) => {
    if (!req.sessionId) throw new HubError('HUB_NO_SESSION', 'no session: this request was made with a bearer token');
    const s = await sessions.verify(req.sessionId);
    if (!s) throw new HubError('HUB_UNAUTHORIZED', 'the session has ended');
    return { actor: s.actor, scope: s.scope, csrf_token: csrfOf(req.sessionId), expires_at: s.expiresAt.toISOString() };
  });

  app.delete(
    '/v1/sessions/current',
    { config: { scope: 'read' }, schema: { tags, summary: 'Sign out: the session is revoked and its cookie cleared', response: { 204: Type.Null(), ...errorResponses } } },
    async (req, reply) => {
      if (!req.sessionId) throw new HubError('HUB_NO_SESSION', 'no session: this request was made with a bearer token');
      await sessions.revoke(req.sessionId);
      return reply.clearCookie(SESSION_COOKIE, cookie).code(204).send(null);
    },
  );
}

export type SessionViewT = Static<typeof SessionView>;
