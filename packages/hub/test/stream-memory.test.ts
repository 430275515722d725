/**
 * What a connected agent costs the hub: the upgrade's HTTP request and response are let go once
 * the WebSocket is open (@fastify/websocket would keep both for the connection's life, ~2 KB an
 * agent), and a socket error is still handled (it ends in the connection's close).
 */
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { IncomingMessage } from 'node:http';
import { ScriptedAgent, eachBackend, eventually, startHub } from './helpers.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function collected(refs: WeakRef<object>[]): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return refs.filter((r) => r.deref() === undefined).length;
}

eachBackend(t, "an open connection holds neither the upgrade's request nor its response", async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const requests: WeakRef<IncomingMessage>[] = [];
  const responses: WeakRef<object>[] = [];
  hub.app.server.on('upgrade', (req: IncomingMessage) => {
    requests.push(new WeakRef(req));
    // The response @fastify/websocket makes for the upgrade is assigned to the socket at once.
    setImmediate(() => {
      const res = (req.socket as unknown as { _httpMessage?: object | null })._httpMessage;
      if (res) responses.push(new WeakRef(res));
    });
  });
  const agents: ScriptedAgent[] = [];
  for (let i = 0; i < 5; i++) {
    const { token } = await hub.enroll({ hostname: `mem-${i}` });
    const agent = await ScriptedAgent.connect(hub.wsUrl, token);
    await agent.next('welcome');
    agents.push(agent);
  }
  t.equal(requests.length, 5);
  t.equal(await collected(requests), 5, 'every upgrade request collected while its agent is connected');
  t.equal(await collected(responses), responses.length, `every upgrade response collected (${responses.length} seen)`);
  t.ok(agents.every((a) => a.ws.readyState === a.ws.OPEN), 'the agents are still connected');

  // A socket error (the peer resets the connection) still ends in the connection's close.
  const [first] = agents;
  const before = hub.app.hub.registry.size;
  (first!.ws as unknown as { _socket: import('node:net').Socket })._socket.resetAndDestroy();
  await eventually(async () => hub.app.hub.registry.size === before - 1, 5000, 'the reset connection closed');
  for (const a of agents) a.close();
});
