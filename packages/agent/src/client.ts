import WebSocket from 'ws';
import {
  CLOSE_CODES,
  HUB_MESSAGE_TYPES,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeFrame,
  encodeEnvelope,
  parseFrame,
  readEnvelope,
  wireSafe,
  newId,
  type ExecPayload,
  type ExecResultPayload,
  type HelloPayload,
  type MonitorsPayload,
  type PayloadOf,
} from '@opspilot/protocol';
import { Backoff } from './backoff.ts';
import type { DurableType, Outbox } from './outbox.ts';

/** Closes that mean the hub went away (not this agent's fault): 1001 going away, 1006 no close frame, 1011, 1012 restarting. */
const HUB_LOST = new Set<number>([1001, 1006, 1011, CLOSE_CODES.restarting]);

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface ClientOptions {
  url: string;
  token: string;
  /** Where the token came from, named when the hub rejects it (default OPSPILOT_AGENT_TOKEN). */
  tokenFrom?: string;
  hello: () => HelloPayload;
  heartbeat: () => PayloadOf<'heartbeat'>;
  heartbeatIntervalS: number;
  outbox: Outbox;
  exec: (exec: ExecPayload) => Promise<ExecResultPayload>;
  /** The checks the hub wants run here (protocol 2). */
  monitors?: (set: MonitorsPayload) => void;
  /** Each welcome, with the message set agreed (after the outbox is replayed). */
  welcomed?: (protocol: number) => void;
  log: Logger;
  backoff?: Backoff;
  /** After 4401 (bad token) or 4409 (another process took over), wait this long before trying again. */
  slowRetryMs?: number;
  /**
   * After an established connection is lost with its hub (1012 restarting, 1001, 1011, or gone
   * without a close: a hub killed behind a load balancer), the first reconnect is drawn from this
   * window (default 30 s), so the hub's whole fleet does not land on the others in one second;
   * narrowed so the agent is back before its offline deadline (3 heartbeats after the last).
   */
  reconnectSpreadMs?: number;
}

/**
 * The agent's one connection to the hub. Authenticates with the bearer header, says hello with
 * its catalogue, sends heartbeats, replays its outbox after every connect (same ids, the hub
 * stores each once), drops entries the hub acks, and answers exec requests. Reconnects with
 * exponential backoff and full jitter; a rejected token or a takeover by another process
 * (4401, 4409) is logged as an error and retried only slowly.
 */
export class HubClient {
  /** The message set used with the hub: the lower of its version and ours. */
  protocol = 1;
  #ws: WebSocket | null = null;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #heartbeatS: number;
  /** When the last heartbeat went out (or the connection was welcomed): the hub's offline deadline counts from it. */
  #lastHeartbeatAt = 0;
  readonly #backoff: Backoff;
  /** Resolves each time a connection is welcomed (tests and the quick start wait on it). */
  #welcomed: ((agentId: string) => void)[] = [];
  agentId: string | null = null;

  constructor(private readonly opts: ClientOptions) {
    this.#heartbeatS = opts.heartbeatIntervalS;
    this.#backoff = opts.backoff ?? new Backoff({ baseMs: 1000, capMs: 60_000, resetAfterMs: 60_000 });
  }

  get connected(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN && this.agentId !== null;
  }

  start(): void {
    this.#stopped = false;
    this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#stopHeartbeats();
    const ws = this.#ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(CLOSE_CODES.normal, 'agent stopping');
        setTimeout(() => ws.terminate(), 2000).unref();
      });
    }
  }

  /** Resolves with the agent id at the next welcome. */
  welcomed(): Promise<string> {
    return new Promise((resolve) => this.#welcomed.push(resolve));
  }

  /**
   * Alerts, resolves and exec results: stored durably first, then sent, resent until acked. A
   * caller that can name the same event twice (the log watcher, after a crash) passes its own
   * stable id; the outbox and the hub keep one.
   */
  sendDurable<T extends DurableType>(type: T, payload: PayloadOf<T>, id: string = newId()): string {
    const frame = encodeEnvelope(type, wireSafe(payload), { id });
    this.opts.outbox.put({ id, type, frame });
    if (this.connected) this.#ws!.send(frame);
    return id;
  }

  /** Heartbeats and metrics: sent when connected, dropped otherwise (the next one supersedes). */
  sendVolatile<T extends 'heartbeat' | 'metrics'>(type: T, payload: PayloadOf<T>): boolean {
    if (!this.connected) return false;
    this.#ws!.send(encodeEnvelope(type, wireSafe(payload)));
    return true;
  }

  #connect(): void {
    if (this.#stopped) return;
    const ws = new WebSocket(this.opts.url, {
      headers: { authorization: `Bearer ${this.opts.token}` },
      perMessageDeflate: false,
      handshakeTimeout: 15_000,
    });
    this.#ws = ws;
    let refusedStatus: number | null = null;
    ws.on('unexpected-response', (_req, res) => {
      refusedStatus = res.statusCode ?? 0;
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => {
      if (refusedStatus === null) this.opts.log.warn('hub connection error', { error: err.message });
    });
    ws.on('open', () => {
      this.#backoff.connected();
      ws.send(encodeEnvelope('hello', wireSafe(this.opts.hello())));
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.#onMessage(ws, data.toString());
    });
    ws.on('close', (code, reason) => {
      this.#stopHeartbeats();
      const established = this.agentId !== null;
      this.agentId = null;
      if (this.#ws === ws) this.#ws = null;
      if (this.#stopped) return;
      const rejected = refusedStatus === 401 || code === CLOSE_CODES.unauthenticated;
      if (rejected || code === CLOSE_CODES.replaced) {
        const why = rejected ? `the hub rejected this agent token (HTTP 401 / close 4401): check ${this.opts.tokenFrom ?? 'OPSPILOT_AGENT_TOKEN'}` : 'another process connected with this agent token (close 4409)';
        this.opts.log.error(why, { retry_in_s: Math.round(this.#slowRetryMs / 1000) });
        this.#retry(this.#slowRetryMs);
        return;
      }
      // A hub that restarts or dies loses every agent at once: without a wide first draw, its
      // whole fleet would come back within the same second.
      const delay = this.#backoff.next(established && HUB_LOST.has(code) ? this.#spreadMs() : 0);
      this.opts.log.warn('hub connection closed; reconnecting', { code, reason: reason.toString(), status: refusedStatus, retry_in_ms: delay });
      this.#retry(delay);
    });
  }

  /**
   * The window for the first reconnect after losing a hub: the configured spread, but no later
   * than one heartbeat interval before the agent's offline deadline (the hub counts an agent
   * offline 3 intervals after it last heard from it), and at least 1 s (or the spread, if less).
   */
  #spreadMs(): number {
    const intervalMs = this.#heartbeatS * 1000;
    const beforeDeadline = this.#lastHeartbeatAt + 3 * intervalMs - Date.now() - intervalMs;
    const spreadMs = this.opts.reconnectSpreadMs ?? 30_000;
    return Math.max(Math.min(1000, spreadMs), Math.min(spreadMs, beforeDeadline));
  }

  get #slowRetryMs(): number {
    return this.opts.slowRetryMs ?? 5 * 60_000;
  }

  #retry(ms: number): void {
    if (this.#stopped) return;
    this.#retryTimer = setTimeout(() => this.#connect(), ms);
  }

  /** The type of a frame whose payload did not decode, if its envelope reads. */
  #envelopeType(text: string): string | undefined {
    try {
      return readEnvelope(parseFrame(text), HUB_MESSAGE_TYPES).type;
    } catch {
      return undefined;
    }
  }

  #onMessage(ws: WebSocket, text: string): void {
    let message;
    try {
      message = decodeFrame(text, HUB_MESSAGE_TYPES).message;
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.opts.log.warn('unreadable message from the hub', { code: err.code, error: err.message, ref_id: err.refId });
        // An exec names its request in the envelope id: answer it, so the asker is not left
        // waiting for a timeout. Nothing ran.
        if (err.refId && this.#envelopeType(text) === 'exec') {
          this.sendDurable('exec_result', { request_id: err.refId, ok: false, exit_code: null, stdout: '', stderr: `the agent could not read this exec request: ${err.message}`, duration_ms: 0, truncated: false, error_code: 'EXEC_BAD_REQUEST' });
        }
        return;
      }
      throw err;
    }
    switch (message.type) {
      case 'welcome': {
        const welcome = message.payload as PayloadOf<'welcome'>;
        this.agentId = welcome.agent_id;
        this.#heartbeatS = welcome.heartbeat_interval_s;
        this.#lastHeartbeatAt = Date.now();
        // Both sides use the lower message set (a hub that does not say speaks 1).
        this.protocol = Math.min(welcome.protocol ?? 1, PROTOCOL_VERSION);
        this.opts.log.info('connected to the hub', { agent_id: welcome.agent_id, protocol: this.protocol });
        // Everything not yet acked goes again, oldest first, with its original id.
        for (const entry of this.opts.outbox.pending()) ws.send(entry.frame);
        this.#startHeartbeats();
        this.opts.welcomed?.(this.protocol);
        const waiting = this.#welcomed;
        this.#welcomed = [];
        for (const w of waiting) w(welcome.agent_id);
        break;
      }
      case 'ack':
        this.opts.outbox.ack((message.payload as PayloadOf<'ack'>).ids);
        break;
      case 'exec': {
        const exec = message.payload as PayloadOf<'exec'>;
        void this.opts.exec(exec).then(
          (result) => this.sendDurable('exec_result', result),
          (err) => this.opts.log.error('exec failed unexpectedly', { request_id: exec.request_id, error: (err as Error).message }),
        );
        break;
      }
      case 'monitors':
        this.opts.monitors?.(message.payload as PayloadOf<'monitors'>);
        break;
      case 'error': {
        const error = message.payload as PayloadOf<'error'>;
        this.opts.log.warn('the hub refused a frame', { code: error.code, message: error.message, ref_id: error.ref_id });
        // The hub will refuse the same bytes every time: set the entry aside so it never holds
        // up the rest of the outbox.
        if (error.ref_id && this.opts.outbox.setAside(error.ref_id, `${error.code}: ${error.message}`)) {
          this.opts.log.error('an outbox entry the hub refused was set aside', { id: error.ref_id, code: error.code });
        }
        break;
      }
    }
  }

  #startHeartbeats(): void {
    this.#stopHeartbeats();
    this.#heartbeatTimer = setInterval(() => {
      if (this.sendVolatile('heartbeat', this.opts.heartbeat())) this.#lastHeartbeatAt = Date.now();
    }, this.#heartbeatS * 1000);
  }

  #stopHeartbeats(): void {
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
  }
}
