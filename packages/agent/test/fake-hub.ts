/** A small in-memory hub for agent tests: real WebSocket server, scripted behaviour. */
import { createServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { AGENT_MESSAGE_TYPES, decodeFrame, encodeEnvelope, type AgentMessageType, type PayloadOf } from '@opspilot/protocol';

export interface Received {
  type: AgentMessageType;
  id: string | undefined;
  payload: unknown;
}

export class FakeHub {
  readonly received: Received[] = [];
  readonly authHeaders: (string | undefined)[] = [];
  token: string;
  /** Ack every id (default), or hold acks back. */
  acking = true;
  socket: WebSocket | null = null;
  #server: Server;
  #wss: WebSocketServer;
  #waiters: (() => void)[] = [];
  port = 0;

  constructor(token: string) {
    this.token = token;
    this.#server = createServer();
    this.#wss = new WebSocketServer({ noServer: true });
    this.#server.on('upgrade', (req, socket, head) => {
      this.authHeaders.push(req.headers.authorization);
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws));
    });
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this.port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/v1/stream`;
  }

  async close(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  send<T extends 'exec' | 'ack' | 'error'>(type: T, payload: PayloadOf<T>): void {
    this.socket?.send(encodeEnvelope(type, payload));
  }

  /** Wait until `predicate` holds over what was received. */
  async until(predicate: (r: Received[]) => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate(this.received)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake hub: condition not met; got ${JSON.stringify(this.received.map((r) => r.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #accept(ws: WebSocket): void {
    this.socket?.close(4409, 'replaced');
    this.socket = ws;
    ws.send(encodeEnvelope('welcome', { agent_id: 'agent-1', heartbeat_interval_s: 1 }));
    ws.on('message', (data) => {
      const { envelope, message } = decodeFrame(data.toString(), AGENT_MESSAGE_TYPES);
      this.received.push({ type: message.type, id: envelope.id, payload: message.payload });
      if (envelope.id && this.acking) ws.send(encodeEnvelope('ack', { ids: [envelope.id] }));
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w();
    });
  }
}
