import bolt from '@slack/bolt';

/** Slack's window for a request's timestamp, either side of the hub's clock. */
export const SLACK_MAX_SKEW_S = 5 * 60;

export type SlackVerdict = { ok: true } | { ok: false; code: 'HUB_SLACK_BAD_SIGNATURE' | 'HUB_SLACK_STALE_REQUEST'; reason: string };

/**
 * Check a request from Slack: `X-Slack-Request-Timestamp` within 5 minutes of now (either way; a
 * replay of an old request fails here), then `X-Slack-Signature` =
 * `v0=` + hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + raw body)), compared in constant
 * time by Bolt's verifier. Nothing of the body is parsed before this passes.
 */
export function verifySlackRequest(opts: {
  signingSecret: string;
  rawBody: string;
  timestamp: string | string[] | undefined;
  signature: string | string[] | undefined;
  nowMs?: number;
}): SlackVerdict {
  const { timestamp, signature } = opts;
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) {
    return { ok: false, code: 'HUB_SLACK_STALE_REQUEST', reason: 'missing or malformed X-Slack-Request-Timestamp' };
  }
  const nowS = Math.floor((opts.nowMs ?? Date.now()) / 1000);
  if (Math.abs(nowS - Number(timestamp)) > SLACK_MAX_SKEW_S) {
    return { ok: false, code: 'HUB_SLACK_STALE_REQUEST', reason: 'X-Slack-Request-Timestamp is more than 5 minutes from now' };
  }
  if (typeof signature !== 'string' || !/^v0=[0-9a-f]{64}$/.test(signature)) {
    return { ok: false, code: 'HUB_SLACK_BAD_SIGNATURE', reason: 'missing or malformed X-Slack-Signature' };
  }
  const valid = bolt.isValidSlackRequest({
    signingSecret: opts.signingSecret,
    body: opts.rawBody,
    headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': Number(timestamp) },
    ...(opts.nowMs !== undefined ? { nowMilliseconds: opts.nowMs } : {}),
  });
  return valid ? { ok: true } : { ok: false, code: 'HUB_SLACK_BAD_SIGNATURE', reason: 'X-Slack-Signature does not match the body' };
}
