/**
 * Alerts from other tools, over the hub's socket: integrations made through the REST API, each
 * sender's documented format (fixtures/intake/, written from its documentation), its way of
 * authenticating, and what becomes of the alerts: incidents with labels and a service, linked
 * to the agent of the host they name, resolved when the sender says so. Bad, forged and resent
 * requests change nothing.
 */
import t from 'tap';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { clickBody, fakeSlack, sign, slackConfig } from './fake-slack.ts';
import { HELLO, ScriptedAgent, eachBackend, eventually, runningAgent, startHub, type TestHub } from './helpers.ts';

const fixture = (name: string) => readFileSync(path.join(import.meta.dirname, 'fixtures/intake', name), 'utf8');

async function send(hub: TestHub, p: string, body: string | Buffer, headers: Record<string, string> = {}, method = 'POST') {
  const res = await fetch(`http://127.0.0.1:${hub.port}${p}`, { method, body, headers: { 'content-type': 'application/json', ...headers } });
  const text = await res.text();
  return { status: res.status, text, body: text.startsWith('{') ? JSON.parse(text) : null };
}

async function integration(hub: TestHub, body: Record<string, unknown>) {
  const res = await hub.api('POST', '/v1/integrations', body);
  if (res.status !== 201) throw new Error(`integration: ${res.status} ${res.text}`);
  return res.body as { id: string; name: string; secret: string; url_path: string };
}

const incidentsOf = async (hub: TestHub, query: string) => (await hub.api('GET', `/v1/incidents?${query}`)).body.incidents as any[];
const deliveries = async (hub: TestHub, id: string) => (await hub.api('GET', `/v1/integrations/${id}/deliveries`)).body.deliveries as any[];

eachBackend(t, 'Alertmanager: a group notification opens one incident per alert, linked to the host, and a resend changes nothing', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id: agentId, token } = await hub.enroll({ hostname: 'web-1' });
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('hello', { ...HELLO, hostname: 'web-1' }, { id: 'h' });
  await agent.acked(['h']);
  const am = await integration(hub, { name: 'prometheus', kind: 'alertmanager', labels: { team: 'payments' } });
  t.match(am.secret, /^opi_[A-Za-z0-9_-]{43}$/);
  t.equal(am.url_path, `/v1/intake/${am.id}`);
  const listed = await hub.api('GET', '/v1/integrations');
  t.notOk(listed.text.includes(am.secret), 'the secret is never shown again');
  t.match(listed.body.integrations, [{ name: 'prometheus', kind: 'alertmanager', signed: false, labels: { team: 'payments' } }]);

  const body = fixture('alertmanager-firing.json');
  const res = await send(hub, am.url_path, body, { authorization: `Bearer ${am.secret}`, 'user-agent': 'Alertmanager/0.25.0' });
  t.equal(res.status, 200, res.text);
  t.match(res.body, { status: 'ok', duplicate: false, alerts: 2, changed: 2, errors: [] });

  const open = await incidentsOf(hub, 'integration=prometheus');
  t.equal(open.length, 2);
  const web1 = open.find((i) => i.source === 'c5d7f0a3b1e2d4f6');
  t.match(web1, {
    type: 'alertmanager',
    integration_id: am.id,
    agent_id: agentId,
    message: 'HighErrorRate: 5xx above 5% for 10 minutes',
    service: 'api',
    labels: { alertname: 'HighErrorRate', instance: 'web-1:9100', severity: 'critical', team: 'payments' },
    severity: 'critical',
    count: 1,
  });
  const full = (await hub.api('GET', `/v1/incidents/${web1.id}`)).body;
  t.match(full.logs, /answers 7\.2% of requests with 5xx/);
  t.match(full.context, { generator_url: /prometheus/, starts_at: '2026-11-29T10:00:00.000Z', annotations: { runbook_url: /runbooks/ } });
  t.match(open.find((i) => i.source === '0a1b2c3d4e5f6789'), { agent_id: null, severity: 'medium' }, 'no agent on web-2: not linked');
  t.same((await incidentsOf(hub, 'label=severity=critical')).map((i) => i.id), [web1.id], 'filtered by label');
  t.same((await incidentsOf(hub, `label=team=payments&label=instance=${encodeURIComponent('web-1:9100')}`)).map((i) => i.id), [web1.id], 'every label given must hold');
  t.equal((await incidentsOf(hub, 'integration=nope')).length, 0);

  // The same notification again (Alertmanager retried): nothing changes.
  const again = await send(hub, am.url_path, body, { authorization: `Bearer ${am.secret}` });
  t.match(again.body, { duplicate: true, changed: 0 });
  t.equal((await hub.api('GET', `/v1/incidents/${web1.id}`)).body.count, 1);
  // Still firing, in the next group notification (another alert joined): the same firing is not a repeat.
  const next = JSON.parse(body);
  next.alerts.push({ ...next.alerts[1], labels: { ...next.alerts[1].labels, instance: 'web-3:9100' }, fingerprint: 'ffff000011112222' });
  t.match((await send(hub, am.url_path, JSON.stringify(next), { authorization: `Bearer ${am.secret}` })).body, { alerts: 3, changed: 1 });
  t.equal((await hub.api('GET', `/v1/incidents/${web1.id}`)).body.count, 1, 'the same firing (startsAt) counts once');

  // Resolved: by basic auth this time (Alertmanager's basic_auth), the user name unchecked.
  const resolved = JSON.parse(body);
  resolved.status = 'resolved';
  resolved.alerts[0].status = 'resolved';
  resolved.alerts[0].endsAt = '2026-11-29T10:20:00.000Z';
  resolved.alerts.pop();
  const basic = `Basic ${Buffer.from(`alertmanager:${am.secret}`).toString('base64')}`;
  t.match((await send(hub, am.url_path, JSON.stringify(resolved), { authorization: basic })).body, { changed: 1 });
  const after = (await hub.api('GET', `/v1/incidents/${web1.id}`)).body;
  t.match(after, { status: 'resolved', resolved_by: 'integration:prometheus' });
  const timeline = (await hub.api('GET', `/v1/incidents/${web1.id}/timeline`)).body.events as any[];
  t.same(
    timeline.filter((e) => ['opened', 'repeated', 'classified', 'resolved'].includes(e.kind)).map((e) => [e.kind, e.actor, e.by]),
    [
      ['opened', 'integration', 'integration:prometheus'],
      ['classified', 'rule', null],
      ['resolved', 'integration', 'integration:prometheus'],
    ],
  );

  const seen = await deliveries(hub, am.id);
  t.equal(seen.length, 3, 'each delivery once: the resend is not a new one');
  t.match(seen[0], { alerts: 1, changed: 1, bytes: JSON.stringify(resolved).length });
  t.notOk(JSON.stringify(seen).includes(am.secret));

  // Deliveries are kept as long as envelope ids (30 days), then forgotten by retention.
  hub.clock.advance(31 * 86_400_000);
  t.match(await hub.app.hub.retention.run(), { deliveries: 3 });
  t.same(await deliveries(hub, am.id), []);
  agent.close();
});

eachBackend(t, 'bad requests get a clear 4xx, change nothing, and cost no other integration anything', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { intakeMaxBytes: 64 * 1024 });
  const am = await integration(hub, { name: 'am', kind: 'alertmanager' });
  const other = await integration(hub, { name: 'other', kind: 'generic' });
  const body = fixture('alertmanager-firing.json');
  const refused = async (p: string, b: string | Buffer, headers: Record<string, string>, status: number, code: string) => {
    const res = await send(hub, p, b, headers);
    t.same([res.status, res.body?.error?.code], [status, code], `${code}: ${res.body?.error?.message}`);
  };
  const bearer = { authorization: `Bearer ${am.secret}` };
  await refused(am.url_path, body, {}, 401, 'HUB_INTAKE_UNAUTHORIZED');
  await refused(am.url_path, body, { authorization: `Bearer ${am.secret}x` }, 401, 'HUB_INTAKE_UNAUTHORIZED');
  await refused(am.url_path, body, { authorization: `Bearer ${other.secret}` }, 401, 'HUB_INTAKE_UNAUTHORIZED');
  await refused(am.url_path, body, { authorization: `Basic ${Buffer.from('x:').toString('base64')}` }, 401, 'HUB_INTAKE_UNAUTHORIZED');
  await refused('/v1/intake/01JZZZZZZZZZZZZZZZZZZZZZZZ', body, bearer, 401, 'HUB_INTAKE_UNAUTHORIZED');
  await refused('/v1/intake/..%2F..%2Fv1%2Fagents', body, bearer, 401, 'HUB_INTAKE_UNAUTHORIZED');
  t.equal((await hub.api('GET', `/v1/integrations/${am.id}`)).body.last_error, null, 'an unauthenticated request leaves nothing, not even an error note');

  await refused(am.url_path, '{"alerts": [', bearer, 400, 'HUB_INTAKE_MALFORMED');
  await refused(am.url_path, '', bearer, 400, 'HUB_INTAKE_MALFORMED');
  await refused(am.url_path, '[1,2,3]', bearer, 400, 'HUB_INTAKE_MALFORMED');
  await refused(am.url_path, '{"status":"firing"}', bearer, 400, 'HUB_INTAKE_MALFORMED');
  await refused(am.url_path, Buffer.alloc(65 * 1024, 0x20), bearer, 413, 'HUB_PAYLOAD_TOO_LARGE');
  t.match((await hub.api('GET', `/v1/integrations/${am.id}`)).body.last_error, /no "alerts" list/, 'the last refusal of an authenticated sender is shown on the integration');

  // Hostile values in one alert cost that alert, or that character, never the delivery.
  const hostile = JSON.parse(body);
  hostile.commonLabels = {};
  hostile.alerts[0].labels.alertname = 'Nul\u0000and\ud800lone';
  hostile.alerts[0].labels['x'.repeat(5000)] = 'long name: dropped';
  hostile.alerts[0].annotations.description = 'd'.repeat(200_000 / 4);
  hostile.alerts.push('not an alert', { labels: {}, annotations: {} }, { labels: { alertname: 42 }, fingerprint: { x: 1 } });
  const res = await send(hub, am.url_path, JSON.stringify(hostile), bearer);
  t.equal(res.status, 200, res.text);
  t.match(res.body, { alerts: 3, changed: 3, errors: [{ alert: 2, error: 'not an object' }, { alert: 3, error: /no alertname/ }] });
  const stored = await incidentsOf(hub, 'integration=am');
  t.ok(stored.some((i) => i.message.startsWith('Nul\ufffdand\ufffdlone')), 'a NUL and a lone surrogate become U+FFFD');
  t.ok(stored.every((i) => Object.keys(i.labels).every((k: string) => k.length <= 128)));

  // A disabled integration refuses, after authenticating (no one learns it exists otherwise).
  await hub.api('PATCH', `/v1/integrations/${am.id}`, { enabled: false });
  await refused(am.url_path, body, bearer, 403, 'HUB_INTAKE_DISABLED');
  await refused(am.url_path, body, {}, 401, 'HUB_INTAKE_UNAUTHORIZED');

  // Meanwhile the other integration is untouched and works.
  const ok = await send(hub, other.url_path, JSON.stringify({ title: 'backup failed', service: 'backup' }), { authorization: `Bearer ${other.secret}` });
  t.match(ok.body, { status: 'ok', changed: 1 });
});

eachBackend(t, 'REST: integrations are admin to change and read to see; names are unique; secrets rotate', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const reader = (await hub.api('POST', '/v1/tokens', { name: 'reader', scopes: ['read'] })).body.token as string;
  const as = (tok: string) => ({ authorization: `Bearer ${tok}` });
  t.equal((await hub.api('POST', '/v1/integrations', { name: 'x', kind: 'generic' }, as(reader))).status, 403);
  const g = await integration(hub, { name: 'scripts', kind: 'generic' });
  t.equal((await hub.api('GET', '/v1/integrations', undefined, as(reader))).status, 200);
  t.match(await hub.api('POST', '/v1/integrations', { name: 'scripts', kind: 'alertmanager' }), { status: 409, body: { error: { code: 'HUB_NAME_TAKEN' } } });
  t.match(await hub.api('POST', '/v1/integrations', { name: 'bad name!', kind: 'generic' }), { status: 400 });
  t.match(await hub.api('POST', '/v1/integrations', { name: 'x', kind: 'nagios' }), { status: 400 });
  t.match(await hub.api('POST', '/v1/integrations', { name: 'x', kind: 'generic', extra: 1 }), { status: 400 });
  t.match(await hub.api('POST', '/v1/integrations', { name: 's', kind: 'sentry' }), { status: 400, body: { error: { code: 'HUB_INVALID_INTEGRATION', message: /client secret/ } } });
  t.match(await hub.api('POST', '/v1/integrations', { name: 'pd', kind: 'pagerduty' }), { status: 201, body: { secret: /^[0-9a-f]{32}$/ } }, 'a routing key is 32 characters, as senders expect');
  t.match(await hub.api('PATCH', `/v1/integrations/${g.id}`, { name: 'pd' }), { status: 409 });
  t.match(await hub.api('PATCH', `/v1/integrations/${g.id}`, {}), { status: 400 });
  t.match(await hub.api('GET', '/v1/integrations/01JZZZZZZZZZZZZZZZZZZZZZZZ'), { status: 404, body: { error: { code: 'HUB_INTEGRATION_NOT_FOUND' } } });

  const rotated = await hub.api('POST', `/v1/integrations/${g.id}/rotate-secret`, {});
  t.equal(rotated.status, 200);
  t.not(rotated.body.secret, g.secret);
  const post = (secret: string) => send(hub, g.url_path, JSON.stringify({ title: 't' }), { authorization: `Bearer ${secret}` });
  t.equal((await post(g.secret)).status, 401, 'the old secret stops working at once');
  t.equal((await post(rotated.body.secret)).status, 200);

  const audit = (await hub.api('GET', '/v1/audit?limit=50')).body.events as any[];
  t.ok(['integration_created', 'integration_secret_rotated'].every((k) => audit.some((e) => e.kind === k)), 'on the audit trail');
  t.notOk(JSON.stringify(audit).includes(rotated.body.secret));
  t.equal((await hub.api('DELETE', `/v1/integrations/${g.id}`)).status, 204);
  t.equal((await incidentsOf(hub, 'integration=scripts')).length, 0, 'its incidents go with it');
  t.equal((await post(rotated.body.secret)).status, 401);
});

eachBackend(t, 'Grafana with its HMAC signature, Sentry signed by its client secret, and Events v2 by routing key', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const grafana = await integration(hub, { name: 'grafana', kind: 'grafana' });
  const gbody = fixture('grafana-firing.json');
  const now = String(Math.floor(hub.clock.now().getTime() / 1000));
  const gsig = (ts: string, b: string, secret = grafana.secret) => createHmac('sha256', secret).update(`${ts}:${b}`).digest('hex');
  const g = (headers: Record<string, string>, b = gbody) => send(hub, grafana.url_path, b, headers);
  t.match((await g({ 'x-grafana-alerting-signature': gsig(now, gbody), 'x-grafana-alerting-timestamp': now })).body, { changed: 1 });
  t.match(await g({ 'x-grafana-alerting-signature': gsig(now, gbody, 'wrong-secret-wrong-secret'), 'x-grafana-alerting-timestamp': now }), { status: 401, body: { error: { code: 'HUB_INTAKE_BAD_SIGNATURE' } } });
  t.match(await g({ 'x-grafana-alerting-signature': gsig(now, gbody), 'x-grafana-alerting-timestamp': now }, gbody.replace('93%', '99%')), { status: 401, body: { error: { code: 'HUB_INTAKE_BAD_SIGNATURE' } } }, 'a changed body');
  const old = String(Number(now) - 301);
  t.match(await g({ 'x-grafana-alerting-signature': gsig(old, gbody), 'x-grafana-alerting-timestamp': old }), { status: 401, body: { error: { code: 'HUB_INTAKE_STALE_REQUEST' } } }, 'a replay from the past');
  t.match((await g({ authorization: `Bearer ${grafana.secret}` }, gbody.replace('"status": "firing"', '"status": "resolved"').replaceAll('"status": "firing"', '"status": "resolved"'))).body, { changed: 1 }, 'or by its authorization header');
  t.match((await incidentsOf(hub, 'integration=grafana'))[0], { status: 'resolved', message: 'DiskAlmostFull: /var is 93% full', labels: { hostname: 'db-1' } });

  const secret = 'sentry-client-secret-0123456789abcdef';
  const sentry = await integration(hub, { name: 'sentry', kind: 'sentry', secret });
  t.equal(sentry.secret, secret);
  const sbody = fixture('sentry-event-alert.json');
  const ssig = (b: string, s = secret) => createHmac('sha256', s).update(b).digest('hex');
  const s = (b: string, headers: Record<string, string>) => send(hub, sentry.url_path, b, { 'sentry-hook-resource': 'event_alert', 'request-id': 'req-1', ...headers });
  t.match(await s(sbody, {}), { status: 401, body: { error: { code: 'HUB_INTAKE_BAD_SIGNATURE' } } }, 'unsigned');
  t.match(await s(sbody, { 'sentry-hook-signature': ssig(sbody, 'not-the-secret') }), { status: 401 });
  t.match(await s(sbody, { authorization: `Bearer ${secret}` }), { status: 401 }, 'Sentry signs: a bearer is not enough');
  t.match((await s(sbody, { 'sentry-hook-signature': ssig(sbody) })).body, { changed: 1 });
  t.match((await s(sbody, { 'sentry-hook-signature': ssig(sbody) })).body, { duplicate: true, changed: 0 }, 'the same Request-ID again: a replay changes nothing');
  const issue = (await incidentsOf(hub, 'integration=sentry'))[0];
  t.match(issue, { source: 'issue:4812345678', message: /^TypeError: Cannot read properties/, severity: 'high', labels: { environment: 'production', rule: 'Checkout errors' } });
  t.match((await hub.api('GET', `/v1/incidents/${issue.id}`)).body.logs, /at src\/checkout\.ts:42 in handleCheckout/);
  const rbody = fixture('sentry-issue-resolved.json');
  t.match((await send(hub, sentry.url_path, rbody, { 'sentry-hook-resource': 'issue', 'request-id': 'req-2', 'sentry-hook-signature': ssig(rbody) })).body, { changed: 1 });
  t.equal((await hub.api('GET', `/v1/incidents/${issue.id}`)).body.status, 'resolved', 'resolving the issue in Sentry resolves it');
  const install = JSON.stringify({ action: 'created', data: { installation: {} }, installation: { uuid: 'x' } });
  t.match((await send(hub, sentry.url_path, install, { 'sentry-hook-resource': 'installation', 'request-id': 'req-3', 'sentry-hook-signature': ssig(install) })).body, { alerts: 0, changed: 0 });

  const pd = await integration(hub, { name: 'backups', kind: 'pagerduty' });
  const trigger = fixture('pagerduty-trigger.json').replace('ROUTING_KEY', pd.secret);
  const enqueue = (b: string) => send(hub, '/v2/enqueue', b);
  t.match(await enqueue(trigger), { status: 202, body: { status: 'success', message: 'Event processed', dedup_key: 'backup-db-1-nightly' } });
  t.match(await enqueue(trigger), { status: 202 }, 'the same trigger again');
  const backup = (await incidentsOf(hub, 'integration=backups'));
  t.equal(backup.length, 1);
  t.match(backup[0], { count: 1, severity: 'high', service: 'postgresql', message: 'Nightly backup of db-1 failed: pg_dump exited 1' }, 'the same dedup_key and state changes nothing');
  t.same((await hub.api('GET', `/v1/incidents/${backup[0].id}`)).body.context.links, [{ href: 'https://backups.example/db-1/runs/812', text: 'Run 812' }], 'its links are kept');
  t.match(await enqueue(trigger.replace(pd.secret, 'f'.repeat(32))), { status: 401, body: { error: { code: 'HUB_INTAKE_UNAUTHORIZED' } } });
  t.match(await enqueue(JSON.stringify({ routing_key: pd.secret, event_action: 'trigger', payload: { summary: 'x', source: 'y' } })), { status: 400, body: { error: { code: 'HUB_INTAKE_MALFORMED', message: /severity/ } } });
  t.match(await enqueue(JSON.stringify({ routing_key: grafana.secret, event_action: 'resolve', dedup_key: 'k' })), { status: 401 }, "another kind's secret is not a routing key");
  const fresh = await enqueue(JSON.stringify({ routing_key: pd.secret, event_action: 'trigger', payload: { summary: 'no key given', source: 'db-2', severity: 'info' } }));
  t.match(fresh.body.dedup_key, /^[0-9A-Z]{26}$/, 'a trigger without dedup_key is given one');
  t.match(await enqueue(JSON.stringify({ routing_key: pd.secret, event_action: 'acknowledge', dedup_key: 'backup-db-1-nightly' })), { status: 202 });
  t.match((await hub.api('GET', `/v1/incidents/${backup[0].id}`)).body, { status: 'acknowledged', acknowledged_by: 'integration:backups' });
  t.match(await enqueue(JSON.stringify({ routing_key: pd.secret, event_action: 'resolve', dedup_key: 'backup-db-1-nightly' })), { status: 202 });
  t.equal((await hub.api('GET', `/v1/incidents/${backup[0].id}`)).body.status, 'resolved');
  t.equal((await deliveries(hub, pd.id)).length, 5, 'every event taken is a delivery; refused ones are not');
});

eachBackend(t, "a host-linked alert from Alertmanager: Slack's Restart runs on that host's agent, for the unit the alert names", async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  const { token } = await hub.enroll({ hostname: 'web-1' });
  const ok = { ok: true, exit_code: 0, stdout: 'restarted', stderr: '', duration_ms: 30, truncated: false };
  const agent = await runningAgent(hub, token, () => ok, { ...HELLO, hostname: 'web-1', actions: ['restart_service', 'service_logs', 'service_status'] });
  const am = await integration(hub, { name: 'prometheus', kind: 'alertmanager' });
  const body = JSON.parse(fixture('alertmanager-firing.json'));
  body.alerts = [{ ...body.alerts[0], labels: { ...body.alerts[0].labels, alertname: 'UnitFailed', name: 'api.service' } }];
  t.match((await send(hub, am.url_path, JSON.stringify(body), { authorization: `Bearer ${am.secret}` })).body, { changed: 1 });
  const incident = (await incidentsOf(hub, 'integration=prometheus'))[0];
  t.ok(incident.agent_id, 'linked to web-1');

  await eventually(async () => slack.of('chat.postMessage').length === 1, 5000, 'the post');
  const posted = slack.of('chat.postMessage')[0]!;
  t.equal(posted.args.blocks[0].text.text, '🚨 UnitFailed: 5xx above 5% for 10 minutes (web-1)');
  const buttons = posted.args.blocks.find((b: { type: string }) => b.type === 'actions').elements.map((e: { action_id: string }) => e.action_id);
  t.ok(buttons.includes('opspilot_restart'), `Restart is offered (${buttons})`);

  const click = clickBody({ actionId: 'opspilot_restart', incidentId: incident.id, user: 'UALLOWED' });
  const res = await fetch(`http://127.0.0.1:${hub.port}/slack/events`, { method: 'POST', body: click, headers: sign(click) });
  t.equal(res.status, 200);
  await eventually(async () => agent.execs.length === 1, 5000, 'the exec on web-1');
  t.match(agent.execs[0], { command: 'restart_service', params: { service: 'api.service' } });
  await hub.app.hub.slack!.listenersIdle();
  const timeline = (await hub.api('GET', `/v1/incidents/${incident.id}/timeline`)).body.events as any[];
  t.match(timeline.find((e) => e.kind === 'action_completed'), { by: 'slack:UALLOWED', detail: { command: 'restart_service', status: 'succeeded' } });

  // An alert no agent's host is named in offers no Restart, and a click is refused.
  const away = JSON.parse(fixture('alertmanager-firing.json'));
  away.alerts = [{ ...away.alerts[1], labels: { ...away.alerts[1].labels, name: 'api.service' } }];
  await send(hub, am.url_path, JSON.stringify(away), { authorization: `Bearer ${am.secret}` });
  const unlinked = (await incidentsOf(hub, 'integration=prometheus')).find((i) => i.agent_id === null);
  const refused = clickBody({ actionId: 'opspilot_restart', incidentId: unlinked.id, user: 'UALLOWED' });
  await fetch(`http://127.0.0.1:${hub.port}/slack/events`, { method: 'POST', body: refused, headers: sign(refused) });
  await hub.app.hub.slack!.listenersIdle();
  t.match(slack.of('chat.postEphemeral').at(-1)?.args.text, /not linked to a host OpsPilot runs on/);
  t.equal(agent.execs.length, 1, 'nothing else ran');
  agent.close();
});

eachBackend(t, "error reports: an SDK's errors open an incident at the third of a kind within 5 minutes; a monitoring agent's at once, on the seeds' paths", async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const reports = await integration(hub, { name: 'checkout-sdk', kind: 'error_report' });
  const auth = { authorization: `Bearer ${reports.secret}` };
  const sdk = (message: string, type = 'TypeError') =>
    send(hub, '/api/webhooks/error-report', JSON.stringify({ projectId: 'checkout', error: { message, type, stack: `${type}: ${message}\n    at pay (src/pay.ts:12:7)` }, metadata: { release: '2.4.1', hostname: 'web-1' } }), auth);

  t.match((await sdk('card is undefined')).body, { held: 1, changed: 0 });
  t.match((await sdk('card is undefined')).body, { held: 1, changed: 0 });
  t.match((await sdk('cart is empty', 'RangeError')).body, { held: 1 }, 'another kind is counted apart');
  hub.clock.advance(6 * 60_000);
  t.match((await sdk('card is undefined')).body, { held: 1, changed: 0 }, 'the first two are out of the 5-minute window');
  t.match((await sdk('card is undefined')).body, { held: 1 });
  const third = await sdk('card is undefined');
  t.match(third.body, { held: 0, changed: 1 }, 'the third within 5 minutes opens it');
  const incident = (await hub.api('GET', `/v1/incidents/${third.body.incident_ids[0]}`)).body;
  t.match(incident, { type: 'error_report', service: 'checkout', message: 'TypeError: card is undefined', labels: { project: 'checkout', error_type: 'TypeError', release: '2.4.1' }, count: 1 });
  t.match(incident.logs, /at pay \(src\/pay\.ts:12:7\)/);
  t.match((await sdk('card is undefined')).body, { changed: 1, incident_ids: [incident.id] }, 'then each one repeats it');
  t.equal((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.count, 2);

  const agentError = await send(hub, '/api/autonomous/error', JSON.stringify({ error: { message: 'queue consumer stalled' }, severity: 'LOW', source: 'test' }), auth);
  t.equal(agentError.status, 201, 'created, with the incident id');
  t.match((await hub.api('GET', `/v1/incidents/${agentError.body.incident_ids[0]}`)).body, { message: 'queue consumer stalled', severity: 'low', service: 'test' });

  const other = await integration(hub, { name: 'scripts', kind: 'generic' });
  t.match(await send(hub, '/api/autonomous/error', JSON.stringify({ error: { message: 'x' }, severity: 'LOW', source: 'test' }), { authorization: `Bearer ${other.secret}` }), { status: 401, body: { error: { code: 'HUB_INTAKE_UNAUTHORIZED' } } });
  t.match(await send(hub, '/api/webhooks/error-report', JSON.stringify({ projectId: 'x' }), auth), { status: 400, body: { error: { code: 'HUB_INTAKE_MALFORMED', message: /"error" is required/ } } });
  t.match(await send(hub, reports.url_path, JSON.stringify({ error: 'no project, no source' }), auth), { status: 400, body: { error: { code: 'HUB_INTAKE_MALFORMED' } } });
});

eachBackend(t, 'a burst: one Alertmanager group of 2,000 alerts is taken in one request, each alert once', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { analysisConcurrency: 0 });
  await hub.enroll({ hostname: 'host-7' });
  const am = await integration(hub, { name: 'am', kind: 'alertmanager' });
  const alerts = Array.from({ length: 2000 }, (_, i) => ({
    status: 'firing',
    labels: { alertname: 'NodeDown', instance: `host-${i}:9100`, severity: i % 2 ? 'warning' : 'critical' },
    annotations: { summary: `host-${i} is down` },
    startsAt: '2026-11-29T10:00:00Z',
    endsAt: '0001-01-01T00:00:00Z',
    fingerprint: `fp-${i}`,
  }));
  alerts.push({ ...alerts[5]!, annotations: { summary: 'the same alert twice in one group' } });
  const body = { version: '4', status: 'firing', receiver: 'opspilot', groupLabels: { alertname: 'NodeDown' }, commonLabels: { alertname: 'NodeDown' }, commonAnnotations: {}, externalURL: 'http://am', alerts };
  const res = await send(hub, am.url_path, JSON.stringify(body), { authorization: `Bearer ${am.secret}` });
  t.equal(res.status, 200, res.text.slice(0, 200));
  t.match(res.body, { alerts: 2001, changed: 2000, errors: [] }, 'the same alert twice is one firing');
  const open = (await hub.api('GET', '/v1/incidents?integration=am&limit=1000')).body.incidents as any[];
  const rest = (await hub.api('GET', `/v1/incidents?integration=am&limit=1000&before=${open.at(-1).id}`)).body.incidents as any[];
  t.equal(new Set([...open, ...rest].map((i) => i.source)).size, 2000, 'one incident per alert');
  const linked = [...open, ...rest].filter((i) => i.agent_id !== null);
  t.match(linked, [{ labels: { instance: 'host-7:9100' } }], 'the one host with an agent is linked');
  t.equal([...open, ...rest].filter((i) => i.severity === 'critical').length, 1000);
  const events = await hub.api('GET', `/v1/incidents/${open[0].id}/timeline`);
  t.match(events.body.events.map((e: { kind: string }) => e.kind).slice(0, 2), ['opened', 'classified']);
  t.match(events.body.events[0].detail, { delivery_id: res.body.delivery_id }, 'the audit trail leads to the delivery');
  // Resolved, all at once.
  const resolved = { ...body, status: 'resolved', alerts: alerts.slice(0, 2000).map((a) => ({ ...a, status: 'resolved', endsAt: '2026-11-29T11:00:00Z' })) };
  t.match((await send(hub, am.url_path, JSON.stringify(resolved), { authorization: `Bearer ${am.secret}` })).body, { changed: 2000 });
  t.equal((await hub.api('GET', '/v1/incidents?integration=am&status=new')).body.incidents.length, 0);
});

eachBackend(t, "silences and remediation rules match an integration's alerts by their labels and sender, and act on the linked host", async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl, { analysisConcurrency: 0 }));
  const { token } = await hub.enroll({ hostname: 'web-1' });
  const ok = { ok: true, exit_code: 0, stdout: 'restarted', stderr: '', duration_ms: 30, truncated: false };
  const agent = await runningAgent(hub, token, () => ok, { ...HELLO, hostname: 'web-1', actions: ['restart_service', 'service_logs', 'service_status'] });
  const am = await integration(hub, { name: 'prometheus', kind: 'alertmanager', labels: { team: 'payments' } });
  t.equal((await hub.api('POST', '/v1/silences', { match: { labels: { team: 'payments', alertname: 'Noisy' } }, ends_at: '2099-01-01T00:00:00Z', reason: 'known noisy' })).status, 201);
  const rule = await hub.api('POST', '/v1/rules', {
    name: 'restart-failed-unit',
    match: { type: 'alertmanager', integration_id: am.id, labels: { alertname: 'UnitFailed' } },
    action: { command: 'restart_service', params: { service: '{{unit}}' } },
    mode: 'auto',
    verify_s: 60,
  });
  t.equal(rule.status, 201, rule.text);

  const body = JSON.parse(fixture('alertmanager-firing.json'));
  const noisy = { ...body.alerts[0], labels: { ...body.alerts[0].labels, alertname: 'Noisy' }, fingerprint: 'noisy0000000001' };
  const failed = { ...body.alerts[0], labels: { ...body.alerts[0].labels, alertname: 'UnitFailed', name: 'api.service' }, fingerprint: 'unit00000000001' };
  t.match((await send(hub, am.url_path, JSON.stringify({ ...body, alerts: [noisy, failed] }), { authorization: `Bearer ${am.secret}` })).body, { changed: 2 });

  await eventually(async () => agent.execs.length === 1, 5000, 'the rule ran');
  t.match(agent.execs[0], { command: 'restart_service', params: { service: 'api.service' } }, '{{unit}} is the unit the alert names');
  await eventually(async () => slack.of('chat.postMessage').length >= 1, 5000, 'a post');
  await hub.app.hub.slack!.notifier.idle();
  const headers = slack.of('chat.postMessage').filter((c) => !c.args.thread_ts).map((c) => c.args.blocks[0].text.text as string);
  t.ok(headers.some((h) => h.includes('UnitFailed')), 'the unit failure is posted');
  t.notOk(headers.some((h) => h.includes('Noisy')), 'the silenced one is not');
  agent.close();
});
