/**
 * The probes against real servers on 127.0.0.1: node:http and node:https (a certificate made by
 * the openssl program), a closed port, a TLS server whose certificate expires in 3 days, and
 * dnsmasq (Debian's dnsmasq-base, which .ci/run installs) answering DNS.
 */
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { runCheck } from '../src/index.ts';

function certificate(t: Test, days: number): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(path.join(tmpdir(), 'opspilot-cert-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', String(days), '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) };
}

async function listen(t: Test, server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('http: statuses, redirects, bodies, conditions and timeouts', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url === '/health') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok","checks":[1,2]}');
    if (req.url === '/moved') return res.writeHead(302, { location: '/health' }).end();
    if (req.url === '/down') return res.writeHead(503).end('maintenance');
    if (req.url === '/slow') return void setTimeout(() => res.writeHead(200).end('late'), 2000);
    if (req.url === '/echo' && req.method === 'POST') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      return req.on('end', () => res.writeHead(201).end(`${req.headers['x-token']}:${body}`));
    }
    if (req.url === '/huge') {
      res.writeHead(200);
      res.write('x'.repeat(1024 * 1024));
      return res.write('y'.repeat(1024 * 1024)); // never ends
    }
    res.writeHead(404).end();
  });
  const port = await listen(t, server);
  const base = `http://127.0.0.1:${port}`;
  t.match(await runCheck({ kind: 'http', target: `${base}/health`, timeout_ms: 2000 }), { ok: true, status: 200, ip: '127.0.0.1' });
  t.match(await runCheck({ kind: 'http', target: `${base}/health`, timeout_ms: 2000, conditions: ['[BODY].status == "ok"', 'len([BODY].checks) == 2', '[RESPONSE_TIME] < 2000'] }), { ok: true });
  t.match(await runCheck({ kind: 'http', target: `${base}/moved`, timeout_ms: 2000 }), { ok: true, status: 200 }, 'redirects are followed');
  t.match(await runCheck({ kind: 'http', target: `${base}/moved`, timeout_ms: 2000, http: { follow_redirects: false, accept_status: [[200, 299]] } }), { ok: false, status: 302, failures: ['status 302 is not accepted (200-299)'] });
  t.match(await runCheck({ kind: 'http', target: `${base}/down`, timeout_ms: 2000 }), { ok: false, status: 503, failures: ['status 503 is not accepted (200-399)'] });
  t.match(await runCheck({ kind: 'http', target: `${base}/down`, timeout_ms: 2000, conditions: ['[STATUS] == 503'] }), { ok: true }, 'a condition on [STATUS] replaces the default range');
  t.match(await runCheck({ kind: 'http', target: `${base}/health`, timeout_ms: 2000, http: { body_contains: 'degraded' } }), { ok: false, failures: ['the body does not contain "degraded"'] });
  t.match(await runCheck({ kind: 'http', target: `${base}/echo`, timeout_ms: 2000, http: { method: 'POST', body: 'ping', headers: { 'x-token': 'abc' } }, conditions: ['[BODY] == abc:ping', '[STATUS] == 201'] }), { ok: true });
  const slow = await runCheck({ kind: 'http', target: `${base}/slow`, timeout_ms: 200 });
  t.match(slow, { ok: false, error: /no answer within 200 ms/ });
  t.match(await runCheck({ kind: 'http', target: `${base}/huge`, timeout_ms: 5000, http: { body_contains: 'x' } }), { ok: true }, 'a body that never ends is read up to its cap');
  t.match(await runCheck({ kind: 'http', target: `http://127.0.0.1:${await freePort()}/`, timeout_ms: 2000 }), { ok: false, error: /ECONNREFUSED/ });
  t.match(await runCheck({ kind: 'http', target: 'ftp://example.com/', timeout_ms: 2000 }), { ok: false, error: /ftp: is not http/ });
  t.match(await runCheck({ kind: 'http', target: `${base}/health`, timeout_ms: 2000, conditions: ['[STATE] == 1'] }), { ok: false, error: /not a placeholder/ }, 'a bad condition is an error, never a throw');
});

t.test('https and tls: certificate expiry and chain validity', async (t) => {
  const { key, cert } = certificate(t, 3);
  const port = await listen(t, https.createServer({ key, cert }, (_req, res) => res.writeHead(200).end('ok')));
  const url = `https://127.0.0.1:${port}/`;
  const verified = await runCheck({ kind: 'http', target: url, timeout_ms: 3000 });
  t.match(verified, { ok: false, error: /self[- ]signed/i }, 'verification is on by default');
  const unverified = await runCheck({ kind: 'http', target: url, timeout_ms: 3000, http: { verify_tls: false }, conditions: ['[CERTIFICATE_EXPIRATION] > 14d'] });
  t.match(unverified, { ok: false, status: 200, cert_valid: false, failures: [/^\[CERTIFICATE_EXPIRATION\] > 14d \(found \d+\)$/] });
  const days = (Date.parse(unverified.cert_expires_at!) - Date.now()) / 86_400_000;
  t.ok(days > 2.9 && days <= 3, `expires in 3 days (${days.toFixed(2)})`);

  const tlsPort = await listen(t, tls.createServer({ key, cert }, (s) => s.end()));
  t.match(await runCheck({ kind: 'tls', target: `127.0.0.1:${tlsPort}`, timeout_ms: 3000 }), { ok: false, cert_valid: false, failures: ['the certificate chain is not valid'] });
  t.match(await runCheck({ kind: 'tls', target: `127.0.0.1:${tlsPort}`, timeout_ms: 3000, tls: { verify: false }, conditions: ['[CERTIFICATE_EXPIRATION] > 1d'] }), { ok: true, cert_valid: false });
  t.match(await runCheck({ kind: 'tls', target: `127.0.0.1:${tlsPort}`, timeout_ms: 3000, tls: { verify: false }, conditions: ['[CERTIFICATE_EXPIRATION] > 14d'] }), { ok: false });
  t.match(await runCheck({ kind: 'tls', target: 'no-port', timeout_ms: 1000 }), { ok: false, error: /not host:port/ });
});

t.test('tcp: connected or not', async (t) => {
  const port = await listen(t, net.createServer((s) => s.end()));
  t.match(await runCheck({ kind: 'tcp', target: `127.0.0.1:${port}`, timeout_ms: 1000, conditions: ['[CONNECTED] == true'] }), { ok: true, ip: '127.0.0.1' });
  t.match(await runCheck({ kind: 'tcp', target: `127.0.0.1:${await freePort()}`, timeout_ms: 1000 }), { ok: false, error: /ECONNREFUSED/ });
  t.match(await runCheck({ kind: 'tcp', target: `127.0.0.1:99999`, timeout_ms: 1000 }), { ok: false, error: /not host:port/ });
});

const DNSMASQ = '/usr/sbin/dnsmasq';
if (!existsSync(DNSMASQ)) {
  if (process.env.OPSPILOT_REQUIRE_DNSMASQ) t.fail(`${DNSMASQ} is required here (apt-get install dnsmasq-base)`);
  else t.comment(`dns probe not run: ${DNSMASQ} is missing (apt-get install dnsmasq-base)`);
} else t.test('dns: records, expected answers and NXDOMAIN from a real resolver', async (t) => {
  const port = await freePort();
  const dnsmasq = spawn(DNSMASQ, ['--no-daemon', '--keep-in-foreground', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--address=/api.opspilot.test/10.0.0.7', '--txt-record=api.opspilot.test,v=ok', '--user=root'], { stdio: 'ignore' });
  t.teardown(() => {
    dnsmasq.kill('SIGKILL');
  });
  const resolver = `127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    const r = await runCheck({ kind: 'dns', target: 'api.opspilot.test', timeout_ms: 500, dns: { resolver } });
    if (r.ok) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  t.match(await runCheck({ kind: 'dns', target: 'api.opspilot.test', timeout_ms: 2000, dns: { resolver, expected: '10.0.0.7' } }), { ok: true, answers: ['10.0.0.7'], ip: '10.0.0.7' });
  t.match(await runCheck({ kind: 'dns', target: 'api.opspilot.test', timeout_ms: 2000, dns: { resolver, expected: '10.0.0.8' } }), { ok: false, failures: ['no answer is "10.0.0.8" (found ["10.0.0.7"])'] });
  t.match(await runCheck({ kind: 'dns', target: 'api.opspilot.test', timeout_ms: 2000, dns: { resolver, record_type: 'TXT' }, conditions: ['[IP] == "v=ok"'] }), { ok: true, answers: ['v=ok'] });
  t.match(await runCheck({ kind: 'dns', target: 'nothing.invalid', timeout_ms: 2000, dns: { resolver } }), { ok: false, failures: [/NXDOMAIN|REFUSED/] });
});
