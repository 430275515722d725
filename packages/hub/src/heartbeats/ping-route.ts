import rateLimit from '@fastify/rate-limit';
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { App } from '../http.ts';
import type { HeartbeatMonitor, Ping } from './monitor.ts';

const KEY = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RID = /^[0-9a-fA-F-]{1,64}$/;
/** Pings one check may send per minute (a cron job pings a few times a run). */
const PINGS_PER_MINUTE = 120;

/**
 * Healthchecks.io's ping API, so cron jobs and scripts written for it work unchanged:
 * `/ping/<uuid>` (success), `/start`, `/fail`, `/log`, `/<exit status 0-255>`, by HEAD, GET or
 * POST, with `?rid=` pairing a start with its end. A POST's body is the run's output. The answer
 * is `OK` (text/plain), or `404 not found` for a key no check has.
 */
export async function pingPlugin(app: App, { monitor, maxBytes }: { monitor: HeartbeatMonitor; maxBytes: number }): Promise<void> {
  // Plain text, as Healthchecks.io answers; a failure that is not the ping's fault (the database
  // is away) is a 503, which `curl --retry` retries.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).type('text/plain').send('payload too large');
    if (err.statusCode === 429) return reply.code(429).type('text/plain').send('rate limited');
    if (err.validation || (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)) return reply.code(400).type('text/plain').send('bad request');
    req.log.error({ err }, 'heartbeat ping could not be taken');
    return reply.code(503).type('text/plain').send('try again');
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxBytes }, (_req, body, done) => done(null, body));
  await app.register(rateLimit, {
    max: PINGS_PER_MINUTE,
    timeWindow: 60_000,
    keyGenerator: (req) => `ping:${(req.params as { key?: string }).key ?? req.ip}`,
  });

  const answer = async (req: FastifyRequest<{ Params: { key: string; signal?: string }; Querystring: { rid?: string } }>, reply: FastifyReply) => {
    const { key, signal } = req.params;
    const rid = req.query.rid;
    if (rid !== undefined && !RID.test(rid)) return reply.code(400).type('text/plain').send('invalid rid');
    let ping: Ping;
    if (signal === undefined) ping = { kind: 'success' };
    else if (signal === 'start' || signal === 'fail' || signal === 'log') ping = { kind: signal };
    else if (/^\d{1,3}$/.test(signal) && Number(signal) <= 255) ping = Number(signal) === 0 ? { kind: 'success', exitStatus: 0 } : { kind: 'fail', exitStatus: Number(signal) };
    else return reply.code(404).type('text/plain').send('not found');
    if (rid !== undefined) ping.rid = rid;
    if (Buffer.isBuffer(req.body) && req.body.length > 0) ping.body = req.body;
    if (!KEY.test(key) || !(await monitor.ping(key, ping))) return reply.code(404).type('text/plain').send('not found');
    return reply.code(200).type('text/plain').send('OK');
  };

  const schema = {
    tags: ['heartbeats'],
    security: [],
    querystring: Type.Object({ rid: Type.Optional(Type.String({ maxLength: 64 })) }),
  };
  // Uptime Kuma's push form: `/api/push/<key>?status=up|down&msg=…` (msg is the run's output).
  app.route({
    method: ['GET', 'POST'],
    url: '/api/push/:key',
    schema: {
      tags: ['heartbeats'],
      security: [],
      summary: "A heartbeat in Uptime Kuma's push form: status up (default) or down, msg kept as the output",
      querystring: Type.Object({ status: Type.Optional(Type.String({ maxLength: 16 })), msg: Type.Optional(Type.String({ maxLength: 4096 })), ping: Type.Optional(Type.String({ maxLength: 32 })) }),
    },
    handler: async (req: FastifyRequest<{ Params: { key: string }; Querystring: { status?: string; msg?: string } }>, reply) => {
      const { key } = req.params;
      const down = req.query.status === 'down';
      const ping: Ping = { kind: down ? 'fail' : 'success' };
      const body = req.query.msg ? Buffer.from(req.query.msg) : Buffer.isBuffer(req.body) && req.body.length > 0 ? req.body : undefined;
      if (body) ping.body = body;
      if (!KEY.test(key) || !(await monitor.ping(key, ping))) return reply.code(404).send({ ok: false, msg: 'not found' });
      return reply.code(200).send({ ok: true });
    },
  });

  for (const url of ['/ping/:key', '/ping/:key/:signal']) {
    app.route({
      method: ['GET', 'POST'],
      url,
      schema: { ...schema, summary: url.endsWith(':signal') ? 'A heartbeat: start, fail, log, or an exit status (0 is success)' : 'A heartbeat: the run succeeded' },
      handler: answer,
    });
  }
}
