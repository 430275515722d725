import { PROTOCOL_ERROR_CODES, ProtocolError } from './errors.ts';
import { ID_PATTERN } from './limits.ts';
import { arr, bool, int, jsonDocument, jsonObject, nullable, num, obj, oneOf, SchemaViolation, str, type Check, type Infer } from './schema.ts';

/** Message types an agent sends, in PROTOCOL.md order. */
export const AGENT_MESSAGE_TYPES = ['hello', 'heartbeat', 'metrics', 'alert', 'resolve', 'exec_result'] as const;
export type AgentMessageType = (typeof AGENT_MESSAGE_TYPES)[number];

/** Message types the hub sends. */
export const HUB_MESSAGE_TYPES = ['welcome', 'ack', 'exec', 'error'] as const;
export type HubMessageType = (typeof HUB_MESSAGE_TYPES)[number];

export const MESSAGE_TYPES = [...AGENT_MESSAGE_TYPES, ...HUB_MESSAGE_TYPES] as const;
export type MessageType = AgentMessageType | HubMessageType;

/** Types the agent keeps in its durable outbox until the hub acks them. */
export const DURABLE_MESSAGE_TYPES = ['alert', 'resolve', 'exec_result'] as const satisfies readonly AgentMessageType[];

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
 * messages are added; both sides then use what the lower of the two versions has, so an older
 * agent keeps working with a newer hub and the other way round. The envelope's `ver` is separate:
 * it changes only if the envelope itself does.
 */
export const PROTOCOL_VERSION = 1;
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
export type ExecParams = Infer<typeof execParams>;

export type PayloadOf<T extends MessageType> = Infer<(typeof PAYLOAD_SCHEMAS)[T]>;

/** A decoded message: the type and its validated payload, discriminated on `type`. */
export type Message<T extends MessageType = MessageType> = {
  [K in T]: { type: K; payload: PayloadOf<K> };
}[T];
