/**
 * The dashboard's files as the hub serves them: the page with a strict CSP and never cached, the
 * hashed assets cached for a year, nothing else from the directory, and a clear answer when the
 * dashboard has not been built.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { pglite, startHub } from './helpers.ts';

/** GET with exactly this Accept-Encoding (fetch would choose its own and decode). */
function raw(port: number, p: string, acceptEncoding: string | null): Promise<{ encoding: string | undefined; vary: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: p, headers: acceptEncoding === null ? {} : { 'accept-encoding': acceptEncoding } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ encoding: res.headers['content-encoding'], vary: res.headers.vary, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('the page, its assets, and nothing else', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-dist-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><div id="app"></div>');
  writeFileSync(path.join(dir, 'app.0123456789ab.js'), 'console.log(1)');
  writeFileSync(path.join(dir, 'secret.txt'), 'not served');
  const hub = await startHub(t, await pglite.open(t), { dashboardDir: dir });
  const get = (p: string) => fetch(`http://127.0.0.1:${hub.port}${p}`);
  const page = await get('/');
  t.equal(page.status, 200);
  t.match(page.headers.get('content-security-policy'), /^default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'.*frame-ancestors 'none'$/);
  t.equal(page.headers.get('cache-control'), 'no-cache');
  t.equal(page.headers.get('x-frame-options'), 'DENY');
  t.equal(await page.text(), '<!doctype html><div id="app"></div>');
  const js = await get('/assets/app.0123456789ab.js');
  t.equal(js.status, 200);
  t.match(js.headers.get('content-type'), /^text\/javascript/);
  t.match(js.headers.get('cache-control'), /immutable/);
  // Compressed once at start, as the browser asks: brotli, else gzip, else as it is.
  const script = 'console.log(1)';
  const br = await raw(hub.port, '/assets/app.0123456789ab.js', 'gzip, deflate, br');
  t.same([br.encoding, br.vary, brotliDecompressSync(br.body).toString()], ['br', 'accept-encoding', script], 'brotli when the browser takes it');
  const gz = await raw(hub.port, '/assets/app.0123456789ab.js', 'gzip');
  t.same([gz.encoding, gunzipSync(gz.body).toString()], ['gzip', script]);
  const plain = await raw(hub.port, '/assets/app.0123456789ab.js', null);
  t.same([plain.encoding, plain.body.toString()], [undefined, script], 'as it is when it takes neither');
  const pageBr = await raw(hub.port, '/', 'br;q=1, identity;q=0.5');
  t.same([pageBr.encoding, brotliDecompressSync(pageBr.body).toString()], ['br', '<!doctype html><div id="app"></div>'], 'the page too');
  t.equal((await raw(hub.port, '/', 'brotli-ish, gzipx')).encoding, undefined, 'only whole names count');
  for (const p of ['/assets/secret.txt', '/assets/index.html', '/assets/..%2Findex.html', '/assets/%2e%2e%2fpackage.json', '/assets/app.js']) {
    const r = await get(p);
    t.equal(r.status, 404, p);
    t.match(await r.json(), { error: { code: 'HUB_NOT_FOUND' } });
  }
});

t.test('not built: a clear answer, and the API still works', async (t) => {
  const hub = await startHub(t, await pglite.open(t), { dashboardDir: path.join(tmpdir(), 'opspilot-no-such-dist') });
  const r = await fetch(`http://127.0.0.1:${hub.port}/`);
  t.equal(r.status, 503);
  t.match(await r.json(), { error: { code: 'HUB_UNAVAILABLE', message: /the dashboard is not built: run `pnpm build:dashboard`/ } });
  t.equal((await hub.api('GET', '/v1/agents')).status, 200);
});
