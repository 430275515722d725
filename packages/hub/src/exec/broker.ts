import { newId, type ExecParams, type PayloadOf } from '@opspilot/protocol';
import type { Clock } from '../clock.ts';
import { HubError } from '../errors.ts';
import type { Db } from '../storage/database.ts';
import { getAgent } from '../storage/agents.ts';
import {
  createExecRequest,
  getExecRequest,
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
  #closing = false;

  constructor(
    private readonly db: Db,
    private readonly registry: AgentLinks,
    private readonly clock: Clock,
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

  async #run(ask: ExecAsk): Promise<ExecRequest> {
    if (this.#closing) throw new HubError('HUB_UNAVAILABLE', 'the hub is shutting down');
    // A connected agent exists (deleting one closes its connection); only ask the database
    // when it is not, to tell an unknown agent from an offline one.
    const conn = this.registry.get(ask.agentId);
    if (!conn || !conn.isOpen) {
      if (!(await getAgent(this.db, ask.agentId))) throw new HubError('HUB_AGENT_NOT_FOUND', `no agent ${ask.agentId}`);
      throw new HubError('HUB_AGENT_OFFLINE', `agent ${ask.agentId} is not connected`);
    }
    if (conn.actions !== null && !conn.actions.includes(ask.command)) {
      const offered = conn.actions.length > 0 ? conn.actions.join(', ') : 'nothing';
      throw new HubError('HUB_EXEC_NOT_IN_CATALOGUE', `agent ${ask.agentId} does not offer "${ask.command}"; it offers ${offered}`);
    }

    const id = newId();
    await createExecRequest(this.db, { id, ...ask, at: this.clock.now() });
    let completed!: (row: ExecRequest | 'shutdown') => void;
    const result = new Promise<ExecRequest | 'shutdown'>((resolve) => (completed = resolve));
    this.#waiters.set(id, completed);
    try {
      const sendError = await new Promise<Error | undefined>((resolve) =>
        conn.send('exec', { request_id: id, command: ask.command, params: ask.params, timeout_ms: ask.timeoutMs }, resolve),
      );
      if (sendError) {
        await markExecUndelivered(this.db, id, this.clock.now());
        throw new HubError('HUB_EXEC_NOT_DELIVERED', `exec ${id} could not be sent: ${sendError.message}`);
      }
      // Recorded beside the wait, not before it: a result that lands first wins (the update
      // only moves a pending row to sent).
      const sent = markExecSent(this.db, id, this.clock.now());
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        result,
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ask.timeoutMs + RESULT_GRACE_MS))),
      ]);
      clearTimeout(timer);
      await sent;
      if (outcome === 'shutdown') throw new HubError('HUB_UNAVAILABLE', `the hub is shutting down; the result of exec ${id} will be stored when it arrives (GET /v1/exec/${id})`);
      if (outcome === 'timeout') {
        await markExecTimedOut(this.db, id);
        throw new HubError('HUB_EXEC_TIMEOUT', `no result from agent ${ask.agentId} within ${ask.timeoutMs} ms; see GET /v1/exec/${id}`);
      }
      // The completing statement returned the row; sent_at may be missing from it when the
      // result beat the sent mark.
      return outcome.sent_at ? outcome : ((await getExecRequest(this.db, id)) ?? outcome);
    } finally {
      this.#waiters.delete(id);
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
    for (const row of rows) this.#waiters.get(row.id)?.(row);
  }

  get waiting(): number {
    return this.#waiters.size;
  }
}
