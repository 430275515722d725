/**
 * The hub's REST API as the dashboard calls it: same-origin, the session cookie sent by the
 * browser, the CSRF token on every change. Types come from the hub's route schemas
 * (@opspilot/hub/views), never restated here.
 */
import type { ApiErrorBody, IncidentStatus, Session } from '@opspilot/hub/views';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    /** The request field it concerns (`name`, `match.source`), when the hub said. */
    readonly field?: string,
  ) {
    super(message);
  }
}

let csrf = '';
export const setCsrf = (token: string) => (csrf = token);

export async function api<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(method !== 'GET' && csrf ? { 'x-csrf-token': csrf } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // a proxy's HTML error page: reported by its status below
  }
  if (!res.ok) {
    const e = (parsed as Partial<ApiErrorBody> | null)?.error;
    throw new ApiError(e?.code ?? `HTTP_${res.status}`, e?.message ?? res.statusText, res.status, e?.field);
  }
  return parsed as T;
}

/** `?a=1&b=x` from the values that are set. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const describe = (err: unknown): string => (err instanceof ApiError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err));

export const canExec = (s: Session) => s.scope === 'exec' || s.scope === 'admin';
export const isAdmin = (s: Session) => s.scope === 'admin';

// The hub's statuses, checked against its type both ways: a status added there fails to compile here.
export const INCIDENT_STATUSES = ['new', 'analyzing', 'open', 'acknowledged', 'ignored', 'resolved'] as const satisfies readonly IncidentStatus[];
type Missing = Exclude<IncidentStatus, (typeof INCIDENT_STATUSES)[number]>;
export const ALL_STATUSES_LISTED: [Missing] extends [never] ? true : never = true;
/** Not over yet: what the overview counts. */
export const UNRESOLVED: readonly IncidentStatus[] = ['new', 'analyzing', 'open', 'acknowledged'];
export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;

export function ago(iso: string | null | undefined): string {
  if (!iso) return 'never';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129_600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}
