import t from 'tap';
import { PassThrough } from 'node:stream';
import { HUB_ERROR_CODES, HUB_ERRORS } from '../src/index.ts';
import { readFileSync } from 'node:fs';
import { ADMIN_TOKEN, HELLO, ScriptedAgent, eachBackend, pglite, startHub } from './helpers.ts';

const V1_ROUTES: [string, string][] = [
  ['POST', '/v1/agents'],
  ['GET', '/v1/agents'],
  ['GET', '/v1/agents/x'],
  ['DELETE', '/v1/agents/x'],
  ['POST', '/v1/agents/x/token'],
  ['GET', '/v1/agents/x/metrics'],
  ['GET', '/v1/agents/x/incidents'],
  ['GET', '/v1/incidents'],
  ['GET', '/v1/incidents/x'],
  ['POST', '/v1/incidents/x/acknowledge'],
  ['POST', '/v1/incidents/x/resolve'],
  ['POST', '/v1/incidents/x/analyze'],
  ['GET', '/v1/incidents/x/timeline'],
  ['POST', '/v1/admin/exec'],
  ['GET', '/v1/exec/x'],
];

eachBackend(t, 'every /v1 route needs the admin token', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  for (const [method, path] of V1_ROUTES) {
    for (const auth of [undefined, 'Bearer wrong-token-0123456789', `Basic ${ADMIN_TOKEN}`, `Bearer ${ADMIN_TOKEN}x`]) {
      const res = await hub.api(method, path, method === 'POST' ? {} : undefined, { authorization: auth ?? '' });
      t.same([res.status, res.body?.error?.code], [401, 'HUB_UNAUTHORIZED'], `${method} ${path} with ${auth ?? 'nothing'}`);
    }
  }
  for (const path of ['/healthz', '/readyz', '/docs/json']) {
    t.equal((await hub.api('GET', path, undefined, { authorization: '' })).status, 200, `${path} is open`);
  }
});

eachBackend(t, 'REST errors share one shape', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const cases: [string, string, unknown, number, string][] = [
    ['GET', '/v1/nope', undefined, 404, 'HUB_NOT_FOUND'],
    ['GET', '/v1/agents/01HZZZZZZZZZZZZZZZZZZZZZZZ', undefined, 404, 'HUB_AGENT_NOT_FOUND'],
    ['GET', '/v1/agents/bad%20id', undefined, 400, 'HUB_BAD_REQUEST'],
    ['GET', '/v1/incidents/01HZZZZZZZZZZZZZZZZZZZZZZZ', undefined, 404, 'HUB_INCIDENT_NOT_FOUND'],
    ['GET', '/v1/exec/01HZZZZZZZZZZZZZZZZZZZZZZZ', undefined, 404, 'HUB_EXEC_NOT_FOUND'],
    ['GET', '/v1/incidents?status=exploded', undefined, 400, 'HUB_BAD_REQUEST'],
    ['GET', '/v1/incidents?limit=0', undefined, 400, 'HUB_BAD_REQUEST'],
    ['GET', '/v1/incidents?limit=abc', undefined, 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', '{"hostname":', 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', { hostname: 5 }, 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', { hostname: '' }, 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', { token_hash: 'x' }, 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', { labels: { 'bad key': 'v' } }, 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', { labels: { env: 5 } }, 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, 400, 'HUB_BAD_REQUEST'],
    ['POST', '/v1/agents', { hostname: 'x'.repeat(2 * 1024 * 1024) }, 413, 'HUB_PAYLOAD_TOO_LARGE'],
    ['POST', '/v1/agents', [], 400, 'HUB_BAD_REQUEST'],
  ];
  for (const [method, path, body, status, code] of cases) {
    const res = await hub.api(method, path, body);
    t.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)?.slice(0, 40)}`);
    t.same(Object.keys(res.body ?? {}), ['error']);
    t.equal(res.body?.error?.code, code);
    t.type(res.body?.error?.message, 'string');
  }
  const wrongType = await hub.api('POST', '/v1/agents', 'hostname=x', { 'content-type': 'application/x-www-form-urlencoded' });
  t.equal(wrongType.body.error.code, 'HUB_BAD_REQUEST', 'unsupported media type');
  t.equal((await hub.api('GET', '/readyz')).body.status, 'ready');
});

eachBackend(t, 'agents: enrol, list, get', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const created = await hub.api('POST', '/v1/agents', { hostname: 'db-1', labels: { env: 'prod' } });
  t.equal(created.status, 201);
  t.match(created.body, { id: /^[0-9A-Z]{26}$/, token: /^opa_[A-Za-z0-9_-]{43}$/, hostname: 'db-1', labels: { env: 'prod' } });
  const bare = await hub.api('POST', '/v1/agents');
  t.equal(bare.status, 201, 'hostname and labels are optional');
  const list = await hub.api('GET', '/v1/agents');
  t.same(list.body.agents.map((a: { id: string }) => a.id), [created.body.id, bare.body.id]);
  t.match(list.body.agents[0], { status: 'offline', last_seen_at: null, facts: null, actions: null, stats: null });
  t.equal((await hub.api('GET', '/v1/agents?limit=1')).body.agents.length, 1);
});

eachBackend(t, 'incidents: filter, page, acknowledge, resolve', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const a = await hub.enroll();
  const b = await hub.enroll({ hostname: 'web-2' });
  const agentA = await ScriptedAgent.connect(hub.wsUrl, a.token);
  const agentB = await ScriptedAgent.connect(hub.wsUrl, b.token);
  for (let i = 0; i < 5; i++) agentA.send('alert', { type: 'systemd', source: `svc-${i}`, message: `down ${i}` }, { id: `a-${i}` });
  agentB.send('alert', { type: 'host', source: 'disk:/', message: 'disk full' }, { id: 'b-0' });
  await agentA.acked(['a-0', 'a-1', 'a-2', 'a-3', 'a-4']);
  await agentB.acked(['b-0']);

  const page1 = await hub.api('GET', `/v1/incidents?agent_id=${a.id}&limit=3`);
  t.same(page1.body.incidents.map((i: { source: string }) => i.source), ['svc-4', 'svc-3', 'svc-2'], 'newest first');
  t.notOk('logs' in page1.body.incidents[0], 'lists leave the logs out');
  const page2 = await hub.api('GET', `/v1/incidents?agent_id=${a.id}&limit=3&before=${page1.body.next_before}`);
  t.same(page2.body.incidents.map((i: { source: string }) => i.source), ['svc-1', 'svc-0']);
  t.equal(page2.body.next_before, null);
  t.equal((await hub.api('GET', '/v1/incidents')).body.incidents.length, 6);
  t.equal((await hub.api('GET', `/v1/agents/${b.id}/incidents`)).body.incidents.length, 1);

  const target = page1.body.incidents[0].id;
  const acked = await hub.api('POST', `/v1/incidents/${target}/acknowledge`);
  t.match(acked.body, { status: 'acknowledged', acknowledged_by: 'token:admin' });
  const again = await hub.api('POST', `/v1/incidents/${target}/acknowledge`);
  t.equal(again.body.acknowledged_at, acked.body.acknowledged_at, 'acknowledging twice keeps the first');
  // A repeat alert while acknowledged still counts on the same incident.
  agentA.send('alert', { type: 'systemd', source: 'svc-4', message: 'down again' }, { id: 'a-5' });
  await agentA.acked(['a-5']);
  t.match((await hub.api('GET', `/v1/incidents/${target}`)).body, { status: 'acknowledged', count: 2 });
  t.equal((await hub.api('GET', '/v1/incidents?status=acknowledged')).body.incidents.length, 1);

  const resolved = await hub.api('POST', `/v1/incidents/${target}/resolve`);
  t.match(resolved.body, { status: 'resolved', resolved_by: 'token:admin' });
  t.equal((await hub.api('POST', `/v1/incidents/${target}/resolve`)).body.resolved_at, resolved.body.resolved_at, 'idempotent');
  const late = await hub.api('POST', `/v1/incidents/${target}/acknowledge`);
  t.same([late.status, late.body.error.code], [409, 'HUB_INCIDENT_RESOLVED']);
  t.equal((await hub.api('POST', '/v1/incidents/01HZZZZZZZZZZZZZZZZZZZZZZZ/resolve')).status, 404);
  agentA.close();
  agentB.close();
});

eachBackend(t, 'no token or token hash appears in any response or log line', async (t, backend) => {
  const log = new PassThrough();
  let logText = '';
  log.on('data', (c: Buffer) => (logText += c.toString()));
  const hub = await startHub(t, await backend.open(t), { logLevel: 'trace' }, log);
  const responses: string[] = [];
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await hub.api(method, path, body);
    responses.push(res.text);
    return res;
  };
  const created = await call('POST', '/v1/agents', { hostname: 'secret-host' });
  const token: string = created.body.token;
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256').update(token).digest('hex');
  const agent = new ScriptedAgent(hub.wsUrl);
  await agent.opened;
  agent.send('hello', HELLO, { token });
  agent.send('alert', { type: 'log', source: 'app', message: 'boom' }, { token, id: 'x-1' });
  agent.sendRaw('not json at all');
  await agent.acked(['x-1']);
  const refused = new ScriptedAgent(hub.wsUrl, { token: token + 'x' });
  await refused.opened.catch(() => {});
  await call('GET', '/v1/agents');
  await call('GET', `/v1/agents/${created.body.id}`);
  await call('GET', '/v1/incidents');
  const rotated = await call('POST', `/v1/agents/${created.body.id}/token`);
  await call('GET', '/docs/json');
  agent.close();

  t.equal(responses.filter((r) => r.includes(token)).length, 1, 'the token appears only in its creation response');
  t.equal(responses.filter((r) => r.includes(rotated.body.token)).length, 1, 'the rotated token only in its rotation response');
  for (const secret of [token, hash, rotated.body.token, ADMIN_TOKEN]) {
    t.notOk(logText.includes(secret), `log is free of ${secret.slice(0, 8)}…`);
  }
  t.notOk(responses.some((r) => r.includes(hash) || r.includes('token_hash')), 'no hash in responses');
  t.ok(logText.includes('agent enrolled') && logText.includes('agent connected'), 'the log was captured');
});

eachBackend(t, 'OpenAPI describes the routes, with bearer auth', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const spec = (await hub.api('GET', '/docs/json')).body;
  t.equal(spec.openapi.slice(0, 2), '3.');
  for (const [method, path] of V1_ROUTES) {
    const openapiPath = path.replace(/\/x(?=\/|$)/, '/{id}');
    t.ok(spec.paths[openapiPath]?.[method.toLowerCase()], `${method} ${openapiPath}`);
  }
  t.same(spec.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
  t.notOk(spec.paths['/v1/stream'], 'the WebSocket is not a REST route');
  t.equal((await hub.api('GET', '/docs', undefined, { authorization: '' })).status, 200, 'the UI is served');
});

eachBackend(t, '/metrics: Prometheus text behind any valid token (a read token is what Prometheus holds)', async (t, backend) => {
  const db = await backend.open(t);
  const hub = await startHub(t, db);
  const noToken = await hub.api('GET', '/metrics', undefined, { authorization: '' });
  t.same([noToken.status, noToken.body.error.code], [401, 'HUB_UNAUTHORIZED']);
  t.equal((await hub.api('GET', '/metrics', undefined, { authorization: 'Bearer opk_not-a-token' })).status, 401);
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'prometheus', scopes: ['read'] })).body.token as string;
  t.equal((await hub.api('GET', '/metrics', undefined, { authorization: `Bearer ${reader}` })).status, 200, 'a read token scrapes');
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  for (let i = 0; i < 5; i++) agent.send('heartbeat', {});
  agent.send('heartbeat', {}, { id: 'hb' });
  await agent.acked(['hb']);
  const res = await hub.api('GET', '/metrics');
  t.equal(res.status, 200);
  t.match(res.text, /^opspilot_ingest_frames_total 6$/m);
  t.match(res.text, /^opspilot_agents_connected 1$/m);
  t.match(res.text, /^opspilot_hub_process_resident_memory_bytes \d+/m);
  t.match(res.text, /^opspilot_hub_process_open_fds \d+$/m, 'open files, counted off the main thread');
  t.notMatch(res.text, /nodejs_active_(handles|resources)/, 'no collector that lists every socket at each scrape');
  // The connection's token lookup and claim, each asked once and answered by one statement.
  const value = (text: string, name: string, kind: string) => Number(new RegExp(`^${name}\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  t.equal(value(res.text, 'opspilot_coalesced_requests_total', 'token_lookup'), 1);
  t.equal(value(res.text, 'opspilot_coalesced_statements_total', 'token_lookup'), 1);
  t.equal(value(res.text, 'opspilot_coalesced_requests_total', 'claim'), 1);
  t.equal(value(res.text, 'opspilot_coalesced_requests_total', 'release'), 0);
  t.equal(value(res.text, 'opspilot_coalesced_waiting', 'claim'), 0);
  // Five more at once, and all six gone: as many requests; statements for one or several each.
  const more = await Promise.all(Array.from({ length: 5 }, async () => ScriptedAgent.connect(hub.wsUrl, (await hub.enroll()).token)));
  agent.close();
  for (const a of more) a.close();
  // Each closed connection is released once; one that closed before its claim returned is
  // released a second time by the claim (stream-route.ts), so 6 to 12 requests, never fewer.
  const settled = async () => {
    const held = await db.db.selectFrom('agents').select('id').where('hub_id', 'is not', null).execute();
    const gone = await db.db.selectFrom('incident_events').select('agent_id').where('kind', '=', 'agent_disconnected').execute();
    return held.length === 0 && gone.length === 6;
  };
  let text = '';
  for (let i = 0; i < 200; i++) {
    text = (await hub.api('GET', '/metrics')).text;
    if (value(text, 'opspilot_coalesced_requests_total', 'release') >= 6 && value(text, 'opspilot_coalesced_waiting', 'release') === 0 && (await settled())) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(await settled(), 'every agent freed, and its disconnection on the audit trail once');
  t.equal(value(text, 'opspilot_coalesced_requests_total', 'token_lookup'), 6);
  t.equal(value(text, 'opspilot_coalesced_requests_total', 'claim'), 6);
  const released = value(text, 'opspilot_coalesced_requests_total', 'release');
  t.ok(released >= 6 && released <= 12, `every disconnection released (${released} requests)`);
  const releases = value(text, 'opspilot_coalesced_statements_total', 'release');
  t.ok(releases >= 1 && releases <= released, `releases in 1 to ${released} statements (${releases})`);
  t.equal(value(text, 'opspilot_coalesced_split_total', 'claim'), 0);
});

t.test('docs/ERRORS.md and errors.ts list the same REST codes, statuses and retry, both ways', async (t) => {
  const doc = readFileSync(new URL('../../../docs/ERRORS.md', import.meta.url), 'utf8');
  const documented = new Map<string, { status: number; retry: boolean }>();
  for (const m of doc.matchAll(/^\| `(HUB_[A-Z_]+)` \| (\d{3}) \| [^\n]*\| (yes|no)\b[^|\n]* \|$/gm)) documented.set(m[1]!, { status: Number(m[2]), retry: m[3] === 'yes' });
  t.same([...documented.keys()].sort(), [...HUB_ERROR_CODES].sort(), 'the same codes');
  for (const code of HUB_ERROR_CODES) t.same(documented.get(code), HUB_ERRORS[code], `${code}: status and retry`);
});

t.test('every error body says whether a retry helps', async (t) => {
  const hub = await startHub(t, await pglite.open(t));
  t.same((await hub.api('GET', '/v1/nope')).body, { error: { code: 'HUB_NOT_FOUND', message: 'no route GET /v1/nope', retry: false } });
  t.same((await hub.api('GET', '/v1/agents', undefined, { authorization: 'Bearer wrong' })).body.error.retry, false);
  t.same((await hub.api('POST', '/v1/admin/exec', { agent_id: 'nobody', command: 'service_status', params: { service: 'x' } })).body.error, {
    code: 'HUB_AGENT_NOT_FOUND',
    message: 'no agent nobody',
    retry: false,
  });
});
