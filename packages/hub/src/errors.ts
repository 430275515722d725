/**
 * REST error codes (docs/ERRORS.md): each with its HTTP status and whether the same request can
 * succeed later without change (`retry`). docs/ERRORS.md lists the same three things; a test
 * checks both ways.
 */
export const HUB_ERRORS = {
  HUB_UNAUTHORIZED: { status: 401, retry: false },
  HUB_SLACK_BAD_SIGNATURE: { status: 401, retry: false },
  HUB_SLACK_STALE_REQUEST: { status: 401, retry: false },
  HUB_INTAKE_UNAUTHORIZED: { status: 401, retry: false },
  HUB_INTAKE_BAD_SIGNATURE: { status: 401, retry: false },
  HUB_INTAKE_STALE_REQUEST: { status: 401, retry: false },
  HUB_INTAKE_DISABLED: { status: 403, retry: false },
  HUB_INTAKE_MALFORMED: { status: 400, retry: false },
  HUB_INTEGRATION_NOT_FOUND: { status: 404, retry: false },
  HUB_INVALID_INTEGRATION: { status: 400, retry: false },
  HUB_HEARTBEAT_NOT_FOUND: { status: 404, retry: false },
  HUB_INVALID_HEARTBEAT: { status: 400, retry: false },
  HUB_MONITOR_NOT_FOUND: { status: 404, retry: false },
  HUB_INVALID_MONITOR: { status: 400, retry: false },
  HUB_FORBIDDEN: { status: 403, retry: false },
  HUB_CSRF: { status: 403, retry: false },
  HUB_NO_SESSION: { status: 404, retry: false },
  HUB_RATE_LIMITED: { status: 429, retry: true },
  HUB_BAD_REQUEST: { status: 400, retry: false },
  HUB_INVALID_RULE: { status: 400, retry: false },
  HUB_TOKEN_NOT_FOUND: { status: 404, retry: false },
  HUB_RULE_NOT_FOUND: { status: 404, retry: false },
  HUB_SILENCE_NOT_FOUND: { status: 404, retry: false },
  HUB_NAME_TAKEN: { status: 409, retry: false },
  HUB_NOT_WAITING: { status: 409, retry: false },
  HUB_NOT_FOUND: { status: 404, retry: false },
  HUB_AGENT_NOT_FOUND: { status: 404, retry: false },
  HUB_INCIDENT_NOT_FOUND: { status: 404, retry: false },
  HUB_EXEC_NOT_FOUND: { status: 404, retry: false },
  HUB_AGENT_OFFLINE: { status: 409, retry: true },
  HUB_EXEC_NOT_IN_CATALOGUE: { status: 400, retry: false },
  HUB_EXEC_NOT_DELIVERED: { status: 502, retry: true },
  HUB_EXEC_TIMEOUT: { status: 504, retry: false },
  HUB_INCIDENT_RESOLVED: { status: 409, retry: false },
  HUB_PAYLOAD_TOO_LARGE: { status: 413, retry: false },
  HUB_UNAVAILABLE: { status: 503, retry: true },
  HUB_INTERNAL: { status: 500, retry: false },
} as const satisfies Record<string, { status: number; retry: boolean }>;
export type HubErrorCode = keyof typeof HUB_ERRORS;
export const HUB_ERROR_CODES = Object.keys(HUB_ERRORS) as HubErrorCode[];

/** The one shape of every REST error body. */
export interface ErrorBody {
  error: { code: HubErrorCode; message: string; retry: boolean; field?: string };
}

/** An error a REST caller can meet: rendered as `{"error":{"code","message","retry"}}` with its status. */
export class HubError extends Error {
  readonly code: HubErrorCode;
  readonly statusCode: number;
  /** Whether the same request may succeed later (after Retry-After, once the agent is back…). */
  readonly retry: boolean;
  constructor(
    code: HubErrorCode,
    message: string,
    /** The request field it concerns, as a dotted path (`match.labels.env`), when it is one. */
    readonly field?: string,
  ) {
    super(message);
    this.name = 'HubError';
    this.code = code;
    this.statusCode = HUB_ERRORS[code].status;
    this.retry = HUB_ERRORS[code].retry;
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message, retry: this.retry, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

/** The body for `code` (routes outside the /v1 error handler, such as /metrics, use it too). */
export function errorBody(code: HubErrorCode, message: string, field?: string): ErrorBody {
  return new HubError(code, message, field).body();
}

/**
 * The field a schema validation error concerns (the first one's), as a dotted path: the
 * property that failed, or the one missing or not allowed. Undefined for the whole body.
 */
export function validationField(errors: readonly { instancePath?: string; params?: Record<string, unknown> }[] | undefined): string | undefined {
  const first = errors?.[0];
  if (!first) return undefined;
  const parts = (first.instancePath ?? '').split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const named = first.params?.missingProperty ?? first.params?.additionalProperty;
  if (typeof named === 'string') parts.push(named);
  return parts.length > 0 ? parts.join('.').slice(0, 200) : undefined;
}

/**
 * A problem the operator must fix before the hub can start (a bad setting, a bad rules file, a
 * database that does not answer, a port in use): the process prints it, naming the setting, and
 * exits 2.
 */
export class StartupError extends Error {
  constructor(
    /** The environment variable to look at (OPSPILOT_PORT, DATABASE_URL…). */
    readonly setting: string,
    message: string,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}
