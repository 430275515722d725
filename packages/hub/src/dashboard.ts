import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { App } from './http.ts';
import { errorBody } from './errors.ts';

/** Where `pnpm build:dashboard` (and `pnpm start`) put the dashboard's static files. */
export const DEFAULT_DASHBOARD_DIR = path.resolve(import.meta.dirname, '../../dashboard/dist');

/**
 * Nothing but this origin's own files, no inline script or style, no framing: a page that is
 * made to show hostile text (an alert's message) cannot run it or send it elsewhere.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.html': 'text/html; charset=utf-8' };

/**
 * The dashboard at `/` and its assets at `/assets/<name>`, read into memory once at start (a
 * few tens of KB): only the files the build made are served, with a strict Content-Security-
 * Policy; hashed asset names are cached for a year, the page is never cached.
 */
export async function dashboardPlugin(app: App, { dir }: { dir: string }): Promise<void> {
  const files = new Map<string, Buffer>();
  try {
    for (const name of readdirSync(dir)) if (TYPES[path.extname(name)]) files.set(name, readFileSync(path.join(dir, name)));
  } catch {
    // not built
  }
  const index = files.get('index.html');
  const secure = { 'content-security-policy': DASHBOARD_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' };
  app.get('/', { schema: { hide: true } }, async (_req, reply) => {
    if (!index) return reply.code(503).send(errorBody('HUB_UNAVAILABLE', `the dashboard is not built: run \`pnpm build:dashboard\` (or \`pnpm start\`), then restart the hub`));
    return reply.headers({ ...secure, 'content-type': TYPES['.html']!, 'cache-control': 'no-cache' }).send(index);
  });
  app.get<{ Params: { name: string } }>('/assets/:name', { schema: { hide: true } }, async (req, reply) => {
    const body = req.params.name !== 'index.html' ? files.get(req.params.name) : undefined;
    if (!body) return reply.code(404).send(errorBody('HUB_NOT_FOUND', `no asset ${req.params.name.slice(0, 100)}`));
    return reply.headers({ ...secure, 'content-type': TYPES[path.extname(req.params.name)]!, 'cache-control': 'public, max-age=31536000, immutable' }).send(body);
  });
}
