/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, headless, against
 * a hub process on the embedded database, with a scripted agent over a real WebSocket that sends
 * metrics and an alert and answers execs. The one-time sign-in link works once; an alert appears
 * on the overview and the incident list without a reload; the list filters; the incident page
 * shows the analysis, acknowledges, runs `service_status` and shows its output, and asks before
 * an action that changes the host; the agent page draws its charts; a rule's API error is shown
 * next to its field; a token made in the UI signs in read-only and sees no action buttons (and
 * the API refuses them anyway); the session cookie is HttpOnly and a change without the CSRF
 * token is refused; every page has no serious axe-core violation, in light and dark. Screenshots
 * go to OPSPILOT_SCREENSHOTS (docs/screenshots when updating the README's).
 */
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import WebSocket from 'ws';
import { decodeFrame, encodeEnvelope, HUB_MESSAGE_TYPES } from '@opspilot/protocol';
import { buildDashboard } from '../build.ts';
import { spawnHub } from '../../../scripts/hub-process.ts';

const CHROMIUM = process.env.OPSPILOT_CHROMIUM ?? '/usr/bin/chromium';
// CI installs Debian's chromium and sets OPSPILOT_REQUIRE_CHROMIUM: there this must run; elsewhere the file says why it cannot.
const browserMissing = !existsSync(CHROMIUM);
if (browserMissing) {
  if (process.env.OPSPILOT_REQUIRE_CHROMIUM) t.fail(`Chromium is required here but missing at ${CHROMIUM} (apt-get install chromium)`);
  else t.comment(`not run: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
}
t.setTimeout(300_000);

const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-dashboard-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const shots = process.env.OPSPILOT_SCREENSHOTS ?? path.join(dir, 'screenshots');
mkdirSync(shots, { recursive: true });
const built = await buildDashboard(path.join(dir, 'dist'));

async function axe(page: Page, t: Test, what: string): Promise<void> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: createRequire(import.meta.url).resolve('axe-core/axe.min.js') });
  const violations = (await page.evaluate(async () => (await (window as any).axe.run(document, { resultTypes: ['violations'] })).violations)) as { id: string; impact: string; help: string }[];
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  t.same(serious.map((v) => `${v.id}: ${v.help}`), [], `${what}: no serious accessibility violation`);
}

/** A scripted agent: hello, metrics for the last half hour, and answers to execs. */
async function scriptedAgent(t: Test, port: number, token: string): Promise<{ ws: WebSocket; execs: string[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream`, { headers: { authorization: `Bearer ${token}` } });
  t.teardown(() => ws.close());
  await new Promise((r) => ws.once('open', r));
  const execs: string[] = [];
  ws.on('message', (data) => {
    const { message } = decodeFrame(data.toString(), HUB_MESSAGE_TYPES);
    if (message.type !== 'exec') return;
    const exec = message.payload as { request_id: string; command: string; params: Record<string, unknown> };
    execs.push(exec.command);
    const stdout = `● ${String(exec.params.service)} - A high performance web server\n     Active: active (running) since Sun 2026-11-29 10:00:00 UTC`;
    ws.send(encodeEnvelope('exec_result', { request_id: exec.request_id, ok: true, exit_code: 0, stdout, stderr: '', duration_ms: 31, truncated: false }));
  });
  ws.send(encodeEnvelope('hello', { protocol: 2, agent_version: 'test', hostname: 'web-1', os: 'linux', arch: 'x64', kernel: '6.1.0', actions: ['service_status', 'restart_service', 'disk_usage'] }));
  const now = Math.floor(Date.now() / 1000);
  const samples = Array.from({ length: 60 }, (_, i) => ({
    ts: now - (59 - i) * 30,
    cpu_pct: 20 + 15 * Math.sin(i / 6),
    mem_used: 3e9 + i * 1e7,
    mem_total: 8e9,
    load1: 0.5,
    load5: 0.4,
    load15: 0.3,
    disks: [{ mount: '/', used: 40e9, size: 100e9 }],
    net: [{ iface: 'eth0', rx_bps: 2e5 + i * 1000, tx_bps: 1e5 }],
  }));
  ws.send(encodeEnvelope('metrics', { samples }, { id: 'm-1' }));
  return { ws, execs };
}

if (!browserMissing) t.test('the dashboard, live, in a real browser', async (t) => {
  const hub = await spawnHub({ OPSPILOT_DATA_DIR: path.join(dir, 'hub'), OPSPILOT_DASHBOARD_DIR: built.dir, OPSPILOT_SIGNIN_LINK: '1' });
  t.teardown(() => hub.stop());
  const base = hub.url;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  t.teardown(() => browser.close());
  // axe is injected as a script of its own: only its context may pass the CSP (the app's may not).
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // Sign-in: a wrong token is refused with the API's code.
  const first = await page.goto(base + '/');
  t.match(first?.headers()['content-security-policy'], /default-src 'none'; script-src 'self'/, 'a strict Content-Security-Policy');
  await page.getByLabel('API token').fill('opk_wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'HUB_UNAUTHORIZED' }).waitFor();
  await axe(page, t, 'sign-in');
  await page.screenshot({ path: path.join(shots, 'sign-in.png') });

  // The one-time link the hub printed signs in, once, and leaves the address.
  const signinLink = /(http:\S+\/#signin=[A-Za-z0-9_-]{43})/.exec(hub.output())?.[1];
  t.ok(signinLink, 'the hub printed a one-time sign-in link');
  t.notMatch(hub.output(), /"msg":"[^"]*#signin=/, 'and never logged it');
  await page.goto(signinLink!);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  t.notMatch(page.url(), /signin/, 'the code is gone from the address bar');
  const again = await (await browser.newContext()).newPage();
  await again.goto(signinLink!);
  await again.getByRole('alert').filter({ hasText: /sign-in link is not valid/ }).waitFor();
  t.pass('a second use of the link is refused');

  const cookies = await context.cookies();
  t.match(cookies.find((c) => c.name === 'opspilot_session'), { httpOnly: true, sameSite: 'Strict', path: '/' }, 'the session cookie is HttpOnly and SameSite=Strict');
  t.equal(await page.evaluate(() => document.cookie), '', 'page scripts cannot read it');
  const noCsrf = await page.evaluate(async () => (await fetch('/v1/incidents/x/acknowledge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status);
  t.equal(noCsrf, 403, 'a change with the cookie but without the CSRF token is refused');

  // An alert from a scripted agent appears on the overview, without a reload.
  const { id: agentId, token } = (await hub.api('POST', '/v1/agents', { hostname: 'web-1', labels: { env: 'prod' } })).body;
  const agent = await scriptedAgent(t, hub.port, token);
  agent.ws.send(
    encodeEnvelope(
      'alert',
      { type: 'systemd', source: 'nginx.service', message: 'nginx.service failed <img src=x onerror=alert(1)>', logs: 'Nov 29 nginx[812]: bind() to 0.0.0.0:80 failed (98: Address already in use)', exit_code: 1 },
      { id: 'a-1' },
    ),
  );
  const overviewRow = page.getByRole('link', { name: /nginx\.service failed/ });
  await overviewRow.waitFor({ timeout: 15_000 });
  t.pass('the alert appeared live on the overview');
  t.equal(await page.locator('img').count(), 0, "an alert's markup is shown as text, never rendered");
  await page.getByText(/1\s+online/).waitFor();
  await axe(page, t, 'overview');
  await page.screenshot({ path: path.join(shots, 'overview.png') });

  // The list, its filters (kept in the address), live.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Incidents' }).click();
  const row = page.getByRole('row').filter({ hasText: 'nginx.service failed' });
  await row.waitFor();
  await page.getByRole('searchbox').fill('no-such-text');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.getByText('No incidents.').waitFor();
  t.match(page.url(), /#\/incidents\?q=no-such-text/, 'the filter is in the address');
  await page.getByRole('searchbox').fill('NGINX');
  await page.getByRole('button', { name: 'Filter' }).click();
  await row.waitFor();
  agent.ws.send(encodeEnvelope('alert', { type: 'systemd', source: 'nginx-exporter.service', message: 'nginx-exporter.service failed' }, { id: 'a-2' }));
  agent.ws.send(encodeEnvelope('alert', { type: 'host', source: 'disk:/', message: 'disk / 95% full' }, { id: 'a-3' }));
  await page.getByRole('row').filter({ hasText: 'nginx-exporter.service failed' }).waitFor({ timeout: 15_000 });
  t.pass('a new matching alert joined the filtered list live');
  t.equal(await page.getByRole('row').filter({ hasText: 'disk / 95% full' }).count(), 0, 'one that does not match stays out');
  await page.getByLabel('Agent').selectOption({ label: 'web-1' });
  await page.waitForURL(/agent_id=/);
  await row.waitFor();
  await axe(page, t, 'incident list');
  await page.screenshot({ path: path.join(shots, 'incidents.png') });

  // The incident: analysis, acknowledge, run service_status and read its output; a change asks first.
  await row.getByRole('link').click();
  await page.getByRole('heading', { name: /nginx\.service failed/ }).waitFor();
  await page.getByText('Address already in use').first().waitFor();
  await page.getByRole('heading', { name: 'Analysis' }).waitFor();
  await page.getByText('Root cause').waitFor({ timeout: 20_000 });
  t.pass('the analysis is shown');
  await page.getByRole('button', { name: 'Acknowledge' }).click();
  await page.locator('.meta [data-status]', { hasText: 'acknowledged' }).waitFor();
  await page.getByText(/acknowledged — user \(token:admin\)/).waitFor();
  t.pass('acknowledged, and on the timeline');
  await page.getByRole('button', { name: 'Choose an action…' }).click();
  await page.getByLabel('Action', { exact: true }).selectOption('service_status');
  await page.getByLabel(/^service/).fill('nginx.service');
  await page.getByRole('button', { name: 'Run service_status' }).click();
  await page.getByLabel('output of service_status').filter({ hasText: 'Active: active (running)' }).waitFor({ timeout: 15_000 });
  t.pass("service_status ran and its output is on the incident's page");
  await page.getByLabel('Action', { exact: true }).selectOption('restart_service');
  await page.getByLabel(/^service/).fill('nginx.service');
  await page.getByRole('button', { name: 'Run restart_service' }).click();
  await page.getByText(/restart_service service=nginx\.service may change web-1/).waitFor();
  t.same(agent.execs, ['service_status'], 'an action that changes the host waits for confirmation');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await axe(page, t, 'incident page');
  await page.screenshot({ path: path.join(shots, 'incident.png'), fullPage: true });

  // The agent: facts, charts on canvas, its execs.
  await page.getByRole('link', { name: 'web-1' }).first().click();
  await page.getByRole('heading', { name: 'web-1' }).waitFor();
  await page.locator('.chart canvas').first().waitFor({ timeout: 15_000 });
  t.ok((await page.locator('.chart canvas').count()) >= 4, 'CPU, memory, disk and network charts are drawn');
  await page.getByLabel('output of service_status').first().waitFor();
  await page.getByLabel('Range', { exact: true }).selectOption({ label: 'last 6 hours' });
  await page.locator('.chart canvas').first().waitFor();
  await axe(page, t, 'agent page');
  await page.screenshot({ path: path.join(shots, 'agent.png'), fullPage: true });
  t.equal(page.url(), `${base}/#/agents/${agentId}`);

  // Rules: the API's error is shown next to the field it names.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rules' }).click();
  await page.getByRole('button', { name: 'New rule' }).click();
  await page.getByLabel('Match').fill('{"source": "nginx*"}');
  await page.getByRole('button', { name: 'Create' }).click();
  const nameError = page.locator('#rules-form-name-error');
  await nameError.waitFor();
  t.match(await nameError.textContent(), /HUB_BAD_REQUEST/, 'a missing name: the error is under Name');
  t.equal(await page.getByLabel('Name').getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Name').fill('restart-nginx');
  await page.getByLabel('Match').fill('{not json');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#rules-form-match-error', { hasText: 'not valid JSON' }).waitFor();
  await page.getByLabel('Match').fill('{"source": "nginx*"}');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#rules-form-action-command-error', { hasText: 'HUB_INVALID_RULE' }).waitFor();
  t.pass('an action without its parameter: the error is at the action');
  await page.getByLabel('Parameters').fill('{"service": "{{source}}"}');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('row').filter({ hasText: 'restart-nginx' }).waitFor();
  await axe(page, t, 'rules');
  await page.screenshot({ path: path.join(shots, 'rules.png') });

  // The other settings pages open and pass axe.
  for (const name of ['Silences', 'Monitors', 'Integrations', 'Heartbeats']) {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name }).click();
    await page.getByRole('heading', { level: 2 }).filter({ hasText: new RegExp(name.slice(0, -1), 'i') }).waitFor();
    await page.getByRole('button', { name: /^New / }).click();
    await axe(page, t, `${name} with its form open`);
  }

  // A token made in the UI, shown once; it signs in read-only.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tokens' }).click();
  await page.getByRole('button', { name: 'New token' }).click();
  await page.getByLabel('Name').fill('viewer');
  await page.getByLabel('Scope').selectOption('read');
  await page.getByRole('button', { name: 'Create' }).click();
  const reader = (await page.getByRole('status').locator('pre').textContent())!.trim();
  t.match(reader, /^opk_[A-Za-z0-9_-]{43}$/, 'the new token is shown once');
  await axe(page, t, 'tokens');

  const readerContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const readerPage = await readerContext.newPage();
  await readerPage.goto(base + '/');
  await readerPage.getByLabel('API token').fill(reader);
  await readerPage.getByRole('button', { name: 'Sign in' }).click();
  await readerPage.getByRole('link', { name: /nginx\.service failed/ }).click();
  await readerPage.getByRole('heading', { name: /nginx\.service failed/ }).waitFor();
  t.equal(await readerPage.getByRole('button', { name: /Acknowledge|Resolve|Ignore|Choose an action/ }).count(), 0, 'a read-only session sees no action buttons');
  await readerPage.goto(base + '/#/rules');
  await readerPage.getByRole('row').filter({ hasText: 'restart-nginx' }).waitFor();
  t.equal(await readerPage.getByRole('button', { name: /New rule|Edit|Delete/ }).count(), 0, 'nor buttons to change rules');
  const incidentId = /incidents\/([A-Za-z0-9]+)/.exec((await hub.api('GET', '/v1/incidents?q=nginx.service%20failed')).body.incidents.map((i: { id: string }) => `incidents/${i.id}`)[0])![1];
  const refused = await readerPage.evaluate(async (id) => {
    const s = await (await fetch('/v1/sessions/current')).json();
    const r = await fetch(`/v1/incidents/${id}/resolve`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token }, body: '{}' });
    return [r.status, (await r.json()).error.code];
  }, incidentId);
  t.same(refused, [403, 'HUB_FORBIDDEN'], 'and the API refuses it anyway');

  // By keyboard alone, from a fresh load: the skip link first, then to an incident and open it.
  await page.goto(`${base}/#/incidents`);
  await page.reload();
  await page.getByRole('row').filter({ hasText: 'nginx.service failed' }).waitFor();
  await page.keyboard.press('Tab');
  t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content', 'the first stop is the skip link');
  await page.keyboard.press('Enter');
  t.equal(await page.evaluate(() => document.activeElement?.id), 'content', 'it moves focus to the page');
  t.match(page.url(), /#\/incidents$/, 'and leaves the page where it is');
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => /nginx\.service failed/.test(document.activeElement?.textContent ?? '') && document.activeElement?.tagName === 'A');
  }
  t.ok(reached, 'an incident is reached with Tab');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /nginx\.service failed/ }).waitFor();
  t.pass('and opened with Enter');

  // A phone, and dark mode.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/#/incidents`);
  await page.getByRole('row').filter({ hasText: 'nginx.service failed' }).waitFor();
  await axe(page, t, 'incident list on a phone');
  await page.screenshot({ path: path.join(shots, 'incidents-phone.png') });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${base}/#/incidents/${incidentId}`);
  await page.getByRole('heading', { name: /nginx\.service failed/ }).waitFor();
  await axe(page, t, 'incident page, dark');
  await page.screenshot({ path: path.join(shots, 'incident-dark.png') });
  await page.goto(`${base}/#/`);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await axe(page, t, 'overview, dark');

  // Sign-out revokes the session.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API token').waitFor();
  t.equal(await page.evaluate(async () => (await fetch('/v1/incidents')).status), 401, 'signed out: the session is gone');
  t.same(errors, [], 'no script error in the page');
});
