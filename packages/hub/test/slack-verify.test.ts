/** Slack request verification and the Block Kit message, without a hub. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ACTION_IDS, escapeMrkdwn, renderMessage } from '../src/slack/blocks.ts';
import { verifySlackRequest } from '../src/slack/verify.ts';
import type { MessageData } from '../src/storage/notifications.ts';

const example = JSON.parse(readFileSync(new URL('./fixtures/slack-signing-example.json', import.meta.url), 'utf8'));

t.test("Slack's documented signing example verifies, and any change to it does not", async (t) => {
  const base = { signingSecret: example.signing_secret, rawBody: example.body, timestamp: example.timestamp, signature: example.signature, nowMs: Number(example.timestamp) * 1000 };
  t.same(verifySlackRequest(base), { ok: true });
  t.same(verifySlackRequest({ ...base, nowMs: (Number(example.timestamp) + 299) * 1000 }), { ok: true }, 'within 5 minutes');
  const refused = (changes: Partial<typeof base>, code: string) => t.match(verifySlackRequest({ ...base, ...changes }), { ok: false, code }, JSON.stringify(changes).slice(0, 80));
  refused({ rawBody: example.body.replace('roadrunner', 'wile_e') }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ rawBody: `${example.body} ` }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ signingSecret: `${example.signing_secret}x` }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ signature: example.signature.replace(/.$/, '0') }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ signature: example.signature.replace('v0=', 'v1=') }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ signature: example.signature.toUpperCase() }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ signature: 'v0=' }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ signature: undefined }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ signature: [example.signature, example.signature] as unknown as string }, 'HUB_SLACK_BAD_SIGNATURE');
  refused({ nowMs: (Number(example.timestamp) + 301) * 1000 }, 'HUB_SLACK_STALE_REQUEST');
  refused({ nowMs: (Number(example.timestamp) - 301) * 1000 }, 'HUB_SLACK_STALE_REQUEST');
  refused({ nowMs: Date.now() }, 'HUB_SLACK_STALE_REQUEST');
  refused({ timestamp: undefined }, 'HUB_SLACK_STALE_REQUEST');
  refused({ timestamp: `${example.timestamp}.5` }, 'HUB_SLACK_STALE_REQUEST');
  refused({ timestamp: ' 1531420618' }, 'HUB_SLACK_STALE_REQUEST');
  refused({ timestamp: '1e9' }, 'HUB_SLACK_STALE_REQUEST');
});

const at = new Date('2026-11-22T10:00:00Z');
function data(over: Partial<MessageData['incident']> = {}, rest: Partial<MessageData> = {}): MessageData {
  return {
    incident: {
      id: '01JTESTINCIDENT0000000000',
      agent_id: '01JAGENT',
      integration_id: null,
      type: 'systemd',
      source: 'api.service',
      message: "api.service: Failed with result 'exit-code'.",
      service: null,
      labels: {},
      occurrence: null,
      logs: null,
      exit_code: 1,
      unit_status: 'failed',
      context: null,
      status: 'open',
      count: 3,
      first_seen_at: at,
      last_seen_at: at,
      acknowledged_at: null,
      acknowledged_by: null,
      resolved_at: null,
      resolved_by: null,
      severity: 'high',
      category: 'availability',
      rule: 'service_failed',
      analysis: null,
      analysis_status: 'done',
      analysis_requested_at: at,
      analysis_reuse: true,
      reopen_count: 0,
      reopened_at: null,
      flapping: false,
      flapping_since: null,
      escalated: false,
      escalated_at: null,
      ...over,
    },
    hostname: 'web-1',
    integration: null,
    catalogue: ['restart_service', 'service_logs', 'service_status'],
    actions: [],
    ...rest,
  };
}

const buttons = (m: { blocks: object[] }) => (m.blocks.find((b: any) => b.type === 'actions') as any)?.elements ?? [];

t.test("the message: the original header, the facts, and buttons whose value is only the incident's id", async (t) => {
  const analysis = { summary: 'api crashed', root_cause: 'a panic', confidence: 0.7, suggested_action: { command: 'service_status', params: { service: 'api.service' }, label: 'Check api' }, rationale: 'r', risk: 'low', source: 'llm' };
  const m = renderMessage(data({ analysis }), { buttons: true });
  t.equal(m.text, '🚨 Service down: api.service (web-1)');
  t.match(m.blocks[0], { type: 'header', text: { type: 'plain_text', text: '🚨 Service down: api.service (web-1)' } });
  const json = JSON.stringify(m.blocks);
  for (const s of ['*Severity*', 'high', '*Host*', 'web-1', '*Count*\\n3', '*First seen*', '*Last seen*', 'api crashed', 'Suggested fix', 'service_status']) t.ok(json.includes(s), s);
  const els = buttons(m);
  t.same(els.map((e: any) => e.action_id), [ACTION_IDS.restart, ACTION_IDS.logs, ACTION_IDS.ignore, ACTION_IDS.runSuggested]);
  t.ok(els.every((e: any) => e.value === '01JTESTINCIDENT0000000000'), 'values name the incident, never a command');
  t.match(els[0], { style: 'danger', confirm: { confirm: { text: 'Restart' }, deny: { text: 'Cancel' } } }, 'restart asks first');

  t.same(buttons(renderMessage(data({ analysis }), { buttons: false })), [], 'post-only mode has no buttons');
  t.same(buttons(renderMessage(data({ status: 'resolved' }), { buttons: true })), [], 'a resolved incident has no buttons');
  t.equal(renderMessage(data({ status: 'resolved' }), { buttons: true }).text, '✅ Resolved: api.service (web-1)');
  t.same(buttons(renderMessage(data({ type: 'log', source: '/var/log/app.log' }), { buttons: true })).map((e: any) => e.action_id), [ACTION_IDS.ignore], 'no unit, no restart or logs');
  t.same(buttons(renderMessage(data(), { buttons: true })).map((e: any) => e.action_id), [ACTION_IDS.restart, ACTION_IDS.logs, ACTION_IDS.ignore], 'no suggestion, no run button');
  t.same(buttons(renderMessage(data({}, { catalogue: ['service_status'] }), { buttons: true })).map((e: any) => e.action_id), [ACTION_IDS.ignore], 'only what the agent offers');
});

t.test('text from hosts and the model cannot ping, link or break the layout', async (t) => {
  t.equal(escapeMrkdwn('<!channel> & <https://evil.example|click> <@U123>'), '&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; &lt;@U123&gt;');
  const hostile = '<!here> ``` *bold* <https://evil.example|login>';
  const m = renderMessage(
    data(
      { message: hostile, source: '<!channel>.service', analysis: { summary: hostile, root_cause: hostile, confidence: 1, suggested_action: null, rationale: '', risk: 'low', source: 'llm' } },
      { hostname: '<@U999>' },
    ),
    { buttons: true },
  );
  const mrkdwn = JSON.stringify(m.blocks.filter((b: any) => b.type !== 'header'));
  t.notOk(/<!here>|<!channel>|<@U999>|<https:\/\/evil/.test(mrkdwn), 'no live mention or link');
  const code = (m.blocks[2] as any).text.text as string;
  t.ok(code.startsWith('```') && code.endsWith('```') && code.slice(3, -3).includes('ˋˋˋ') && !code.slice(3, -3).includes('`'), 'the message code block cannot be closed from inside');
  t.ok(m.text.length <= 150);
  const long = renderMessage(data({ message: 'x'.repeat(10_000), source: 'y'.repeat(500) }), { buttons: true });
  t.ok(long.blocks.every((b: any) => (b.text?.text?.length ?? 0) <= 3000), 'within Slack limits');
});
