/**
 * Slack end to end: the hub's real Bolt app and WebClient against a fake Slack Web API over
 * HTTP, signed interaction payloads over the hub's socket, and a scripted agent running execs.
 */
import t from 'tap';
import type { PayloadOf } from '@opspilot/protocol';
import { clickBody, fakeSlack, sign, slackConfig } from './fake-slack.ts';
import { HELLO, ScriptedAgent, TestClock, eachBackend, eventually, runningAgent, startHub, type TestHub } from './helpers.ts';

const FAILED = { type: 'systemd', source: 'api.service', message: "api.service: Failed with result 'exit-code'.", logs: 'api: panic: nil map', status: 'failed', exit_code: 2 };
const HELLO_LOGS: PayloadOf<'hello'> = { ...HELLO, actions: ['restart_service', 'service_logs', 'service_status'] };
const ok = (stdout: string) => ({ ok: true, exit_code: 0, stdout, stderr: '', duration_ms: 40, truncated: false });

let seq = 0;
async function alert(agent: ScriptedAgent, payload: PayloadOf<'alert'> = FAILED): Promise<void> {
  const id = `al${++seq}`;
  agent.send('alert', payload, { id });
  await agent.acked([id]);
}

async function post(hub: TestHub, body: string, headers: Record<string, string>) {
  const res = await fetch(`http://127.0.0.1:${hub.port}/slack/events`, { method: 'POST', body, headers });
  const text = await res.text();
  return { status: res.status, text, body: text.startsWith('{') ? JSON.parse(text) : null };
}
const click = (hub: TestHub, actionId: string, incidentId: string, user: string) => {
  const body = clickBody({ actionId, incidentId, user });
  return post(hub, body, sign(body));
};

const header = (call: { args: Record<string, any> }) => call.args.blocks?.[0]?.text?.text;
const firstIncident = async (hub: TestHub) => (await hub.api('GET', '/v1/incidents')).body.incidents[0].id as string;
const kinds = async (hub: TestHub, id: string) => (await hub.api('GET', `/v1/incidents/${id}/timeline`)).body.events as { kind: string; by: string | null; detail: any }[];

eachBackend(t, 'an alert is one message, later changes edit it, and Restart by an allowed user restarts the unit with the result in the thread', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  const { token } = await hub.enroll();
  // The agent holds its answer until the test sends it: the click must be answered before.
  const agent = await runningAgent(hub, token, () => null, HELLO_LOGS);
  await alert(agent);
  const id = await firstIncident(hub);

  await eventually(async () => slack.of('chat.postMessage').length === 1, 5000, 'the post');
  const posted = slack.of('chat.postMessage')[0]!;
  t.equal(posted.args.channel, 'C0OPSPILOT');
  t.equal(header(posted), '🚨 Service down: api.service (web-1)');
  const ts = posted.args.ts ?? '1700000000.000001';
  // The analysis and a repeat edit the same message.
  await eventually(async () => slack.of('chat.update').some((c) => JSON.stringify(c.args.blocks).includes('Likely cause')), 5000, 'the analysis edit');
  await alert(agent);
  await eventually(async () => slack.of('chat.update').some((c) => JSON.stringify(c.args.blocks).includes('*Count*\\n2')), 5000, 'the count edit');
  t.equal(slack.of('chat.postMessage').length, 1, 'never a second message');
  t.ok(slack.of('chat.update').every((c) => c.args.ts === ts && c.args.channel === 'C0OPSPILOT'));

  t.equal((await hub.api('POST', `/v1/incidents/${id}/acknowledge`)).status, 200);
  await eventually(async () => slack.of('chat.update').some((c) => JSON.stringify(c.args.blocks).includes('ack: admin (API token)')), 5000, 'the acknowledgement edit');

  const res = await click(hub, 'opspilot_restart', id, 'UALLOWED');
  t.equal(res.status, 200, 'acknowledged');
  await eventually(async () => agent.execs.length === 1, 5000, 'the exec');
  const exec = agent.execs[0]!;
  t.same(exec.command, 'restart_service');
  t.same(exec.params, { service: 'api.service' }, 'the unit comes from the incident, not the click');
  // Its sent mark is written 250 ms after sending when no result has come by then.
  await eventually(async () => (await hub.api('GET', `/v1/exec/${exec.request_id}`)).body.status === 'sent', 5000, 'marked sent');
  t.match(await hub.api('GET', `/v1/exec/${exec.request_id}`), { body: { status: 'sent', completed_at: null } }, 'the click was answered before the exec finished');
  await eventually(async () => slack.of('chat.update').some((c) => /⏳ <@UALLOWED> ran `restart_service`/.test(JSON.stringify(c.args.blocks))), 5000, 'the running edit');
  agent.send('exec_result', { request_id: exec.request_id, ...ok('restarted api.service') }, { id: 'res-1' });

  await eventually(async () => slack.of('chat.postMessage').some((c) => c.args.thread_ts === ts), 5000, 'the thread reply');
  const reply = slack.of('chat.postMessage').find((c) => c.args.thread_ts === ts)!;
  t.match(reply.args.text, /restart_service.*<@UALLOWED>.*succeeded/s);
  t.match(reply.args.text, /restarted api\.service/);
  await eventually(async () => slack.of('chat.update').some((c) => /<@UALLOWED>.*succeeded/s.test(JSON.stringify(c.args.blocks))), 5000, 'the message shows who and what');

  const execs = await hub.app.hub.database.db.selectFrom('exec_requests').selectAll().execute();
  t.match(execs, [{ command: 'restart_service', origin: 'slack', requested_by: 'slack:UALLOWED', incident_id: id, status: 'succeeded' }]);
  const timeline = await kinds(hub, id);
  t.match(timeline.find((e) => e.kind === 'action_requested'), { by: 'slack:UALLOWED', detail: { command: 'restart_service' } });
  t.match(timeline.find((e) => e.kind === 'action_completed'), { by: 'slack:UALLOWED', detail: { status: 'succeeded', exec_id: execs[0]!.id } });
  agent.close();
});

eachBackend(t, 'a user outside the allowlist gets an ephemeral refusal and nothing runs; Logs is for everyone and is redacted', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok('Nov 22 api[1]: started\nNov 22 api[1]: DATABASE_URL=postgres://app:hunter2@db/prod'), HELLO_LOGS);
  await alert(agent);
  const id = await firstIncident(hub);
  await eventually(async () => slack.of('chat.postMessage').length === 1, 5000, 'the post');

  for (const action of ['opspilot_restart', 'opspilot_ignore']) t.equal((await click(hub, action, id, 'USTRANGER')).status, 200);
  await eventually(async () => slack.of('chat.postEphemeral').length === 2, 5000, 'the refusals');
  t.match(slack.of('chat.postEphemeral')[0]!.args, { channel: 'C0OPSPILOT', user: 'USTRANGER', text: /not allowed/ });
  t.match(await hub.api('GET', `/v1/incidents/${id}`), { body: { status: /^(new|analyzing|open)$/ } }, 'not ignored');
  t.equal(agent.execs.length, 0, 'nothing ran');
  t.equal((await kinds(hub, id)).filter((e) => e.kind === 'action_refused' && e.by === 'slack:USTRANGER').length, 2, 'refusals are on the timeline');

  t.equal((await click(hub, 'opspilot_logs', id, 'USTRANGER')).status, 200);
  await eventually(async () => agent.execs.length === 1, 5000, 'the logs exec');
  t.match(agent.execs[0], { command: 'service_logs', params: { service: 'api.service', lines: 50 } });
  await eventually(async () => slack.of('chat.postMessage').some((c) => c.args.thread_ts), 5000, 'the logs in the thread');
  const reply = slack.of('chat.postMessage').find((c) => c.args.thread_ts)!.args.text as string;
  t.match(reply, /api\[1\]: started/);
  t.notOk(reply.includes('hunter2'), 'secrets are redacted before they leave the hub');

  // A click for an incident that does not exist, or a hostile value, runs nothing.
  t.equal((await click(hub, 'opspilot_restart', '01HZZZZZZZZZZZZZZZZZZZZZZZ', 'UALLOWED')).status, 200);
  t.equal((await click(hub, 'opspilot_restart', "x'; DROP TABLE incidents;--", 'UALLOWED')).status, 200);
  await eventually(async () => slack.of('chat.postEphemeral').length === 4, 5000, 'told');
  t.equal(agent.execs.length, 1);
  agent.close();
});

eachBackend(t, 'forged, stale and malformed requests never act', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok('done'), HELLO_LOGS);
  await alert(agent);
  const id = await firstIncident(hub);
  const body = clickBody({ actionId: 'opspilot_restart', incidentId: id, user: 'UALLOWED' });

  const cases: [string, string, Record<string, string>, number, string][] = [
    ['wrong secret', body, sign(body, { secret: 'not-the-signing-secret' }), 401, 'HUB_SLACK_BAD_SIGNATURE'],
    ['body changed after signing', body.replace('UALLOWED', 'UALLOWEE'), sign(body), 401, 'HUB_SLACK_BAD_SIGNATURE'],
    ['no signature', body, { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(Math.floor(Date.now() / 1000)) }, 401, 'HUB_SLACK_BAD_SIGNATURE'],
    ['replayed (6 minutes old)', body, sign(body, { ts: Math.floor(Date.now() / 1000) - 360 }), 401, 'HUB_SLACK_STALE_REQUEST'],
    ['from the future', body, sign(body, { ts: Math.floor(Date.now() / 1000) + 360 }), 401, 'HUB_SLACK_STALE_REQUEST'],
    ['no timestamp', body, { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-signature': sign(body)['x-slack-signature']! }, 401, 'HUB_SLACK_STALE_REQUEST'],
    ['signed, not a payload', 'hello=1', sign('hello=1'), 400, 'HUB_BAD_REQUEST'],
    ['signed, payload not JSON', 'payload=%7Bnope', sign('payload=%7Bnope'), 400, 'HUB_BAD_REQUEST'],
    ['signed, payload an array', 'payload=%5B1%5D', sign('payload=%5B1%5D'), 400, 'HUB_BAD_REQUEST'],
  ];
  for (const [name, b, headers, status, code] of cases) {
    const res = await post(hub, b, headers);
    t.equal(res.status, status, name);
    t.equal(res.body?.error?.code, code, name);
  }
  const huge = `payload=${'a'.repeat(300 * 1024)}`;
  t.equal((await post(hub, huge, sign(huge))).status, 413, 'oversized');
  t.equal((await post(hub, '{"type":"x"}', { ...sign('{"type":"x"}'), 'content-type': 'text/plain' })).status, 415, 'other content types');
  const challenge = JSON.stringify({ type: 'url_verification', challenge: 'abc123', token: 'x' });
  t.same((await post(hub, challenge, { ...sign(challenge), 'content-type': 'application/json' })).body, { challenge: 'abc123' }, "Slack's URL check");
  // Each was refused by the receiver before any listener ran: there is nothing left to wait for.
  t.equal(agent.execs.length, 0, 'nothing ran');
  t.equal((await kinds(hub, id)).filter((e) => e.kind.startsWith('action')).length, 0);
  agent.close();
});

eachBackend(t, 'Ignore mutes the fingerprint: the incident is ignored and the next one is recorded but not posted', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  const { id: agentId, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok('done'), HELLO_LOGS);
  await alert(agent);
  const id = await firstIncident(hub);
  await eventually(async () => slack.of('chat.postMessage').length === 1, 5000, 'the post');
  t.equal((await click(hub, 'opspilot_ignore', id, 'UALLOWED')).status, 200);
  await eventually(async () => (await hub.api('GET', `/v1/incidents/${id}`)).body.status === 'ignored', 5000, 'ignored');
  await eventually(async () => slack.of('chat.update').some((c) => header(c) === '🔕 Service down: api.service (web-1)'), 5000, 'the edit');
  const mute = await hub.app.hub.database.db.selectFrom('fingerprint_mutes').selectAll().executeTakeFirstOrThrow();
  t.match(mute, { agent_id: agentId, type: 'systemd', source: 'api.service', muted_by: 'slack:UALLOWED' });
  t.equal(mute.until.getTime() - mute.muted_at.getTime(), 86_400_000, 'for 24 hours');

  agent.send('resolve', { type: 'systemd', source: 'api.service' }, { id: 'r1' });
  await agent.acked(['r1']);
  hub.clock.advance(40 * 60_000); // past the 30-minute reopen window
  await alert(agent);
  const next = await firstIncident(hub);
  t.not(next, id, 'a new incident is recorded');
  // The alert's ack came after its batch told the notifier: idle() covers the run it started.
  await hub.app.hub.slack!.notifier.idle();
  t.equal(slack.of('chat.postMessage').length, 1, 'and not posted');
  agent.close();
});

eachBackend(t, 'delivery: a burst loses nothing and is paced, 429 waits for Retry-After, and pending notifications survive a restart', async (t, backend) => {
  const db = await backend.open(t);
  // The second hub's clock stands still but for its waits: the pacing and the pause are exact.
  const clock = new TestClock();
  const slack = await fakeSlack(t, { now: () => clock.now().getTime() });
  slack.limits.push({ method: 'chat.postMessage', n: 1, retryAfterS: 1 });
  // Slack unreachable at first: the first hub queues everything.
  const first = await startHub(t, db, slackConfig('http://127.0.0.1:9/api/', { analysisConcurrency: 0 }));
  const { token } = await first.enroll();
  let agent = await ScriptedAgent.connect(first.wsUrl, token);
  agent.send('hello', HELLO, { id: 'h' });
  await agent.acked(['h']);
  for (let i = 0; i < 12; i++) await alert(agent, { ...FAILED, source: `svc-${i}.service` });
  agent.close();
  await first.close();
  const pending = await db.db.selectFrom('notifications').select(['incident_id']).where('done_at', 'is', null).execute();
  t.equal(pending.length, 12, 'one pending message per incident');

  clock.fastForward();
  const second = await startHub(t, db, slackConfig(slack.apiUrl, { analysisConcurrency: 0, slackPaceMs: 100 }), false, clock);
  await eventually(async () => slack.of('chat.postMessage').length === 12, 20_000, 'all posted');
  const posts = slack.of('chat.postMessage');
  t.same(new Set(posts.map((p) => header(p))).size, 12, 'each incident once');
  t.same(posts.slice(1).map((p, i) => p.at - posts[i]!.at), Array(11).fill(100), 'paced: one post every 100 ms');
  t.equal(slack.limited.length, 1, 'the 429 was met');
  t.equal(posts[0]!.at - slack.limited[0]!.at, 1000, 'and its Retry-After of 1 s honoured');
  await eventually(async () => (await db.db.selectFrom('notifications').select('id').where('done_at', 'is', null).execute()).length === 0, 5000, 'the outbox to empty');
  const rows = await db.db.selectFrom('notifications').select(['done_at', 'error']).execute();
  t.ok(rows.every((r) => r.done_at !== null && !r.error?.startsWith('failed')), 'every notification delivered');
  agent = await ScriptedAgent.connect(second.wsUrl, token);
  agent.close();
});

eachBackend(t, 'closing the hub while a click waits on its exec: the click is told, recorded, and its reply queued, before the hub is closed', async (t, backend) => {
  t.setTimeout(20_000); // the exec's own timeout is 30 s: closing must not wait for it
  const db = await backend.open(t);
  const slack = await fakeSlack(t);
  const hub = await startHub(t, db, slackConfig(slack.apiUrl));
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => null, HELLO_LOGS); // never answers
  await alert(agent);
  const id = await firstIncident(hub);
  t.equal((await click(hub, 'opspilot_restart', id, 'UALLOWED')).status, 200);
  await eventually(async () => agent.execs.length === 1, 5000, 'the exec');
  await hub.close();
  const events = await db.db.selectFrom('incident_events').select(['kind', 'detail']).where('incident_id', '=', id).where('kind', '=', 'action_completed').execute();
  t.match(events, [{ detail: { command: 'restart_service', status: 'failed', error_code: 'HUB_UNAVAILABLE' } }], 'the click finished with the hub stopping');
  const replies = await db.db.selectFrom('notifications').select(['kind', 'body']).where('incident_id', '=', id).where('kind', '=', 'thread').execute();
  t.match(replies, [{ body: /restart_service/ }], 'its thread reply queued (sent before the notifier stopped, or at the next start)');
  agent.close();
});

eachBackend(t, 'post-only mode: SLACK_WEBHOOK_URL alone posts each incident once, without buttons', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), { slackWebhookUrl: slack.webhookUrl, slackPaceMs: 0 });
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('hello', HELLO, { id: 'h' });
  await agent.acked(['h']);
  await alert(agent);
  await eventually(async () => slack.webhook.length === 1, 5000, 'the webhook post');
  t.equal(slack.webhook[0]!.body.text, '🚨 Service down: api.service (web-1)');
  t.notOk(slack.webhook[0]!.body.blocks.some((b: { type: string }) => b.type === 'actions'), 'no buttons');
  await alert(agent);
  await hub.app.hub.slack!.notifier.idle();
  t.equal(slack.webhook.length, 1, 'changes cannot be edited in, so nothing more is posted');
  t.equal((await post(hub, 'payload=%7B%7D', sign('payload=%7B%7D'))).status, 404, 'no interactivity endpoint');
  agent.close();
});

eachBackend(t, 'without Slack settings the hub queues nothing and has no Slack endpoint', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  await alert(agent);
  t.equal(hub.app.hub.slack, null);
  t.equal((await hub.app.hub.database.db.selectFrom('notifications').selectAll().execute()).length, 0);
  t.equal((await post(hub, 'payload=%7B%7D', sign('payload=%7B%7D'))).status, 404);
  agent.close();
});
