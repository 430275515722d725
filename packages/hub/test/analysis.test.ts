/**
 * Incidents get an analysis by themselves: from the model when one is configured (a local server
 * speaking OpenAI's chat completions API here), from the heuristics otherwise.
 */
import t from 'tap';
import { completion, fakeModel } from './fake-model.ts';
import { HELLO, ScriptedAgent, eachBackend, eventually, startHub, type TestHub } from './helpers.ts';

const ANSWER = {
  summary: 'nginx cannot bind port 80',
  root_cause: 'Another process listens on port 80.',
  confidence: 0.9,
  suggested_action: { command: 'service_status', params: { service: 'nginx.service' }, label: 'Check nginx' },
  rationale: 'See what holds the port first.',
  risk: 'low',
};

async function nginxIncident(hub: TestHub, token: string, logs: string): Promise<string> {
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('hello', HELLO, { id: 'h' });
  agent.send('alert', { type: 'systemd', source: 'nginx.service', message: "nginx.service: Failed with result 'exit-code'.", logs, status: 'exit-code', exit_code: 1 }, { id: 'a' });
  await agent.acked(['h', 'a']);
  agent.close();
  return (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
}

const analysed = (hub: TestHub, id: string) =>
  eventually(async () => {
    const i = (await hub.api('GET', `/v1/incidents/${id}`)).body;
    return i.analysis_status === 'done' && i;
  }, 10_000, 'the analysis');

eachBackend(t, 'without a model key, the heuristics analyse every new incident', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { token } = await hub.enroll();
  const id = await nginxIncident(hub, token, 'nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)');
  const incident = await analysed(hub, id);
  t.match(incident, { rule: 'address_in_use', analysis: { source: 'heuristic', suggested_action: { command: 'service_status', params: { service: 'nginx.service' } }, risk: 'low' } });
  t.type(incident.analysis.analyzed_at, 'string');
});

eachBackend(t, 'with a model, its validated answer is stored, and no secret reaches it', async (t, backend) => {
  const model = await fakeModel(t, [completion(JSON.stringify(ANSWER))]);
  const hub = await startHub(t, await backend.open(t), { llmBaseUrl: model.baseURL, llmApiKey: 'sk-test', llmModel: 'test-model' });
  const { token } = await hub.enroll();
  const id = await nginxIncident(hub, token, 'bind() failed: Address already in use\nconnecting to postgres://app:hunter2@db/prod');
  const incident = await analysed(hub, id);
  t.match(incident.analysis, { ...ANSWER, source: 'llm' });
  t.ok(incident.analysis.redactions >= 1);
  t.equal(model.requests.length, 1);
  t.notOk(model.requests[0]!.raw.includes('hunter2'), 'the password stayed on the hub');
  t.equal(model.requests[0]!.body.model, 'test-model');

  const again = await hub.api('POST', `/v1/incidents/${id}/analyze`);
  t.equal(again.status, 202);
  await eventually(async () => model.requests.length === 2, 10_000, 'a second analysis');
  t.equal((await hub.api('POST', '/v1/incidents/01HZZZZZZZZZZZZZZZZZZZZZZZ/analyze')).status, 404);
});

eachBackend(t, 'analyses queued or running when the hub stopped are done after it starts', async (t, backend) => {
  const db = await backend.open(t);
  const first = await startHub(t, db, { analysisConcurrency: 0 }); // takes nothing from the queue
  const { token } = await first.enroll();
  const id = await nginxIncident(first, token, 'Address already in use');
  t.equal((await first.api('GET', `/v1/incidents/${id}`)).body.analysis_status, 'pending');
  await first.close();
  // As if the hub had died mid-analysis.
  await db.db.updateTable('incidents').set({ analysis_status: 'running' }).where('id', '=', id).execute();
  const second = await startHub(t, db);
  t.match(await analysed(second, id), { analysis: { source: 'heuristic' } });
});
