import { gzipSync } from 'fflate';
import { ProtocolError } from './errors.ts';
import { DEFAULT_LIMITS, ID_PATTERN, type Limits } from './limits.ts';
import { gunzipBounded } from './inflate.ts';
import { MESSAGE_TYPES, PAYLOAD_SCHEMAS, type Message, type MessageType, type PayloadOf } from './messages.ts';
import { SchemaViolation } from './schema.ts';

export const PROTOCOL_VER = '1.0';
export const COMPRESSIONS = ['gzip', 'none'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** An envelope whose fields are checked but whose `data` is not decoded yet. */
export interface Envelope<T extends MessageType = MessageType> {
  ver: string;
  ts: number;
  token?: string;
  type: T;
  data: string;
  compression: Compression;
  id?: string;
}

const MAX_TOKEN_CHARS = 512;
/**
 * Payloads shorter than this (UTF-8 bytes) are sent uncompressed unless the caller asks for gzip.
 * Base64 of 899 bytes is 1,200 characters; with the envelope's fields (an id of up to 64) and
 * the WebSocket header the frame stays under ~1,380 bytes, one TCP segment on Ethernet (1,448),
 * so gzip would save no packet and only cost CPU on both ends: inflating a 400-byte metrics
 * batch was a fifth of the hub's work on such a frame.
 */
export const GZIP_MIN_BYTES = 900;
const STRICT_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse a frame's JSON into a plain object, without looking at `data`. The hub reads the token
 * from this before anything else is decoded.
 */
export function parseFrame(frame: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(frame);
  } catch {
    throw new ProtocolError('PROTO_BAD_JSON', 'frame is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProtocolError('PROTO_BAD_JSON', 'frame is not a JSON object');
  }
  return raw as Record<string, unknown>;
}

/** The frame's `token` when it is a string of sane length, else undefined. */
export function frameToken(raw: Record<string, unknown>): string | undefined {
  const token = raw.token;
  return typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_CHARS ? token : undefined;
}

/**
 * Check the envelope fields of a parsed frame. `accept` lists the types this side may receive;
 * any other type, known or not, is PROTO_UNKNOWN_TYPE.
 */
export function readEnvelope<T extends MessageType>(raw: Record<string, unknown>, accept: readonly T[]): Envelope<T> {
  const id = raw.id;
  if (id !== undefined && (typeof id !== 'string' || !ID_PATTERN.test(id))) {
    throw new ProtocolError('PROTO_SCHEMA', 'id must be 1-64 characters of [A-Za-z0-9_-]');
  }
  const refId = id as string | undefined;
  const ver = raw.ver;
  if (typeof ver !== 'string' || ver.split('.')[0] !== '1') {
    throw new ProtocolError('PROTO_VERSION', `unsupported protocol version ${JSON.stringify(ver ?? null)}; this hub speaks 1.x`, refId);
  }
  const type = raw.type;
  if (typeof type !== 'string' || !(accept as readonly string[]).includes(type)) {
    throw new ProtocolError('PROTO_UNKNOWN_TYPE', `unknown message type ${JSON.stringify(type ?? null)}`, refId);
  }
  const ts = raw.ts;
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts < 0) {
    throw new ProtocolError('PROTO_SCHEMA', 'ts must be a non-negative integer (Unix seconds)', refId);
  }
  const data = raw.data ?? '';
  if (typeof data !== 'string') throw new ProtocolError('PROTO_SCHEMA', 'data must be a string', refId);
  const compression = raw.compression ?? 'none';
  if (compression !== 'gzip' && compression !== 'none') {
    throw new ProtocolError('PROTO_SCHEMA', 'compression must be "gzip" or "none"', refId);
  }
  const token = raw.token;
  if (token !== undefined && (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS)) {
    throw new ProtocolError('PROTO_SCHEMA', 'token must be a string', refId);
  }
  const env: Envelope<T> = { ver, ts, type: type as T, data, compression };
  if (token !== undefined) env.token = token;
  if (refId !== undefined) env.id = refId;
  return env;
}

/** Decode and validate an envelope's payload within `limits`. */
export function decodePayload<T extends MessageType>(env: Envelope<T>, limits: Limits = DEFAULT_LIMITS): Message<T> {
  let value: unknown = {};
  if (env.data !== '') {
    const text = decodeData(env.data, env.compression, limits.maxPayloadBytes, env.id);
    try {
      value = JSON.parse(text);
    } catch {
      throw new ProtocolError('PROTO_BAD_JSON', 'payload is not JSON', env.id);
    }
  }
  try {
    const payload = PAYLOAD_SCHEMAS[env.type](value, '') as PayloadOf<T>;
    return { type: env.type, payload } as Message<T>;
  } catch (err) {
    if (err instanceof SchemaViolation) {
      throw new ProtocolError('PROTO_SCHEMA', `${env.type} ${err.message}`, env.id);
    }
    throw err;
  }
}

function decodeData(data: string, compression: Compression, maxBytes: number, refId: string | undefined): string {
  if (data.length % 4 !== 0 || !STRICT_BASE64.test(data)) {
    throw new ProtocolError('PROTO_BAD_BASE64', 'data is not standard base64', refId);
  }
  const raw = Buffer.from(data, 'base64');
  let bytes: Uint8Array;
  if (compression === 'gzip') {
    try {
      bytes = gunzipBounded(raw, maxBytes);
    } catch (err) {
      if (err instanceof ProtocolError) throw new ProtocolError(err.code, err.message, refId);
      throw err;
    }
  } else {
    if (raw.length > maxBytes) {
      throw new ProtocolError('PROTO_TOO_LARGE', `payload is larger than the ${maxBytes}-byte limit`, refId);
    }
    bytes = raw;
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ProtocolError('PROTO_BAD_JSON', 'payload is not UTF-8', refId);
  }
}

/** Parse, check and decode one frame: the three steps above in order. */
export function decodeFrame<T extends MessageType>(
  frame: string,
  accept: readonly T[],
  limits: Limits = DEFAULT_LIMITS,
): { envelope: Envelope<T>; message: Message<T> } {
  const envelope = readEnvelope(parseFrame(frame), accept);
  return { envelope, message: decodePayload(envelope, limits) };
}

export interface EncodeOptions {
  token?: string;
  id?: string;
  /**
   * Default: `gzip` for payloads of GZIP_MIN_BYTES or more, `none` below, where the frame fits
   * one TCP segment either way.
   */
  compression?: Compression;
  /** Unix seconds; defaults to now. */
  ts?: number;
}

/**
 * Encode a message as one frame. An empty payload is sent as `data: ""`, as the original agents
 * did for heartbeats. The payload is validated first, so nothing invalid leaves this process.
 */
export function encodeEnvelope<T extends MessageType>(type: T, payload: PayloadOf<T>, opts: EncodeOptions = {}): string {
  try {
    PAYLOAD_SCHEMAS[type](payload, '');
  } catch (err) {
    if (err instanceof SchemaViolation) throw new Error(`refusing to encode an invalid ${type}: ${err.message}`);
    throw err;
  }
  const json = JSON.stringify(payload);
  const bytes = Buffer.from(json, 'utf8');
  const compression = opts.compression ?? (bytes.length >= GZIP_MIN_BYTES ? 'gzip' : 'none');
  let data = '';
  if (json !== '{}') {
    data = Buffer.from(compression === 'gzip' ? gzipSync(bytes, { level: 6 }) : bytes).toString('base64');
  }
  const env: Record<string, unknown> = { ver: PROTOCOL_VER, ts: opts.ts ?? Math.floor(Date.now() / 1000) };
  if (opts.token !== undefined) env.token = opts.token;
  env.type = type;
  env.data = data;
  env.compression = compression;
  if (opts.id !== undefined) {
    if (!ID_PATTERN.test(opts.id)) throw new Error(`invalid envelope id ${JSON.stringify(opts.id)}`);
    env.id = opts.id;
  }
  return JSON.stringify(env);
}

