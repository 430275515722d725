import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import type { App } from './http.ts';
import { errorBody } from './errors.ts';
import { repositoryRoot } from './storage/migrate.ts';

/** Where `pnpm build:dashboard` (and `pnpm start`) put the dashboard's static files. */
export const DEFAULT_DASHBOARD_DIR = path.join(repositoryRoot(), 'packages/dashboard/dist');

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
  // Each file as it is and compressed once, at start (brotli at its best level: ~100 KB takes
  // well under a second, and every browser after gets a third of the bytes).
  const files = new Map<string, Encoded>();
  try {
    for (const name of readdirSync(dir)) if (TYPES[path.extname(name)]) files.set(name, encodings(readFileSync(path.join(dir, name))));
  } catch {
    // not built
  }
  const index = files.get('index.html');
  const send = (req: { headers: { 'accept-encoding'?: string | string[] | undefined } }, file: Encoded) => {
    const accepts = String(req.headers['accept-encoding'] ?? '');
    if (/\bbr\b/.test(accepts)) return { body: file.br, encoding: 'br' };
    if (/\bgzip\b/.test(accepts)) return { body: file.gzip, encoding: 'gzip' };
    return { body: file.raw, encoding: undefined };
  };
  const secure = { 'content-security-policy': DASHBOARD_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' };
  app.get('/', { schema: { hide: true } }, async (req, reply) => {
    if (!index) return reply.code(503).send(errorBody('HUB_UNAVAILABLE', `the dashboard is not built: run \`pnpm build:dashboard\` (or \`pnpm start\`), then restart the hub`));
    const { body, encoding } = send(req, index);
    return reply.headers({ ...secure, 'content-type': TYPES['.html']!, 'cache-control': 'no-cache', vary: 'accept-encoding', ...(encoding ? { 'content-encoding': encoding } : {}) }).send(body);
  });
  app.get<{ Params: { name: string } }>('/assets/:name', { schema: { hide: true } }, async (req, reply) => {
    const file = req.params.name !== 'index.html' ? files.get(req.params.name) : undefined;
    if (!file) return reply.code(404).send(errorBody('HUB_NOT_FOUND', `no asset ${req.params.name.slice(0, 100)}`));
    const { body, encoding } = send(req, file);
    return reply
      .headers({ ...secure, 'content-type': TYPES[path.extname(req.params.name)]!, 'cache-control': 'public, max-age=31536000, immutable', vary: 'accept-encoding', ...(encoding ? { 'content-encoding': encoding } : {}) })
      .send(body);
  });
}

interface Encoded {
  raw: Buffer;
  gzip: Buffer;
  br: Buffer;
}

function encodings(raw: Buffer): Encoded {
  return { raw, gzip: gzipSync(raw, { level: 9 }), br: brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length } }) };
}
