import { Type } from '@sinclair/typebox';
import type { ServerResponse } from 'node:http';
import type { App } from '../http.ts';
import { HubError } from '../errors.ts';
import type { Db } from '../storage/database.ts';
import { eventsAfter, TIMELINE_KINDS, type StreamEvent } from '../storage/timeline.ts';
import type { LiveJournal } from './journal.ts';

/** Kinds by what they are about: `?types=` takes a group or a kind. */
const ABOUT = {
  incident: ['opened', 'repeated', 'reopened', 'classified', 'acknowledged', 'resolved', 'flapping', 'stable', 'ignored', 'escalated', 'linked'],
  analysis: ['analysis_requested', 'analyzing', 'analyzed'],
  exec: ['action_requested', 'action_completed', 'action_refused', 'exec_requested', 'exec_completed'],
  remediation: ['rule_fired', 'rule_skipped', 'approval_requested', 'approved', 'rejected', 'verified', 'verification_failed', 'rule_suspended', 'autonomy_changed'],
  agent: ['agent_connected', 'agent_disconnected'],
  monitor: ['monitor_created', 'monitor_updated', 'monitor_deleted', 'monitor_state'],
} as const satisfies Record<string, readonly (typeof TIMELINE_KINDS)[number][]>;
const grouped = new Set<string>(Object.values(ABOUT).flat());
/** The rest is configuration: rules, tokens, silences, integrations, heartbeat checks. */
export const EVENT_GROUPS: Record<string, readonly string[]> = { ...ABOUT, config: TIMELINE_KINDS.filter((k) => !grouped.has(k)) };

export interface EventStreamOptions {
  /** Streams one token may hold at once. */
  perToken: number;
  /** Events a reconnecting client may be sent from where it left off; further back it is told to resync. */
  maxReplay: number;
  /** Bytes waiting for a client past which it is disconnected (a slow reader is never buffered without bound). */
  maxBufferedBytes: number;
  keepAliveMs: number;
}

interface Filter {
  kinds: Set<string> | null;
  agentId: string | undefined;
  incidentId: string | undefined;
}

const matches = (f: Filter, e: StreamEvent) =>
  (f.kinds === null || f.kinds.has(e.kind)) && (f.agentId === undefined || e.agent_id === f.agentId) && (f.incidentId === undefined || e.incident_id === f.incidentId);

/** The `data` of one live event (the dashboard and the CLI read it). */
export interface LiveEventData {
  seq: number;
  at: string;
  /** The timeline kind: incident_opened, acknowledged, exec_completed, agent_connected… */
  type: string;
  /** What it is about: incident, analysis, exec, remediation, agent, monitor, config. */
  group: string;
  actor: string;
  by: string | null;
  incident_id: string | null;
  agent_id: string | null;
  detail: Record<string, unknown> | null;
  /** The incident as it is now, when the event is about one. */
  incident: StreamEvent['incident'];
}

/** One event as SSE: its position is the id a client resumes from. */
function frame(e: StreamEvent): string {
  const group = Object.entries(EVENT_GROUPS).find(([, kinds]) => kinds.includes(e.kind))?.[0] ?? 'other';
  const data: LiveEventData = { seq: e.seq, at: e.at.toISOString(), type: e.kind, group, actor: e.actor, by: e.by, incident_id: e.incident_id, agent_id: e.agent_id, detail: e.detail, incident: e.incident };
  // JSON never holds a raw newline, so one data line carries it whole.
  return `id: ${e.seq}\nevent: ${group}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * `GET /v1/events`: the hub's changes as Server-Sent Events, for the dashboard, the CLI and
 * scripts. Any token scope. Each event's id is its position in the audit trail: a client that
 * reconnects with `Last-Event-ID` is sent what it missed, or a `resync` event when that is more
 * than `maxReplay` events back. A comment every `keepAliveMs` keeps proxies from closing an idle
 * stream; a client that does not read is disconnected once `maxBufferedBytes` wait for it; a
 * token holds at most `perToken` streams.
 */
export function eventRoutes(app: App, { db, journal, opts }: { db: Db; journal: LiveJournal; opts: EventStreamOptions }): void {
  const perToken = new Map<string, number>();
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
  });

  app.get(
    '/v1/events',
    {
      schema: {
        tags: ['events'],
        summary: 'Live events (Server-Sent Events); resume with Last-Event-ID',
        description:
          'Each event: `id` (its position), `event` (its group: incident, analysis, exec, remediation, agent, monitor, config) and `data` (JSON: seq, at, type, group, actor, by, incident_id, agent_id, detail, incident). `event: resync` means what was missed is too far back: read the lists again.',
        querystring: Type.Object({
          types: Type.Optional(Type.String({ maxLength: 2048, pattern: '^[a-z_]+(,[a-z_]+)*$', description: 'groups or kinds, comma-separated' })),
          agent_id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
          incident_id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
          since: Type.Optional(Type.Integer({ minimum: 0, description: 'a position to resume after (as Last-Event-ID)' })),
        }),
        headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$' })) }),
      },
    },
    async (req, reply) => {
      let kinds: Set<string> | null = null;
      if (req.query.types) {
        kinds = new Set();
        for (const t of req.query.types.split(',')) {
          const group = Object.hasOwn(EVENT_GROUPS, t) ? EVENT_GROUPS[t] : undefined;
          if (group) group.forEach((k) => kinds!.add(k));
          else if ((TIMELINE_KINDS as readonly string[]).includes(t)) kinds.add(t);
          else throw new HubError('HUB_BAD_REQUEST', `types: "${t}" is neither a group (${Object.keys(EVENT_GROUPS).join(', ')}) nor an event type`);
        }
      }
      const filter: Filter = { kinds, agentId: req.query.agent_id, incidentId: req.query.incident_id };
      const who = req.operator.actor;
      if ((perToken.get(who) ?? 0) >= opts.perToken) throw new HubError('HUB_RATE_LIMITED', `${who} already holds ${opts.perToken} event streams; close one first`);
      perToken.set(who, (perToken.get(who) ?? 0) + 1);
      const resumeAfter = req.headers['last-event-id'] !== undefined ? Number(req.headers['last-event-id']) : req.query.since;

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      open.add(res);
      let closed = false;
      let replaying = true;
      const held: StreamEvent[] = [];
      const write = (text: string) => {
        if (closed) return;
        // Judged on what still waits from earlier writes: a burst is sent whole, a client that
        // has not taken the last ones by the next is cut off.
        if (res.writableLength > opts.maxBufferedBytes) {
          // What waits for it is dropped with the connection: it reconnects with Last-Event-ID.
          req.log.warn({ who, buffered: res.writableLength }, 'event stream client too slow: disconnected');
          done();
          res.destroy();
          return;
        }
        res.write(text);
      };
      const send = (events: readonly StreamEvent[]) => {
        let text = '';
        for (const e of events) if (matches(filter, e)) text += frame(e);
        if (text) write(text);
      };
      const sub = await journal.subscribe((events) => (replaying ? held.push(...events) : send(events)));
      const keepAlive = setInterval(() => write(': keep-alive\n\n'), opts.keepAliveMs);
      function done() {
        if (closed) return;
        closed = true;
        clearInterval(keepAlive);
        sub.unsubscribe();
        open.delete(res);
        const n = (perToken.get(who) ?? 1) - 1;
        if (n <= 0) perToken.delete(who);
        else perToken.set(who, n);
      }
      res.on('close', done);
      res.on('error', done);
      write(`retry: 3000\n: connected at ${sub.after}\n\n`);

      // What a returning client missed, up to where the live events begin; too far back is a resync.
      if (resumeAfter !== undefined && resumeAfter < sub.after) {
        if (sub.after - resumeAfter > opts.maxReplay) {
          write(`event: resync\ndata: ${JSON.stringify({ reason: `more than ${opts.maxReplay} events were missed`, seq: sub.after })}\n\n`);
        } else {
          let from = resumeAfter;
          while (!closed && from < sub.after) {
            const page = (await eventsAfter(db, from, 1000)).filter((e) => e.seq <= sub.after);
            if (page.length === 0) break;
            send(page);
            from = page[page.length - 1]!.seq;
          }
        }
      }
      replaying = false;
      send(held.splice(0));
    },
  );
}
