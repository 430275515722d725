import type { App as BoltApp, Receiver, ReceiverEvent } from '@slack/bolt';
import type { App } from '../http.ts';
import { HubError } from '../errors.ts';
import { verifySlackRequest } from './verify.ts';

/** Interactivity payloads carry the whole message; ours are a few KiB. */
export const SLACK_BODY_LIMIT = 256 * 1024;
/** Listeners acknowledge at once; anything no listener takes is acknowledged after this. */
export const AUTO_ACK_MS = 800;

/**
 * Bolt's receiver on the hub's own Fastify server: `POST /slack/events`. The raw body is checked
 * against Slack's signature and timestamp before anything is parsed; the HTTP answer goes out
 * as soon as a listener calls `ack()`, and the listener's work goes on after it.
 */
export class FastifyReceiver implements Receiver {
  #bolt: BoltApp | null = null;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly signingSecret: string,
    private readonly nowMs: () => number = Date.now,
  ) {}

  init(app: BoltApp): void {
    this.#bolt = app;
  }

  async start(): Promise<void> {}

  /** Waits for listeners still working (a click's exec) so shutdown loses nothing. */
  async stop(): Promise<void> {
    await this.idle();
  }

  /** Resolves once no listener is working: every request received so far is fully handled. */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** `POST /slack/events`, in a scope of its own (it reads raw bodies). */
  routes(app: App): void {
    void app.register(async (scope) => {
      // Raw text, so the signature is checked over the exact bytes Slack signed.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(['application/x-www-form-urlencoded', 'application/json'], { parseAs: 'string', bodyLimit: SLACK_BODY_LIMIT }, (_req, body, done) =>
        done(null, body),
      );
      scope.post(
        '/slack/events',
        { schema: { tags: ['slack'], summary: "Slack's interactivity requests (signed by Slack)", security: [] } },
        async (req, reply) => {
          const raw = typeof req.body === 'string' ? req.body : '';
          const verdict = verifySlackRequest({
            signingSecret: this.signingSecret,
            rawBody: raw,
            timestamp: req.headers['x-slack-request-timestamp'],
            signature: req.headers['x-slack-signature'],
            nowMs: this.nowMs(),
          });
          if (!verdict.ok) {
            req.log.warn({ reason: verdict.reason }, 'slack request refused');
            throw new HubError(verdict.code, verdict.reason);
          }
          const body = parseBody(raw, req.headers['content-type']);
          if (body.ssl_check) return reply.code(200).send();
          if (body.type === 'url_verification' && typeof body.challenge === 'string') return { challenge: body.challenge };
          return reply.code(200).send(await this.#dispatch(body, req.headers, req.log));
        },
      );
    });
  }

  async #dispatch(body: Record<string, unknown>, headers: Record<string, unknown>, log: App['log']): Promise<unknown> {
    const bolt = this.#bolt;
    if (!bolt) throw new Error('the Slack receiver was not initialised by Bolt');
    let answer!: (response: unknown) => void;
    const acked = new Promise<unknown>((resolve) => (answer = resolve));
    let done = false;
    const event: ReceiverEvent = {
      body,
      ack: async (response?: unknown) => {
        if (done) return;
        done = true;
        answer(response);
      },
      ...(headers['x-slack-retry-num'] !== undefined ? { retryNum: Number(headers['x-slack-retry-num']) } : {}),
      ...(typeof headers['x-slack-retry-reason'] === 'string' ? { retryReason: headers['x-slack-retry-reason'] } : {}),
    };
    const timer = setTimeout(() => void event.ack(), AUTO_ACK_MS);
    const work = bolt
      .processEvent(event)
      .catch((err: unknown) => log.error({ err }, 'slack listener failed'))
      .finally(() => {
        clearTimeout(timer);
        this.#inFlight.delete(work);
        void event.ack();
      });
    this.#inFlight.add(work);
    const response = await acked;
    return response === undefined || response === null ? '' : response;
  }
}

/** Slack sends interactivity as a form with a JSON `payload` field; events as JSON. */
function parseBody(raw: string, contentType: string | undefined): Record<string, any> {
  const bad = (why: string) => new HubError('HUB_BAD_REQUEST', `slack request: ${why}`);
  let parsed: unknown;
  try {
    if (contentType?.startsWith('application/json')) {
      parsed = JSON.parse(raw);
    } else {
      const form = new URLSearchParams(raw);
      if (form.get('ssl_check') === '1') return { ssl_check: true };
      const payload = form.get('payload');
      if (payload === null) throw bad('no payload field');
      parsed = JSON.parse(payload);
    }
  } catch (err) {
    throw err instanceof HubError ? err : bad('the payload is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('the payload is not an object');
  return parsed as Record<string, any>;
}
