/** Pages live in the URL's fragment (`#/incidents?status=open`), so any view can be shared or reloaded. */
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  /** `/incidents/01J…` */
  path: string;
  query: Record<string, string>;
}

function current(): Route {
  const raw = location.hash.replace(/^#/, '') || '/';
  const at = raw.indexOf('?');
  const path = at < 0 ? raw : raw.slice(0, at);
  const query: Record<string, string> = {};
  if (at >= 0) for (const [k, v] of new URLSearchParams(raw.slice(at + 1))) query[k] = v;
  return { path, query };
}

export const link = (path: string) => `#${path}`;
export const go = (path: string) => void (location.hash = path);

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const on = () => setRoute(current());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

/** The id in `/prefix/<id>`, when the path is one. */
export function idIn(path: string, prefix: string): string | null {
  const m = new RegExp(`^/${prefix}/([A-Za-z0-9_-]{1,64})$`).exec(path);
  return m ? m[1]! : null;
}
