import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { CHECK_KINDS, DNS_RECORD_TYPES } from '@opspilot/protocol';
import { evaluate, parseConditions, type Observed } from './conditions.ts';
import { RefusedAddress, guardedLookupFor, refusedAddress, type Guard } from './guard.ts';

// One list of kinds and record types: the protocol's, which carries checks to agents.
export { CHECK_KINDS, DNS_RECORD_TYPES } from '@opspilot/protocol';
export type CheckKind = (typeof CHECK_KINDS)[number];
export type DnsRecordType = (typeof DNS_RECORD_TYPES)[number];

/** What a check does: the same on the hub and on an agent. */
export interface CheckSpec {
  kind: CheckKind;
  /** http(s): a URL; tcp and tls: host:port; dns: a name. */
  target: string;
  timeout_ms: number;
  conditions?: readonly string[];
  http?: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    follow_redirects?: boolean;
    /** Accepted statuses as ranges, `[[200, 399]]` by default (unless a condition names [STATUS]). */
    accept_status?: readonly (readonly [number, number])[];
    /** The body must contain this text. */
    body_contains?: string;
    /** Verify the server's certificate (default true). */
    verify_tls?: boolean;
  };
  dns?: { record_type?: DnsRecordType; expected?: string; resolver?: string };
  /** tls: a certificate expiring within this many days is reported (`cert_days`), not a failure. */
  tls?: { verify?: boolean };
}

/** One check's outcome: the same shape from every location. */
export interface CheckResult {
  ok: boolean;
  /** Milliseconds the check took (to the answer, the connection, the resolution, the handshake). */
  response_ms: number;
  status?: number;
  error?: string;
  /** The certificate's expiry (https and tls), and whether its chain was valid. */
  cert_expires_at?: string;
  cert_valid?: boolean;
  /** The address connected to, or the answers of a DNS check. */
  ip?: string;
  answers?: string[];
  /** Conditions that did not hold, each with what was found. */
  failures?: string[];
}

/** What of a body is read (for body_contains and [BODY] conditions): the rest is not waited for. */
export const MAX_BODY_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 5;

export interface RunOptions {
  now?: () => number;
  /**
   * Addresses refused (guard.ts): true or 'internal' for the hub's checks (loopback, link-local,
   * metadata, its own), 'link-local' for an agent's (link-local and metadata). Default none.
   */
  guard?: boolean | Guard;
}

/** Run one check; never throws: a failure is a result with `ok: false` and its error. */
export async function runCheck(spec: CheckSpec, opts: RunOptions = {}): Promise<CheckResult> {
  const now = opts.now ?? Date.now;
  const guard: Guard = opts.guard === true ? 'internal' : (opts.guard ?? false);
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  try {
    const conditions = parseConditions(spec.conditions ?? []);
    const seen = await probe(spec, now, guard);
    const result: CheckResult = { ok: true, response_ms: seen.responseMs ?? elapsed(), ...seen.result };
    const judged = evaluate(conditions, seen);
    const defaults = defaultProblems(spec, seen, conditions.map((c) => c.text).join(' '));
    const failures = [...defaults, ...judged.failures];
    if (failures.length) {
      result.ok = false;
      result.failures = failures;
    }
    return result;
  } catch (err) {
    return { ok: false, response_ms: elapsed(), error: describe(err) };
  }
}

/** What must hold when no condition says otherwise. */
function defaultProblems(spec: CheckSpec, seen: Observed & { result: Partial<CheckResult> }, named: string): string[] {
  const out: string[] = [];
  if (spec.kind === 'http' && !named.includes('[STATUS]') && seen.status !== undefined) {
    const ranges = spec.http?.accept_status ?? [[200, 399]];
    if (!ranges.some(([lo, hi]) => seen.status! >= lo && seen.status! <= hi)) out.push(`status ${seen.status} is not accepted (${ranges.map(([a, b]) => (a === b ? a : `${a}-${b}`)).join(', ')})`);
  }
  if (spec.kind === 'http' && spec.http?.body_contains !== undefined && !(seen.body ?? '').includes(spec.http.body_contains)) out.push(`the body does not contain ${JSON.stringify(spec.http.body_contains)}`);
  if (spec.kind === 'tcp' && !seen.connected) out.push('not connected');
  if (spec.kind === 'dns' && seen.result.error && !named.includes('[DNS_RCODE]')) out.push(seen.result.error);
  if (spec.kind === 'dns' && spec.dns?.expected !== undefined && !(seen.result.answers ?? []).includes(spec.dns.expected)) {
    out.push(`no answer is ${JSON.stringify(spec.dns.expected)} (found ${JSON.stringify(seen.result.answers ?? [])})`);
  }
  if (spec.kind === 'tls') {
    if ((spec.tls?.verify ?? true) && seen.result.cert_valid === false) out.push(`the certificate chain is not valid`);
    if (seen.certificateExpirationMs !== undefined && seen.certificateExpirationMs <= 0 && !named.includes('[CERTIFICATE_EXPIRATION]')) out.push('the certificate has expired');
  }
  return out;
}

async function probe(spec: CheckSpec, now: () => number, guard: Guard): Promise<Observed & { result: Partial<CheckResult> }> {
  switch (spec.kind) {
    case 'http':
      return httpProbe(spec, now, guard);
    case 'tcp':
      return tcpProbe(spec, guard);
    case 'dns':
      return dnsProbe(spec);
    case 'tls':
      return tlsProbe(spec, now, guard);
  }
}

/** A literal address is checked here (no lookup is made for it); a name when it is resolved. */
function checkLiteral(host: string, guard: Guard): void {
  if (!guard) return;
  const reason = refusedAddress(host.replace(/^\[|\]$/g, ''), guard);
  if (reason) throw new RefusedAddress(reason, guard);
}

/** host:port, with [v6]:port. */
export function hostPort(target: string): { host: string; port: number } {
  const m = /^\[([0-9A-Fa-f:.]{2,45})\]:(\d{1,5})$/.exec(target) ?? /^([A-Za-z0-9_.-]{1,253}):(\d{1,5})$/.exec(target);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`target "${target}" is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

function certExpiry(cert: tls.PeerCertificate | undefined, now: () => number): { cert_expires_at?: string; ms?: number } {
  if (!cert?.valid_to) return {};
  const at = Date.parse(cert.valid_to);
  if (Number.isNaN(at)) return {};
  return { cert_expires_at: new Date(at).toISOString(), ms: at - now() };
}

async function httpProbe(spec: CheckSpec, now: () => number, guard: Guard): Promise<Observed & { result: Partial<CheckResult> }> {
  const h = spec.http ?? {};
  const deadline = performance.now() + spec.timeout_ms;
  const started = performance.now();
  let url = new URL(spec.target);
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${url.protocol} is not http or https`);
    checkLiteral(url.hostname, guard);
    const answer = await new Promise<{ status: number; location?: string; body: string; cert?: tls.PeerCertificate; authorized?: boolean; ip?: string }>((resolve, reject) => {
      const lib = url.protocol === 'https:' ? https : http;
      const req = lib.request(
        url,
        {
          method: h.method ?? 'GET',
          headers: { 'user-agent': 'OpsPilot-monitor/0.1', ...(h.headers ?? {}) },
          timeout: Math.max(1, deadline - performance.now()),
          agent: false,
          ...(guard ? { lookup: guardedLookupFor(guard) } : {}),
          ...(url.protocol === 'https:' ? { rejectUnauthorized: h.verify_tls ?? true } : {}),
        },
        (res) => {
          const socket = res.socket as tls.TLSSocket;
          const cert = url.protocol === 'https:' ? socket.getPeerCertificate?.() : undefined;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            if (size >= MAX_BODY_BYTES) return;
            chunks.push(c.subarray(0, MAX_BODY_BYTES - size));
            size += c.length;
            if (size >= MAX_BODY_BYTES) res.destroy(); // enough read: do not wait for the rest
          });
          const done = () =>
            resolve({
              status: res.statusCode ?? 0,
              ...(typeof res.headers.location === 'string' ? { location: res.headers.location } : {}),
              body: Buffer.concat(chunks).toString('utf8'),
              ...(cert && Object.keys(cert).length ? { cert, authorized: socket.authorized } : {}),
              ...(socket.remoteAddress ? { ip: socket.remoteAddress } : {}),
            });
          res.on('end', done);
          res.on('close', done);
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${spec.timeout_ms} ms`)));
      req.on('error', reject);
      if (h.body !== undefined) req.write(h.body);
      req.end();
    });
    const redirect = answer.status >= 300 && answer.status < 400 && answer.location && (h.follow_redirects ?? true);
    if (redirect && hop < MAX_REDIRECTS) {
      url = new URL(answer.location!, url);
      continue;
    }
    const expiry = certExpiry(answer.cert, now);
    return {
      status: answer.status,
      responseMs: Math.round((performance.now() - started) * 10) / 10,
      body: answer.body,
      ...(expiry.ms !== undefined ? { certificateExpirationMs: expiry.ms } : {}),
      ...(answer.ip ? { ip: answer.ip } : {}),
      result: {
        status: answer.status,
        ...(expiry.cert_expires_at ? { cert_expires_at: expiry.cert_expires_at, cert_valid: answer.authorized === true } : {}),
        ...(answer.ip ? { ip: answer.ip } : {}),
      },
    };
  }
}

async function tcpProbe(spec: CheckSpec, guard: Guard): Promise<Observed & { result: Partial<CheckResult> }> {
  const { host, port } = hostPort(spec.target);
  checkLiteral(host, guard);
  const started = performance.now();
  const ip = await new Promise<string>((resolve, reject) => {
    const socket = net.connect({ host, port, timeout: spec.timeout_ms, ...(guard ? { lookup: guardedLookupFor(guard) } : {}) });
    socket.once('connect', () => {
      const addr = socket.remoteAddress ?? '';
      socket.destroy();
      resolve(addr);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no connection within ${spec.timeout_ms} ms`));
    });
    socket.once('error', reject);
  });
  return { connected: true, ip, responseMs: Math.round((performance.now() - started) * 10) / 10, result: { ip } };
}

async function dnsProbe(spec: CheckSpec): Promise<Observed & { result: Partial<CheckResult> }> {
  const type = spec.dns?.record_type ?? 'A';
  const resolver = new Resolver({ timeout: spec.timeout_ms, tries: 1 });
  if (spec.dns?.resolver) {
    const r = spec.dns.resolver;
    resolver.setServers([/:\d+$/.test(r) && !r.startsWith('[') && r.split(':').length > 2 ? `[${r}]` : r]);
  }
  const started = performance.now();
  let answers: string[];
  let rcode = 'NOERROR';
  try {
    const raw = (await resolver.resolve(spec.target, type)) as unknown[];
    answers = raw.map((a) => (typeof a === 'string' ? a : Array.isArray(a) ? a.join('') : isMx(a) ? `${a.priority} ${a.exchange}` : JSON.stringify(a)));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND') rcode = 'NXDOMAIN';
    else if (code === 'ENODATA') rcode = 'NOERROR';
    else if (code === 'ESERVFAIL') rcode = 'SERVFAIL';
    else if (code === 'EREFUSED') rcode = 'REFUSED';
    else throw err;
    answers = [];
  }
  const responseMs = Math.round((performance.now() - started) * 10) / 10;
  if (rcode !== 'NOERROR' || answers.length === 0) {
    return { dnsRcode: rcode, responseMs, result: { answers, error: rcode === 'NOERROR' ? `no ${type} record` : `${rcode}` } };
  }
  return { dnsRcode: rcode, ip: answers[0]!, responseMs, result: { answers, ip: answers[0]! } };
}

function isMx(a: unknown): a is { priority: number; exchange: string } {
  return typeof a === 'object' && a !== null && 'exchange' in a;
}

async function tlsProbe(spec: CheckSpec, now: () => number, guard: Guard): Promise<Observed & { result: Partial<CheckResult> }> {
  const { host, port } = hostPort(spec.target);
  checkLiteral(host, guard);
  const started = performance.now();
  const { cert, authorized, ip } = await new Promise<{ cert: tls.PeerCertificate; authorized: boolean; ip: string }>((resolve, reject) => {
    // Connect even to a bad chain, to tell when its certificate expires; whether it is valid is reported.
    const socket = tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, rejectUnauthorized: false, timeout: spec.timeout_ms, ...(guard ? { lookup: guardedLookupFor(guard) } : {}) });
    socket.once('secureConnect', () => {
      const out = { cert: socket.getPeerCertificate(), authorized: socket.authorized, ip: socket.remoteAddress ?? '' };
      socket.destroy();
      resolve(out);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no handshake within ${spec.timeout_ms} ms`));
    });
    socket.once('error', reject);
  });
  const expiry = certExpiry(cert, now);
  return {
    connected: true,
    ip,
    responseMs: Math.round((performance.now() - started) * 10) / 10,
    ...(expiry.ms !== undefined ? { certificateExpirationMs: expiry.ms } : {}),
    result: { ip, cert_valid: authorized, ...(expiry.cert_expires_at ? { cert_expires_at: expiry.cert_expires_at } : {}) },
  };
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  return (e?.code && !msg.includes(e.code) ? `${e.code}: ${msg}` : msg).slice(0, 500);
}
