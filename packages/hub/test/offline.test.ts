import t from 'tap';
import { ScriptedAgent, eachBackend, eventually, startHub } from './helpers.ts';

eachBackend(t, 'an agent silent for 3 heartbeat intervals gets one "agent offline" incident, resolved when it returns', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { heartbeatIntervalS: 10 });
  const quiet = await hub.enroll({ hostname: 'quiet-1' });
  const never = await hub.enroll({ hostname: 'never-connected' });
  const busy = await hub.enroll({ hostname: 'busy-1' });

  const agent = await ScriptedAgent.connect(hub.wsUrl, quiet.token);
  agent.send('heartbeat', {}, { id: 'hb' });
  await agent.acked(['hb']);
  agent.close();
  await agent.closed;
  const busyAgent = await ScriptedAgent.connect(hub.wsUrl, busy.token);
  busyAgent.send('heartbeat', {}, { id: 'hb' });
  await busyAgent.acked(['hb']);

  t.same(await hub.app.hub.sweepOffline(), [], 'everyone was just heard from');
  // Time moves on the hub's clock: 25 s, in which the busy agent heartbeats again, then 6 more.
  hub.clock.advance(25_000);
  busyAgent.send('heartbeat', {}, { id: 'hb-2' });
  await busyAgent.acked(['hb-2']);
  t.same(await hub.app.hub.sweepOffline(), [], 'two and a half intervals: not yet');
  hub.clock.advance(6_000);
  t.same(await hub.app.hub.sweepOffline(), [quiet.id], 'three missed intervals: only the quiet agent (the busy one heartbeats, the other was never seen)');
  t.same(await hub.app.hub.sweepOffline(), [], 'no second incident while one is open');

  const incident = (await hub.api('GET', `/v1/agents/${quiet.id}/incidents`)).body.incidents[0];
  t.match(incident, { type: 'agent', source: 'offline', status: /^(new|analyzing|open)$/, severity: 'high', category: 'availability', rule: 'agent_offline', message: /quiet-1 has not been heard from for 3[12] s/ });

  const back = await ScriptedAgent.connect(hub.wsUrl, quiet.token);
  await back.next('welcome');
  await eventually(async () => (await hub.api('GET', `/v1/incidents/${incident.id}`)).body.status === 'resolved', 5000, 'resolved on return');
  t.equal((await hub.api('GET', `/v1/incidents/${incident.id}`)).body.resolved_by, 'agent');
  back.close();
  busyAgent.close();
});
