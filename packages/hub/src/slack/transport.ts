import bolt from '@slack/bolt';
import type { webApi } from '@slack/bolt';
import { SlackRateLimited, SlackRefused, type SlackTransport } from './notifier.ts';

type WebClient = webApi.WebClient;

/** Web API errors that retrying will not fix. */
const PERMANENT = new Set([
  'channel_not_found',
  'not_in_channel',
  'is_archived',
  'invalid_auth',
  'not_authed',
  'account_inactive',
  'token_revoked',
  'missing_scope',
  'invalid_blocks',
  'msg_too_long',
  'no_text',
  'message_not_found',
  'cant_update_message',
]);

/** Map the WebClient's errors to the notifier's: rate limits and permanent refusals. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof bolt.webApi.WebAPIRateLimitedError) throw new SlackRateLimited(Math.max(1, err.retryAfter) * 1000);
    if (err instanceof bolt.webApi.WebAPIPlatformError && PERMANENT.has(String(err.data.error))) throw new SlackRefused(`slack refused: ${err.data.error}`);
    throw err;
  }
}

/**
 * A WebClient for the outbox: it does not wait out rate limits or retry by itself (the outbox
 * does, durably), and it talks to `apiUrl` (Slack, a proxy, or the tests' fake).
 */
export function outboxClient(token: string, apiUrl: string, logger?: webApi.WebClientOptions['logger']): WebClient {
  return new bolt.webApi.WebClient(token, {
    // Failures are the outbox's to log, with the incident named.
    logLevel: bolt.LogLevel.ERROR,
    slackApiUrl: apiUrl,
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 0 },
    timeout: 10_000,
    allowAbsoluteUrls: false,
    ...(logger ? { logger } : {}),
  });
}

/** App mode: chat.postMessage, chat.update and thread replies with the bot token. */
export function webApiTransport(client: WebClient): SlackTransport {
  return {
    buttons: true,
    async post(channel, msg) {
      const r = await call(() => client.chat.postMessage({ channel, text: msg.text, blocks: msg.blocks as never, unfurl_links: false, unfurl_media: false }));
      return { ts: r.ts ?? null };
    },
    async update(channel, ts, msg) {
      await call(() => client.chat.update({ channel, ts, text: msg.text, blocks: msg.blocks as never }));
    },
    async reply(channel, ts, text, blocks) {
      await call(() => client.chat.postMessage({ channel, thread_ts: ts, text, ...(blocks ? { blocks: blocks as never } : {}), unfurl_links: false, unfurl_media: false }));
    },
  };
}

/** Post-only mode: an incoming webhook. It cannot edit or thread, so only first posts are sent. */
export function webhookTransport(url: string): SlackTransport {
  return {
    buttons: false,
    async post(_channel, msg) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: msg.text, blocks: msg.blocks }),
        signal: AbortSignal.timeout(10_000),
      });
      const body = await res.text();
      if (res.status === 429) throw new SlackRateLimited(Math.max(1, Number(res.headers.get('retry-after')) || 1) * 1000);
      if (res.status === 404 || res.status === 403 || res.status === 410) throw new SlackRefused(`webhook refused: ${res.status} ${body.slice(0, 100)}`);
      if (!res.ok) throw new Error(`webhook answered ${res.status} ${body.slice(0, 100)}`);
      return { ts: null };
    },
  };
}
