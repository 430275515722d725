/**
 * One live event stream for the whole page (GET /v1/events, every group): pages subscribe to
 * it instead of opening their own, so a tab holds one of the token's streams. EventSource
 * reconnects by itself with Last-Event-ID; a `resync` event (too much missed) tells every page
 * to read its lists again.
 */
import { useEffect, useRef } from 'preact/hooks';
import type { LiveEvent } from '@opspilot/hub/views';

type Listener = (e: LiveEvent | 'resync') => void;
const listeners = new Set<Listener>();
let source: EventSource | null = null;

export function startLive(): void {
  if (source) return;
  source = new EventSource('/v1/events');
  for (const group of ['incident', 'analysis', 'exec', 'remediation', 'agent', 'monitor', 'config', 'other']) {
    source.addEventListener(group, (m) => {
      let e: LiveEvent;
      try {
        e = JSON.parse((m as MessageEvent<string>).data) as LiveEvent;
      } catch {
        return;
      }
      for (const l of listeners) l(e);
    });
  }
  source.addEventListener('resync', () => listeners.forEach((l) => l('resync')));
}

export function stopLive(): void {
  source?.close();
  source = null;
}

/** Call `fn` for each live event while the component is shown. */
export function useLive(fn: Listener): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const l: Listener = (e) => ref.current(e);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
}

/**
 * `reload` at most every `ms` while events keep coming (a burst of a thousand alerts is a few
 * reads, not a thousand), and once more after the last.
 */
export function useThrottled(reload: () => void, ms = 400): () => void {
  const state = useRef<{ timer: ReturnType<typeof setTimeout> | null; again: boolean }>({ timer: null, again: false });
  const fn = useRef(reload);
  fn.current = reload;
  useEffect(() => () => void (state.current.timer && clearTimeout(state.current.timer)), []);
  return () => {
    const s = state.current;
    if (s.timer) {
      s.again = true;
      return;
    }
    fn.current();
    const tick = () => {
      if (s.again) {
        s.again = false;
        fn.current();
        s.timer = setTimeout(tick, ms);
      } else s.timer = null;
    };
    s.timer = setTimeout(tick, ms);
  };
}
