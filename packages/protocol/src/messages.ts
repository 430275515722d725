import { PROTOCOL_ERROR_CODES, ProtocolError } from './errors.ts';
import { ID_PATTERN } from './limits.ts';
import { arr, bool, int, jsonDocument, jsonObject, nullable, num, obj, oneOf, pair, record, SchemaViolation, str, type Check, type Infer } from './schema.ts';

/** Message types an agent sends, in PROTOCOL.md order. */
export const AGENT_MESSAGE_TYPES = ['hello', 'heartbeat', 'metrics', 'alert', 'resolve', 'exec_result', 'check_results'] as const;
export type AgentMessageType = (typeof AGENT_MESSAGE_TYPES)[number];

/** Message types the hub sends. */
export const HUB_MESSAGE_TYPES = ['welcome', 'ack', 'exec', 'error', 'monitors'] as const;
export type HubMessageType = (typeof HUB_MESSAGE_TYPES)[number];

export const MESSAGE_TYPES = [...AGENT_MESSAGE_TYPES, ...HUB_MESSAGE_TYPES] as const;
export type MessageType = AgentMessageType | HubMessageType;

/** Types the agent keeps in its durable outbox until the hub acks them. */
export const DURABLE_MESSAGE_TYPES = ['alert', 'resolve', 'exec_result', 'check_results'] as const satisfies readonly AgentMessageType[];

/**
 * Messages added by each protocol version: a side sends one only when the negotiated version
 * has it (a hub never sends `monitors` to an agent that said 1; an agent sends `check_results`
 * only to a hub that said 2).
 */
export const MESSAGE_SINCE: Partial<Record<MessageType, number>> = { monitors: 2, check_results: 2 };

const KiB = 1024;
const MiB = 1024 * KiB;

const actionName = str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.-]+$/ });
const word = str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.-]+$/ });
const pct = num({ min: 0, max: 10_000 });
// Past these no store can keep the value (a bigint column, a timestamp): refused at the edge
// rather than failing the database write. 9e18 bytes is 9 EB; 253402300799 is 9999-12-31.
export const MAX_BYTES = 9e18;
export const MAX_UNIX_SECONDS = 253_402_300_799;
const bytes = num({ min: 0, max: MAX_BYTES });
const unixSeconds = num({ min: 0, max: MAX_UNIX_SECONDS });

/**
 * The message set this code speaks (`hello.protocol`, `welcome.protocol`). It grows by one when
 * messages are added or what a side may expect of the other changes (3: the hub pings only an
 * agent it has not heard from since its last round); both sides then use what the lower of the two versions has, so an older
 * agent keeps working with a newer hub and the other way round. The envelope's `ver` is separate:
 * it changes only if the envelope itself does.
 */
export const PROTOCOL_VERSION = 3;
/** The oldest message set a hub of this code still serves. */
export const MIN_PROTOCOL_VERSION = 1;

/**
 * The message set both sides use, given the agent's `hello.protocol`: the lower of the two
 * versions. An agent older than MIN_PROTOCOL_VERSION is refused with PROTO_VERSION.
 */
export function negotiateProtocol(agentVersion: number, refId?: string): number {
  if (agentVersion < MIN_PROTOCOL_VERSION) {
    throw new ProtocolError('PROTO_VERSION', `hello.protocol ${agentVersion} is older than this hub serves (${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}): upgrade the agent`, refId);
  }
  return Math.min(agentVersion, PROTOCOL_VERSION);
}

export const helloPayload = obj(
  {
    protocol: int({ min: 0, max: 1_000_000 }),
    agent_version: str({ min: 1, max: 64 }),
    hostname: str({ min: 1, max: 255 }),
    os: str({ min: 1, max: 128 }),
    arch: str({ min: 1, max: 64 }),
    actions: arr(actionName, { max: 256 }),
  },
  {
    kernel: str({ max: 256 }),
    boot_time: unixSeconds,
  },
);

export const heartbeatPayload = obj(
  {},
  {
    uptime_s: num({ min: 0 }),
    cpu_pct: pct,
    mem_pct: pct,
    load1: num({ min: 0 }),
  },
);

export const metricSample = obj(
  {
    ts: unixSeconds,
    cpu_pct: pct,
    mem_used: bytes,
    mem_total: bytes,
    load1: num({ min: 0 }),
    load5: num({ min: 0 }),
    load15: num({ min: 0 }),
    disks: arr(obj({ mount: str({ min: 1, max: 1024 }), used: bytes, size: bytes }), { max: 256 }),
    net: arr(obj({ iface: str({ min: 1, max: 64 }), rx_bps: bytes, tx_bps: bytes }), { max: 256 }),
  },
  { swap_used: bytes },
);

export const metricsPayload = obj({ samples: arr(metricSample, { min: 1, max: 1000 }) });

export const alertPayload = obj(
  {
    type: word,
    source: str({ min: 1, max: 1024 }),
    message: str({ max: 64 * KiB }),
  },
  {
    logs: str({ max: 2 * MiB }),
    exit_code: int({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    status: str({ max: 256 }),
    context: jsonDocument({ maxDepth: 8, maxNodes: 1000, maxString: 16 * KiB }),
  },
);

export const resolvePayload = obj(
  { type: word, source: str({ min: 1, max: 1024 }) },
  { message: str({ max: 64 * KiB }) },
);

export const execResultPayload = obj(
  {
    request_id: str({ pattern: ID_PATTERN, max: 64 }),
    ok: bool,
    exit_code: nullable(int({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    stdout: str({ max: 1 * MiB }),
    stderr: str({ max: 1 * MiB }),
    duration_ms: num({ min: 0 }),
    truncated: bool,
  },
  // Any well-formed code: an agent may know codes this hub does not (EXEC_ERROR_CODES lists the
  // documented ones), and refusing its result would lose it.
  { error_code: str({ min: 1, max: 64, pattern: /^[A-Z][A-Z0-9_]*$/ }) },
);

export const welcomePayload = obj(
  { agent_id: str({ min: 1, max: 64 }), heartbeat_interval_s: num({ min: 1 }) },
  // The hub's PROTOCOL_VERSION (absent from hubs before it was sent: read as 1).
  { protocol: int({ min: 1, max: 1_000_000 }) },
);

export const ackPayload = obj({ ids: arr(str({ pattern: ID_PATTERN, max: 64 }), { max: 10_000 }) });

/** Exec parameters are typed scalars only: never an object or a shell string to interpret. */
const paramValue: Check<string | number | boolean> = (value, path) => {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return num()(value, path);
  return str({ max: 4096 })(value, path);
};

export const execParams: Check<Record<string, string | number | boolean>> = (value, path) => {
  const input = jsonObject(value, path);
  const keys = Object.keys(input);
  if (keys.length > 32) throw new SchemaViolation(path, 'must have at most 32 parameters');
  const out: Record<string, string | number | boolean> = {};
  for (const key of keys) {
    word(key, `${path}.${key}`);
    out[key] = paramValue(input[key], `${path}.${key}`);
  }
  return out;
};

export const execPayload = obj({
  request_id: str({ pattern: ID_PATTERN, max: 64 }),
  command: actionName,
  params: execParams,
  timeout_ms: int({ min: 1, max: 600_000 }),
});

/** Checks an agent runs for the hub (protocol 2): the same shapes as the hub's /v1/monitors. */
export const CHECK_KINDS = ['http', 'tcp', 'dns', 'tls'] as const;
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export const DNS_RECORD_TYPES = ['A', 'AAAA', 'CNAME', 'MX', 'TXT', 'NS'] as const;
const status = int({ min: 100, max: 599 });
const headerName = str({ min: 1, max: 128, pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/ });
const headerValue = str({ max: 4096, pattern: /^[^\r\n]*$/ });

export const monitorDefinition = obj(
  {
    id: str({ pattern: ID_PATTERN, max: 64 }),
    kind: oneOf(CHECK_KINDS),
    target: str({ min: 1, max: 2048 }),
    interval_s: int({ min: 10, max: 86_400 }),
    timeout_ms: int({ min: 100, max: 60_000 }),
  },
  {
    conditions: arr(str({ min: 1, max: 256 }), { max: 20 }),
    http: obj(
      {},
      {
        method: oneOf(HTTP_METHODS),
        headers: record(headerName, headerValue, { max: 32 }),
        body: str({ max: 64 * KiB }),
        follow_redirects: bool,
        accept_status: arr(pair(status, status), { min: 1, max: 16 }),
        body_contains: str({ min: 1, max: 1024 }),
        verify_tls: bool,
      },
    ),
    dns: obj({}, { record_type: oneOf(DNS_RECORD_TYPES), expected: str({ min: 1, max: 255 }), resolver: str({ min: 2, max: 60, pattern: /^[0-9A-Fa-f.:[\]]+$/ }) }),
    tls: obj({}, { verify: bool }),
  },
);

/**
 * hub → agent (protocol 2): every check this agent is to run, replacing the set it had. `version`
 * names the set (the same set has the same version), so an agent can tell a resend from a change.
 */
export const monitorsPayload = obj({
  version: str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.:-]+$/ }),
  monitors: arr(monitorDefinition, { max: 500 }),
});

/** One check's outcome at an agent. */
export const checkResult = obj(
  {
    monitor_id: str({ pattern: ID_PATTERN, max: 64 }),
    /** When the check started, Unix seconds (fractions allowed). */
    at: unixSeconds,
    ok: bool,
    response_ms: num({ min: 0, max: 3_600_000 }),
  },
  {
    status: int({ min: 0, max: 999 }),
    error: str({ max: 1000 }),
    failures: arr(str({ max: 1000 }), { max: 20 }),
    cert_expires_at: unixSeconds,
  },
);

/** agent → hub (protocol 2, durable): results of the checks the hub sent. */
export const checkResultsPayload = obj({ results: arr(checkResult, { min: 1, max: 1000 }) });

export const errorPayload = obj(
  { code: oneOf(PROTOCOL_ERROR_CODES), message: str({ max: 4096 }) },
  { ref_id: str({ max: 64 }) },
);

export const PAYLOAD_SCHEMAS = {
  hello: helloPayload,
  heartbeat: heartbeatPayload,
  metrics: metricsPayload,
  alert: alertPayload,
  resolve: resolvePayload,
  exec_result: execResultPayload,
  welcome: welcomePayload,
  ack: ackPayload,
  exec: execPayload,
  error: errorPayload,
  monitors: monitorsPayload,
  check_results: checkResultsPayload,
} as const satisfies Record<MessageType, Check<unknown>>;

export type HelloPayload = Infer<typeof helloPayload>;
export type HeartbeatPayload = Infer<typeof heartbeatPayload>;
export type MetricSample = Infer<typeof metricSample>;
export type MetricsPayload = Infer<typeof metricsPayload>;
export type AlertPayload = Infer<typeof alertPayload>;
export type ResolvePayload = Infer<typeof resolvePayload>;
export type ExecResultPayload = Infer<typeof execResultPayload>;
export type WelcomePayload = Infer<typeof welcomePayload>;
export type AckPayload = Infer<typeof ackPayload>;
export type ExecPayload = Infer<typeof execPayload>;
export type ErrorPayload = Infer<typeof errorPayload>;
export type MonitorDefinition = Infer<typeof monitorDefinition>;
export type MonitorsPayload = Infer<typeof monitorsPayload>;
export type CheckResultPayload = Infer<typeof checkResult>;
export type CheckResultsPayload = Infer<typeof checkResultsPayload>;
export type ExecParams = Infer<typeof execParams>;

export type PayloadOf<T extends MessageType> = Infer<(typeof PAYLOAD_SCHEMAS)[T]>;

/** A decoded message: the type and its validated payload, discriminated on `type`. */
export type Message<T extends MessageType = MessageType> = {
  [K in T]: { type: K; payload: PayloadOf<K> };
}[T];
