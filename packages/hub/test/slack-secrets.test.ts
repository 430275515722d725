/**
 * No secret reaches Slack (issue 11): secrets planted in every field an incident message is made
 * from (the alert's message, source and logs, the host name, the model's summary, root cause,
 * rationale and action label) and none of them in anything the fake Slack Web API receives.
 */
import t from 'tap';
import type { PayloadOf } from '@opspilot/protocol';
import { completion, fakeModel } from './fake-model.ts';
import { fakeSlack, slackConfig } from './fake-slack.ts';
import { HELLO, eachBackend, eventually, runningAgent, startHub } from './helpers.ts';

const SECRETS = ['hunter2', 'opk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg', 'sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0', 's3cr3tPa55'];

eachBackend(t, 'secrets planted in every field never reach Slack', async (t, backend) => {
  const slack = await fakeSlack(t);
  const model = await fakeModel(t, [
    completion(
      JSON.stringify({
        summary: `api lost its database: the password=${SECRETS[0]} was rejected`,
        root_cause: `token ${SECRETS[1]} expired`,
        confidence: 0.7,
        suggested_action: { command: 'restart_service', params: { service: 'api.service' }, label: `Restart with api_key=${SECRETS[2]}` },
        rationale: `PGPASSWORD=${SECRETS[3]} is stale`,
        risk: 'low',
      }),
    ),
  ]);
  const hub = await startHub(t, await backend.open(t), { ...slackConfig(slack.apiUrl), llmBaseUrl: model.baseURL, llmApiKey: 'sk-test' });
  const { token } = await hub.enroll({ hostname: 'web-1' });
  const hello: PayloadOf<'hello'> = { ...HELLO, actions: ['restart_service', 'service_logs', 'service_status'] };
  const agent = await runningAgent(hub, token, () => null, hello);
  agent.send(
    'alert',
    {
      type: 'systemd',
      source: `api.service token=${SECRETS[1]}`,
      message: `api.service: connecting with password=${SECRETS[0]} failed`,
      logs: `DATABASE_URL=postgres://app:${SECRETS[3]}@db/prod\nAuthorization: Bearer ${SECRETS[2]}`,
      status: 'exit-code',
    },
    { id: 'secret-1' },
  );
  await agent.acked(['secret-1']);
  await eventually(async () => slack.of('chat.update').some((c) => JSON.stringify(c.args).includes('Analysis')), 10_000, 'the message with the analysis');
  const sent = JSON.stringify(slack.calls.map((c) => c.args));
  t.ok(sent.includes('REDACTED'), 'redaction markers where the secrets were');
  for (const secret of SECRETS) t.notOk(sent.includes(secret), `${secret.slice(0, 6)}… never sent to Slack`);
  agent.close();
});
