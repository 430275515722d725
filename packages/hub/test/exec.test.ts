import t from 'tap';
import type { PayloadOf } from '@opspilot/protocol';
import { HELLO, ScriptedAgent, eachBackend, eventually, runningAgent, startHub, type TestHub } from './helpers.ts';

const ok = (stdout: string) => ({ ok: true, exit_code: 0, stdout, stderr: '', duration_ms: 12, truncated: false });

eachBackend(t, 'exec round trip: sent typed, result stored with who asked', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, (e) => ok(`active: ${e.params.service}`));
  const res = await hub.api('POST', '/v1/admin/exec', { agent_id: id, command: 'service_status', params: { service: 'nginx' } });
  t.equal(res.status, 200);
  t.match(res.body, {
    agent_id: id,
    command: 'service_status',
    params: { service: 'nginx' },
    status: 'succeeded',
    exit_code: 0,
    stdout: 'active: nginx',
    stderr: '',
    duration_ms: 12,
    truncated: false,
    requested_by: 'token:admin',
    origin: 'rest',
    timeout_ms: 15000,
  });
  t.same(agent.execs, [{ request_id: res.body.id, command: 'service_status', params: { service: 'nginx' }, timeout_ms: 15000 }]);
  const stored = await hub.api('GET', `/v1/exec/${res.body.id}`);
  t.same(stored.body, res.body, 'GET /v1/exec/:id shows the same row');
  t.ok(stored.body.sent_at && stored.body.completed_at);
  agent.close();
});

eachBackend(t, 'a failed command is reported as failed, with the agent error code', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ({
    ok: false,
    exit_code: null,
    stdout: '',
    stderr: 'bad unit name',
    duration_ms: 0,
    truncated: false,
    error_code: 'EXEC_BAD_PARAMS',
  }));
  const res = await hub.api('POST', '/v1/admin/exec', { agent_id: id, command: 'restart_service', params: { service: 'nginx; rm -rf /' } });
  t.equal(res.status, 200);
  t.match(res.body, { status: 'failed', ok: false, exit_code: null, error_code: 'EXEC_BAD_PARAMS' });
  t.same(agent.execs[0]?.params, { service: 'nginx; rm -rf /' }, 'the string travels as one typed value, never a shell line');
  agent.close();
});

eachBackend(t, 'exec refusals: unknown 404, offline 409, not in catalogue 400', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const unknown = await hub.api('POST', '/v1/admin/exec', { agent_id: '01HZZZZZZZZZZZZZZZZZZZZZZZ', command: 'disk_usage' });
  t.same([unknown.status, unknown.body.error.code], [404, 'HUB_AGENT_NOT_FOUND']);
  const offline = await hub.api('POST', '/v1/admin/exec', { agent_id: id, command: 'disk_usage' });
  t.same([offline.status, offline.body.error.code], [409, 'HUB_AGENT_OFFLINE']);
  const agent = await runningAgent(hub, token, () => ok(''));
  const missing = await hub.api('POST', '/v1/admin/exec', { agent_id: id, command: 'format_disk' });
  t.same([missing.status, missing.body.error.code], [400, 'HUB_EXEC_NOT_IN_CATALOGUE']);
  t.match(missing.body.error.message, /restart_service, service_status, disk_usage/);
  t.equal(agent.execs.length, 0, 'nothing was sent for a refused exec');
  agent.close();
});

eachBackend(t, 'an agent that sent no hello may be sent any command', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, (e) => ok(e.command), null);
  const res = await hub.api('POST', '/v1/admin/exec', { agent_id: id, command: 'anything_at_all' });
  t.same([res.status, res.body.stdout], [200, 'anything_at_all']);
  agent.close();
});

eachBackend(t, 'no result within timeout_ms is a 504; a late result is still stored', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => null);
  const res = await hub.api('POST', '/v1/admin/exec', { agent_id: id, command: 'disk_usage', timeout_ms: 200 });
  t.same([res.status, res.body.error.code], [504, 'HUB_EXEC_TIMEOUT']);
  const execId = /GET \/v1\/exec\/(\S+)/.exec(res.body.error.message)![1]!;
  t.equal((await hub.api('GET', `/v1/exec/${execId}`)).body.status, 'timeout');
  t.equal(agent.execs[0]?.timeout_ms, 200, 'the agent was given the same timeout');
  agent.send('exec_result', { request_id: execId, ...ok('late but fine') }, { id: 'late-1' });
  await agent.acked(['late-1']);
  t.match((await hub.api('GET', `/v1/exec/${execId}`)).body, { status: 'succeeded', stdout: 'late but fine' });
  agent.close();
});

eachBackend(t, 'a result is stored once, and only from the agent that was asked', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const a = await hub.enroll();
  const b = await hub.enroll({ hostname: 'web-2' });
  const intruder = await ScriptedAgent.connect(hub.wsUrl, b.token);
  await intruder.next('welcome');
  const agent = await runningAgent(hub, a.token, () => null);
  const pending = hub.api('POST', '/v1/admin/exec', { agent_id: a.id, command: 'disk_usage', timeout_ms: 3000 });
  const exec = await eventually(async () => agent.execs[0], 3000, 'exec sent');
  intruder.send('exec_result', { request_id: exec.request_id, ...ok('forged') }, { id: 'forged-1' });
  await intruder.acked(['forged-1']);
  agent.send('exec_result', { request_id: exec.request_id, ...ok('real') }, { id: 'real-1' });
  agent.send('exec_result', { request_id: exec.request_id, ...ok('second copy') }, { id: 'real-2' });
  const res = await pending;
  t.equal(res.body.stdout, 'real');
  await agent.acked(['real-1', 'real-2']);
  t.equal((await hub.api('GET', `/v1/exec/${exec.request_id}`)).body.stdout, 'real', 'the first result stands');
  agent.close();
  intruder.close();
});

eachBackend(t, 'exec input validation', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t), { execMaxTimeoutMs: 125_000 });
  const { id, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => ok(''));
  const bad: [string, unknown][] = [
    ['no command', { agent_id: id }],
    ['command with a space', { agent_id: id, command: 'rm -rf' }],
    ['command with a semicolon', { agent_id: id, command: 'a;b' }],
    ['object param', { agent_id: id, command: 'disk_usage', params: { x: { nested: true } } }],
    ['array param', { agent_id: id, command: 'disk_usage', params: { x: ['a'] } }],
    ['bad param name', { agent_id: id, command: 'disk_usage', params: { 'a b': 'x' } }],
    ['timeout over the cap', { agent_id: id, command: 'disk_usage', timeout_ms: 125_001 }],
    ['zero timeout', { agent_id: id, command: 'disk_usage', timeout_ms: 0 }],
    ['unknown field', { agent_id: id, command: 'disk_usage', shell: 'bash -c "id"' }],
    ['not JSON', '{"agent_id":'],
  ];
  for (const [name, body] of bad) {
    const res = await hub.api('POST', '/v1/admin/exec', body);
    t.same([res.status, res.body?.error?.code], [400, 'HUB_BAD_REQUEST'], name);
  }
  t.equal(agent.execs.length, 0);
  agent.close();
});

eachBackend(t, 'an exec whose agent disconnects mid-send is never reported as sent', async (t, backend) => {
  const hub = await startHub(t, await backend.open(t));
  const { id, token } = await hub.enroll();
  const agent = await runningAgent(hub, token, () => null);
  const conn = hub.app.hub.registry.get(id)!;
  // The socket is gone but the close has not been processed yet.
  conn.socket.terminate();
  const res = await hub.api('POST', '/v1/admin/exec', { agent_id: id, command: 'disk_usage', timeout_ms: 500 });
  t.ok([409, 502].includes(res.status), `refused with ${res.status}`);
  t.ok(['HUB_AGENT_OFFLINE', 'HUB_EXEC_NOT_DELIVERED'].includes(res.body.error.code));
  agent.close();
});
