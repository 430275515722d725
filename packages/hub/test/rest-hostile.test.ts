/**
 * Hostile text on REST (issue 11): a NUL or a lone surrogate anywhere in a request is a 400 with
 * a stable code before any handler or SQL sees it (they were 500s), on both databases; the log of
 * a database error carries no SQL parameters; "admin" is not a token name anyone can take.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { eachBackend, startHub } from './helpers.ts';
import { loggableError } from '../src/rest/text-guard.ts';

eachBackend(t, 'a NUL or a lone surrogate in any field, query or path is HUB_BAD_REQUEST, never a 500', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id } = await hub.enroll();
  const nul = 'web\u00001';
  const lone = 'x\ud800';
  // JSON.stringify writes a lone surrogate as the escape \ud800: exactly what a client would send.
  const cases: [string, string, string, unknown][] = [
    ['agent hostname', 'POST', '/v1/agents', { hostname: nul }],
    ['agent label value', 'POST', '/v1/agents', { hostname: 'ok', labels: { env: nul } }],
    ['agent label key', 'POST', '/v1/agents', { hostname: 'ok', labels: { [lone]: 'v' } }],
    ['silence match', 'POST', '/v1/silences', { match: { source: nul }, ends_at: new Date(Date.now() + 3_600_000).toISOString(), reason: 'x' }],
    ['silence reason', 'POST', '/v1/silences', { match: { source: 'a' }, ends_at: new Date(Date.now() + 3_600_000).toISOString(), reason: lone }],
    ['rule match', 'POST', '/v1/rules', { name: 'r', match: { source: nul }, action: { command: 'service_status', params: { service: '{{source}}' } } }],
    ['exec params', 'POST', '/v1/admin/exec', { agent_id: id, command: 'service_status', params: { service: nul } }],
    ['audit actor', 'GET', `/v1/audit?actor=${encodeURIComponent(nul)}`, undefined],
    ['path', 'GET', `/v1/incidents/${encodeURIComponent(nul)}`, undefined],
    ['token name', 'POST', '/v1/tokens', { name: lone, scopes: ['read'] }],
  ];
  // Broken UTF-8 in a query string is decoded to U+FFFD by the parser: an answer, not a 500.
  t.equal((await hub.api('GET', '/v1/audit?actor=%ED%A0%80')).status, 200, 'broken UTF-8 in a query');
  for (const [what, method, path, body] of cases) {
    const res = await hub.api(method, path, body);
    t.equal(res.status, 400, `${what}: 400 (${res.text.slice(0, 120)})`);
    t.equal(res.body?.error?.code, 'HUB_BAD_REQUEST', what);
  }
  t.equal((await hub.api('GET', '/readyz')).status, 200, 'the hub is fine');
});

eachBackend(t, '"admin" is reserved: a scoped token cannot pass for the admin token', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  for (const name of ['admin', 'Admin', 'ADMIN']) {
    const res = await hub.api('POST', '/v1/tokens', { name, scopes: ['read'] });
    t.match(res, { status: 409, body: { error: { code: 'HUB_NAME_TAKEN', message: /reserved/ } } }, name);
  }
  t.equal((await hub.api('POST', '/v1/tokens', { name: 'administrators', scopes: ['read'] })).status, 201, 'other names are fine');
});

eachBackend(t, "a database error's log line has no SQL text or parameters", async (t, backend) => {
  const db = await backend.open(t);
  const secret = 'a3f1c9e7'.repeat(8); // stands for a token's SHA-256
  let failure: unknown;
  try {
    await sql`SELECT ${secret}::int`.execute(db.db);
  } catch (err) {
    failure = err;
  }
  t.ok(failure, 'the query failed');
  const logged = JSON.stringify(loggableError(failure));
  t.notMatch(logged, secret, 'the parameter is not in the log');
  t.match(loggableError(failure), { type: String, message: String });

  // And through the hub's own logger: a 500's line is written with the same serializer.
  let lines = '';
  const stream = new Writable({ write: (chunk, _enc, done) => ((lines += chunk.toString()), done()) });
  const hub = await startHub(t, await backend.open(t), { logLevel: 'error' }, stream);
  hub.app.log.error({ err: failure }, 'request failed');
  t.match(lines, /request failed/);
  t.notMatch(lines, secret);
});
