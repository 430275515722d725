/**
 * Every REST route, called in-process with Fastify's inject() (no socket, no listen): it needs a
 * token, refuses a malformed id or body with HUB_BAD_REQUEST, answers an unknown id with its
 * not-found code, and does its job once. The route table is checked against the OpenAPI document,
 * so a route added without a case here fails this test.
 */
import t from 'tap';
import { buildApp, type App } from '../src/index.ts';
import { ADMIN_TOKEN, pglite } from './helpers.ts';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
interface Case {
  /** A body the route accepts (POST/PUT/PATCH). */
  body?: unknown;
  /** A body it refuses with HUB_BAD_REQUEST. */
  badBody?: unknown;
  /** The code for an id that does not exist (routes with :id). */
  unknown?: string;
}

const ROUTES: Record<string, Case> = {
  'POST /v1/agents': { body: { hostname: 'web-1' }, badBody: { hostname: 7 } },
  'GET /v1/agents': {},
  'GET /v1/agents/:id': { unknown: 'HUB_AGENT_NOT_FOUND' },
  'DELETE /v1/agents/:id': { unknown: 'HUB_AGENT_NOT_FOUND' },
  'POST /v1/agents/:id/token': { unknown: 'HUB_AGENT_NOT_FOUND' },
  'GET /v1/agents/:id/metrics': { unknown: 'HUB_AGENT_NOT_FOUND' },
  'GET /v1/agents/:id/incidents': { unknown: 'HUB_AGENT_NOT_FOUND' },
  'PUT /v1/agents/:id/autonomy': { body: { enabled: false }, badBody: { enabled: 'no' }, unknown: 'HUB_AGENT_NOT_FOUND' },
  'GET /v1/incidents': {},
  'GET /v1/incidents/:id': { unknown: 'HUB_INCIDENT_NOT_FOUND' },
  'POST /v1/incidents/:id/acknowledge': { unknown: 'HUB_INCIDENT_NOT_FOUND' },
  'POST /v1/incidents/:id/resolve': { unknown: 'HUB_INCIDENT_NOT_FOUND' },
  'POST /v1/incidents/:id/analyze': { unknown: 'HUB_INCIDENT_NOT_FOUND' },
  'POST /v1/incidents/:id/ignore': { body: { minutes: 60 }, badBody: { minutes: 0 }, unknown: 'HUB_INCIDENT_NOT_FOUND' },
  'GET /v1/incidents/:id/timeline': { unknown: 'HUB_INCIDENT_NOT_FOUND' },
  'POST /v1/admin/exec': { badBody: { agent_id: 'x', command: 'rm -rf /' } },
  'GET /v1/exec': {},
  'GET /v1/exec/:id': { unknown: 'HUB_EXEC_NOT_FOUND' },
  'GET /v1/rules': {},
  'POST /v1/rules': {
    body: { name: 'restart-api', match: { source: 'api*' }, action: { command: 'restart_service', params: { service: '{{source}}' } }, mode: 'auto', cooldown_s: 600, max_per_hour: 3, verify_s: 60 },
    badBody: { name: 'x' },
  },
  'GET /v1/rules/:id': { unknown: 'HUB_RULE_NOT_FOUND' },
  'PUT /v1/rules/:id': {
    body: { name: 'restart-api', match: { source: 'api*' }, action: { command: 'restart_service', params: { service: '{{source}}' } }, mode: 'approve', cooldown_s: 600, max_per_hour: 3, verify_s: 60 },
    badBody: { name: 'x' },
    unknown: 'HUB_RULE_NOT_FOUND',
  },
  'DELETE /v1/rules/:id': { unknown: 'HUB_RULE_NOT_FOUND' },
  'POST /v1/remediation/attempts/:id/approve': { unknown: 'HUB_NOT_WAITING' },
  'POST /v1/remediation/attempts/:id/reject': { unknown: 'HUB_NOT_WAITING' },
  'GET /v1/silences': {},
  'POST /v1/silences': { body: { match: { source: 'api*' }, ends_at: '2099-01-01T00:00:00Z', reason: 'x' }, badBody: { match: {}, reason: 'x' } },
  'DELETE /v1/silences/:id': { unknown: 'HUB_SILENCE_NOT_FOUND' },
  'GET /v1/system/autonomy': {},
  'PUT /v1/system/autonomy': { body: { enabled: true }, badBody: { enabled: 1 } },
  'GET /v1/tokens': {},
  'POST /v1/tokens': { body: { name: 'grafana', scopes: ['read'] }, badBody: { name: 'x', scopes: ['root'] } },
  'DELETE /v1/tokens/:id': { unknown: 'HUB_TOKEN_NOT_FOUND' },
  'GET /v1/audit': {},
  'GET /v1/hubs': {},
  'POST /v1/integrations': { body: { name: 'prometheus', kind: 'alertmanager' }, badBody: { name: 'x', kind: 'nagios' } },
  'GET /v1/integrations': {},
  'GET /v1/integrations/:id': { unknown: 'HUB_INTEGRATION_NOT_FOUND' },
  'PATCH /v1/integrations/:id': { body: { enabled: false }, badBody: { enabled: 'no' }, unknown: 'HUB_INTEGRATION_NOT_FOUND' },
  'DELETE /v1/integrations/:id': { unknown: 'HUB_INTEGRATION_NOT_FOUND' },
  'POST /v1/integrations/:id/rotate-secret': { unknown: 'HUB_INTEGRATION_NOT_FOUND' },
  'GET /v1/integrations/:id/deliveries': { unknown: 'HUB_INTEGRATION_NOT_FOUND' },
  'POST /v1/heartbeats': { body: { name: 'backup', period_s: 86_400 }, badBody: { name: 'backup', period_s: 1 } },
  'GET /v1/heartbeats': {},
  'GET /v1/heartbeats/:id': { unknown: 'HUB_HEARTBEAT_NOT_FOUND' },
  'GET /v1/heartbeats/:id/pings': { unknown: 'HUB_HEARTBEAT_NOT_FOUND' },
  'PATCH /v1/heartbeats/:id': { body: { paused: true }, badBody: { paused: 'yes' }, unknown: 'HUB_HEARTBEAT_NOT_FOUND' },
  'DELETE /v1/heartbeats/:id': { unknown: 'HUB_HEARTBEAT_NOT_FOUND' },
  'POST /v1/monitors': { body: { name: 'site', kind: 'http', target: 'http://127.0.0.1:9/', enabled: false }, badBody: { name: 'site', kind: 'ping', target: 'x' } },
  'GET /v1/monitors': {},
  'GET /v1/monitors/:id': { unknown: 'HUB_MONITOR_NOT_FOUND' },
  'GET /v1/monitors/:id/results': { unknown: 'HUB_MONITOR_NOT_FOUND' },
  'PATCH /v1/monitors/:id': { body: { interval_s: 120 }, badBody: { interval_s: 1 }, unknown: 'HUB_MONITOR_NOT_FOUND' },
  'DELETE /v1/monitors/:id': { unknown: 'HUB_MONITOR_NOT_FOUND' },
  // A stream: only its refusals are injected here (events.test.ts reads it over a socket).
  'GET /v1/events': {},
  // Signing in needs no token but a good one in the body.
  'POST /v1/sessions': { body: { token: 'opk_nope' }, badBody: { token: 7 } },
  'GET /v1/sessions/current': {},
  'DELETE /v1/sessions/current': {},
};

async function inject(app: App, method: Method, url: string, body?: unknown, token: string | null = ADMIN_TOKEN) {
  const res = await app.inject({
    method,
    url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    ...(body !== undefined ? { payload: body as object } : {}),
  });
  return { status: res.statusCode, body: res.body ? (JSON.parse(res.body) as any) : undefined };
}

t.test('every REST route, in-process', async (t) => {
  const app = await buildApp({ database: await pglite.open(t), config: { adminToken: ADMIN_TOKEN }, logStream: false });
  t.teardown(() => app.close());
  await app.ready();

  const spec = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, unknown>> };
  const documented = Object.entries(spec.paths)
    // The intake routes authenticate per integration, not by token: intake.test.ts has them.
    .filter(([p]) => p.startsWith('/v1/') && !p.startsWith('/v1/intake/'))
    .flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`));
  t.same(documented.sort(), Object.keys(ROUTES).sort(), 'a case for every documented route, and no case for a route that is gone');

  for (const [route, c] of Object.entries(ROUTES)) {
    const [method, pattern] = route.split(' ') as [Method, string];
    const url = (id: string) => pattern.replace(':id', id);
    const body = c.body ?? (method === 'POST' || method === 'PUT' || method === 'PATCH' ? {} : undefined);

    const noToken = await inject(app, method, url('01NOSUCHID0000000000000000'), body, null);
    t.same([noToken.status, noToken.body?.error?.code], [401, 'HUB_UNAUTHORIZED'], `${route}: needs a token`);

    if (pattern.includes(':id')) {
      const bad = await inject(app, method, url('not%20an%20id'), body);
      t.same([bad.status, bad.body?.error?.code], [400, 'HUB_BAD_REQUEST'], `${route}: a malformed id`);
      const missing = await inject(app, method, url('01NOSUCHID0000000000000000'), body);
      t.equal(missing.body?.error?.code, c.unknown, `${route}: an unknown id`);
      t.equal(missing.body?.error?.retry, false, `${route}: retrying will not find it`);
    }
    if (c.badBody !== undefined) {
      const bad = await inject(app, method, url('x'), c.badBody);
      t.ok(bad.status === 400 && /^HUB_(BAD_REQUEST|INVALID_RULE)$/.test(bad.body?.error?.code), `${route}: a bad body (${bad.status} ${bad.body?.error?.code})`);
    }
  }

  // And each route's work, once, on rows made through the API itself.
  const agent = await inject(app, 'POST', '/v1/agents', { hostname: 'web-1', labels: { env: 'test' } });
  t.equal(agent.status, 201);
  const id = agent.body.id as string;
  t.equal((await inject(app, 'GET', `/v1/agents/${id}`)).body.hostname, 'web-1');
  t.equal((await inject(app, 'GET', '/v1/agents')).body.agents.length, 1);
  t.same((await inject(app, 'GET', `/v1/agents/${id}/metrics`)).body.samples, []);
  t.same((await inject(app, 'GET', `/v1/agents/${id}/incidents`)).body.incidents, []);
  t.match((await inject(app, 'POST', `/v1/agents/${id}/token`)).body, { token: /^opa_/ });
  t.equal((await inject(app, 'PUT', `/v1/agents/${id}/autonomy`, { enabled: false })).status, 200);
  t.match(await inject(app, 'POST', '/v1/admin/exec', { agent_id: id, command: 'service_status', params: { service: 'nginx.service' } }), {
    status: 409,
    body: { error: { code: 'HUB_AGENT_OFFLINE', retry: true } },
  });
  t.match(await inject(app, 'POST', '/v1/admin/exec', { agent_id: id, command: 'service_status', params: { service: 'nginx.service' }, incident_id: '01NOSUCHID0000000000000000' }), {
    status: 404,
    body: { error: { code: 'HUB_INCIDENT_NOT_FOUND', field: 'incident_id' } },
  });
  t.same((await inject(app, 'GET', `/v1/exec?agent_id=${id}`)).body, { execs: [], next_before: null });
  t.match(await inject(app, 'GET', '/v1/exec?limit=0'), { status: 400, body: { error: { code: 'HUB_BAD_REQUEST', field: 'limit' } } });
  const rule = await inject(app, 'POST', '/v1/rules', ROUTES['POST /v1/rules']!.body);
  t.equal(rule.status, 201);
  t.equal((await inject(app, 'PUT', `/v1/rules/${rule.body.id}`, ROUTES['PUT /v1/rules/:id']!.body)).body.mode, 'approve');
  t.equal((await inject(app, 'GET', `/v1/rules/${rule.body.id}`)).body.name, 'restart-api');
  t.equal((await inject(app, 'DELETE', `/v1/rules/${rule.body.id}`)).status, 204);
  const silence = await inject(app, 'POST', '/v1/silences', ROUTES['POST /v1/silences']!.body);
  t.equal(silence.status, 201);
  t.equal((await inject(app, 'DELETE', `/v1/silences/${silence.body.id}`)).status, 204);
  const token = await inject(app, 'POST', '/v1/tokens', { name: 'grafana', scopes: ['read'] });
  t.equal((await inject(app, 'GET', '/v1/agents', undefined, token.body.token)).status, 200, 'a read token reads');
  t.equal((await inject(app, 'POST', '/v1/agents', { hostname: 'x' }, token.body.token)).body.error.code, 'HUB_FORBIDDEN', 'and only reads');
  t.equal((await inject(app, 'DELETE', `/v1/tokens/${token.body.id}`)).status, 204);
  t.equal((await inject(app, 'PUT', '/v1/system/autonomy', { enabled: false })).body.enabled, false);
  t.equal((await inject(app, 'GET', '/v1/system/autonomy')).body.enabled, false);
  const audit = (await inject(app, 'GET', '/v1/audit')).body.events.map((e: { kind: string }) => e.kind);
  t.ok(['rule_created', 'silence_created', 'token_created', 'autonomy_changed'].every((k) => audit.includes(k)), 'each change is on the audit trail');
  const integration = await inject(app, 'POST', '/v1/integrations', ROUTES['POST /v1/integrations']!.body);
  t.match(integration, { status: 201, body: { secret: /^opi_/, url_path: `/v1/intake/${integration.body.id}` } });
  t.equal((await inject(app, 'PATCH', `/v1/integrations/${integration.body.id}`, { enabled: false })).body.enabled, false);
  t.not((await inject(app, 'POST', `/v1/integrations/${integration.body.id}/rotate-secret`, {})).body.secret, integration.body.secret);
  t.same((await inject(app, 'GET', `/v1/integrations/${integration.body.id}/deliveries`)).body.deliveries, []);
  t.equal((await inject(app, 'GET', '/v1/integrations')).body.integrations.length, 1);
  t.match(await inject(app, 'POST', '/v1/sessions', { token: ADMIN_TOKEN }, null), { status: 201, body: { actor: 'token:admin', scope: 'admin' } });
  t.match(await inject(app, 'GET', '/v1/sessions/current'), { status: 404, body: { error: { code: 'HUB_NO_SESSION' } } }, 'a bearer token is not a session');
  t.equal((await inject(app, 'GET', `/v1/integrations/${integration.body.id}`)).body.name, 'prometheus');
  t.equal((await inject(app, 'DELETE', `/v1/integrations/${integration.body.id}`)).status, 204);
  const hb = await inject(app, 'POST', '/v1/heartbeats', ROUTES['POST /v1/heartbeats']!.body);
  t.match(hb, { status: 201, body: { status: 'new', ping_path: /^\/ping\// } });
  t.equal((await inject(app, 'PATCH', `/v1/heartbeats/${hb.body.id}`, { paused: true })).body.status, 'paused');
  t.same((await inject(app, 'GET', `/v1/heartbeats/${hb.body.id}/pings`)).body.pings, []);
  t.equal((await inject(app, 'GET', '/v1/heartbeats')).body.heartbeats.length, 1);
  t.equal((await inject(app, 'GET', `/v1/heartbeats/${hb.body.id}`)).body.name, 'backup');
  t.equal((await inject(app, 'DELETE', `/v1/heartbeats/${hb.body.id}`)).status, 204);
  const mon = await inject(app, 'POST', '/v1/monitors', ROUTES['POST /v1/monitors']!.body);
  t.match(mon, { status: 201, body: { status: 'unknown', enabled: false } });
  t.equal((await inject(app, 'PATCH', `/v1/monitors/${mon.body.id}`, { interval_s: 120 })).body.interval_s, 120);
  t.same((await inject(app, 'GET', `/v1/monitors/${mon.body.id}/results`)).body.results, []);
  t.equal((await inject(app, 'GET', '/v1/monitors')).body.monitors.length, 1);
  t.match((await inject(app, 'GET', `/v1/monitors/${mon.body.id}`)).body, { name: 'site', locations: [], uptime: { '24h': { results: 0, uptime_pct: null } } });
  t.equal((await inject(app, 'DELETE', `/v1/monitors/${mon.body.id}`)).status, 204);
  t.equal((await inject(app, 'DELETE', `/v1/agents/${id}`)).status, 204);
});
