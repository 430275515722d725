import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Type } from '@sinclair/typebox';
import type { App } from '../http.ts';
import { HubError, StartupError, errorBody } from '../errors.ts';
import type { AgentRegistry } from '../ingest/registry.ts';
import type { Cluster } from '../cluster.ts';
import { ping, type Db } from '../storage/database.ts';

export interface HealthDeps {
  db: Db;
  registry: AgentRegistry;
  cluster: Pick<Cluster, 'hubId' | 'isLeader' | 'databaseAnsweredWithin'>;
}

export interface Ready {
  status: 'ready';
  agents_online: number;
  hub_id: string;
  leader: boolean;
}

/** What `/readyz` answers, on either port: the body, or HUB_UNAVAILABLE when the database does not answer. */
async function readiness({ db, registry, cluster }: HealthDeps): Promise<Ready> {
  // The hub's own upkeep reaches the database every 5 s: a recent answer is enough, so a load
  // balancer's checks never queue behind a busy pool (a reconnect storm) and mark a working
  // hub down. Without one, ask now.
  if (!cluster.databaseAnsweredWithin(8000) && !(await ping(db))) throw new HubError('HUB_UNAVAILABLE', 'database is not reachable');
  return { status: 'ready', agents_online: registry.size, hub_id: cluster.hubId, leader: cluster.isLeader };
}

/** `/healthz` (the process is up) and `/readyz` (the database answers, or did within 8 s): no token, for probes. */
export async function healthPlugin(app: App, deps: HealthDeps): Promise<void> {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The process is up', security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'The database answers',
        security: [],
        response: {
          200: Type.Object({ status: Type.Literal('ready'), agents_online: Type.Integer(), hub_id: Type.String(), leader: Type.Boolean({ description: 'this hub runs the background work' }) }),
          503: Type.Ref('ErrorResponse'),
        },
      },
    },
    async () => readiness(deps),
  );
}

/** Connections the health port holds at once: a few balancers' checks, never an attacker's many. */
const HEALTH_MAX_CONNECTIONS = 64;

/**
 * The health port (`OPSPILOT_HEALTH_PORT`): `GET`/`HEAD` `/healthz` and `/readyz`, as on the main
 * port, on a listening socket of its own. When thousands of agents reconnect at once (a hub behind
 * the balancer died), the main port's accept queue fills and the kernel drops SYNs: a balancer's
 * check waiting there comes back after TCP's retries (3, 7, 15 s) and marks a working hub down.
 * Here it is accepted at once. Plain `node:http`, not a second Fastify: two routes, no body read.
 */
export async function listenHealth(deps: HealthDeps, { host, port }: { host: string; port: number }): Promise<{ port: number; close(): Promise<void> }> {
  const send = (res: ServerResponse, status: number, body: unknown, head: boolean) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(head ? undefined : text);
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const head = req.method === 'HEAD';
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== '/healthz' && path !== '/readyz') return send(res, 404, errorBody('HUB_NOT_FOUND', `the health port answers GET /healthz and /readyz only`), head);
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, errorBody('HUB_BAD_REQUEST', `${path} takes GET or HEAD`), head);
    }
    if (path === '/healthz') return send(res, 200, { status: 'ok' }, head);
    readiness(deps).then(
      (ready) => send(res, 200, ready, head),
      (err: unknown) => send(res, 503, err instanceof HubError ? err.body() : errorBody('HUB_UNAVAILABLE', 'database is not reachable'), head),
    );
  };
  const server: Server = createServer({ requestTimeout: 5000, headersTimeout: 5000, keepAliveTimeout: 5000, connectionsCheckingInterval: 1000, maxHeaderSize: 8192 }, handle);
  server.maxConnections = HEALTH_MAX_CONNECTIONS;
  server.maxHeadersCount = 50;
  // A malformed request gets 400 and its socket closed; nothing of it reaches the handler.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: 511 }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') throw new StartupError('OPSPILOT_HEALTH_PORT', `port ${port} on ${host} is in use`);
    if (err.code === 'EACCES') throw new StartupError('OPSPILOT_HEALTH_PORT', `port ${port} needs privileges this process lacks`);
    throw err;
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
