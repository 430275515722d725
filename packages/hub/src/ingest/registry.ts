import type { AgentConnection } from './connection.ts';

/** The live connection of each agent on this hub. A newer connection replaces the older. */
export class AgentRegistry {
  readonly #byAgent = new Map<string, AgentConnection>();

  /** Make `conn` the agent's connection; returns the one it replaced, if any. */
  register(agentId: string, conn: AgentConnection): AgentConnection | undefined {
    const previous = this.#byAgent.get(agentId);
    this.#byAgent.set(agentId, conn);
    return previous === conn ? undefined : previous;
  }

  /** Forget `conn`, unless a newer connection already took its place. */
  unregister(agentId: string, conn: AgentConnection): void {
    if (this.#byAgent.get(agentId) === conn) this.#byAgent.delete(agentId);
  }

  get(agentId: string): AgentConnection | undefined {
    return this.#byAgent.get(agentId);
  }

  isOnline(agentId: string): boolean {
    return this.#byAgent.has(agentId);
  }

  get size(): number {
    return this.#byAgent.size;
  }

  connections(): IterableIterator<AgentConnection> {
    return this.#byAgent.values();
  }
}
