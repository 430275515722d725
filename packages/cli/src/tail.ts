import { ApiError, type Hub } from './api.ts';
import { ago, clip } from './format.ts';
import type { LiveEvent } from '@opspilot/hub/views';

interface TailOptions {
  json: boolean;
  /** Stop after this many events. */
  max: number;
  out(line: string): void;
  err(line: string): void;
}

/** One event as a line for people: when, what, about what. */
function line(e: LiveEvent): string {
  const about = e.incident ? `${e.incident.id} ${e.incident.severity ?? '-'} ${e.incident.status} ${clip(e.incident.message, 80)}` : e.agent_id ? `agent ${e.agent_id}` : clip(JSON.stringify(e.detail ?? {}), 100);
  return `${e.at}  ${e.group.padEnd(11)} ${e.type.padEnd(20)} ${clip(about, 160)}${e.by ? `  (${clip(e.by, 40)})` : ''}`;
}

/**
 * Follow GET /v1/events: prints each event (a line, or its JSON with --json) and, when the
 * stream ends or breaks, reconnects with Last-Event-ID after a second, so nothing is missed; a
 * resync (missed too much) is said on standard error. Ctrl-C ends it.
 */
export async function tail(hub: Hub, path: string, o: TailOptions): Promise<void> {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let last: string | undefined;
  let seen = 0;
  try {
    while (!ctl.signal.aborted && seen < o.max) {
      try {
        const res = await hub.stream(path, last ? { 'last-event-id': last } : {}, ctl.signal);
        let buffer = '';
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let id: string | undefined;
            let event: string | undefined;
            let data: string | undefined;
            for (const l of block.split('\n')) {
              if (l.startsWith('id: ')) id = l.slice(4);
              else if (l.startsWith('event: ')) event = l.slice(7);
              else if (l.startsWith('data: ')) data = l.slice(6);
            }
            if (event === 'resync') {
              o.err(`opspilot: missed too many events while away (${ago(new Date().toISOString())}); go on from now`);
              if (data) last = String((JSON.parse(data) as { seq?: number }).seq ?? last);
              continue;
            }
            if (!data) continue;
            if (id) last = id;
            const e = JSON.parse(data);
            o.out(o.json ? JSON.stringify(e) : line(e));
            if (++seen >= o.max) return;
          }
        }
      } catch (err) {
        if (ctl.signal.aborted) return;
        // Refused (a bad filter, no token): no point retrying.
        if (err instanceof ApiError && err.status !== 0 && err.status < 500 && err.status !== 429) throw err;
        o.err(`opspilot: the event stream broke (${err instanceof Error ? err.message : String(err)}); reconnecting`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    ctl.abort();
  }
}
