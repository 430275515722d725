import type { Redactor } from '../incidents/redact.ts';
import type { SlackTransport } from './notifier.ts';

/**
 * Every text a Slack payload shows (`text` at any depth: the message, sections, fields, context,
 * buttons, confirm dialogs), redacted. Everything else (action ids, values, styles) is kept.
 */
export function redactSlackPayload<T>(redactor: Redactor, payload: T, depth = 0): T {
  if (depth > 32 || payload === null || typeof payload !== 'object') return payload;
  if (Array.isArray(payload)) return payload.map((v) => redactSlackPayload(redactor, v, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(payload)) {
    out[key] = key === 'text' && typeof value === 'string' ? redactor.redact(value).text : redactSlackPayload(redactor, value, depth + 1);
  }
  return out as T;
}

/**
 * The one way out to Slack, redacted: whatever a message was built from (an incident's message
 * and source, the model's analysis and labels, exec output, host names), no secret the redactor
 * knows leaves the hub through it.
 */
export function redactingTransport(inner: SlackTransport, redactor: Redactor): SlackTransport {
  const r = (text: string) => redactor.redact(text).text;
  return {
    buttons: inner.buttons,
    post: (channel, msg) => inner.post(channel, { text: r(msg.text), blocks: redactSlackPayload(redactor, msg.blocks) }),
    ...(inner.update ? { update: (channel: string, ts: string, msg: { text: string; blocks: object[] }) => inner.update!(channel, ts, { text: r(msg.text), blocks: redactSlackPayload(redactor, msg.blocks) }) } : {}),
    ...(inner.reply ? { reply: (channel: string, ts: string, text: string, blocks?: object[]) => inner.reply!(channel, ts, r(text), blocks && redactSlackPayload(redactor, blocks)) } : {}),
  };
}
