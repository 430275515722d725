import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../clock.ts';
import type { WebSocket } from 'ws';
import {
  AGENT_MESSAGE_TYPES,
  CLOSE_CODES,
  ProtocolError,
  PROTOCOL_VERSION,
  decodePayload,
  negotiateProtocol,
  encodeEnvelope,
  frameToken,
  parseFrame,
  readEnvelope,
  type HubMessageType,
  type Limits,
  type Message,
  type PayloadOf,
  type AgentMessageType,
  type Envelope,
} from '@opspilot/protocol';
import { hashToken, hashesEqual } from '../auth/tokens.ts';
import type { EventItem } from '../storage/ingest-batch.ts';
import type { ReadBudget } from './read-budget.ts';
import type { AckTarget, IncomingFrame, IngestWriter } from './writer.ts';

export interface AuthenticatedAgent {
  agentId: string;
  tokenHash: string;
}

/** What a connection needs from the hub; one instance is shared by all connections. */
export interface ConnectionContext {
  /** What time it is for what is stored (not for budgets: those measure real time). */
  clock: Clock;
  limits: Limits;
  authTimeoutMs: number;
  badFramesPerMinute: number;
  /** Per agent, per minute (after a burst of as many), before its reading pauses: alerts and resolves, */
  alertsPerMinute: number;
  /** hellos, heartbeats and metrics messages, */
  bulkPerMinute: number;
  /** and metric samples. */
  metricSamplesPerMinute: number;
  heartbeatIntervalS: number;
  writer: IngestWriter;
  readBudget: ReadBudget;
  log: FastifyBaseLogger;
  authenticate(token: string): Promise<AuthenticatedAgent | undefined>;
  /** The connection is authenticated: register it (closing an older one with 4409). */
  onAuthenticated(conn: AgentConnection): void;
  /** The agent said hello: its message set is known (`conn.protocol`). */
  onHello?(conn: AgentConnection): void;
  onClosed(conn: AgentConnection): void;
}

type State = 'awaiting-token' | 'authenticating' | 'open' | 'closed';

/** Frames kept while a first-frame token is checked; past that the connection is closed (4400). */
const MAX_QUEUED_BEFORE_AUTH = 64;

/** Frames between two bulk writes past which an agent counts as flooding. */
const FLOOD_FRAMES = 20;
/** Frames in one event-loop turn past which an agent counts as streaming. */
const STREAMING_FRAMES = 4;

/** An envelope stamped this long before it arrived was sent earlier (resent): its own time is the event's. */
const REPLAYED_AFTER_MS = 2000;
/** Envelope times further from the hub's clock than this are replaced by the hub's time. */
const MAX_REPLAY_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * One agent's WebSocket. Authentication comes first (header at upgrade, or the first frame's
 * token); until it succeeds nothing but the token is read. Then each text frame is decoded
 * within limits, validated, and handed to the writer in arrival order.
 */
export class AgentConnection implements AckTarget {
  agentId: string | null = null;
  /** The message set both sides use (negotiated at hello; 1 until one arrives, as for Go agents). */
  protocol = 1;
  /** The exec catalogue from `hello`; null until one arrives (then any command may be sent). */
  actions: string[] | null = null;
  /**
   * When the last frame arrived (ms since the epoch; 0 before the first): a number, not a Date,
   * because a Date kept per connection from one heartbeat to the next lives long enough to be
   * promoted to the old generation and die there, ten thousand times every heartbeat interval.
   */
  lastSeenMs = 0;
  connectedAt: Date | null = null;
  /** The version of the monitors last sent to this agent (protocol 2), so an unchanged set is not sent again. */
  monitorsVersion: string | null = null;
  /** Pings sent with neither a pong nor a frame since. */
  missedPongs = 0;
  /** A frame arrived since the pinger last came by: an agent of message set 3 is not pinged then. */
  heardSincePing = false;
  /** This connection's number among the agent's connections on every hub (null until stored). */
  connectionNumber: number | null = null;
  #pausedForWriter = false;
  #pausedForTurn = false;
  #pausedForBudget: NodeJS.Timeout | null = null;
  /** This agent's budgets: over one, reading pauses until it refills; a noisy host waits, nothing is dropped. */
  readonly #budgets: { events: TokenBucket; bulk: TokenBucket; samples: TokenBucket };
  /** The close code, once closed (by either side). */
  closeCode: number | null = null;
  #epoch = -1;
  #framesThisEpoch = 0;
  #turn = -1;
  #framesThisTurn = 0;

  #state: State = 'awaiting-token';
  #tokenHash = '';
  #verifiedToken: string | null = null;
  #queue: { data: Buffer; isBinary: boolean }[] = [];
  #queuedBytes = 0;
  #held: { data: Buffer; isBinary: boolean }[] = [];
  #badFrames: number[] = [];
  #authTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: WebSocket,
    private readonly ctx: ConnectionContext,
    preAuthenticated?: AuthenticatedAgent,
  ) {
    this.#budgets = {
      events: new TokenBucket(ctx.alertsPerMinute),
      bulk: new TokenBucket(ctx.bulkPerMinute),
      samples: new TokenBucket(ctx.metricSamplesPerMinute),
    };
    socket.on('message', (data, isBinary) => this.#onMessage(toBuffer(data), isBinary));
    socket.on('pong', () => {
      this.missedPongs = 0;
    });
    socket.on('close', (code) => {
      this.closeCode = code;
      this.#onClose();
    });
    if (preAuthenticated) {
      this.#accept(preAuthenticated);
    } else {
      this.#authTimer = setTimeout(() => this.close(CLOSE_CODES.unauthenticated, 'no token within the time allowed'), ctx.authTimeoutMs);
    }
  }

  /** Reading is paused (the writer is catching up, or this turn's read budget is spent); pongs wait unread meanwhile. */
  get paused(): boolean {
    return this.#pausedForWriter || this.#pausedForTurn || this.#pausedForBudget !== null;
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /** Send a hub message; `done` learns whether it was written to the socket. */
  send<T extends HubMessageType>(type: T, payload: PayloadOf<T>, done?: (err?: Error) => void): void {
    if (this.socket.readyState !== this.socket.OPEN) {
      done?.(new Error('connection is not open'));
      return;
    }
    // Hub messages are small: sent uncompressed, so they can be read in a terminal (wscat). An
    // exec carries its request id as the envelope id too: an agent that cannot read the payload
    // can still answer that request with an error instead of leaving it to time out.
    const id = type === 'exec' ? (payload as PayloadOf<'exec'>).request_id : undefined;
    // A monitor set may be large: it is gzipped past a few hundred bytes like an agent's messages.
    const frame = encodeEnvelope(type, payload, { ...(type === 'monitors' ? {} : { compression: 'none' }), ...(id ? { id } : {}) });
    this.socket.send(frame, done);
  }

  ack(ids: string[]): void {
    if (this.#state === 'open') this.send('ack', { ids });
  }

  refuse(id: string, reason: string): void {
    if (this.#state === 'open') this.send('error', { code: 'PROTO_REFUSED', message: reason.slice(0, 4000), ref_id: id });
  }

  storeFailed(): void {
    this.close(CLOSE_CODES.restarting, 'hub could not store frames; reconnect and resend');
  }

  close(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearAuthTimer();
    this.socket.close(code, reason);
    // A peer that never answers the close handshake is cut off.
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.missedPongs = 0; // any frame shows the agent is alive
    this.heardSincePing = true;
    switch (this.#state) {
      case 'open':
        // Over a budget: frames already read wait here, in order, with the socket paused.
        if (this.#pausedForBudget) this.#held.push({ data, isBinary });
        else this.#handleFrame(data, isBinary);
        return;
      case 'awaiting-token':
        this.#state = 'authenticating';
        void this.#authenticateFromFrame(data, isBinary);
        return;
      case 'authenticating':
        // A well-behaved agent sends a few frames while its token is checked; a flood before
        // anyone knows who sent it is not held.
        this.#queue.push({ data, isBinary });
        this.#queuedBytes += data.length;
        if (this.#queue.length > MAX_QUEUED_BEFORE_AUTH || this.#queuedBytes > this.ctx.limits.maxFrameBytes * 2) {
          this.close(CLOSE_CODES.protocolViolation, 'too many frames before authentication');
        }
        return;
      case 'closed':
        return;
    }
  }

  async #authenticateFromFrame(data: Buffer, isBinary: boolean): Promise<void> {
    let raw: Record<string, unknown>;
    try {
      if (isBinary) throw new Error('binary frame');
      raw = parseFrame(data.toString('utf8'));
    } catch {
      this.close(CLOSE_CODES.unauthenticated, 'first frame must be a JSON envelope carrying the agent token');
      return;
    }
    const token = frameToken(raw);
    let agent: AuthenticatedAgent | undefined;
    try {
      agent = token === undefined ? undefined : await this.ctx.authenticate(token);
    } catch (err) {
      this.ctx.log.error({ err }, 'agent token lookup failed');
      this.close(CLOSE_CODES.restarting, 'hub cannot check tokens right now');
      return;
    }
    if (this.#state === 'closed') return;
    if (!agent) {
      this.close(CLOSE_CODES.unauthenticated, 'invalid agent token');
      return;
    }
    this.#verifiedToken = token!;
    this.#accept(agent);
    this.#handleParsed(raw);
    const queued = this.#queue;
    this.#queue = [];
    for (const frame of queued) {
      if (this.#state !== 'open') return;
      this.#handleFrame(frame.data, frame.isBinary);
    }
  }

  #accept(agent: AuthenticatedAgent): void {
    this.#clearAuthTimer();
    this.#state = 'open';
    this.agentId = agent.agentId;
    this.#tokenHash = agent.tokenHash;
    this.connectedAt = this.ctx.clock.now();
    this.lastSeenMs = this.connectedAt.getTime();
    this.ctx.onAuthenticated(this);
    if (this.#state !== 'open') return;
    this.send('welcome', { agent_id: agent.agentId, heartbeat_interval_s: this.ctx.heartbeatIntervalS, protocol: PROTOCOL_VERSION });
  }

  #handleFrame(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.#badFrame(new ProtocolError('PROTO_BAD_JSON', 'binary frame; envelopes are text frames'));
      return;
    }
    let raw: Record<string, unknown>;
    try {
      raw = parseFrame(data.toString('utf8'));
    } catch (err) {
      this.#badFrame(err);
      return;
    }
    this.#handleParsed(raw);
  }

  #handleParsed(raw: Record<string, unknown>): void {
    if (raw.token !== undefined && raw.token !== this.#verifiedToken) {
      // Every frame that carries a token must carry the connection's own.
      if (typeof raw.token !== 'string' || !hashesEqual(hashToken(raw.token), this.#tokenHash)) {
        this.close(CLOSE_CODES.unauthenticated, 'frame token does not match the connection');
        return;
      }
      this.#verifiedToken = raw.token;
    }
    let envelope: Envelope<AgentMessageType>;
    let message: Message<AgentMessageType>;
    try {
      envelope = readEnvelope(raw, AGENT_MESSAGE_TYPES);
      message = decodePayload(envelope, this.ctx.limits);
    } catch (err) {
      this.#badFrame(err);
      return;
    }
    this.#dispatch(envelope, message);
  }

  #dispatch(envelope: Envelope<AgentMessageType>, message: Message<AgentMessageType>): void {
    const agentId = this.agentId!;
    const writer = this.ctx.writer;
    const now = this.ctx.clock.now();
    this.lastSeenMs = now.getTime();
    const msgId = envelope.id;
    const at = eventTime(envelope.ts, now);
    const frame: IncomingFrame = { agentId, at: now, msgId, ackTo: this };
    switch (message.type) {
      case 'hello':
        try {
          this.protocol = negotiateProtocol(message.payload.protocol, msgId);
        } catch (err) {
          this.#badFrame(err); // an agent too old to serve: its hello is refused, not stored
          return;
        }
        this.actions = message.payload.actions;
        frame.hello = message.payload;
        this.ctx.onHello?.(this);
        break;
      case 'heartbeat':
        frame.stats = message.payload;
        break;
      case 'metrics':
        frame.samples = message.payload.samples;
        break;
      case 'alert':
      case 'resolve':
      case 'exec_result':
      case 'check_results':
        frame.event = { kind: message.type, agentId, msgId, at, payload: message.payload } as EventItem;
        break;
    }
    writer.add(frame);
    this.#spend(message);
    if (this.#epoch !== writer.epoch) {
      this.#epoch = writer.epoch;
      this.#framesThisEpoch = 0;
    }
    this.#framesThisEpoch++;
    // When the database falls behind, hold back the agents that flood, not the ones that send a
    // frame now and then: their alerts and exec results keep flowing.
    if (writer.overloaded && !this.#pausedForWriter && this.#framesThisEpoch > FLOOD_FRAMES) {
      this.#pausedForWriter = true;
      this.socket.pause();
      writer.whenDrained(() => {
        this.#pausedForWriter = false;
        this.#resumeIfFree();
      });
    }
    const budget = this.ctx.readBudget;
    if (this.#turn !== budget.turn) {
      this.#turn = budget.turn;
      this.#framesThisTurn = 0;
    }
    this.#framesThisTurn++;
    if (!budget.take() && this.#framesThisTurn > STREAMING_FRAMES && !this.#pausedForTurn) {
      this.#pausedForTurn = true;
      this.socket.pause();
      this.ctx.readBudget.defer(() => {
        this.#pausedForTurn = false;
        this.#resumeIfFree();
      });
    }
  }

  /**
   * Charge a message to this agent's budgets. With one spent, reading from this agent pauses
   * until it refills: its messages wait in the socket (and its outbox), unacked and not lost,
   * while other agents' flow. Exec results are answers the hub asked for: never charged.
   */
  #spend(message: Message<AgentMessageType>): void {
    const now = Date.now();
    // No closure here: this runs for every frame, and the bundle's keepNames would wrap one per call.
    let waitMs = 0;
    let over: 'events' | 'bulk' | 'samples' = 'bulk';
    switch (message.type) {
      case 'alert':
      case 'resolve':
        waitMs = this.#budgets.events.spend(1, now);
        over = 'events';
        break;
      case 'metrics': {
        waitMs = this.#budgets.samples.spend(message.payload.samples.length, now);
        over = 'samples';
        const bulkWait = this.#budgets.bulk.spend(1, now);
        if (bulkWait > waitMs) [waitMs, over] = [bulkWait, 'bulk'];
        break;
      }
      case 'hello':
      case 'heartbeat':
      case 'check_results':
        waitMs = this.#budgets.bulk.spend(1, now);
        break;
      case 'exec_result':
        return;
    }
    if (waitMs === 0 || this.#pausedForBudget) return;
    this.ctx.log.warn({ agentId: this.agentId, budget: over, pauseMs: waitMs }, 'agent over its budget: reading from it more slowly');
    this.socket.pause();
    this.#pausedForBudget = setTimeout(() => {
      this.#pausedForBudget = null;
      while (this.#held.length > 0 && !this.#pausedForBudget && this.#state === 'open') {
        const frame = this.#held.shift()!;
        this.#handleFrame(frame.data, frame.isBinary);
      }
      this.#resumeIfFree();
    }, waitMs);
  }

  #resumeIfFree(): void {
    if (this.paused) return;
    this.missedPongs = 0;
    if (this.#state === 'open') this.socket.resume();
  }

  #badFrame(err: unknown): void {
    if (!(err instanceof ProtocolError)) throw err;
    const now = Date.now();
    this.#badFrames = this.#badFrames.filter((t) => now - t < 60_000);
    this.#badFrames.push(now);
    this.ctx.log.debug({ agentId: this.agentId, code: err.code }, 'bad frame');
    const payload: PayloadOf<'error'> = { code: err.code, message: err.message };
    if (err.refId !== undefined) payload.ref_id = err.refId;
    this.send('error', payload);
    if (this.#badFrames.length > this.ctx.badFramesPerMinute) {
      this.close(CLOSE_CODES.protocolViolation, 'too many bad frames');
    }
  }

  #onClose(): void {
    this.#state = 'closed';
    if (this.#pausedForBudget) clearTimeout(this.#pausedForBudget);
    this.#held = [];
    this.#clearAuthTimer();
    this.#queue = [];
    this.ctx.onClosed(this);
  }

  #clearAuthTimer(): void {
    if (this.#authTimer) {
      clearTimeout(this.#authTimer);
      this.#authTimer = null;
    }
  }
}

/**
 * A budget of `perMinute` (after a burst of as many). Spending may go below zero; the answer is
 * how long until the bucket is back at zero, 0 while it has not gone under.
 */
class TokenBucket {
  #tokens: number;
  #at = Date.now();

  constructor(private readonly perMinute: number) {
    this.#tokens = perMinute;
  }

  spend(n: number, now: number): number {
    this.#tokens = Math.min(this.perMinute, this.#tokens + ((now - this.#at) * this.perMinute) / 60_000);
    this.#at = now;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 60_000) / this.perMinute);
  }
}

/**
 * When the event happened: the envelope's own time for one sent at least two seconds before it
 * arrived (a resent alert keeps when it happened), else the hub's clock, which has milliseconds.
 * Envelope times are whole seconds: a frame stamped at 12.999 and read at 13.001 looks a second
 * old, and taking its stamp put it before what the hub stamped at 12.5 (an exec's result before
 * the alert that came ahead of it, so a fix read as "failed again"). A time in the future or older
 * than a day is a wrong clock and is not believed.
 */
function eventTime(ts: number, now: Date): Date {
  const age = now.getTime() - ts * 1000;
  return age >= REPLAYED_AFTER_MS && age <= MAX_REPLAY_AGE_MS ? new Date(ts * 1000) : now;
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
