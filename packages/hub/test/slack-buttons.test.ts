/**
 * Buttons say what they do, and a click acts once (issue 11): the hub writes the "Run" button
 * from the action itself, never the model's label; a suggestion must concern the incident's own
 * unit; a change to the host asks to confirm; a replayed signed click runs nothing.
 */
import t from 'tap';
import type { PayloadOf } from '@opspilot/protocol';
import { completion, fakeModel } from './fake-model.ts';
import { clickBody, fakeSlack, sign, slackConfig } from './fake-slack.ts';
import { HELLO, eachBackend, eventually, runningAgent, startHub, type TestHub } from './helpers.ts';

const HELLO_UNITS: PayloadOf<'hello'> = { ...HELLO, actions: ['restart_service', 'stop_service', 'service_logs', 'service_status'] };
const FAILED = (source: string): PayloadOf<'alert'> => ({ type: 'systemd', source, message: `${source}: Failed with result 'exit-code'.`, status: 'exit-code', exit_code: 1 });
const answer = (command: string, service: string, label: string) =>
  completion(JSON.stringify({ summary: 's', root_cause: 'r', confidence: 0.8, suggested_action: { command, params: { service }, label }, rationale: 'x', risk: 'low' }));
const post = (hub: TestHub, body: string) => fetch(`http://127.0.0.1:${hub.port}/slack/events`, { method: 'POST', body, headers: sign(body) });
const runButton = (blocks: any[]) => blocks.flatMap((b) => b.elements ?? []).find((e: any) => e.action_id === 'opspilot_run_suggested');

eachBackend(t, "the Run button is the hub's words for the action; a suggestion for another unit is dropped; a host change confirms", async (t, backend) => {
  const slack = await fakeSlack(t);
  const model = await fakeModel(t, [answer('stop_service', 'sshd.service', 'Restart nginx (safe, low risk)'), answer('restart_service', 'api.service', 'Totally safe, just click')]);
  const hub = await startHub(t, await backend.open(t), { ...slackConfig(slack.apiUrl), llmBaseUrl: model.baseURL, llmApiKey: 'sk-test', analysisReuseS: 0 });
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ({ ok: true, exit_code: 0, stdout: '', stderr: '', duration_ms: 5, truncated: false }), HELLO_UNITS);

  agent.send('alert', FAILED('nginx.service'), { id: 'n1' });
  await agent.acked(['n1']);
  const nginx = (await hub.api('GET', '/v1/incidents')).body.incidents[0];
  await eventually(async () => (await hub.api('GET', `/v1/incidents/${nginx.id}`)).body.analysis, 10_000, 'the first analysis');
  t.equal((await hub.api('GET', `/v1/incidents/${nginx.id}`)).body.analysis.suggested_action, null, 'stop sshd.service for an nginx incident is not kept');

  agent.send('alert', FAILED('api.service'), { id: 'a1' });
  await agent.acked(['a1']);
  await eventually(async () => slack.of('chat.update').some((c) => runButton(c.args.blocks ?? [])), 10_000, 'a message with the Run button');
  const button = runButton(slack.of('chat.update').find((c) => runButton(c.args.blocks ?? []))!.args.blocks);
  t.equal(button.text.text, 'Run: restart_service api.service', 'what runs, not what the model called it');
  t.notMatch(JSON.stringify(button), /Totally safe/);
  t.match(button.confirm, { title: { text: 'Run the suggested fix?' }, text: { text: /restart_service api\.service/ } }, 'a host change asks first');
  agent.close();
});

eachBackend(t, 'a stored suggestion for another unit is refused at the click; a replayed signed click runs nothing', async (t, backend) => {
  const slack = await fakeSlack(t);
  const hub = await startHub(t, await backend.open(t), slackConfig(slack.apiUrl));
  const { token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ({ ok: true, exit_code: 0, stdout: 'ok', stderr: '', duration_ms: 5, truncated: false }), HELLO_UNITS);
  agent.send('alert', FAILED('api.service'), { id: 'a1' });
  await agent.acked(['a1']);
  const id = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id as string;
  await eventually(async () => (await hub.api('GET', `/v1/incidents/${id}`)).body.analysis, 10_000, 'the heuristic analysis');
  // An analysis stored before suggestions were checked, naming another unit.
  const db = hub.app.hub.database.db;
  const row = await db.selectFrom('incidents').select('analysis').where('id', '=', id).executeTakeFirstOrThrow();
  await db.updateTable('incidents').set({ analysis: JSON.stringify({ ...(row.analysis as object), suggested_action: { command: 'stop_service', params: { service: 'sshd.service' }, label: 'Restart api' } }) as never }).where('id', '=', id).execute();
  await post(hub, clickBody({ actionId: 'opspilot_run_suggested', incidentId: id, user: 'UALLOWED' }));
  await eventually(async () => slack.of('chat.postEphemeral').length === 1, 5000, 'the refusal');
  t.match(slack.of('chat.postEphemeral')[0]!.args.text, /names another unit than api\.service; nothing was run/);
  t.equal(agent.execs.length, 0);

  // One signed Logs click, sent four times: one exec.
  const body = clickBody({ actionId: 'opspilot_logs', incidentId: id, user: 'UALLOWED' });
  for (let i = 0; i < 4; i++) t.equal((await post(hub, body)).status, 200, 'answered (Slack must always get its 200)');
  await eventually(async () => agent.execs.length === 1, 5000, 'the exec');
  await hub.app.hub.slack!.listenersIdle(); // every copy was answered and handled
  t.equal(agent.execs.length, 1, 'replays ran nothing');
  agent.close();
});
