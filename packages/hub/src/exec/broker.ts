import { newId, type ExecParams, type PayloadOf } from '@opspilot/protocol';
import type { Clock } from '../clock.ts';
import { HubError } from '../errors.ts';
import type { Db } from '../storage/database.ts';
import type { Cluster, ClusterMessage, ForwardedExec } from '../cluster.ts';
import { agentRoute, type AgentRoute } from '../storage/cluster.ts';
import {
  createExecRequest,
  getExecRequests,
  markExecSent,
  markExecTimedOut,
  markExecUndelivered,
} from '../storage/exec-requests.ts';
import type { ExecOrigin, ExecRequest } from '../storage/tables.ts';
import { recordEvent } from '../storage/timeline.ts';

export interface ExecAsk {
  agentId: string;
  command: string;
  params: ExecParams;
  timeoutMs: number;
  requestedBy: string;
  origin: ExecOrigin;
  /** The incident this acts on, when there is one. */
  incidentId?: string;
}

/** Time allowed, past the command's own timeout, for the agent's result to come back. */
export const RESULT_GRACE_MS = 1000;
/** An exec whose result has not come back this long after it was sent gets its sent mark written. */
export const SENT_MARK_MS = 250;
/** Time allowed for another hub to say it sent an exec on to its agent (a dead hub never does). */
export const FORWARD_ACCEPT_MS = 3000;

type ForwardAnswer = 'sent' | HubError;

/** What the broker needs of the agents' connections (ingest's AgentRegistry is one). */
export interface AgentLinks {
  get(agentId: string):
    | { readonly isOpen: boolean; readonly actions: readonly string[] | null; send(type: 'exec', payload: PayloadOf<'exec'>, sent: (err?: Error) => void): void }
    | undefined;
}

/**
 * Sends exec requests to connected agents and waits for their results. Every request is an
 * `exec_requests` row before it is sent; it is reported as sent only once it was written to the
 * agent's socket, and its result is stored by the ingest writer whenever it arrives.
 */
export class ExecBroker {
  readonly #waiters = new Map<string, (row: ExecRequest | 'shutdown') => void>();
  readonly #forwarded = new Map<string, (answer: ForwardAnswer) => void>();
  /** When each request this hub sent itself and waits on was sent: its result's statement writes it. */
  readonly #sent = new Map<string, Date>();
  /**
   * When this hub sent each request another hub asked it to pass on: its result's statement here
   * writes it too, so the asking hub reads a complete row and writes nothing more (one commit
   * fewer on the way back). Kept until the result is stored or the exec's time is up.
   */
  readonly #relayed = new Map<string, { at: Date; timer: NodeJS.Timeout }>();
  #closing = false;

  constructor(
    private readonly db: Db,
    private readonly registry: AgentLinks,
    private readonly clock: Clock,
    /** The other hubs on the database: an agent connected to one of them is reached through it. */
    private readonly cluster: Pick<Cluster, 'hubId' | 'shared' | 'send' | 'encode'> | null = null,
  ) {}

  /**
   * Run one exec and wait for its result. Every attempt, delivered or not, ends on the audit
   * trail with who asked, what, and how it ended (results with their output, cut to 2 KiB each
   * way, by the statement that stores them: no extra round trip on the way back).
   */
  async run(ask: ExecAsk): Promise<ExecRequest> {
    let row: ExecRequest | undefined;
    let failure: unknown;
    try {
      row = await this.#run(ask);
      return row;
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      // A result is put on the audit trail by the statement that stores it; what never got one is put there here.
      if (!row) await this.#audit(ask, failure).catch(() => {});
    }
  }

  async #audit(ask: ExecAsk, failure: unknown): Promise<void> {
    await recordEvent(this.db, {
      incidentId: ask.incidentId ?? null,
      agentId: ask.agentId,
      at: this.clock.now(),
      actor: ask.origin === 'rule' ? 'rule' : 'user',
      by: ask.requestedBy,
      kind: 'exec_completed',
      detail: {
        command: ask.command,
        params: ask.params,
        origin: ask.origin,
        status: failure instanceof HubError && failure.code === 'HUB_EXEC_TIMEOUT' ? 'timeout' : failure instanceof HubError && failure.code === 'HUB_EXEC_NOT_DELIVERED' ? 'undelivered' : 'not_run',
        error_code: failure instanceof HubError ? failure.code : 'HUB_INTERNAL',
        error: (failure as Error)?.message,
      },
    });
  }

  /** The agent can be sent an exec now: connected here, or to another hub that lives. */
  async reachable(agentId: string): Promise<boolean> {
    if (this.registry.get(agentId)?.isOpen) return true;
    return this.cluster?.shared === true && this.#otherHub(await agentRoute(this.db, agentId)) !== null;
  }

  /** The other live hub holding the agent, if any. */
  #otherHub(route: AgentRoute | undefined): string | null {
    return this.cluster?.shared && route?.hubId && route.hubId !== this.cluster.hubId && route.alive ? route.hubId : null;
  }

  async #run(ask: ExecAsk): Promise<ExecRequest> {
    if (this.#closing) throw new HubError('HUB_UNAVAILABLE', 'the hub is shutting down');
    // A connected agent exists (deleting one closes its connection); only ask the database
    // when it is not, to tell an unknown agent from an offline one, or one on another hub.
    const conn = this.registry.get(ask.agentId);
    if (!conn || !conn.isOpen) {
      const route = await agentRoute(this.db, ask.agentId);
      if (!route) throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${ask.agentId}`);
      const hubId = this.#otherHub(route);
      if (hubId !== null) return this.#remote(ask, hubId);
      throw new HubError('HUB_AGENT_OFFLINE', `agent ${ask.agentId} is not connected`);
    }
    if (conn.actions !== null && !conn.actions.includes(ask.command)) throw notOffered(ask.agentId, ask.command, conn.actions);

    const id = newId();
    await createExecRequest(this.db, { id, ...ask, at: this.clock.now() });
    return this.#await(ask, id, async () => {
      const sendError = await new Promise<Error | undefined>((resolve) =>
        conn.send('exec', { request_id: id, command: ask.command, params: ask.params, timeout_ms: ask.timeoutMs }, resolve),
      );
      if (sendError) {
        await markExecUndelivered(this.db, id, this.clock.now());
        throw new HubError('HUB_EXEC_NOT_DELIVERED', `exec ${id} could not be sent: ${sendError.message}`);
      }
    });
  }

  /**
   * The agent is connected to another hub: that hub is asked to send the exec by a NOTIFY in
   * the statement that writes the request (one commit), says whether it did, and its result
   * comes back as every result does (stored, then `exec_done`).
   */
  async #remote(ask: ExecAsk, hubId: string): Promise<ExecRequest> {
    const id = newId();
    let notice: { channel: string; payload: string } | null;
    try {
      notice = this.cluster!.encode(hubId, { k: 'exec', id, agent: ask.agentId, command: ask.command, params: ask.params, timeout_ms: ask.timeoutMs });
    } catch (err) {
      throw new HubError('HUB_EXEC_NOT_DELIVERED', `exec ${id} could not be passed to hub ${hubId}: ${(err as Error).message}`);
    }
    if (!notice) throw new HubError('HUB_AGENT_OFFLINE', `agent ${ask.agentId} is not connected`);
    // Listening (for its word, and its result) before the request exists: the other hub may
    // answer as soon as the request commits, and its NOTIFY may be read before the commit's reply.
    let answered!: (answer: ForwardAnswer) => void;
    const answer = new Promise<ForwardAnswer>((resolve) => (answered = resolve));
    this.#forwarded.set(id, answered);
    try {
      return await this.#await(ask, id, async () => {
        await createExecRequest(this.db, { id, ...ask, at: this.clock.now() }, notice);
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          answer,
          new Promise<'silent'>((resolve) => (timer = setTimeout(() => resolve('silent'), Math.min(FORWARD_ACCEPT_MS, ask.timeoutMs + RESULT_GRACE_MS)))),
        ]);
        clearTimeout(timer);
        if (outcome === 'sent') return;
        await markExecUndelivered(this.db, id, this.clock.now());
        if (outcome === 'silent') throw new HubError('HUB_EXEC_NOT_DELIVERED', `exec ${id}: hub ${hubId}, which holds agent ${ask.agentId}, did not answer`);
        throw outcome;
      });
    } finally {
      this.#forwarded.delete(id);
    }
  }

  /** Wait for the result of a stored request once `send` has sent it. */
  async #await(ask: ExecAsk, id: string, send: () => Promise<void>): Promise<ExecRequest> {
    let completed!: (row: ExecRequest | 'shutdown') => void;
    const result = new Promise<ExecRequest | 'shutdown'>((resolve) => (completed = resolve));
    this.#waiters.set(id, completed);
    try {
      await send();
      // When it was sent is written with the result when this hub stores it (one write on the
      // row; a separate mark was a second commit the result's statement waited for), or on its
      // own when the result is slow (SENT_MARK_MS), stored by another hub, or never comes.
      const sentAt = this.clock.now();
      this.#sent.set(id, sentAt);
      let sent: Promise<void> | null = null;
      const markSent = () => (sent ??= markExecSent(this.db, id, sentAt).catch(() => {}));
      const early = setTimeout(markSent, SENT_MARK_MS);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        result,
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ask.timeoutMs + RESULT_GRACE_MS))),
      ]);
      clearTimeout(timer);
      clearTimeout(early);
      if (outcome === 'shutdown') {
        await markSent();
        throw new HubError('HUB_UNAVAILABLE', `the hub is shutting down; the result of exec ${id} will be stored when it arrives (GET /v1/exec/${id})`);
      }
      if (outcome === 'timeout') {
        await markSent();
        await markExecTimedOut(this.db, id);
        throw new HubError('HUB_EXEC_TIMEOUT', `no result from agent ${ask.agentId} within ${ask.timeoutMs} ms; see GET /v1/exec/${id}`);
      }
      if (outcome.sent_at) return outcome;
      await markSent();
      return { ...outcome, sent_at: sentAt };
    } finally {
      this.#waiters.delete(id);
      this.#sent.delete(id);
    }
  }

  /**
   * Another hub asks this one to send an exec to an agent connected here; it is told whether
   * that happened. The request's row was written by the asking hub.
   */
  deliverForwarded(from: string, exec: ForwardedExec): void {
    const answer = (msg: ClusterMessage) => void this.cluster?.send(from, msg).catch(() => {}); // unanswered, the asker gives up on its own
    const conn = this.registry.get(exec.agent);
    if (this.#closing || !conn || !conn.isOpen) {
      answer({ k: 'exec_refused', id: exec.id, code: 'HUB_AGENT_OFFLINE', message: `agent ${exec.agent} is not connected` });
      return;
    }
    if (conn.actions !== null && !conn.actions.includes(exec.command)) {
      answer({ k: 'exec_refused', id: exec.id, code: 'HUB_EXEC_NOT_IN_CATALOGUE', message: notOffered(exec.agent, exec.command, conn.actions).message });
      return;
    }
    conn.send('exec', { request_id: exec.id, command: exec.command, params: exec.params, timeout_ms: exec.timeout_ms }, (err) => {
      if (err) {
        answer({ k: 'exec_refused', id: exec.id, code: 'HUB_EXEC_NOT_DELIVERED', message: `exec ${exec.id} could not be sent: ${err.message}` });
        return;
      }
      if (!this.#relayed.has(exec.id)) {
        const at = this.clock.now();
        const timer = setTimeout(() => this.#relayed.delete(exec.id), exec.timeout_ms + RESULT_GRACE_MS);
        timer.unref();
        this.#relayed.set(exec.id, { at, timer });
      }
      answer({ k: 'exec_sent', id: exec.id });
    });
  }

  /** The hub holding the agent answered an exec this one passed to it. */
  forwardAnswered(msg: Extract<ClusterMessage, { k: 'exec_sent' | 'exec_refused' }>): void {
    this.#forwarded.get(msg.id)?.(msg.k === 'exec_sent' ? 'sent' : new HubError(msg.code, msg.message));
  }

  /** Results stored by another hub: the rows of those this hub waits for are read. */
  async completedElsewhere(ids: readonly string[]): Promise<void> {
    const mine = ids.filter((id) => this.#waiters.has(id));
    // A result means it was sent, whether or not that hub's word on it has come yet.
    for (const id of mine) this.#forwarded.get(id)?.('sent');
    for (const row of await getExecRequests(this.db, mine)) {
      if (row.completed_at) this.#waiters.get(row.id)?.(row);
    }
  }

  /**
   * The hub is stopping: stop waiting (503 to whoever asked). A result that comes later, after
   * the agent reconnects and replays its outbox, is still stored on its row.
   */
  shutdown(): void {
    this.#closing = true;
    for (const resolve of this.#waiters.values()) resolve('shutdown');
  }

  /** Called with the rows once results are stored. */
  completed(rows: ExecRequest[]): void {
    for (const row of rows) {
      this.#waiters.get(row.id)?.(row);
      const relayed = this.#relayed.get(row.id);
      if (relayed) {
        clearTimeout(relayed.timer);
        this.#relayed.delete(row.id);
      }
    }
  }

  /** When this hub sent a request it is waiting on, or passed on for another hub, if it did. */
  sentAt(id: string): Date | undefined {
    return this.#sent.get(id) ?? this.#relayed.get(id)?.at;
  }

  get waiting(): number {
    return this.#waiters.size;
  }
}

function notOffered(agentId: string, command: string, actions: readonly string[]): HubError {
  const offered = actions.length > 0 ? actions.join(', ') : 'nothing';
  return new HubError('HUB_EXEC_NOT_IN_CATALOGUE', `agent ${agentId} does not offer "${command}"; it offers ${offered}`);
}
