/**
 * `pnpm bench slack`: how fast the hub answers Slack's interaction requests (Slack wants an
 * answer within 3 s; OpsPilot's goal is 1 s). A hub process with Slack configured against a
 * local fake Web API, one agent answering execs, and N signed clicks of Logs sent C at a time;
 * each click also runs an exec, writes the audit trail and queues a thread reply.
 */
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { HUB_MESSAGE_TYPES, decodeFrame, encodeEnvelope } from '@opspilot/protocol';

const SECRET = 'bench-signing-secret-0123456789';
const ADMIN = `bench-admin-${randomBytes(8).toString('hex')}`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function slackBench(opts: { databaseUrl: string; port: number; clicks: number; concurrency: number; root: string }) {
  let posts = 0;
  const slack = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      posts++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true, channel: 'C1', ts: `1700000000.${String(posts).padStart(6, '0')}`, message_ts: '1' }));
    });
  });
  await new Promise<void>((r) => slack.listen(0, '127.0.0.1', r));
  const slackPort = (slack.address() as { port: number }).port;
  const hub = spawn(process.execPath, ['--import', 'tsx', path.join(opts.root, 'packages/hub/src/main.ts')], {
    cwd: opts.root,
    env: {
      ...process.env,
      OPSPILOT_PORT: String(opts.port),
      OPSPILOT_HOST: '127.0.0.1',
      OPSPILOT_ADMIN_TOKEN: ADMIN,
      DATABASE_URL: opts.databaseUrl,
      OPSPILOT_LOG_LEVEL: 'error',
      OPSPILOT_API_RATE_LIMIT: '1000000',
      SLACK_BOT_TOKEN: 'xoxb-bench',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_CHANNEL: 'C1',
      OPSPILOT_SLACK_API_URL: `http://127.0.0.1:${slackPort}/api/`,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${opts.port}`;
  try {
    for (let i = 0; ; i++) {
      if (await fetch(`${base}/readyz`).then((r) => r.ok, () => false)) break;
      if (i > 300) throw new Error('the hub did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    const { token } = (await (await fetch(`${base}/v1/agents`, { method: 'POST', headers: auth, body: '{"hostname":"bench-1"}' })).json()) as { token: string };
    const ws = new WebSocket(`ws://127.0.0.1:${opts.port}/v1/stream`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    let n = 0;
    ws.on('message', (data) => {
      const { message } = decodeFrame(data.toString(), HUB_MESSAGE_TYPES);
      if (message.type !== 'exec') return;
      const result = { request_id: message.payload.request_id, ok: true, exit_code: 0, stdout: 'Nov 23 api[1]: ok\n'.repeat(20), stderr: '', duration_ms: 5, truncated: false };
      ws.send(encodeEnvelope('exec_result', result, { id: `r${++n}` }));
    });
    ws.send(encodeEnvelope('hello', { protocol: 1, agent_version: 'bench', hostname: 'bench-1', os: 'linux', arch: 'x64', actions: ['service_logs', 'restart_service'] }, { id: 'h' }));
    ws.send(encodeEnvelope('alert', { type: 'systemd', source: 'api.service', message: 'api.service failed' }, { id: 'a' }));
    let incidentId = '';
    for (let i = 0; !incidentId; i++) {
      const list = (await (await fetch(`${base}/v1/incidents`, { headers: auth })).json()) as { incidents: { id: string }[] };
      incidentId = list.incidents[0]?.id ?? '';
      if (i > 100) throw new Error('no incident');
      if (!incidentId) await new Promise((r) => setTimeout(r, 50));
    }

    const click = async (i: number): Promise<number> => {
      const payload = {
        type: 'block_actions',
        user: { id: `U${String(i % 50).padStart(4, '0')}`, team_id: 'T1' },
        team: { id: 'T1' },
        channel: { id: 'C1' },
        container: { type: 'message', message_ts: '1700000000.000001', channel_id: 'C1' },
        message: { ts: '1700000000.000001' },
        trigger_id: `t${i}`,
        actions: [{ action_id: 'opspilot_logs', block_id: 'opspilot_actions', value: incidentId, type: 'button', action_ts: '1' }],
      };
      const body = `payload=${encodeURIComponent(JSON.stringify(payload))}`;
      const ts = String(Math.floor(Date.now() / 1000));
      const sig = `v0=${createHmac('sha256', SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
      const started = performance.now();
      const res = await fetch(`${base}/slack/events`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': ts, 'x-slack-signature': sig },
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`click answered ${res.status}`);
      return performance.now() - started;
    };
    for (let i = 0; i < 20; i++) await click(i); // warm up
    const latencies: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        while (next < opts.clicks) latencies.push(await click(next++));
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    ws.close();
    const ms = (v: number) => Math.round(v * 10) / 10;
    return {
      clicks: opts.clicks,
      concurrency: opts.concurrency,
      clicks_per_s: Math.round(opts.clicks / seconds),
      ack_p50_ms: ms(percentile(latencies, 50)),
      ack_p99_ms: ms(percentile(latencies, 99)),
      ack_max_ms: ms(latencies[latencies.length - 1]!),
    };
  } finally {
    hub.kill('SIGTERM');
    await new Promise((r) => hub.once('exit', r));
    slack.close();
  }
}
