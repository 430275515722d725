/**
 * A protocol demo agent: enough of an agent to try the hub's exec round trip from the README
 * before packages/agent exists. It connects with a token, says hello with a two-action catalogue,
 * heartbeats every 10 s and answers:
 *   uptime  runs /usr/bin/uptime (argument array, no shell, 5 s timeout)
 *   echo    returns params.message
 * Anything else is refused with EXEC_NOT_ALLOWED.
 *
 * Usage: OPSPILOT_AGENT_TOKEN=opa_... pnpm demo-agent [ws://localhost:8080/v1/stream]
 */
import { execFile } from 'node:child_process';
import { hostname, arch, release } from 'node:os';
import WebSocket from 'ws';
import { HUB_MESSAGE_TYPES, decodeFrame, encodeEnvelope, newId, type PayloadOf } from '@opspilot/protocol';

const url = process.argv[2] ?? 'ws://localhost:8080/v1/stream';
const token = process.env.OPSPILOT_AGENT_TOKEN;
if (!token) {
  console.error('demo-agent: set OPSPILOT_AGENT_TOKEN to a token from POST /v1/agents');
  process.exit(2);
}

const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
ws.on('unexpected-response', (_req, res) => {
  console.error(`demo-agent: hub refused the connection (HTTP ${res.statusCode})`);
  process.exit(1);
});
ws.on('open', () => {
  ws.send(encodeEnvelope('hello', { protocol: 1, agent_version: 'demo', hostname: hostname(), os: 'linux', arch: arch(), kernel: release(), actions: ['uptime', 'echo'] }));
  setInterval(() => ws.send(encodeEnvelope('heartbeat', {})), 10_000).unref();
  console.log(`demo-agent: connected to ${url}`);
});
ws.on('close', (code, reason) => {
  console.log(`demo-agent: closed ${code} ${reason.toString()}`);
  process.exit(0);
});
ws.on('message', (data) => {
  const { message } = decodeFrame(data.toString(), HUB_MESSAGE_TYPES);
  if (message.type === 'welcome') console.log(`demo-agent: welcome, agent ${(message.payload as PayloadOf<'welcome'>).agent_id}`);
  if (message.type !== 'exec') return;
  const exec = message.payload as PayloadOf<'exec'>;
  console.log(`demo-agent: exec ${exec.command} ${JSON.stringify(exec.params)}`);
  const reply = (r: Omit<PayloadOf<'exec_result'>, 'request_id'>) =>
    ws.send(encodeEnvelope('exec_result', { request_id: exec.request_id, ...r }, { id: newId() }));
  const started = Date.now();
  if (exec.command === 'echo') {
    reply({ ok: true, exit_code: 0, stdout: String(exec.params.message ?? ''), stderr: '', duration_ms: 0, truncated: false });
  } else if (exec.command === 'uptime') {
    execFile('uptime', [], { timeout: Math.min(exec.timeout_ms, 5000), maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
      const code = err && typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : err ? null : 0;
      reply({ ok: !err, exit_code: code, stdout, stderr, duration_ms: Date.now() - started, truncated: false, ...(err && code === null ? { error_code: 'EXEC_FAILED_TO_START' as const } : {}) });
    });
  } else {
    reply({ ok: false, exit_code: null, stdout: '', stderr: `${exec.command} is not in this agent's catalogue`, duration_ms: 0, truncated: false, error_code: 'EXEC_NOT_ALLOWED' });
  }
});
