/**
 * Test harness: the hub on a real socket over a real database (PGlite always, PostgreSQL when
 * DATABASE_URL is set, each test file in its own schema), and a scripted agent speaking the wire
 * protocol through a real WebSocket.
 */
import tap, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import WebSocket from 'ws';
import type { KyselyConfig } from 'kysely';
import {
  CLOSE_CODES,
  HUB_MESSAGE_TYPES,
  decodeFrame,
  encodeEnvelope,
  type AgentMessageType,
  type EncodeOptions,
  type HubMessageType,
  type Message,
  type PayloadOf,
} from '@opspilot/protocol';
import { buildApp, type App, type HubConfig } from '../src/index.ts';
import { systemClock, type Clock } from '../src/clock.ts';
import { openDatabase, type HubDatabase } from '../src/storage/database.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export interface Backend {
  name: 'pglite' | 'postgres';
  /** A fresh, empty database; closed (and its schema dropped) at the test's end. */
  /** `log`: Kysely's log of every statement sent (on PGlite, with an instance of its own). */
  open(t: Test, opts?: { pgliteDir?: string; searchPath?: string; log?: KyselyConfig['log'] }): Promise<HubDatabase>;
}

let sharedPGlite: Promise<HubDatabase> | null = null;

/**
 * PGlite takes seconds to open, so a test file shares one in-memory instance and each test
 * works in a schema of its own (tap runs a file's tests one after another). A test that needs
 * its own instance on disk (restarts) passes `pgliteDir`.
 */
export const pglite: Backend = {
  name: 'pglite',
  async open(t, opts = {}) {
    if (opts.pgliteDir || opts.log) {
      const db = await openDatabase({ pgliteDir: opts.pgliteDir ?? 'memory://', ...(opts.log ? { log: opts.log } : {}) });
      t.teardown(() => db.close());
      return db;
    }
    if (!sharedPGlite) {
      sharedPGlite = openDatabase({ pgliteDir: 'memory://' });
      const opened = sharedPGlite;
      tap.teardown(async () => (await opened).close());
    }
    const shared = await sharedPGlite;
    const schema = `t_${randomBytes(6).toString('hex')}`;
    await shared.exec(`CREATE SCHEMA ${schema}; SET search_path TO ${schema};`);
    return { db: shared.db, kind: shared.kind, exec: (text) => shared.exec(text), transaction: (fn) => shared.transaction(fn), close: async () => {}, dedicatedClient: null };
  },
};

export const postgres: Backend = {
  name: 'postgres',
  async open(t, opts = {}) {
    const url = process.env.DATABASE_URL!;
    const schema = opts.searchPath ?? `t_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await admin.end();
    // Generic plans from the first execution: every statement the hub prepares must hold up
    // without its parameters' values (a partial index is not matched to a parameter).
    const db = await openDatabase({ databaseUrl: url, searchPath: schema, maxConnections: 4, settings: { plan_cache_mode: 'force_generic_plan' }, ...(opts.log ? { log: opts.log } : {}) });
    t.teardown(async () => {
      await db.close();
      if (opts.searchPath) return; // the caller owns a named schema
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    });
    return db;
  },
};

/** PGlite always; PostgreSQL too when DATABASE_URL is set (as .ci/run does). */
export const BACKENDS: Backend[] = process.env.DATABASE_URL ? [pglite, postgres] : [pglite];

/** Run `fn` as a subtest once per backend. */
export function eachBackend(t: Test, name: string, fn: (t: Test, backend: Backend) => Promise<void>): void {
  for (const backend of BACKENDS) t.test(`${name} [${backend.name}]`, (t) => fn(t, backend));
}

/**
 * The hub's clock in tests: real time plus an offset the test moves forward. Its waits run in
 * real time; what the hub records and decides by the time (windows, deadlines) sees the offset.
 * After `fastForward()`, time stands still except when the hub waits: each wait jumps the clock
 * to its end at once, so pacing and pauses are exact and take no real time.
 */
export class TestClock implements Clock {
  #offsetMs = 0;
  #frozenAt: number | null = null;
  now(): Date {
    return new Date((this.#frozenAt ?? Date.now()) + this.#offsetMs);
  }
  /** Unix seconds, as an agent whose clock moves with the hub's stamps envelopes. */
  seconds(): number {
    return Math.floor(this.now().getTime() / 1000);
  }
  advance(ms: number): void {
    this.#offsetMs += ms;
  }
  fastForward(): void {
    this.#frozenAt ??= Date.now();
  }
  wait(ms: number): Promise<void> {
    if (this.#frozenAt === null) return systemClock.wait(ms);
    const due = this.now().getTime() + Math.max(0, ms);
    return new Promise((resolve) =>
      setImmediate(() => {
        const behind = due - this.now().getTime();
        if (behind > 0) this.advance(behind);
        resolve();
      }),
    );
  }
  after(ms: number, fn: () => void): void {
    if (this.#frozenAt === null) return systemClock.after(ms, fn);
    void this.wait(ms).then(fn);
  }
  /**
   * Periodic work never runs by itself: a test calls it (`sweepOffline()`, `retention.run()`).
   * On the wall clock, a sweep between `advance()` and the test's next step made flakes.
   */
  every(): () => Promise<void> {
    return async () => {};
  }
}

export interface TestHub {
  app: App;
  /** Move the hub's time with `clock.advance(ms)`. */
  clock: TestClock;
  db: HubDatabase;
  port: number;
  wsUrl: string;
  /** A REST call with the admin token over the real socket. */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; text: string }>;
  enroll(body?: { hostname?: string; labels?: Record<string, string> }): Promise<{ id: string; token: string }>;
  close(): Promise<void>;
}

export async function startHub(
  t: Test,
  db: HubDatabase,
  config: Partial<HubConfig> = {},
  logStream: NodeJS.WritableStream | false = false,
  clock = new TestClock(),
): Promise<TestHub> {
  const app = await buildApp({
    database: db,
    config: { adminToken: ADMIN_TOKEN, logLevel: 'silent', ...config },
    logStream,
    clock,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
  };
  t.teardown(close);
  const api: TestHub['api'] = async (method, path, body, headers = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text };
  };
  return {
    app,
    clock,
    db,
    port,
    wsUrl: `ws://127.0.0.1:${port}/v1/stream`,
    api,
    async enroll(body = { hostname: 'web-1' }) {
      const res = await api('POST', '/v1/agents', body);
      if (res.status !== 201) throw new Error(`enroll failed: ${res.status} ${res.text}`);
      return res.body;
    },
    close,
  };
}

type Received = { [K in HubMessageType]: { type: K; payload: PayloadOf<K>; raw: string } }[HubMessageType];

/** A scripted agent: a real WebSocket client that speaks the protocol and records what it gets. */
export class ScriptedAgent {
  readonly ws: WebSocket;
  readonly received: Received[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Set when the upgrade was refused: the HTTP status. */
  refusedStatus: number | null = null;
  #waiters: (() => void)[] = [];

  constructor(url: string, opts: { token?: string; header?: boolean; maxPayload?: number } = {}) {
    const headers: Record<string, string> = {};
    if (opts.token && opts.header !== false) headers.authorization = `Bearer ${opts.token}`;
    this.ws = new WebSocket(url, { headers, perMessageDeflate: false, maxPayload: opts.maxPayload ?? 64 * 1024 * 1024 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => {
        this.refusedStatus = res.statusCode ?? 0;
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, body: text })));
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('message', (data) => {
      const raw = data.toString();
      const { message } = decodeFrame(raw, HUB_MESSAGE_TYPES);
      this.received.push({ ...(message as Message<HubMessageType>), raw } as Received);
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w();
    });
  }

  static async connect(url: string, token: string, opts: { header?: boolean } = {}): Promise<ScriptedAgent> {
    const agent = new ScriptedAgent(url, { token, ...opts });
    await agent.opened;
    return agent;
  }

  /** Set to the hub's clock: envelopes are stamped with its time (an agent whose clock moves with the hub's). */
  clock: { seconds(): number } | null = null;

  send<T extends AgentMessageType>(type: T, payload: PayloadOf<T>, opts: EncodeOptions = {}): void {
    this.ws.send(encodeEnvelope(type, payload, this.clock && opts.ts === undefined ? { ...opts, ts: this.clock.seconds() } : opts));
  }

  sendRaw(frame: string | Buffer, binary = false): void {
    this.ws.send(frame, { binary });
  }

  /** The next message of `type` matching `where`, not yet taken, within `ms`. */
  async next<T extends HubMessageType>(
    type: T,
    where: (p: PayloadOf<T>) => boolean = () => true,
    ms = 5000,
  ): Promise<PayloadOf<T>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const idx = this.received.findIndex((m) => m.type === type && where(m.payload as PayloadOf<T>));
      if (idx >= 0) return this.received.splice(idx, 1)[0]!.payload as PayloadOf<T>;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} within ${ms} ms; got ${JSON.stringify(this.received.map((m) => m.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Wait until every id in `ids` has been acked. */
  async acked(ids: string[], ms = 5000): Promise<void> {
    const want = new Set(ids);
    const deadline = Date.now() + ms;
    while (want.size > 0) {
      const ack = await this.next('ack', undefined, Math.max(1, deadline - Date.now()));
      for (const id of ack.ids) want.delete(id);
    }
  }

  close(): void {
    this.ws.close(CLOSE_CODES.normal);
  }
}

/** Poll `fn` until it returns a truthy value, or fail after `ms`. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, ms = 5000, label = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const HELLO: PayloadOf<'hello'> = {
  protocol: 1,
  agent_version: '0.1.0-test',
  hostname: 'web-1',
  os: 'linux',
  arch: 'x64',
  kernel: '6.1.0',
  boot_time: 1706000000,
  actions: ['restart_service', 'service_status', 'disk_usage'],
};

/** An agent that answers each exec the way `answer` says (or not at all when it returns null). */
export async function runningAgent(
  hub: TestHub,
  token: string,
  answer: (exec: PayloadOf<'exec'>) => Omit<PayloadOf<'exec_result'>, 'request_id'> | null,
  hello: PayloadOf<'hello'> | null = HELLO,
): Promise<ScriptedAgent & { execs: PayloadOf<'exec'>[] }> {
  const agent = Object.assign(await ScriptedAgent.connect(hub.wsUrl, token), { execs: [] as PayloadOf<'exec'>[] });
  agent.clock = hub.clock;
  if (hello) agent.send('hello', hello, { id: 'hello-1' });
  await agent.next('welcome');
  if (hello) await agent.acked(['hello-1']);
  agent.ws.on('message', () => {
    for (;;) {
      const idx = agent.received.findIndex((m) => m.type === 'exec');
      if (idx < 0) return;
      const exec = agent.received.splice(idx, 1)[0]!.payload as PayloadOf<'exec'>;
      agent.execs.push(exec);
      const result = answer(exec);
      if (result) agent.send('exec_result', { request_id: exec.request_id, ...result }, { id: `res-${exec.request_id}` });
    }
  });
  return agent;
}
