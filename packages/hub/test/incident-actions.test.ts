/**
 * What the dashboard and CLI do to an incident, over real sockets on both databases: find it by
 * text (a plain substring: `%` and `_` are characters, not wildcards), run an action on its
 * behalf (the exec is listed with the incident and the agent), ignore it for a while (exec
 * scope; a resolved one cannot be), errors naming the field they concern, and the one-time
 * sign-in link `pnpm start` prints.
 */
import t from 'tap';
import { ADMIN_TOKEN, eachBackend, eventually, runningAgent, startHub } from './helpers.ts';

const ok = (stdout: string) => ({ ok: true, exit_code: 0, stdout, stderr: '', duration_ms: 12, truncated: false });

eachBackend(t, 'find by text, act on it, ignore it', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id: agentId, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, (e) => ok(`● ${e.params.service} - active (running)`));
  t.teardown(() => agent.close());
  agent.send('alert', { type: 'systemd', source: 'nginx.service', message: 'nginx.service failed: 100% of workers gone' }, { id: 'a-1' });
  agent.send('alert', { type: 'systemd', source: 'cron_job.service', message: 'backup failed' }, { id: 'a-2' });
  agent.send('alert', { type: 'host', source: 'disk:/', message: 'disk full' }, { id: 'a-3' });
  await agent.acked(['a-1', 'a-2', 'a-3']);
  const all = await eventually(async () => {
    const r = (await hub.api('GET', '/v1/incidents')).body.incidents;
    return r.length === 3 && r;
  });
  const nginx = all.find((i: { source: string }) => i.source === 'nginx.service').id as string;

  const search = async (q: string) => (await hub.api('GET', `/v1/incidents?q=${encodeURIComponent(q)}`)).body.incidents.map((i: { source: string }) => i.source).sort();
  t.same(await search('NGINX'), ['nginx.service'], 'any case, in the message or the source');
  t.same(await search('failed'), ['cron_job.service', 'nginx.service']);
  t.same(await search('100%'), ['nginx.service'], '% is a character');
  t.same(await search('%'), ['nginx.service']);
  t.same(await search('n_x'), [], '_ is a character, not a wildcard');
  t.same(await search('cron_job'), ['cron_job.service']);
  t.same(await search("'; DROP TABLE incidents; --"), []);
  t.match(await hub.api('GET', `/v1/incidents?q=${'x'.repeat(201)}`), { status: 400, body: { error: { code: 'HUB_BAD_REQUEST', field: 'q' } } }, 'a text longer than 200 characters');
  t.same(await search('disk'), ['disk:/'], 'the table is still there');

  // An action run on the incident's behalf: listed with it and with the agent, and on its timeline.
  const exec = await hub.api('POST', '/v1/admin/exec', { agent_id: agentId, command: 'service_status', params: { service: 'nginx.service' }, incident_id: nginx });
  t.match(exec, { status: 200, body: { status: 'succeeded', stdout: /active \(running\)/ } });
  t.match((await hub.api('GET', `/v1/exec?incident_id=${nginx}`)).body, { execs: [{ id: exec.body.id, command: 'service_status' }], next_before: null });
  await hub.api('POST', '/v1/admin/exec', { agent_id: agentId, command: 'disk_usage' });
  const agentExecs = (await hub.api('GET', `/v1/exec?agent_id=${agentId}`)).body.execs.map((e: { command: string }) => e.command);
  t.same(agentExecs, ['disk_usage', 'service_status'], "the agent's execs, newest first");
  const page = (await hub.api('GET', `/v1/exec?agent_id=${agentId}&limit=1`)).body;
  t.equal(page.execs.length, 1);
  t.same((await hub.api('GET', `/v1/exec?agent_id=${agentId}&before=${page.next_before}`)).body.execs.map((e: { command: string }) => e.command), ['service_status'], 'paged');
  const timeline = (await hub.api('GET', `/v1/incidents/${nginx}/timeline`)).body.events;
  t.match(
    timeline.find((e: { kind: string }) => e.kind === 'exec_requested'),
    { by: 'token:admin', detail: { exec_id: exec.body.id, command: 'service_status' } },
    "on the incident's timeline",
  );

  // Ignore: exec scope; muted for the time asked; a resolved incident cannot be.
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] })).body.token as string;
  t.match(await hub.api('POST', `/v1/incidents/${nginx}/ignore`, {}, { authorization: `Bearer ${reader}` }), { status: 403, body: { error: { code: 'HUB_FORBIDDEN' } } });
  t.match(await hub.api('POST', `/v1/incidents/${nginx}/ignore`, { minutes: 50_000 }), { status: 400, body: { error: { code: 'HUB_BAD_REQUEST', field: 'minutes' } } });
  t.match(await hub.api('POST', `/v1/incidents/${nginx}/ignore`, { minutes: 60, extra: 1 }), { status: 400, body: { error: { field: 'extra' } } });
  const ignored = await hub.api('POST', `/v1/incidents/${nginx}/ignore`, { minutes: 90 });
  t.match(ignored, { status: 200, body: { id: nginx, status: 'ignored' } });
  const kinds = (await hub.api('GET', `/v1/incidents/${nginx}/timeline`)).body.events;
  t.match(kinds.at(-1), { kind: 'ignored', by: 'token:admin', detail: { for: '90 min' } });
  t.equal((await hub.api('GET', `/v1/incidents?q=nginx&status=ignored`)).body.incidents.length, 1, 'listed as ignored');
  const disk = all.find((i: { source: string }) => i.source === 'disk:/').id as string;
  t.equal((await hub.api('POST', `/v1/incidents/${disk}/resolve`, {})).status, 200);
  t.match(await hub.api('POST', `/v1/incidents/${disk}/ignore`), { status: 409, body: { error: { code: 'HUB_INCIDENT_RESOLVED' } } }, 'a resolved incident stays resolved');
});

eachBackend(t, 'an error names the field it concerns', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  t.match(await hub.api('POST', '/v1/tokens', { scopes: ['read'] }), { status: 400, body: { error: { code: 'HUB_BAD_REQUEST', field: 'name' } } }, 'a missing field');
  t.match(await hub.api('POST', '/v1/tokens', { name: 'x', scopes: ['root'] }), { status: 400, body: { error: { field: 'scopes.0' } } }, 'inside an array');
  t.match(await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] }), { status: 201 });
  t.match(await hub.api('POST', '/v1/tokens', { name: 'viewer', scopes: ['read'] }), { status: 409, body: { error: { code: 'HUB_NAME_TAKEN', field: 'name' } } }, 'a name in use');
  const rule = { name: 'r', match: { source: 'api*' }, action: { command: 'restart_service', params: {} }, mode: 'auto', cooldown_s: 600, max_per_hour: 3, verify_s: 60 };
  t.match(await hub.api('POST', '/v1/rules', rule), { status: 400, body: { error: { code: 'HUB_INVALID_RULE', field: 'action' } } }, 'a rule whose action lacks a parameter');
  const weird = await hub.api('POST', '/v1/tokens', { name: 'y', scopes: ['read'], 'a/b~c': 1 });
  t.match(weird, { status: 400, body: { error: { field: 'a/b~c' } } }, 'a JSON-pointer escape is undone');
  t.equal((await hub.api('GET', '/v1/incidents')).body.error, undefined);
});

eachBackend(t, 'a one-time sign-in link signs in as the admin, once, for 15 minutes', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const post = (body: unknown) =>
    fetch(`http://127.0.0.1:${hub.port}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => ({
      status: r.status,
      body: await r.json(),
      cookie: r.headers.get('set-cookie'),
    }));
  const code = hub.app.hub.sessions.issueLink()!;
  t.match(code, /^[A-Za-z0-9_-]{43}$/);
  const first = await post({ code });
  t.match(first, { status: 201, body: { actor: 'token:admin', scope: 'admin' }, cookie: /opspilot_session=.*HttpOnly.*SameSite=Strict/i });
  const cookie = /^(opspilot_session=[^;]+)/.exec(first.cookie!)![1]!;
  t.equal((await fetch(`http://127.0.0.1:${hub.port}/v1/tokens`, { headers: { cookie } })).status, 200, 'the session works');
  t.match(await post({ code }), { status: 401, body: { error: { code: 'HUB_UNAUTHORIZED', message: /used, ran out/ } } }, 'a second use is refused');
  t.match(await post({ code: 'x'.repeat(43) }), { status: 401 }, 'a made-up code');
  t.match(await post({ code: ADMIN_TOKEN }), { status: 401 }, 'a token is not a code');
  t.match(await post({ code: 'x', token: ADMIN_TOKEN }), { status: 400 }, 'not both');
  const late = hub.app.hub.sessions.issueLink()!;
  hub.clock.advance(15 * 60_000 + 1);
  t.match(await post({ code: late }), { status: 401 }, 'after 15 minutes it is refused');
  for (let i = 0; i < 40; i++) hub.app.hub.sessions.issueLink();
  const kept = hub.app.hub.sessions.issueLink()!;
  t.equal((await post({ code: kept })).status, 201, 'only the last few codes are kept, and the newest works');
});

t.test('large answers are compressed; the event stream and answers with a secret are not', async (t) => {
  const { pglite } = await import('./helpers.ts');
  const { request } = await import('node:http');
  const { brotliDecompressSync } = await import('node:zlib');
  const hub = await startHub(t, await pglite.open(t));
  const get = (path: string, opts: { method?: string; body?: unknown; stream?: boolean } = {}) =>
    new Promise<{ status: number; encoding: string | undefined; type: string | undefined; body: Buffer }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: hub.port,
          path,
          method: opts.method ?? 'GET',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'accept-encoding': 'br, gzip', ...(opts.body ? { 'content-type': 'application/json' } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          const done = () => resolve({ status: res.statusCode!, encoding: res.headers['content-encoding'], type: res.headers['content-type'], body: Buffer.concat(chunks) });
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            // A stream ends never: its first bytes are enough.
            if (opts.stream) {
              done();
              req.destroy();
            }
          });
          res.on('end', done);
        },
      );
      req.on('error', (e) => (opts.stream ? undefined : reject(e)));
      req.end(opts.body ? JSON.stringify(opts.body) : undefined);
    });
  for (let i = 0; i < 30; i++) await hub.api('POST', '/v1/agents', { hostname: `web-${i}`, labels: { env: 'prod', role: 'frontend' } });
  const list = await get('/v1/agents');
  t.equal(list.encoding, 'br', 'a long list is compressed');
  t.equal(JSON.parse(brotliDecompressSync(list.body).toString()).agents.length, 30);
  const small = await get('/v1/system/autonomy');
  t.equal(small.encoding, undefined, 'a small answer is not');
  const token = await get('/v1/tokens', { method: 'POST', body: { name: 'x'.repeat(64), scopes: ['read'] } });
  t.same([token.status, token.encoding], [201, undefined], 'an answer with a secret never is (no BREACH-style guessing from sizes)');
  const enrolled = await get('/v1/agents', { method: 'POST', body: { hostname: 'h'.repeat(200), labels: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, 'v'.repeat(40)])) } });
  t.same([enrolled.status, enrolled.encoding], [201, undefined], "nor an agent's new token, however long the answer");
  const stream = await get('/v1/events', { stream: true });
  t.same([stream.status, stream.encoding, stream.type], [200, undefined, 'text/event-stream; charset=utf-8'], 'the event stream is sent as it is written');
});
