import t from 'tap';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { gzipSync as nodeGzip } from 'node:zlib';
import {
  GZIP_MIN_BYTES,
  AGENT_MESSAGE_TYPES,
  CLOSE_CODES,
  DURABLE_MESSAGE_TYPES,
  MESSAGE_SINCE,
  DEFAULT_LIMITS,
  EXEC_ERROR_CODES,
  HUB_MESSAGE_TYPES,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_ERROR_CODES,
  PROTOCOL_VERSION,
  negotiateProtocol,
  ProtocolError,
  decodeFrame,
  encodeEnvelope,
  frameToken,
  crc32,
  crc32Js,
  gunzipBounded,
  newId,
  parseFrame,
  readEnvelope,
  wireSafe,
  type ProtocolErrorCode,
} from '../src/index.ts';
import { CHECK_RESULTS, CHECK_RESULTS_JSON, GO_ALERT, GO_ALERT_PLAIN, GO_HEARTBEAT, MONITORS, MONITORS_JSON } from '../src/vectors.ts';

const fromAgent = AGENT_MESSAGE_TYPES;

function codeOf(fn: () => unknown): ProtocolErrorCode | 'none' {
  try {
    fn();
    return 'none';
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
}

function frame(fields: Record<string, unknown>): string {
  return JSON.stringify({ ver: '1.0', ts: 1706140800, type: 'alert', compression: 'none', ...fields });
}

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64');

t.test('the original OpsPilot heartbeat decodes', async (t) => {
  const { envelope, message } = decodeFrame(GO_HEARTBEAT, fromAgent);
  t.equal(envelope.token, 'my-secret-token');
  t.equal(envelope.ts, 1706140800);
  t.same(message, { type: 'heartbeat', payload: {} });
  t.equal(frameToken(parseFrame(GO_HEARTBEAT)), 'my-secret-token');
});

t.test('the original OpsPilot gzip alert decodes', async (t) => {
  for (const vector of [GO_ALERT, GO_ALERT_PLAIN]) {
    const { message } = decodeFrame(vector, fromAgent);
    t.same(message, {
      type: 'alert',
      payload: { type: 'systemd', source: 'nginx', message: 'nginx crashed', logs: 'error logs', exit_code: 1 },
    });
  }
});

t.test('protocol 2 vectors: a monitor set and check results decode to their JSON exactly', async (t) => {
  const monitors = decodeFrame(MONITORS, HUB_MESSAGE_TYPES);
  t.same(monitors.message, { type: 'monitors', payload: JSON.parse(MONITORS_JSON) });
  t.equal(monitors.envelope.token, undefined, 'hub envelopes carry no token');
  const results = decodeFrame(CHECK_RESULTS, fromAgent);
  t.same(results.message, { type: 'check_results', payload: JSON.parse(CHECK_RESULTS_JSON) });
  t.equal(results.envelope.id, '01JRES0000000000000000000A');
  t.ok(DURABLE_MESSAGE_TYPES.includes('check_results'), 'check results go through the outbox');
  t.equal(MESSAGE_SINCE.monitors, 2);
  t.equal(MESSAGE_SINCE.check_results, 2);
  t.equal(PROTOCOL_VERSION, 3);
  t.equal(negotiateProtocol(1), 1, 'an agent of protocol 1 is served protocol 1: it is never sent monitors');
  t.equal(negotiateProtocol(2), 2);
  t.equal(negotiateProtocol(3), 3, 'an agent of 3: pinged only when quiet (the hub decides; no message changes)');
  t.equal(negotiateProtocol(7), 3, 'a newer agent is served what this hub has');
});

t.test('hostile monitor sets and check results are refused by their schema, naming the path', async (t) => {
  const def = { id: 'm1', kind: 'http', target: 'http://x/', interval_s: 60, timeout_ms: 1000 };
  const monitors = (m: unknown[], version = 'v') => frame({ type: 'monitors', data: b64(JSON.stringify({ version, monitors: m })) });
  const results = (r: unknown[]) => frame({ type: 'check_results', data: b64(JSON.stringify({ results: r })) });
  const refused: [string, string, RegExp][] = [
    ['a header with CRLF (request splitting)', monitors([{ ...def, http: { headers: { 'X-A': 'a\r\nHost: evil' } } }]), /monitors\[0\]\.http\.headers\.X-A: does not match/],
    ['a header name with a space', monitors([{ ...def, http: { headers: { 'Bad Name': 'x' } } }]), /http\.headers\.<key>: does not match/],
    ['an unknown method', monitors([{ ...def, http: { method: 'TRACE' } }]), /http\.method: expected one of/],
    ['an interval under 10 s', monitors([{ ...def, interval_s: 1 }]), /interval_s: must be >= 10/],
    ['a kind the agent cannot run', monitors([{ ...def, kind: 'exec' }]), /kind: expected one of http, tcp, dns, tls/],
    ['501 monitors', monitors(Array.from({ length: 501 }, (_, i) => ({ ...def, id: `m${i}` }))), /monitors: must have at most 500 items/],
    ['33 headers', monitors([{ ...def, http: { headers: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`h${i}`, 'v'])) } }]), /headers: must have at most 32 keys/],
    ['an accept range of three', monitors([{ ...def, http: { accept_status: [[200, 299, 300]] } }]), /accept_status\[0\]: expected an array of two/],
    ['a version with a slash', monitors([], 'a/b'), /version: does not match/],
    ['no results', results([]), /results: must have at least 1 items/],
    ['1001 results', results(Array.from({ length: 1001 }, () => ({ monitor_id: 'm', at: 1, ok: true, response_ms: 1 }))), /results: must have at most 1000 items/],
    ['a negative response time', results([{ monitor_id: 'm', at: 1, ok: true, response_ms: -1 }]), /response_ms: must be >= 0/],
    ['a time past 9999', results([{ monitor_id: 'm', at: 1e15, ok: true, response_ms: 1 }]), /at: must be <=/],
    ['a monitor id with a quote', results([{ monitor_id: "m'1", at: 1, ok: true, response_ms: 1 }]), /monitor_id: does not match/],
    ['a NUL in an error', results([{ monitor_id: 'm', at: 1, ok: false, response_ms: 1, error: 'a\u0000b' }]), /error: contains a NUL/],
  ];
  for (const [what, wire, message] of refused) {
    t.throws(() => decodeFrame(wire, [...fromAgent, ...HUB_MESSAGE_TYPES]), { code: 'PROTO_SCHEMA', message }, what);
  }
  // A header named __proto__ stays a header: the copy's prototype is untouched.
  const { message } = decodeFrame(monitors([{ ...def, http: { headers: JSON.parse('{"__proto__":"x"}') } }]), HUB_MESSAGE_TYPES);
  const headers = (message.payload as { monitors: { http: { headers: Record<string, string> } }[] }).monitors[0]!.http.headers;
  t.equal(Object.getPrototypeOf(headers), Object.prototype);
  t.equal(Object.getOwnPropertyDescriptor(headers, '__proto__')?.value, 'x');
  // Unknown fields (a newer hub's) are dropped, not refused.
  const newer = decodeFrame(monitors([{ ...def, shiny: true }]), HUB_MESSAGE_TYPES).message.payload as { monitors: object[] };
  t.same(newer.monitors[0], def);
});

t.test('node:zlib gzip (another implementation) decodes', async (t) => {
  const data = b64(nodeGzip(JSON.stringify({ type: 'log', source: '/var/log/app.log', message: 'fatal: x' })));
  const { message } = decodeFrame(frame({ data, compression: 'gzip' }), fromAgent);
  t.equal(message.type, 'alert');
});

t.test('every message round-trips through encode and decode', async (t) => {
  const cases = {
    hello: { protocol: 1, agent_version: '0.1.0', hostname: 'web-1', os: 'linux', arch: 'x64', kernel: '6.1', boot_time: 1706000000, actions: ['restart_service'] },
    heartbeat: { uptime_s: 12, cpu_pct: 3.5, mem_pct: 40, load1: 0.2 },
    metrics: {
      samples: [
        { ts: 1706140800, cpu_pct: 12.5, mem_used: 1e9, mem_total: 8e9, swap_used: 0, load1: 0.1, load5: 0.2, load15: 0.3, disks: [{ mount: '/', used: 5e9, size: 2e10 }], net: [{ iface: 'eth0', rx_bps: 100, tx_bps: 200 }] },
      ],
    },
    alert: { type: 'systemd', source: 'nginx.service', message: 'failed', logs: 'line1\nline2', exit_code: 1, status: 'failed', context: { unit: 'nginx' } },
    resolve: { type: 'systemd', source: 'nginx.service', message: 'active again' },
    exec_result: { request_id: 'req_1', ok: false, exit_code: null, stdout: '', stderr: 'killed', duration_ms: 15000, truncated: false, error_code: 'EXEC_TIMEOUT' },
    welcome: { agent_id: 'a1', heartbeat_interval_s: 10 },
    ack: { ids: ['x1', 'x2'] },
    exec: { request_id: 'req_1', command: 'restart_service', params: { service: 'nginx' }, timeout_ms: 15000 },
    error: { code: 'PROTO_BAD_GZIP', message: 'bad', ref_id: 'x1' },
    monitors: {
      version: 'v1',
      monitors: [
        { id: 'm1', kind: 'http', target: 'https://example.com/health', interval_s: 60, timeout_ms: 5000, conditions: ['[STATUS] == 200'], http: { method: 'POST', headers: { 'X-Probe': 'opspilot' }, body: '{}', follow_redirects: false, accept_status: [[200, 204]], body_contains: 'ok', verify_tls: true } },
        { id: 'm2', kind: 'dns', target: 'example.com', interval_s: 30, timeout_ms: 1000, dns: { record_type: 'AAAA', expected: '::1', resolver: '127.0.0.1:53' } },
        { id: 'm3', kind: 'tls', target: 'example.com:443', interval_s: 3600, timeout_ms: 10000, tls: { verify: false } },
      ],
    },
    check_results: { results: [{ monitor_id: 'm1', at: 1706140800.5, ok: false, response_ms: 120.5, status: 503, error: 'status 503 is not accepted', failures: ['[STATUS] (503) == 200'], cert_expires_at: 1806140800 }] },
  } as const;
  const all = [...AGENT_MESSAGE_TYPES, ...HUB_MESSAGE_TYPES];
  t.same(Object.keys(cases).sort(), [...all].sort(), 'a case for every message type');
  for (const type of all) {
    for (const compression of ['gzip', 'none'] as const) {
      const wire = encodeEnvelope(type, cases[type] as never, { compression, id: 'id-1', token: 'tok' });
      const { envelope, message } = decodeFrame(wire, all);
      t.equal(envelope.id, 'id-1');
      t.equal(envelope.compression, compression);
      t.same(message, { type, payload: cases[type] }, `${type} ${compression}`);
    }
  }
});

t.test('an empty heartbeat is sent as data ""', async (t) => {
  const wire = JSON.parse(encodeEnvelope('heartbeat', {}, { ts: 5 }));
  t.same(wire, { ver: '1.0', ts: 5, type: 'heartbeat', data: '', compression: 'none' });
});

t.test('small payloads go uncompressed unless asked, large ones gzipped', async (t) => {
  const small = JSON.parse(encodeEnvelope('heartbeat', { cpu_pct: 1 }));
  t.equal(small.compression, 'none');
  t.equal(JSON.parse(encodeEnvelope('heartbeat', { cpu_pct: 1 }, { compression: 'gzip' })).compression, 'gzip');
  // An alert whose JSON is exactly GZIP_MIN_BYTES - 1, then GZIP_MIN_BYTES bytes long.
  const alert = (bytes: number) => ({ type: 'log', source: 's', message: 'm'.repeat(bytes - JSON.stringify({ type: 'log', source: 's', message: '' }).length) });
  const under = encodeEnvelope('alert', alert(GZIP_MIN_BYTES - 1), { id: 'i'.repeat(64) });
  t.equal(JSON.parse(under).compression, 'none');
  t.equal(JSON.parse(encodeEnvelope('alert', alert(GZIP_MIN_BYTES))).compression, 'gzip');
  // What the threshold is for: the largest frame left uncompressed (the longest type name, an id
  // of 64 characters), with a client's WebSocket header (8 bytes), fits one Ethernet TCP segment.
  const largest = JSON.stringify({ ver: '1.0', ts: 9999999999, type: 'check_results', data: Buffer.alloc(GZIP_MIN_BYTES - 1).toString('base64'), compression: 'none', id: 'i'.repeat(64) });
  t.ok(Buffer.byteLength(largest) + 8 <= 1448, `${Buffer.byteLength(largest) + 8} bytes`);
  // Multi-byte text counts in bytes: 450 two-byte characters are 900 bytes.
  t.equal(JSON.parse(encodeEnvelope('alert', { type: 'log', source: 's', message: 'é'.repeat(450) })).compression, 'gzip');
});

t.test('encode refuses an invalid payload or id', async (t) => {
  t.throws(() => encodeEnvelope('alert', { type: 'x' } as never), /invalid alert: source: is required/);
  t.throws(() => encodeEnvelope('heartbeat', {}, { id: 'has space' }), /invalid envelope id/);
});

t.test('envelope errors carry stable codes', async (t) => {
  const data = b64(JSON.stringify({ type: 'log', source: 's', message: 'm' }));
  const cases: [string, string, ProtocolErrorCode][] = [
    ['not JSON', '{"ver":', 'PROTO_BAD_JSON'],
    ['a JSON array', '[1,2]', 'PROTO_BAD_JSON'],
    ['a JSON string', '"hello"', 'PROTO_BAD_JSON'],
    ['version 2', frame({ ver: '2.0', data }), 'PROTO_VERSION'],
    ['no version', JSON.stringify({ ts: 1, type: 'alert', data }), 'PROTO_VERSION'],
    ['numeric version', frame({ ver: 1, data }), 'PROTO_VERSION'],
    ['unknown type', frame({ type: 'shutdown', data }), 'PROTO_UNKNOWN_TYPE'],
    ['hub type from an agent', frame({ type: 'exec', data }), 'PROTO_UNKNOWN_TYPE'],
    ['prototype key as type', frame({ type: '__proto__', data }), 'PROTO_UNKNOWN_TYPE'],
    ['string ts', frame({ ts: '1706140800', data }), 'PROTO_SCHEMA'],
    ['fractional ts', frame({ ts: 1.5, data }), 'PROTO_SCHEMA'],
    ['negative ts', frame({ ts: -1, data }), 'PROTO_SCHEMA'],
    ['bad compression', frame({ compression: 'br', data }), 'PROTO_SCHEMA'],
    ['numeric data', frame({ data: 42 }), 'PROTO_SCHEMA'],
    ['bad id', frame({ id: 'a b', data }), 'PROTO_SCHEMA'],
    ['long id', frame({ id: 'x'.repeat(65), data }), 'PROTO_SCHEMA'],
    ['bad base64 char', frame({ data: 'eyJ0!XBlIjoi' }), 'PROTO_BAD_BASE64'],
    ['base64url alphabet', frame({ data: 'ab-_' }), 'PROTO_BAD_BASE64'],
    ['base64 bad length', frame({ data: 'abc' }), 'PROTO_BAD_BASE64'],
    ['base64 inner padding', frame({ data: 'ab==abcd' }), 'PROTO_BAD_BASE64'],
    ['gzip flag on plain data', frame({ data, compression: 'gzip' }), 'PROTO_BAD_GZIP'],
    ['truncated gzip', frame({ data: b64(nodeGzip('{"a":1}').subarray(0, 12)), compression: 'gzip' }), 'PROTO_BAD_GZIP'],
    ['payload not JSON', frame({ data: b64('not json') }), 'PROTO_BAD_JSON'],
    ['payload not UTF-8', frame({ data: b64(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])) }), 'PROTO_BAD_JSON'],
    ['payload an array', frame({ data: b64('[]') }), 'PROTO_SCHEMA'],
    ['alert without source', frame({ data: b64('{"type":"log","message":"m"}') }), 'PROTO_SCHEMA'],
    ['alert with numeric message', frame({ data: b64('{"type":"log","source":"s","message":5}') }), 'PROTO_SCHEMA'],
    ['alert type with spaces', frame({ data: b64('{"type":"a b","source":"s","message":"m"}') }), 'PROTO_SCHEMA'],
    ['empty data for alert', frame({ data: '' }), 'PROTO_SCHEMA'],
    ['metrics with no samples', frame({ type: 'metrics', data: b64('{"samples":[]}') }), 'PROTO_SCHEMA'],
    ['metrics sample NaN-ish', frame({ type: 'metrics', data: b64('{"samples":[{"ts":"now"}]}') }), 'PROTO_SCHEMA'],
    ['exec_result bad request_id', frame({ type: 'exec_result', data: b64('{"request_id":"../x","ok":true,"exit_code":0,"stdout":"","stderr":"","duration_ms":1,"truncated":false}') }), 'PROTO_SCHEMA'],
    ['exec_result malformed error_code', frame({ type: 'exec_result', data: b64('{"request_id":"r","ok":false,"exit_code":1,"stdout":"","stderr":"","duration_ms":1,"truncated":false,"error_code":"not a code"}') }), 'PROTO_SCHEMA'],
    ['hello with object actions', frame({ type: 'hello', data: b64('{"protocol":1,"agent_version":"1","hostname":"h","os":"linux","arch":"x64","actions":[{"a":1}]}') }), 'PROTO_SCHEMA'],
  ];
  for (const [name, input, code] of cases) {
    t.equal(codeOf(() => decodeFrame(input, fromAgent)), code, name);
  }
});

t.test('errors after the id carry it as refId', async (t) => {
  try {
    decodeFrame(frame({ id: 'ref-7', data: '!!!!' }), fromAgent);
    t.fail('should throw');
  } catch (err) {
    t.equal((err as ProtocolError).refId, 'ref-7');
  }
});

t.test('hostile JSON is refused or kept inert', async (t) => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  t.equal(codeOf(() => decodeFrame(frame({ data: b64(deep) }), fromAgent)), 'PROTO_SCHEMA', 'deep nesting');
  const proto = '{"type":"log","source":"s","message":"m","__proto__":{"polluted":true},"context":{"__proto__":{"x":1}}}';
  const { message } = decodeFrame(frame({ data: b64(proto) }), fromAgent);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  t.notOk(Object.hasOwn(message.payload, '__proto__'), 'unknown keys dropped');
  t.equal(Object.getPrototypeOf(message.payload), Object.prototype);
});

const SAMPLE = { ts: 1_700_000_000, cpu_pct: 1, mem_used: 1, mem_total: 2, load1: 0, load5: 0, load15: 0, disks: [], net: [] };

t.test('text no store can keep is refused at the edge: NUL, lone surrogates, context too deep or too large', async (t) => {
  const alert = (extra: Record<string, unknown>) => frame({ id: 'poison-1', data: b64(JSON.stringify({ type: 'log', source: 's', message: 'm', ...extra })) });
  const refused: [string, string][] = [
    ['NUL in the message', alert({ message: 'a\u0000b' })],
    ['NUL in the logs', alert({ logs: 'line\u0000' })],
    ['NUL in the source', alert({ source: 'unit\u0000.service' })],
    ['lone high surrogate in the logs', alert({ logs: 'x\ud800y' })],
    ['lone low surrogate in the status', alert({ status: '\udc00' })],
    ['NUL in a context string', alert({ context: { a: { b: 'x\u0000' } } })],
    ['lone surrogate in a context key', alert({ context: { ['k\ud800']: 1 } })],
    // Built as text: JSON.stringify itself overflows the stack on it, which is the point.
    ['context nested 5,000 deep', frame({ id: 'poison-1', data: b64(`{"type":"log","source":"s","message":"m","context":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`) })],
    ['context nested 9 deep', alert({ context: JSON.parse('{"a":'.repeat(9) + '1' + '}'.repeat(9)) })],
    ['context with 5,000 values', alert({ context: { list: Array.from({ length: 5000 }, (_, i) => i) } })],
    ['a context string over 16 KiB', alert({ context: { s: 'x'.repeat(17 * 1024) } })],
    ['a byte count no bigint column holds', frame({ type: 'metrics', id: 'poison-1', data: b64(JSON.stringify({ samples: [{ ...SAMPLE, mem_used: 1e20 }] })) })],
    ['a sample time past the year 9999', frame({ type: 'metrics', id: 'poison-1', data: b64(JSON.stringify({ samples: [{ ...SAMPLE, ts: 1e13 }] })) })],
    ['NUL in a hello hostname', frame({ type: 'hello', id: 'poison-1', data: b64(JSON.stringify({ protocol: 1, agent_version: '1', hostname: 'web\u00001', os: 'linux', arch: 'x64', actions: [] })) })],
  ];
  for (const [what, f] of refused) {
    try {
      decodeFrame(f, fromAgent);
      t.fail(`${what}: accepted`);
    } catch (err) {
      t.match(err, { code: 'PROTO_SCHEMA', refId: 'poison-1' }, what);
    }
  }
  // JSON text of the escapes themselves (not the characters) is fine, and so are real pairs.
  const ok = decodeFrame(alert({ message: 'emoji \ud83d\ude80 and a literal \\u0000', context: { depth: { of: { eight: { is: { fine: { here: { ok: { x: 1 } } } } } } } } }), fromAgent);
  t.match(ok.message.payload, { message: 'emoji 🚀 and a literal \\u0000' });
  const edge = decodeFrame(frame({ type: 'metrics', data: b64(JSON.stringify({ samples: [{ ...SAMPLE, ts: 253402300799, mem_total: 9e18 }] })) }), fromAgent);
  t.match(edge.message.payload, { samples: [{ mem_total: 9e18 }] }, 'the largest values allowed pass');
});

t.test('wireSafe makes text every receiver takes, and leaves the rest alone', async (t) => {
  const input = { logs: 'a\u0000b\ud800c', context: { ['k\u0000']: ['x\udc00', 5, null], fine: 'ümlaut 🚀' }, exit_code: 1 };
  const safe = wireSafe(input);
  t.same(safe, { logs: 'a\u2400b\ufffdc', context: { ['k\u2400']: ['x\ufffd', 5, null], fine: 'ümlaut 🚀' }, exit_code: 1 });
  t.equal(input.logs, 'a\u0000b\ud800c', 'the input is not changed');
  const frame = encodeEnvelope('alert', { type: 'log', source: 's', message: 'm', ...safe }, { id: 'safe-1' });
  t.match(decodeFrame(frame, fromAgent).message.payload, { logs: 'a\u2400b\ufffdc' }, 'and it passes the checks');
});

t.test('an exec error code this side does not know is kept, not refused', async (t) => {
  const data = b64('{"request_id":"r","ok":false,"exit_code":1,"stdout":"","stderr":"","duration_ms":1,"truncated":false,"error_code":"EXEC_QUOTA"}');
  const { message } = decodeFrame(frame({ type: 'exec_result', data }), fromAgent);
  t.match(message.payload, { error_code: 'EXEC_QUOTA' });
});

t.test('unknown payload keys are dropped, so newer agents still talk', async (t) => {
  const { message } = decodeFrame(frame({ type: 'heartbeat', data: b64('{"cpu_pct":1,"gpu_pct":9}') }), fromAgent);
  t.same(message.payload, { cpu_pct: 1 });
});

t.test('payload limits', async (t) => {
  const limits = { ...DEFAULT_LIMITS, maxPayloadBytes: 1000 };
  const big = JSON.stringify({ type: 'log', source: 's', message: 'x'.repeat(2000) });
  t.equal(codeOf(() => decodeFrame(frame({ data: b64(big) }), fromAgent, limits)), 'PROTO_TOO_LARGE', 'plain');
  t.equal(codeOf(() => decodeFrame(frame({ data: b64(nodeGzip(big)), compression: 'gzip' }), fromAgent, limits)), 'PROTO_TOO_LARGE', 'gzip');
  const fits = JSON.stringify({ type: 'log', source: 's', message: 'x'.repeat(900) });
  t.equal(codeOf(() => decodeFrame(frame({ data: b64(nodeGzip(fits)), compression: 'gzip' }), fromAgent, limits)), 'none', 'just under');
});

t.test('a 50 MB gzip bomb is stopped at the limit, never inflated whole', async (t) => {
  const zeros = Buffer.alloc(50 * 1024 * 1024);
  const bomb = nodeGzip(zeros, { level: 9 });
  t.ok(bomb.length < 100 * 1024, `bomb is ${bomb.length} bytes compressed`);
  t.equal(codeOf(() => gunzipBounded(bomb, 4 * 1024 * 1024)), 'PROTO_TOO_LARGE');
  // Corrupt the tail: a decoder that inflated everything before measuring would reach it and
  // report PROTO_BAD_GZIP. Stopping at the limit never gets there.
  const poisoned = Buffer.from(bomb);
  poisoned.fill(0xff, poisoned.length - 64);
  t.equal(codeOf(() => gunzipBounded(poisoned, 4 * 1024 * 1024)), 'PROTO_TOO_LARGE');
  t.equal(codeOf(() => gunzipBounded(poisoned, 100 * 1024 * 1024)), 'PROTO_BAD_GZIP', 'the tail really is corrupt');
  const before = process.memoryUsage().arrayBuffers;
  const wire = frame({ data: b64(bomb), compression: 'gzip' });
  t.ok(wire.length < DEFAULT_LIMITS.maxFrameBytes, 'fits in one frame');
  t.equal(codeOf(() => decodeFrame(wire, fromAgent)), 'PROTO_TOO_LARGE');
  t.ok(process.memoryUsage().arrayBuffers - before < 40 * 1024 * 1024, 'no 50 MB buffer was made');
});

t.test('gunzipBounded handles empty and concatenated input', async (t) => {
  t.equal(codeOf(() => gunzipBounded(new Uint8Array(0), 10)), 'PROTO_BAD_GZIP');
  const two = Buffer.concat([nodeGzip('ab'), nodeGzip('cd')]);
  t.equal(Buffer.from(gunzipBounded(two, 100)).toString(), 'abcd');
});

t.test('the small-input fast path never trusts the gzip trailer', async (t) => {
  const text = JSON.stringify({ type: 'log', source: 's', message: 'hello '.repeat(50) });
  const good = nodeGzip(text);
  const withTrailer = (size: number, crc?: number) => {
    const b = Buffer.from(good);
    if (crc !== undefined) b.writeUInt32LE(crc, b.length - 8);
    b.writeUInt32LE(size, b.length - 4);
    return b;
  };
  const decode = (b: Uint8Array) => Buffer.from(gunzipBounded(b, DEFAULT_LIMITS.maxPayloadBytes)).toString();
  t.equal(decode(good), text);
  // A trailer that disagrees with the data is corrupt gzip: refused, never truncated or padded to it.
  t.equal(codeOf(() => decode(withTrailer(10))), 'PROTO_BAD_GZIP', 'a size that is too small does not truncate');
  t.equal(codeOf(() => decode(withTrailer(text.length + 5))), 'PROTO_BAD_GZIP', 'a size that is too large does not pad');
  t.equal(codeOf(() => decode(withTrailer(0xffffffff))), 'PROTO_BAD_GZIP', 'an impossible size allocates nothing');
  t.equal(codeOf(() => decode(withTrailer(text.length, 12345))), 'PROTO_BAD_GZIP', 'a bad CRC falls back to the exact path, which checks it');
  const members = Buffer.concat([nodeGzip('{"a":'), nodeGzip('1}')]);
  t.equal(decode(members), '{"a":1}', 'every member of a multi-member stream is kept');
  const truncated = good.subarray(0, good.length - 12);
  t.equal(codeOf(() => gunzipBounded(truncated, 1 << 20)), 'PROTO_BAD_GZIP');
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926, 'CRC-32 check value');
  // node's zlib.crc32 where it exists, the table elsewhere: both give gzip's value.
  t.equal(crc32Js(Buffer.from('123456789')), 0xcbf43926, 'CRC-32 check value without zlib.crc32');
  const bytes = randomBytes(4096);
  for (const n of [0, 1, 7, 412, 4096]) t.equal(crc32(bytes.subarray(0, n)), crc32Js(bytes.subarray(0, n)), `the two agree on ${n} bytes`);
});

t.test('ids are sortable, unique and wire-safe', async (t) => {
  const a = newId(1000);
  const b = newId(2000);
  t.ok(a < b);
  t.not(newId(), newId());
  const burst = Array.from({ length: 1000 }, () => newId());
  t.same([...burst].sort(), burst, 'strictly increasing within one millisecond');
  t.equal(new Set(burst).size, 1000);
  t.ok(newId(5) > burst[999]!, 'a clock step back never goes back in order');
  t.match(newId(), /^[0-9A-HJKMNP-TV-Z]{26}$/);
});

t.test('every error code and close code is documented in docs/ERRORS.md', async (t) => {
  const doc = readFileSync(new URL('../../../docs/ERRORS.md', import.meta.url), 'utf8');
  for (const code of [...PROTOCOL_ERROR_CODES, ...EXEC_ERROR_CODES]) {
    t.match(doc, new RegExp(`\\| \`${code}\` \\|`), code);
  }
  for (const code of Object.values(CLOSE_CODES)) t.match(doc, new RegExp(`\\| ${code} \\|`), `close ${code}`);
});

t.test('readEnvelope checks only the fields, never data', async (t) => {
  const env = readEnvelope(parseFrame(frame({ data: 'not even base64!' })), fromAgent);
  t.equal(env.data, 'not even base64!');
});

t.test('the message-set version is negotiated down, and an agent older than the minimum is refused', async (t) => {
  t.equal(negotiateProtocol(PROTOCOL_VERSION), PROTOCOL_VERSION);
  t.equal(negotiateProtocol(PROTOCOL_VERSION + 3), PROTOCOL_VERSION, 'a newer agent is spoken to in this version');
  t.throws(() => negotiateProtocol(MIN_PROTOCOL_VERSION - 1, 'h1'), { code: 'PROTO_VERSION', refId: 'h1' });
  t.equal((decodeFrame(encodeEnvelope('welcome', { agent_id: 'a', heartbeat_interval_s: 30 }), HUB_MESSAGE_TYPES).message.payload as { protocol?: number }).protocol, undefined, 'a welcome without protocol (older hubs) still decodes');
});
