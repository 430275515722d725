/**
 * Every error code an agent, a script or an operator can meet on the wire, with what it means.
 * docs/ERRORS.md lists the same codes; a test keeps the two in step.
 */
export const PROTOCOL_ERROR_CODES = [
  'PROTO_BAD_BASE64',
  'PROTO_BAD_GZIP',
  'PROTO_TOO_LARGE',
  'PROTO_BAD_JSON',
  'PROTO_SCHEMA',
  'PROTO_UNKNOWN_TYPE',
  'PROTO_VERSION',
  'PROTO_REFUSED',
] as const;
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

/** Codes an agent puts in `exec_result.error_code`. */
export const EXEC_ERROR_CODES = [
  'EXEC_NOT_ALLOWED',
  'EXEC_BAD_PARAMS',
  'EXEC_TIMEOUT',
  'EXEC_FAILED_TO_START',
  'EXEC_BUSY',
  'EXEC_DUPLICATE',
  'EXEC_BAD_REQUEST',
] as const;
export type ExecErrorCode = (typeof EXEC_ERROR_CODES)[number];

/** WebSocket close codes of PROTOCOL.md. */
export const CLOSE_CODES = {
  normal: 1000,
  tooLarge: 1009,
  restarting: 1012,
  protocolViolation: 4400,
  unauthenticated: 4401,
  timeout: 4408,
  replaced: 4409,
} as const;
export type CloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

/**
 * A frame or payload that breaks the protocol. The connection stays open: the hub answers it with
 * an `error` envelope carrying `code`, and `refId` when the offending envelope had an id.
 */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly refId: string | undefined;

  constructor(code: ProtocolErrorCode, message: string, refId?: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.refId = refId;
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}
