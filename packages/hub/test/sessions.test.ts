/**
 * Dashboard sign-in over real sockets on both databases: a token exchanged for an HttpOnly,
 * SameSite=Strict session cookie; changes need the CSRF token; the session has its token's
 * scope; sign-out revokes it; deleting the token ends its sessions; hostile cookies and tokens
 * are refused; nothing secret is stored or echoed.
 */
import t from 'tap';
import { ADMIN_TOKEN, eachBackend, startHub, type TestHub } from './helpers.ts';

async function call(hub: TestHub, method: string, path: string, opts: { cookie?: string; csrf?: string; body?: unknown; bearer?: string } = {}) {
  const res = await fetch(`http://127.0.0.1:${hub.port}${path}`, {
    method,
    headers: {
      ...(opts.cookie ? { cookie: opts.cookie } : {}),
      ...(opts.csrf ? { 'x-csrf-token': opts.csrf } : {}),
      ...(opts.bearer ? { authorization: `Bearer ${opts.bearer}` } : {}),
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, setCookie: res.headers.get('set-cookie'), text };
}

async function signIn(hub: TestHub, token: string) {
  const r = await call(hub, 'POST', '/v1/sessions', { body: { token } });
  const cookie = /^(opspilot_session=[^;]+)/.exec(r.setCookie ?? '')?.[1];
  return { ...r, cookie: cookie!, csrf: r.body?.csrf_token as string };
}

eachBackend(t, 'a token becomes a session cookie; changes need its CSRF token; sign-out revokes it', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const s = await signIn(hub, ADMIN_TOKEN);
  t.equal(s.status, 201);
  t.match(s.body, { actor: 'token:admin', scope: 'admin', csrf_token: /^[A-Za-z0-9_-]{43}$/, expires_at: String });
  t.match(s.setCookie, /HttpOnly/i, 'HttpOnly: page scripts cannot read it');
  t.match(s.setCookie, /SameSite=Strict/i, 'SameSite=Strict: other sites cannot send it');
  t.match(s.setCookie, /Path=\//);
  t.match(s.setCookie, /Max-Age=43200/, 'twelve hours');
  t.notOk(s.text.includes(ADMIN_TOKEN), 'the token is not echoed');

  t.equal((await call(hub, 'GET', '/v1/agents', { cookie: s.cookie })).status, 200, 'reads with the cookie alone');
  const noCsrf = await call(hub, 'POST', '/v1/tokens', { cookie: s.cookie, body: { name: 'x', scopes: ['read'] } });
  t.match(noCsrf, { status: 403, body: { error: { code: 'HUB_CSRF' } } }, 'a change without the CSRF token is refused');
  const wrongCsrf = await call(hub, 'POST', '/v1/tokens', { cookie: s.cookie, csrf: 'x'.repeat(43), body: { name: 'x', scopes: ['read'] } });
  t.match(wrongCsrf, { status: 403, body: { error: { code: 'HUB_CSRF' } } });
  const other = await signIn(hub, ADMIN_TOKEN);
  t.equal((await call(hub, 'POST', '/v1/tokens', { cookie: s.cookie, csrf: other.csrf, body: { name: 'x', scopes: ['read'] } })).status, 403, "another session's CSRF token is not this one's");
  const made = await call(hub, 'POST', '/v1/tokens', { cookie: s.cookie, csrf: s.csrf, body: { name: 'viewer', scopes: ['read'] } });
  t.equal(made.status, 201, 'with it, the change is made');
  t.match((await call(hub, 'GET', '/v1/audit?actor=token:admin', { cookie: s.cookie })).body.events.at(-1), { kind: 'token_created', by: 'token:admin' }, 'on the audit trail as the token');

  t.match((await call(hub, 'GET', '/v1/sessions/current', { cookie: s.cookie })).body, { actor: 'token:admin', csrf_token: s.csrf }, 'a reloaded page gets the CSRF token again');
  t.match(await call(hub, 'GET', '/v1/sessions/current', { bearer: ADMIN_TOKEN }), { status: 404, body: { error: { code: 'HUB_NO_SESSION' } } });
  t.equal((await call(hub, 'DELETE', '/v1/sessions/current', { cookie: s.cookie })).status, 403, 'signing out needs the CSRF token too');
  const out = await call(hub, 'DELETE', '/v1/sessions/current', { cookie: s.cookie, csrf: s.csrf });
  t.equal(out.status, 204);
  t.match(out.setCookie, /opspilot_session=;.*Expires=Thu, 01 Jan 1970/i, 'the cookie is cleared');
  t.match(await call(hub, 'GET', '/v1/agents', { cookie: s.cookie }), { status: 401, body: { error: { code: 'HUB_UNAUTHORIZED' } } }, 'the old cookie no longer works');
  t.equal((await call(hub, 'GET', '/v1/agents', { cookie: other.cookie })).status, 200, 'other sessions go on');

  const rows = await hub.db.db.selectFrom('sessions').selectAll().execute();
  const sid = other.cookie.split('=')[1]!;
  t.notOk(JSON.stringify(rows).includes(sid) || JSON.stringify(rows).includes(ADMIN_TOKEN), 'only hashes are stored');
});

eachBackend(t, "a session has its token's scope, and ends when the token is deleted", async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] })).body;
  const s = await signIn(hub, reader.token);
  t.match(s.body, { actor: 'token:viewer', scope: 'read' });
  t.equal((await call(hub, 'GET', '/v1/incidents', { cookie: s.cookie })).status, 200);
  t.match(await call(hub, 'POST', '/v1/admin/exec', { cookie: s.cookie, csrf: s.csrf, body: { agent_id: 'x', command: 'disk_usage' } }), { status: 403, body: { error: { code: 'HUB_FORBIDDEN' } } }, 'a read session cannot act');
  t.equal((await hub.api('DELETE', `/v1/tokens/${reader.id}`)).status, 204);
  t.equal((await call(hub, 'GET', '/v1/incidents', { cookie: s.cookie })).status, 401, 'the token deleted: its sessions end');
});

eachBackend(t, 'bad sign-ins and hostile cookies are refused with a clear code', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  t.match(await call(hub, 'POST', '/v1/sessions', { body: { token: 'opk_nope' } }), { status: 401, body: { error: { code: 'HUB_UNAUTHORIZED' } } });
  t.match(await call(hub, 'POST', '/v1/sessions', { body: {} }), { status: 400, body: { error: { code: 'HUB_BAD_REQUEST' } } });
  t.match(await call(hub, 'POST', '/v1/sessions', { body: { token: 'x'.repeat(201) } }), { status: 400 });
  t.match(await call(hub, 'POST', '/v1/sessions', { body: { token: ADMIN_TOKEN, extra: 1 } }), { status: 400 });
  for (const cookie of ['opspilot_session=', 'opspilot_session=' + 'A'.repeat(5000), 'opspilot_session=%00%ff', 'opspilot_session="; DROP TABLE sessions', 'opspilot_session=a; opspilot_session=b']) {
    t.equal((await call(hub, 'GET', '/v1/agents', { cookie })).status, 401, cookie.slice(0, 40));
  }
  t.equal((await call(hub, 'GET', '/v1/agents', { bearer: ADMIN_TOKEN, cookie: 'opspilot_session=whatever' })).status, 200, 'a bearer token is used when given');
  t.equal((await hub.db.db.selectFrom('sessions').select('id_hash').execute()).length, 0, 'no session was made');
});
