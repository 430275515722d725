/**
 * A local HTTP server speaking the parts of Slack's Web API the hub uses (chat.postMessage,
 * chat.update, chat.postEphemeral, auth.test) and an incoming webhook: the one part of the Slack
 * path faked. The hub's real WebClient talks to it through OPSPILOT_SLACK_API_URL.
 */
import type { Test } from 'tap';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';

export interface SlackCall {
  method: string;
  args: Record<string, any>;
  at: number;
}

/** `now` stamps each call (default: real time; a test on a fast-forwarded hub clock passes that). */
export async function fakeSlack(t: Test, opts: { now?: () => number } = {}) {
  const calls: SlackCall[] = [];
  const webhook: { body: any; at: number }[] = [];
  /** Answer the next n calls of a method with 429 and this Retry-After (seconds). */
  const limits: { method: string; n: number; retryAfterS: number }[] = [];
  /** When each 429 was answered. */
  const limited: { method: string; at: number }[] = [];
  let seq = 0;
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const at = opts.now?.() ?? Date.now();
      if (req.url === '/webhook') {
        webhook.push({ body: JSON.parse(raw), at });
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('ok');
      }
      const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0]!;
      const args = parseArgs(raw, req.headers['content-type']);
      const limit = limits.find((l) => l.method === method && l.n > 0);
      if (limit) {
        limit.n--;
        limited.push({ method, at });
        res.writeHead(429, { 'retry-after': String(limit.retryAfterS), 'content-type': 'application/json' });
        return res.end(JSON.stringify({ ok: false, error: 'ratelimited' }));
      }
      if (req.headers.authorization !== 'Bearer xoxb-test-token') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ ok: false, error: 'invalid_auth' }));
      }
      calls.push({ method, args, at });
      const ts = `1700000000.${String(++seq).padStart(6, '0')}`;
      const answers: Record<string, object> = {
        'chat.postMessage': { ok: true, channel: args.channel, ts, message: { text: args.text } },
        'chat.update': { ok: true, channel: args.channel, ts: args.ts, text: args.text },
        'chat.postEphemeral': { ok: true, message_ts: ts },
        'auth.test': { ok: true, user_id: 'UBOT', bot_id: 'BBOT', team_id: 'T1' },
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answers[method] ?? { ok: false, error: 'unknown_method' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    webhookUrl: `http://127.0.0.1:${port}/webhook`,
    calls,
    webhook,
    limits,
    limited,
    of: (method: string) => calls.filter((c) => c.method === method),
  };
}

/** The WebClient sends form fields, with objects (blocks) as JSON text. */
function parseArgs(raw: string, contentType: string | undefined): Record<string, any> {
  if (contentType?.includes('application/json')) return JSON.parse(raw || '{}');
  const args: Record<string, any> = {};
  for (const [k, v] of new URLSearchParams(raw)) {
    try {
      args[k] = k === 'blocks' || k === 'attachments' ? JSON.parse(v) : v;
    } catch {
      args[k] = v;
    }
  }
  return args;
}

export const SIGNING_SECRET = 'test-signing-secret-0123456789';
export const BOT_TOKEN = 'xoxb-test-token';
export const CHANNEL = 'C0OPSPILOT';

/** Sign a body as Slack does: v0=hex(HMAC-SHA256(secret, "v0:<ts>:<body>")). */
export function sign(body: string, opts: { secret?: string; ts?: number } = {}): Record<string, string> {
  const ts = String(opts.ts ?? Math.floor(Date.now() / 1000));
  const sig = createHmac('sha256', opts.secret ?? SIGNING_SECRET).update(`v0:${ts}:${body}`).digest('hex');
  return { 'x-slack-request-timestamp': ts, 'x-slack-signature': `v0=${sig}`, 'content-type': 'application/x-www-form-urlencoded' };
}

/** A block_actions payload shaped like Slack's, as the form body Slack posts. */
let clicks = 0;
/** A block_actions payload as Slack sends it: every click has its own trigger id and action time. */
export function clickBody(opts: { actionId: string; incidentId: string; user: string; messageTs?: string }): string {
  clicks++;
  const payload = {
    type: 'block_actions',
    user: { id: opts.user, username: 'oncall', name: 'oncall', team_id: 'T1' },
    api_app_id: 'A1',
    token: 'legacy-verification-token',
    container: { type: 'message', message_ts: opts.messageTs ?? '1700000000.000001', channel_id: CHANNEL, is_ephemeral: false },
    trigger_id: `1.2.${clicks}`,
    team: { id: 'T1', domain: 'example' },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: CHANNEL, name: 'incidents' },
    message: { type: 'message', ts: opts.messageTs ?? '1700000000.000001', text: 'incident' },
    response_url: 'https://hooks.slack.invalid/actions/T1/1/x',
    actions: [{ action_id: opts.actionId, block_id: 'opspilot_actions', value: opts.incidentId, type: 'button', action_ts: `1700000001.${String(clicks).padStart(6, '0')}`, text: { type: 'plain_text', text: 'x' } }],
  };
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

export const slackConfig = (apiUrl: string, extra: Record<string, unknown> = {}) => ({
  slackBotToken: BOT_TOKEN,
  slackSigningSecret: SIGNING_SECRET,
  slackChannel: CHANNEL,
  slackApiUrl: apiUrl,
  slackAllowedUsers: ['UALLOWED'],
  slackPaceMs: 20,
  ...extra,
});
