/**
 * The dashboard's files as the hub serves them: the page with a strict CSP and never cached, the
 * hashed assets cached for a year, nothing else from the directory, and a clear answer when the
 * dashboard has not been built.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pglite, startHub } from './helpers.ts';

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
