import type { Credentials } from './config.ts';

/**
 * Exit codes, stable for scripts: 0 done; 1 the hub refused or failed; 2 a usage mistake; 3 not
 * logged in, or the token is refused or lacks the scope; 4 not found; 5 the hub cannot be
 * reached; 6 an exec ran and failed on the host.
 */
export const EXIT = { ok: 0, refused: 1, usage: 2, auth: 3, notFound: 4, unreachable: 5, execFailed: 6 } as const;

/** The hub said no (its error code and message), or could not be reached. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get exitCode(): number {
    if (this.status === 0) return EXIT.unreachable;
    if (this.status === 401 || this.status === 403) return EXIT.auth;
    if (this.status === 404) return EXIT.notFound;
    return EXIT.refused;
  }
}

/** The hub's REST API with one token. */
export class Hub {
  constructor(readonly creds: Credentials) {}

  async call<T = any>(method: string, path: string, body?: unknown, opts: { signal?: AbortSignal } = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.creds.hub + path, {
        method,
        headers: { authorization: `Bearer ${this.creds.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      throw new ApiError('CLI_UNREACHABLE', `cannot reach the hub at ${this.creds.hub}: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`, 0);
    }
    const text = await res.text();
    let parsed: any = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!res.ok) {
      const e = parsed?.error as { code?: string; message?: string } | undefined;
      throw new ApiError(e?.code ?? `HTTP_${res.status}`, e?.message ?? (text.slice(0, 200) || res.statusText), res.status);
    }
    return parsed as T;
  }

  get = <T = any>(path: string) => this.call<T>('GET', path);
  post = <T = any>(path: string, body: unknown = {}) => this.call<T>('POST', path, body);

  /** The raw response of a streaming GET (the live events). */
  async stream(path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.creds.hub + path, { headers: { authorization: `Bearer ${this.creds.token}`, accept: 'text/event-stream', ...headers }, signal });
    } catch (err) {
      throw new ApiError('CLI_UNREACHABLE', `cannot reach the hub at ${this.creds.hub}: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`, 0);
    }
    if (!res.ok) {
      const parsed = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
      throw new ApiError(parsed?.error?.code ?? `HTTP_${res.status}`, parsed?.error?.message ?? res.statusText, res.status);
    }
    return res;
  }
}
