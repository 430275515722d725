import t from 'tap';
import { HELLO, ScriptedAgent, eachBackend, eventually, startHub } from './helpers.ts';

eachBackend(t, 'the timeline records every change with its actor, in order', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { token } = await hub.enroll();
  const agent = await ScriptedAgent.connect(hub.wsUrl, token);
  agent.send('hello', HELLO, { id: 'h' });
  const alert = { type: 'systemd', source: 'nginx.service', message: "nginx.service: Failed with result 'exit-code'.", logs: 'bind() failed: Address already in use' };
  agent.send('alert', alert, { id: 'a1' });
  await agent.acked(['h', 'a1']);
  const id = (await hub.api('GET', '/v1/incidents')).body.incidents[0].id;
  await eventually(async () => (await hub.api('GET', `/v1/incidents/${id}`)).body.analysis_status === 'done', 10_000, 'the analysis');
  agent.send('alert', alert, { id: 'a2' });
  await agent.acked(['a2']);
  t.equal((await hub.api('POST', `/v1/incidents/${id}/acknowledge`)).status, 200);
  t.equal((await hub.api('POST', `/v1/incidents/${id}/acknowledge`)).status, 200, 'a second acknowledgement changes nothing');
  agent.send('resolve', { type: 'systemd', source: 'nginx.service', message: 'active again' }, { id: 'r1' });
  await agent.acked(['r1']);

  const { events } = (await hub.api('GET', `/v1/incidents/${id}/timeline`)).body;
  t.same(
    events.map((e: { actor: string; kind: string }) => `${e.actor}:${e.kind}`),
    ['agent:opened', 'rule:classified', 'hub:analyzing', 'heuristic:analyzed', 'agent:repeated', 'user:acknowledged', 'agent:resolved'],
  );
  t.match(events[1].detail, { rule: 'address_in_use', severity: 'high' });
  t.match(events[3].detail, { suggested_action: 'service_status' });
  t.match(events[4].detail, { count: 2 });
  t.equal(events[5].by, 'token:admin', 'who acknowledged');
  t.match(events[6].detail, { message: 'active again' });
  // `at` is when it happened by its source's clock: an agent's envelope from an earlier second
  // keeps that second, so it may trail the hub's millisecond stamps by under a second.
  const times = events.map((e: { at: string }) => Date.parse(e.at));
  t.ok(times.every((at: number, i: number) => i === 0 || at > times[i - 1]! - 1000), 'in time order, to the second');
  t.equal((await hub.api('GET', '/v1/incidents/01HZZZZZZZZZZZZZZZZZZZZZZZ/timeline')).status, 404);
  agent.close();
});
