import type bolt from '@slack/bolt';
import type { Clock } from '../clock.ts';
import type { FastifyBaseLogger } from 'fastify';
import type { HubConfig } from '../config.ts';
import type { App } from '../http.ts';
import type { ExecBroker } from '../exec/broker.ts';
import type { Redactor } from '../incidents/redact.ts';
import type { Db } from '../storage/database.ts';
import type { ActionDeps } from './actions.ts';
import { SlackNotifier } from './notifier.ts';
import type { FastifyReceiver } from './receiver.ts';

export interface Slack {
  /** app: Bolt with buttons; webhook: post only. */
  mode: 'app' | 'webhook';
  notifier: SlackNotifier;
  /** There may be notifications to send. */
  kick(): void;
  /** Resolves once every Slack request received so far is fully handled (its clicks' work done). */
  listenersIdle(): Promise<void>;
  /** In app mode, Bolt's receiver: `POST /slack/events`. */
  receiver: FastifyReceiver | null;
}

/**
 * Slack's HTTP surface as one Fastify plugin: the receiver's route, and on close the clicks still working finished (their
 * execs are answered or told the hub is stopping: the broker shuts down at preClose) before the
 * notifier stops.
 */
export async function slackPlugin(app: App, { slack }: { slack: Slack }): Promise<void> {
  slack.receiver?.routes(app);
  // The notifier is background work: the leading hub starts it (app.ts).
  app.addHook('onClose', async () => {
    await slack.receiver?.stop();
    await slack.notifier.stop();
  });
}

/** Which Slack the config sets up: `app` (Bolt, buttons), `webhook` (post only), or none. */
export function slackMode(config: Readonly<HubConfig>): Slack['mode'] | null {
  if (config.slackBotToken && config.slackSigningSecret && config.slackChannel) return 'app';
  return config.slackWebhookUrl ? 'webhook' : null;
}

/**
 * Slack, when configured: the outbox worker, and in app mode Bolt on `POST /slack/events` with
 * the buttons' listeners. Without Slack settings, null: the hub runs as before, and Bolt (about
 * 30 MB of memory) is never loaded.
 */
export async function setupSlack(
  deps: { config: Readonly<HubConfig>; db: Db; clock: Clock; broker: ExecBroker; redactor: Redactor; log: FastifyBaseLogger; remediation: ActionDeps['remediation'] },
): Promise<Slack | null> {
  const { config, db, log } = deps;
  const notifierOptions = { paceMs: config.slackPaceMs, pollMs: 5000, maxAttempts: 10, clock: deps.clock };
  const mode = slackMode(config);
  if (mode === null) return null;
  // The namespace, not `default`: loaders disagree on what a CommonJS module's default is.
  const [boltModule, { outboxClient, webApiTransport, webhookTransport }, { FastifyReceiver }, { registerActions }, { redactingTransport }] = await Promise.all([
    import('@slack/bolt'),
    import('./transport.ts'),
    import('./receiver.ts'),
    import('./actions.ts'),
    import('./redacting.ts'),
  ]);
  if (mode === 'app' && config.slackBotToken && config.slackSigningSecret && config.slackChannel) {
    const receiver = new FastifyReceiver(config.slackSigningSecret);
    const boltApp = new boltModule.App({
      token: config.slackBotToken,
      receiver,
      tokenVerificationEnabled: false,
      clientOptions: { slackApiUrl: config.slackApiUrl, retryConfig: { retries: 2 }, timeout: 10_000 },
      logger: boltLogger(boltModule.LogLevel.WARN, log),
    });
    const notifier = new SlackNotifier(db, redactingTransport(webApiTransport(outboxClient(config.slackBotToken, config.slackApiUrl)), deps.redactor), { channel: config.slackChannel, ...notifierOptions }, log);
    registerActions(boltApp, {
      db,
      clock: deps.clock,
      broker: deps.broker,
      redactor: deps.redactor,
      log,
      allowedUsers: new Set(config.slackAllowedUsers),
      ignoreS: config.slackIgnoreS,
      execTimeoutMs: Math.min(config.execMaxTimeoutMs, Math.max(config.execDefaultTimeoutMs, 30_000)),
      kick: () => notifier.kick(),
      remediation: deps.remediation,
    });
    return { mode: 'app', notifier, receiver, kick: () => notifier.kick(), listenersIdle: () => receiver.idle() };
  }
  if (mode === 'webhook' && config.slackWebhookUrl) {
    const notifier = new SlackNotifier(db, redactingTransport(webhookTransport(config.slackWebhookUrl), deps.redactor), { channel: 'webhook', ...notifierOptions }, log);
    return { mode: 'webhook', notifier, receiver: null, kick: () => notifier.kick(), listenersIdle: async () => {} };
  }
  return null;
}

/** Bolt's and the WebClient's log lines go to the hub's logger (and its redaction). */
function boltLogger(initial: bolt.LogLevel, log: FastifyBaseLogger): bolt.Logger {
  const child = log.child({ component: 'slack' });
  let level = initial;
  const join = (msgs: unknown[]) => msgs.map((m) => (m instanceof Error ? m.message : typeof m === 'string' ? m : JSON.stringify(m))).join(' ');
  return {
    debug: (...m: unknown[]) => child.debug(join(m)),
    info: (...m: unknown[]) => child.info(join(m)),
    warn: (...m: unknown[]) => child.warn(join(m)),
    error: (...m: unknown[]) => child.error(join(m)),
    setLevel: (l: bolt.LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
